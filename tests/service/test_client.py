"""``wobbledetect.client.ScreeningClient`` and the ``wobbledetect screen`` command."""

from __future__ import annotations

import hashlib
import json

import grpc
import numpy as np
import onnx
import pytest

from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer
from wobbledetect.cli import main
from wobbledetect.client import ScreeningClient, ServiceCallError

from .conftest import TINY_SHAPE, running_server

TOKEN = "client-test-token"


@pytest.fixture
def address(tmp_path):
    with running_server(tmp_path / "store", tokens=[TOKEN]) as server:
        yield f"127.0.0.1:{server.port}"


def test_upload_takes_a_path_bytes_or_a_model_proto_and_is_idempotent(address, tiny_model, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(tiny_model)
    with ScreeningClient(address, token=TOKEN) as client:
        first = client.upload_model(path)
        assert first.created and first.model_id == hashlib.sha256(tiny_model).hexdigest()
        assert (first.input_shape, first.n_classes) == (TINY_SHAPE, 3)
        for again in (tiny_model, onnx.load_model_from_string(tiny_model)):
            assert client.upload_model(again, chunk_bytes=10).created is False
        assert [m.model_id for m in client.list_models()] == [first.model_id]
        assert client.get_model(first.model_id).size_bytes == len(tiny_model)
        client.delete_model(first.model_id)
        with pytest.raises(ServiceCallError) as missing:
            client.get_model(first.model_id)
        assert missing.value.code == grpc.StatusCode.NOT_FOUND
        assert "GetModel failed with NOT_FOUND" in str(missing.value)
        assert client.health() == "SERVING"


def test_results_are_the_library_numbers(address, tiny_model):
    rng = np.random.RandomState(0)
    clean = rng.normal(size=(24, *TINY_SHAPE))
    candidates = [rng.normal(size=(24, *TINY_SHAPE)), rng.normal(scale=0.05, size=(24, *TINY_SHAPE))]
    with ScreeningClient(address, token=TOKEN) as client:
        model_id = client.upload_model(tiny_model).model_id
        w = client.compute_wobbliness(model_id, clean, sigma=0.5, n_samples=80, seed=4,
                                      vote_frequencies=True)
        seen = []
        result = client.screen(model_id, clean, candidates, sigma=0.5, n_samples=80, seed=4,
                               alpha=0.01, direction="two-sided", return_wobbliness=True,
                               on_progress=lambda done, total: seen.append((done, total)))
        single = client.screen(model_id, clean, candidates[1], sigma=0.5, n_samples=80, seed=4)
    wob = WobblinessTransformer(tiny_model, sigma=0.5, n_samples=80, random_state=4).fit(clean)
    np.testing.assert_array_equal(w.wobbliness, wob.transform(clean).ravel())
    np.testing.assert_array_equal(w.vote_frequencies, wob.vote_frequencies(clean))
    assert (w.sigma, w.n_samples, w.seed, w.device) == (0.5, 80, 4, "cpu")
    W_sets = wob.transform(np.stack(candidates))
    detector = LeveneBackdoorDetector(alpha=0.01, direction="two-sided").fit(
        wob.transform(clean).reshape(1, -1))
    np.testing.assert_array_equal([c.p_value for c in result.candidates], detector.p_values(W_sets))
    assert [c.triggered for c in result.candidates] == list(detector.predict(W_sets) == 1)
    np.testing.assert_array_equal(result.candidates[1].wobbliness, W_sets[1])
    assert (result.alpha, result.direction) == (0.01, "two-sided")
    assert seen[-1] == (72, 72) and all(d <= t for d, t in seen)
    assert len(single.candidates) == 1
    assert single.candidates[0].p_value == detector.p_values(W_sets[1:])[0]


def test_errors_name_the_status_and_the_servers_reason(address, tiny_model):
    with ScreeningClient(address, token="wrong") as client:
        with pytest.raises(ServiceCallError) as refused:
            client.list_models()
        assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    with ScreeningClient(address, token=TOKEN) as client:
        model_id = client.upload_model(tiny_model).model_id
        with pytest.raises(ServiceCallError) as bad:
            client.screen(model_id, np.zeros((4, 2, 2)), np.zeros((4, 2, 2)))
        assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "clean has shape (4, 2, 2), but the model takes inputs of shape (1, 2, 2)" in bad.value.details
        with pytest.raises(ServiceCallError) as late:
            client.compute_wobbliness(model_id, np.zeros((2000, *TINY_SHAPE)) + np.arange(2000)[
                :, None, None, None], n_samples=5000, timeout=0.5)
        assert late.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(ValueError, match="'seed' parameter must be in"):
            client.compute_wobbliness(model_id, np.zeros((2, *TINY_SHAPE)), seed=-1)
        with pytest.raises(ValueError, match="'direction' parameter"):
            client.screen(model_id, np.zeros((2, *TINY_SHAPE)), np.zeros((2, *TINY_SHAPE)),
                          direction="smooth")


def test_the_client_speaks_mutual_tls(tmp_path, tiny_model, pki):
    with running_server(tmp_path / "store", tls_cert=pki.server_cert, tls_key=pki.server_key,
                        tls_client_ca=pki.ca, tokens=[TOKEN]) as server:
        with ScreeningClient(f"localhost:{server.port}", token=TOKEN, root_certificates=pki.ca,
                             client_certificate=pki.client_cert, client_key=pki.client_key) as client:
            assert client.upload_model(tiny_model).created
        with ScreeningClient(f"localhost:{server.port}", token=TOKEN, root_certificates=pki.ca,
                             timeout=10) as client:
            with pytest.raises(ServiceCallError) as refused:
                client.list_models()
            assert refused.value.code == grpc.StatusCode.UNAVAILABLE


# -- wobbledetect screen --------------------------------------------------------------


@pytest.fixture
def files(tmp_path, tiny_model):
    rng = np.random.RandomState(1)
    paths = {"model": tmp_path / "m.onnx", "clean": tmp_path / "clean.npy",
             "wobbly": tmp_path / "wobbly.npy", "flat": tmp_path / "flat.npy"}
    paths["model"].write_bytes(tiny_model)
    np.save(paths["clean"], rng.normal(size=(30, *TINY_SHAPE)).astype(np.float32))
    np.save(paths["wobbly"], rng.normal(size=(20, *TINY_SHAPE)).astype(np.float32))
    np.save(paths["flat"], (3.0 + rng.normal(scale=0.01, size=(20, *TINY_SHAPE))).astype(np.float32))
    return paths


def _screen_args(address, files, *extra):
    return ["screen", "--server", address, "--model", str(files["model"]),
            "--clean", str(files["clean"]), "--candidate", str(files["wobbly"]),
            "--candidate", str(files["flat"]), "--sigma", "0.5", "--n-samples", "64",
            "--seed", "7", "--no-progress", *extra]


def test_screen_prints_a_table_and_json_with_the_clients_numbers(address, files, capsys, monkeypatch):
    monkeypatch.setenv("WOBBLEDETECT_TOKEN", TOKEN)  # the token stays out of argv
    assert main(_screen_args(address, files)) == 0
    table = capsys.readouterr().out.splitlines()
    assert "seed 7" in table[0] and "input (1, 2, 2), 3 classes" in table[0]
    assert table[2].split() == ["candidate", "inputs", "median", "W", "p-value", "score", "verdict"]
    rows = {line.split()[0]: line.split() for line in table[3:]}
    assert list(rows) == ["wobbly.npy", "flat.npy"]

    assert main(_screen_args(address, files, "--json")) == 0
    report = json.loads(capsys.readouterr().out)
    with ScreeningClient(address, token=TOKEN) as client:
        expected = client.screen(
            report["model"]["model_id"], np.load(files["clean"]),
            [np.load(files["wobbly"]), np.load(files["flat"])], sigma=0.5, n_samples=64, seed=7)
    assert [c["p_value"] for c in report["candidates"]] == [c.p_value for c in expected.candidates]
    assert [c["name"] for c in report["candidates"]] == ["wobbly.npy", "flat.npy"]
    assert report["model"]["created"] is False  # uploaded by the table run already
    for name, candidate in zip(rows, expected.candidates):
        _, count, median, p_value, score, verdict = rows[name]
        assert int(count) == 20 and float(median) == pytest.approx(candidate.summary["median"], abs=5e-4)
        assert float(p_value) == pytest.approx(candidate.p_value, rel=0.01)
        assert float(score) == pytest.approx(candidate.score, abs=0.005)
        assert verdict == ("TRIGGER" if candidate.triggered else "clean")
    # The set far from the decision boundaries is W-flat: a "trigger" by construction.
    assert rows["flat.npy"][-1] == "TRIGGER" and expected.candidates[1].summary["max"] == 0.0


def test_screen_reports_service_errors_and_refuses_pickles(address, files, tmp_path, capsys):
    assert main(_screen_args(address, files, "--token", "wrong")) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    args = _screen_args(address, files, "--token-file", str(token_file))
    args[args.index(str(files["clean"]))] = str(pickled)
    with pytest.raises(SystemExit, match="cannot read --clean"):
        main(args)


def test_serve_options_parse_sizes_and_read_tokens_from_files_and_the_environment(tmp_path):
    import argparse

    from wobbledetect_service.cli import parse_size, read_tokens

    assert parse_size("1GiB") == 2**30 and parse_size("2 MB") == 2_000_000
    for bad in ("", "-1MB", "1 parsec", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    listing = tmp_path / "tokens"
    listing.write_text("# operators\nalpha\n\nbeta\n")
    tokens = read_tokens(["cli"], [listing], environ={"WOBBLEDETECT_TOKENS": "gamma, delta"})
    assert tokens == ["cli", "alpha", "beta", "gamma", "delta"]
    assert read_tokens(environ={}) == []
    with pytest.raises(ValueError, match="whitespace"):
        read_tokens(["has space"], environ={})
