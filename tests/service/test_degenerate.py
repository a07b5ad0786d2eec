"""Statistics with nothing to work with, and bad inputs: the same answer on every surface.

The library (warnings, NaN), the service (status codes, ScreenResponse.warnings), the
Python client (the library's warnings again) and ``wobbledetect screen`` (printed lines).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from concurrent import futures

import grpc
import numpy as np
import pytest
import torch

from wobbledetect import (
    MIN_SET_SIZE,
    DegenerateWobblinessWarning,
    LeveneBackdoorDetector,
    SmallSetWarning,
    WobblinessTransformer,
    to_onnx,
)
from wobbledetect._grpc_codec import to_tensor
from wobbledetect._grpc_results import screen_result
from wobbledetect.cli import main
from wobbledetect.client import ScreeningClient, ServiceCallError
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect.v1 import screening_pb2_grpc

from .conftest import TINY_SHAPE, running_server

TOKEN = "degenerate-test-token"


@pytest.fixture
def address(tmp_path):
    with running_server(tmp_path / "store", tokens=[TOKEN]) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture
def stub_and_model(tmp_path, tiny_model):
    with running_server(tmp_path / "store") as running:
        upload = running.stub.UploadModel(iter([pb.UploadModelRequest(chunk=tiny_model)]))
        yield running.stub, upload.model.model_id


def _sets(seed=0, n=25):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n, *TINY_SHAPE)), rng.normal(size=(n, *TINY_SHAPE))


# -- item 1: sets too small to test ----------------------------------------------------


def test_two_input_sets_are_refused_by_the_service(stub_and_model):
    # Two clean images against two others gave p = 4e-32, TRIGGER.
    stub, model_id = stub_and_model
    clean, candidate = _sets()
    for clean_n, candidate_n, field in ((2, 25, "clean"), (25, 2, "candidates[0]"),
                                        (MIN_SET_SIZE - 1, 25, "clean")):
        with pytest.raises(grpc.RpcError) as refused:
            stub.Screen(pb.ScreenRequest(
                model_id=model_id, clean=to_tensor(clean[:clean_n]),
                candidates=[to_tensor(candidate[:candidate_n])], sigma=0.4, seed=0))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        n = min(clean_n, candidate_n)
        assert refused.value.details().startswith(
            f"{field} holds {n} input(s); the Levene test needs at least {MIN_SET_SIZE}")
    # MIN_SET_SIZE inputs are enough.
    ok = stub.Screen(pb.ScreenRequest(
        model_id=model_id, clean=to_tensor(clean), candidates=[to_tensor(candidate[:MIN_SET_SIZE])],
        sigma=0.4, seed=0))
    assert np.isfinite(ok.candidates[0].p_value)


def test_a_candidate_whose_iqr_is_0_gets_the_librarys_warning_word_for_word(
    stub_and_model, tiny_model
):
    # Four inputs far from every boundary (W = 0) and one on a boundary (W > 0): the IQR
    # is 0, eq. (4) removes the wobbly one and the test compares a constant set. The
    # verdict stands (TRIGGER), with a warning, in the response as in the library.
    stub, model_id = stub_and_model
    clean, _ = _sets()
    wob = WobblinessTransformer(tiny_model, sigma=0.6, n_samples=64, random_state=3).fit(clean)
    W_clean = wob.transform(clean).ravel()
    far = 40.0 * np.ones((4, *TINY_SHAPE)) * np.arange(1, 5)[:, None, None, None]
    candidate = np.concatenate([far, clean[[np.argmax(W_clean)]]])
    response = stub.Screen(pb.ScreenRequest(
        model_id=model_id, clean=to_tensor(clean), candidates=[to_tensor(candidate)],
        sigma=0.6, n_samples=64, seed=3))
    assert response.candidates[0].verdict == pb.VERDICT_TRIGGER
    (warning,) = response.warnings
    assert warning.category == "DegenerateWobblinessWarning" and warning.candidate_index == 0
    assert warning.message.startswith(
        "candidates[0]: W has an interquartile range of 0 (4 of 5 values are 0), so eq. (4) "
        "removed the other 1 as outliers")

    detector = LeveneBackdoorDetector().fit(W_clean[None])
    row = np.full((1, len(clean)), np.nan)  # smaller sets are NaN-padded, as the service does
    row[0, : len(candidate)] = wob.transform(candidate).ravel()
    report = detector.screen(row, names=["candidates[0]"])
    assert [str(w) for w in report.warnings] == [warning.message]
    assert report.p_values[0] == response.candidates[0].p_value


# -- item 2: a reference with nothing to work with --------------------------------------


def _tiny_sigma_screen_args(address, tmp_path, tiny_model, *extra):
    clean, candidate = _sets(1)
    paths = {name: tmp_path / f"{name}.npy" for name in ("clean", "cand")}
    np.save(paths["clean"], clean.astype(np.float32))
    np.save(paths["cand"], candidate.astype(np.float32))
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_model)
    return ["screen", "--server", address, "--model", str(model), "--clean",
            str(paths["clean"]), "--candidate", str(paths["cand"]), "--sigma", "1e-5",
            "--seed", "0", "--no-progress", "--token", TOKEN, *extra]


def test_a_sigma_too_small_is_said_by_the_service_the_client_and_the_cli(
    address, tmp_path, tiny_model, capsys
):
    # At a sigma this small no copy changes class: every W is 0. It answered "p 1, clean"
    # with no word that the test had nothing to work with.
    clean, candidate = _sets(1)
    with ScreeningClient(address, token=TOKEN) as client:
        model_id = client.upload_model(tiny_model).model_id
        with pytest.warns(DegenerateWobblinessWarning) as issued:
            result = client.screen(model_id, clean, candidate, sigma=1e-5, seed=0)
    assert np.isnan(result.candidates[0].p_value) and not result.candidates[0].triggered
    categories = [(w.category, w.candidate_index) for w in result.warnings]
    assert categories == [("DegenerateWobblinessWarning", None),
                          ("DegenerateWobblinessWarning", 0)]
    reference, row = (w.message for w in result.warnings)
    assert reference.startswith("The clean reference: 25 of 25 W values are 0")
    assert "Use a larger sigma" in reference
    assert row.startswith("candidates[0]: the set and the clean reference are both constant")
    # The client issues both (an in-process server issues its fit warning too).
    assert [str(w.message) for w in issued][-2:] == [reference, row]

    # The library, in process, words it the same.
    wob = WobblinessTransformer(tiny_model, sigma=1e-5, random_state=0).fit(clean)
    with pytest.warns(DegenerateWobblinessWarning) as library:
        detector = LeveneBackdoorDetector().fit(wob.transform(clean).reshape(1, -1))
    assert str(library[0].message) == reference

    assert main(_tiny_sigma_screen_args(address, tmp_path, tiny_model)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == f"warning (clean reference): DegenerateWobblinessWarning: {reference}"
    assert out[-1] == f"warning (cand.npy): DegenerateWobblinessWarning: {row}"
    assert main(_tiny_sigma_screen_args(address, tmp_path, tiny_model, "--json")) == 0
    report = json.loads(capsys.readouterr().out)  # strict JSON: NaN is null
    assert report["candidates"][0]["p_value"] is None
    assert [w["candidate"] for w in report["warnings"]] == [None, "cand.npy"]
    assert report["warnings"][0]["message"] == reference
    del detector


# -- item 3: NaN under noise --------------------------------------------------------------


class SqrtNet(torch.nn.Module):
    """Finite on inputs >= 0; NaN wherever the noise makes the first value negative."""

    def forward(self, x):
        s = torch.sqrt(x.reshape(len(x), -1)[:, :1])
        return torch.cat([s, 1 - s], dim=1)


def test_a_model_that_turns_nan_under_noise_is_an_error_saying_how_many(stub_and_model):
    stub, _ = stub_and_model
    onnx_bytes = to_onnx(SqrtNet(), TINY_SHAPE).SerializeToString()
    model_id = stub.UploadModel(iter([pb.UploadModelRequest(chunk=onnx_bytes)])).model.model_id
    X = 0.5 + np.arange(25)[:, None, None, None] * np.ones((25, *TINY_SHAPE)) / 100
    with pytest.raises(grpc.RpcError) as failed:
        stub.Screen(pb.ScreenRequest(model_id=model_id, clean=to_tensor(X),
                                     candidates=[to_tensor(X[:10])], sigma=1.0, n_samples=50))
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "NaN or infinite scores for" in failed.value.details()
    assert "noisy copies (25 of 25 distinct inputs) at sigma=1" in failed.value.details()


# -- item 4: integers are never guessed into the model's range ---------------------------


def test_the_cli_refuses_uint8_batches_before_uploading(address, tmp_path, tiny_model, capsys):
    args = _tiny_sigma_screen_args(address, tmp_path, tiny_model)
    u8 = tmp_path / "u8.npy"
    np.save(u8, np.full((25, *TINY_SHAPE), 200, dtype=np.uint8))
    args[args.index("--candidate") + 1] = str(u8)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--candidate {u8} has dtype uint8, not floating point" in err
    assert ".astype(np.float32) / 255" in err
    with ScreeningClient(address, token=TOKEN) as client:
        assert client.list_models() == []  # refused before the upload


# -- item 9: the command line ----------------------------------------------------------


def test_the_cli_names_a_missing_model_file_without_a_traceback(address, tmp_path, tiny_model):
    args = _tiny_sigma_screen_args(address, tmp_path, tiny_model)
    args[args.index("--model") + 1] = str(tmp_path / "missing.onnx")
    with pytest.raises(SystemExit, match=r"cannot read --model '.*missing.onnx': No such file"):
        main(args)


def test_the_cli_names_a_batch_without_its_batch_axis(address, tmp_path, tiny_model, capsys):
    args = _tiny_sigma_screen_args(address, tmp_path, tiny_model)
    one = tmp_path / "one.npy"
    np.save(one, np.zeros(TINY_SHAPE, dtype=np.float32))
    args[args.index("--candidate") + 1] = str(one)
    assert main(args) == 2
    assert f"--candidate {one} has shape (1, 2, 2), the shape of one input" in capsys.readouterr().err


def test_the_service_names_a_batch_without_its_batch_axis(stub_and_model):
    stub, model_id = stub_and_model
    with pytest.raises(grpc.RpcError) as refused:
        stub.ComputeWobbliness(pb.ComputeWobblinessRequest(
            model_id=model_id, inputs=to_tensor(np.zeros(TINY_SHAPE))))
    assert refused.value.details().startswith(
        "inputs has shape (1, 2, 2), the shape of one input; a batch needs a leading batch axis")


def test_json_piped_into_a_reader_that_stops_gives_no_traceback(address, tmp_path, tiny_model):
    # `wobbledetect screen --json | head -1` printed a BrokenPipeError traceback.
    args = _tiny_sigma_screen_args(address, tmp_path, tiny_model, "--json")
    proc = subprocess.Popen([sys.executable, "-m", "wobbledetect.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the JSON is written
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert proc.returncode == 141


def test_help_imports_neither_torch_nor_the_estimators():
    # `wobbledetect --help` took 8.5 s importing torch for nothing.
    code = (
        "import sys, contextlib, io\n"
        "from wobbledetect.cli import main\n"
        "for argv in (['--help'], ['screen', '--help'], ['serve', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: main(argv)\n"
        "        except SystemExit: pass\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'grpc', 'wobbledetect._wobbliness') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- item 11: the client -----------------------------------------------------------------


class _ProgressOnly(screening_pb2_grpc.ScreeningServiceServicer):
    def ScreenStream(self, request, context):
        yield pb.ScreenEvent(progress=pb.ScreenProgress(inputs_done=1, inputs_total=2))


def test_a_stream_without_a_result_is_a_service_call_error():
    # It raised AttributeError on None.
    server = grpc.server(futures.ThreadPoolExecutor(2))
    screening_pb2_grpc.add_ScreeningServiceServicer_to_server(_ProgressOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        clean, candidate = _sets()
        with ScreeningClient(f"127.0.0.1:{port}") as client:
            with pytest.raises(ServiceCallError, match="ended without a result") as error:
                client.screen("0" * 64, clean, candidate, on_progress=lambda done, total: None)
        assert error.value.code == grpc.StatusCode.UNKNOWN
    finally:
        server.stop(None).wait()


def test_an_unknown_direction_is_not_reported_as_smoother():
    result = screen_result(pb.ScreenResponse(direction=7))
    assert result.direction == "unknown (7)"
    assert screen_result(pb.ScreenResponse(direction=pb.DIRECTION_WOBBLIER)).direction == "wobblier"


def test_library_warning_categories_survive_the_wire():
    response = pb.ScreenResponse()
    response.warnings.add(category="SmallSetWarning", message="m", candidate_index=2)
    response.warnings.add(category="FutureWarning", message="n")
    first, second = screen_result(response).warnings
    assert (first.candidate_index, second.candidate_index) == (2, None)
    assert type(first.as_warning()) is SmallSetWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert type(second.as_warning()).__name__ == "WobbledetectWarning"
