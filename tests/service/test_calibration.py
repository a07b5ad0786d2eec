"""Screen with calibration sets: a conformal p-value per candidate, the library's numbers."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator

from wobbledetect import CalibrationWarning, ConformalDetector, LeveneBackdoorDetector, WobblinessTransformer
from wobbledetect._grpc_codec import to_tensor
from wobbledetect.v1 import screening_pb2 as pb

from .conftest import TINY_SHAPE

SIGMA, N_SAMPLES, SEED = 0.5, 40, 5


def _data(n_calibration, seed=0):
    rng = np.random.RandomState(seed)
    clean = rng.normal(size=(30, *TINY_SHAPE))
    candidates = [rng.normal(size=(10, *TINY_SHAPE)), rng.normal(scale=0.05, size=(10, *TINY_SHAPE))]
    calibration = rng.normal(size=(n_calibration, 10, *TINY_SHAPE))
    return clean, candidates, calibration


def _upload(stub, data):
    return stub.UploadModel(iter([pb.UploadModelRequest(chunk=data)])).model.model_id


def _library(model, clean, candidates, calibration, alpha=0.05):
    wob = WobblinessTransformer(model, sigma=SIGMA, n_samples=N_SAMPLES, random_state=SEED).fit(clean)
    # sets of 10: the reference pools the same 30 values (the server pads rows with NaN)
    detector = LeveneBackdoorDetector(alpha=alpha).fit(wob.transform(clean).reshape(-1, 10))
    conformal = ConformalDetector(FrozenEstimator(detector), alpha=alpha)
    with pytest.warns(CalibrationWarning) if len(calibration) < 19 else _nothing():
        conformal.fit(wob.transform(calibration))
    W = wob.transform(np.stack(candidates))
    return detector.p_values(W), conformal.p_values(W)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_calibrated_p_value_is_the_librarys_and_the_papers_is_unchanged(server, tiny_model):
    model_id = _upload(server.stub, tiny_model)
    clean, candidates, calibration = _data(24)
    request = pb.ScreenRequest(
        model_id=model_id, clean=to_tensor(clean), candidates=[to_tensor(c) for c in candidates],
        sigma=SIGMA, n_samples=N_SAMPLES, seed=SEED)
    plain = server.stub.Screen(request)
    request.calibration.extend(to_tensor(c) for c in calibration)
    response = server.stub.Screen(request)
    paper, calibrated = _library(tiny_model, clean, candidates, calibration)
    assert response.n_calibration == 24 and plain.n_calibration == 0
    np.testing.assert_array_equal([c.p_value for c in response.candidates], paper)
    np.testing.assert_array_equal([c.p_value for c in plain.candidates], paper)
    np.testing.assert_array_equal([c.calibrated_p_value for c in response.candidates], calibrated)
    assert not any(c.HasField("calibrated_p_value") for c in plain.candidates)
    # the W-flat set is beyond every calibration set: the smallest p-value there is
    assert response.candidates[1].calibrated_p_value == pytest.approx(1 / 25)
    assert not [w for w in response.warnings if w.category == "CalibrationWarning"]


def test_too_few_calibration_sets_are_said_and_a_tiny_set_refused(server, tiny_model):
    model_id = _upload(server.stub, tiny_model)
    clean, candidates, calibration = _data(5)
    request = pb.ScreenRequest(
        model_id=model_id, clean=to_tensor(clean), candidates=[to_tensor(c) for c in candidates],
        calibration=[to_tensor(c) for c in calibration], sigma=SIGMA, n_samples=N_SAMPLES, seed=SEED)
    response = server.stub.Screen(request)
    warning = [w for w in response.warnings if w.category == "CalibrationWarning"]
    assert len(warning) == 1 and "calibrated on 5 clean score(s)" in warning[0].message
    assert not warning[0].HasField("candidate_index")
    assert min(c.calibrated_p_value for c in response.candidates) >= 1 / 6
    request.calibration[0].CopyFrom(to_tensor(calibration[0][:2]))
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.Screen(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "calibration[0]" in caught.value.details()


def test_the_client_and_the_cli_carry_the_calibrated_p_value(server, tiny_model, tmp_path, capsys):
    from wobbledetect.cli import main
    from wobbledetect.client import ScreeningClient

    clean, candidates, calibration = _data(24)
    address = f"127.0.0.1:{server.port}"
    with ScreeningClient(address) as client:
        model_id = client.upload_model(tiny_model).model_id
        result = client.screen(model_id, clean, candidates, sigma=SIGMA, n_samples=N_SAMPLES,
                               seed=SEED, calibration=calibration)
    _, calibrated = _library(tiny_model, clean, candidates, calibration)
    assert result.n_calibration == 24
    np.testing.assert_array_equal([c.calibrated_p_value for c in result.candidates], calibrated)

    files = {}
    for name, array in (("clean", clean), ("a", candidates[0]), ("b", candidates[1]),
                        ("cal", calibration)):
        files[name] = tmp_path / f"{name}.npy"
        np.save(files[name], array.astype(np.float32))
    (tmp_path / "m.onnx").write_bytes(tiny_model)
    argv = ["screen", "--server", address, "--model", str(tmp_path / "m.onnx"),
            "--clean", str(files["clean"]), "--candidate", str(files["a"]), "--candidate",
            str(files["b"]), "--calibration", str(files["cal"]), "--sigma", str(SIGMA),
            "--n-samples", str(N_SAMPLES), "--seed", str(SEED), "--no-progress"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].endswith("calibrated p (24 clean sets)")
    assert float(lines[4].split()[-1]) == pytest.approx(calibrated[1], rel=1e-3)
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_calibration"] == 24
    assert [c["calibrated_p_value"] for c in report["candidates"]] == pytest.approx(list(calibrated))
    np.save(files["cal"], calibration[0].astype(np.float32))  # one set, not sets
    assert main(argv) == 2
    assert "must hold sets" in capsys.readouterr().err
