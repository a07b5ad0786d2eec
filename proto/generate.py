"""Generate the Python stubs in ``wobbledetect/v1/`` from ``proto/wobbledetect/v1/*.proto``.

The one way stubs are made; they are never edited by hand. The compiler is the protoc
bundled in grpcio-tools, pinned exactly (``GRPCIO_TOOLS``, the same pin as the ``test``
extra in pyproject.toml) so that the output is byte-for-byte reproducible; the test
suite regenerates into a temporary folder and fails on any difference.

Usage::

    python proto/generate.py              # rewrite wobbledetect/v1/
    python proto/generate.py --out DIR    # write the stubs to DIR instead
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

#: The grpcio-tools release whose protoc writes the committed stubs.
GRPCIO_TOOLS = "1.85.1"

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
PACKAGE = "wobbledetect/v1"
DEFAULT_OUT = REPO_ROOT / PACKAGE

INIT = '''"""Generated gRPC stubs for the wobbledetect.v1 contract (``proto/wobbledetect/v1``).

Written by ``proto/generate.py``; do not edit. Regenerate with ``make protos``.
"""
'''


def generate(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Compile every ``.proto`` of the package into ``out_dir``; return the files written."""
    installed = metadata.version("grpcio-tools")
    if installed != GRPCIO_TOOLS:
        raise SystemExit(
            f"proto/generate.py needs grpcio-tools=={GRPCIO_TOOLS} (the pin that wrote the "
            f"committed stubs); this environment has {installed}. Install it with "
            f"pip install 'grpcio-tools=={GRPCIO_TOOLS}'."
        )
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted((PROTO_ROOT / PACKAGE).glob("*.proto"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # protoc writes into <out>/wobbledetect/v1/ (the proto path); stage there, then move.
    stage = out_dir / ".protoc-stage"
    stage.mkdir(exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={stage}",
        f"--pyi_out={stage}",
        f"--grpc_python_out={stage}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {[p.name for p in protos]}")
    written = []
    for produced in sorted((stage / PACKAGE).iterdir()):
        target = out_dir / produced.name
        produced.replace(target)
        written.append(target)
    for folder in sorted(stage.rglob("*"), reverse=True):
        folder.rmdir()
    stage.rmdir()
    init = out_dir / "__init__.py"
    init.write_text(INIT)
    return sorted([*written, init])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
