"""The contract and its generated stubs: regenerated stubs match the committed ones, every
element of the .proto is documented, and the packaging keeps grpc out of the library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "proto"))
import generate  # noqa: E402  (proto/generate.py, the one generator)

sys.path.remove(str(REPO / "proto"))


def test_committed_stubs_are_exactly_what_the_pinned_generator_writes(tmp_path):
    written = generate.generate(tmp_path)
    committed = REPO / "wobbledetect" / "v1"
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in committed.iterdir() if p.is_file())
    assert {"screening_pb2.py", "screening_pb2_grpc.py", "tensor_pb2.py"} <= set(names)
    stale = [n for n in names if (tmp_path / n).read_bytes() != (committed / n).read_bytes()]
    assert not stale, f"stale generated stubs {stale}: run `make protos` (python proto/generate.py)"


def _documented_elements(tmp_path):
    """(kind, name, leading comment) of every message, field, enum, value, service, rpc."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    out = tmp_path / "set.pb"
    protos = sorted(p.relative_to(REPO / "proto").as_posix()
                    for p in (REPO / "proto" / "wobbledetect" / "v1").glob("*.proto"))
    assert protoc.main(["protoc", f"-I{REPO / 'proto'}", "--include_source_info",
                        f"--descriptor_set_out={out}", *protos]) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    for file in files:
        comments = {tuple(loc.path): loc.leading_comments.strip()
                    for loc in file.source_code_info.location}
        for i, message in enumerate(file.message_type):
            yield from _message_elements(message, (4, i), comments)
        for i, enum in enumerate(file.enum_type):
            yield from _enum_elements(enum, (5, i), comments)
        for i, service in enumerate(file.service):
            yield "service", service.name, comments.get((6, i), "")
            for j, method in enumerate(service.method):
                yield "rpc", f"{service.name}.{method.name}", comments.get((6, i, 2, j), "")


def _message_elements(message, path, comments):
    yield "message", message.name, comments.get(path, "")
    for j, field in enumerate(message.field):
        yield "field", f"{message.name}.{field.name}", comments.get((*path, 2, j), "")
    for j, nested in enumerate(message.nested_type):
        yield from _message_elements(nested, (*path, 3, j), comments)
    for j, enum in enumerate(message.enum_type):
        yield from _enum_elements(enum, (*path, 4, j), comments)


def _enum_elements(enum, path, comments):
    yield "enum", enum.name, comments.get(path, "")
    for j, value in enumerate(enum.value):
        yield "enum value", value.name, comments.get((*path, 2, j), "")


def test_every_message_field_enum_and_rpc_of_the_contract_is_commented(tmp_path):
    elements = list(_documented_elements(tmp_path))
    assert len(elements) > 80  # the walk reached fields, not just the top level
    undocumented = [f"{kind} {name}" for kind, name, comment in elements if not comment]
    assert not undocumented


def _run_python(code, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_the_library_does_not_import_grpc(tmp_path):
    done = _run_python(
        "import sys, wobbledetect; print(sorted(m for m in sys.modules if m.split('.')[0] "
        "in ('grpc', 'grpc_tools', 'wobbledetect_service')))", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_service_installs_as_wobbledetect_service_not_as_a_top_level_service(tmp_path):
    # Run outside the checkout, so that only what is installed is importable.
    done = _run_python(
        "import importlib.util as u, wobbledetect_service.server as s; "
        "print(u.find_spec('service') is None, s.SERVICE_NAME)", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "wobbledetect.v1.ScreeningService"]


@pytest.mark.parametrize("command", ["serve", "screen", "screen-model"])
def test_the_subcommands_are_registered(command, capsys):
    from wobbledetect.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: wobbledetect {command}" in capsys.readouterr().out
