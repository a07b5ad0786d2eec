"""ScreenModel: the library's ModelScreen over the wire, streamed, cancellable, checked."""

from __future__ import annotations

import json
import threading

import grpc
import numpy as np
import pytest

from wobbledetect import ModelScreen, NeuralCleanse
from wobbledetect._grpc_codec import from_tensor, to_tensor
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect_service.limits import ServiceLimits

from .conftest import TINY_SHAPE, running_server, wait_for

#: Small enough to run in a second: 3 classes, sets of 4, 2 sets each, 5 NC steps.
PARAMS = dict(sigmas=(0.05, 0.3, 1.0), n_samples=20, set_size=4, n_sets=2, seed=3, max_steps=5)


def _clean(n=60, seed=0):
    return np.random.RandomState(seed).rand(n, *TINY_SHAPE).astype(np.float32)


def _request(model_id, clean, **fields):
    request = pb.ScreenModelRequest(model_id=model_id, clean=to_tensor(clean))
    for name, value in (PARAMS | fields).items():
        if name == "sigmas":
            request.sigmas.extend(value)
        elif value is not None:
            setattr(request, name, value)
    return request


def _library_screen(model, clean, *, seed=3, max_steps=5, sigmas=PARAMS["sigmas"]):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ModelScreen(model, sigmas=sigmas, n_samples=20, set_size=4, n_sets=2,
                           cleanse=NeuralCleanse(None, max_steps=max_steps), random_state=seed,
                           device="cpu").fit(clean)


def _upload(stub, data):
    return stub.UploadModel(iter([pb.UploadModelRequest(chunk=data)])).model.model_id


@pytest.fixture
def srv(tmp_path):
    with running_server(tmp_path / "store", device="cpu",
                        limits=ServiceLimits(max_cleanse_steps=10_000)) as running:
        yield running


def test_the_stream_reports_progress_then_exactly_the_librarys_screen(srv, tiny_model):
    model_id = _upload(srv.stub, tiny_model)
    clean = _clean()
    events = list(srv.stub.ScreenModel(_request(model_id, clean, return_candidates=True)))
    assert [e.WhichOneof("event") for e in events] == ["progress"] * (len(events) - 1) + ["result"]
    progress = [(e.progress.stage, e.progress.done, e.progress.total) for e in events[:-1]]
    # NC's per-step reports that repeat the last are not sent: the counts go up by one
    assert progress[:4] == [("cleanse", 0, 3), ("cleanse", 1, 3), ("cleanse", 2, 3), ("cleanse", 3, 3)]
    assert progress[-4:] == [("wobbliness", i, 4) for i in range(1, 5)]  # null + 3 classes
    result = events[-1].result

    screen = _library_screen(tiny_model, clean)
    t = screen.table_
    assert [r.class_index for r in result.classes] == t["class"].tolist() == [0, 1, 2]
    for field, column in (("mask_norm", "mask_norm"), ("nc_anomaly_index", "nc_anomaly_index"),
                          ("attack_success", "attack_success"), ("median_wobbliness", "median_W"),
                          ("median_p_value", "median_p"), ("untested_sets", "untested_sets"),
                          ("smoother_share", "smoother_share"),
                          ("wobblier_share", "wobblier_share"), ("levene_score", "levene_score"),
                          ("smoothing_index", "smoothing_index"), ("combined_index", "combined_index")):
        np.testing.assert_array_equal([getattr(r, field) for r in result.classes], t[column], err_msg=field)
    assert [r.nc_flagged for r in result.classes] == t["nc_flagged"].tolist()
    assert [r.reached_threshold for r in result.classes] == screen.cleanse_.reached_threshold_.tolist()
    np.testing.assert_array_equal(np.stack([from_tensor(r.mask) for r in result.classes]),
                                  screen.cleanse_.masks_)
    np.testing.assert_array_equal(np.stack([from_tensor(r.pattern) for r in result.classes]),
                                  screen.cleanse_.patterns_)
    np.testing.assert_array_equal(result.null_scores, screen.null_scores_)
    assert result.sigma == screen.sigma_ and result.seed == 3 and result.device == "cpu"
    assert {repr(z.sigma): z.zero_share for z in result.zero_shares} == screen.zero_share_
    assert result.backdoored == screen.backdoored_
    assert (result.suspected_class if result.HasField("suspected_class") else -1) == screen.suspected_class_
    np.testing.assert_array_equal(result.score, screen.score_)
    # NC at 5 steps falls short: the warning crosses the wire in the library's words
    assert [(w.category, w.message) for w in result.warnings] == [
        (type(w).__name__, str(w)) for w in screen.warnings_]
    assert any(w.category == "NeuralCleanseWarning" for w in result.warnings)
    assert srv.built.servicer.stats.completed == 1


def test_cancelling_stops_the_screen_and_frees_its_slot(srv, tiny_model):
    model_id = _upload(srv.stub, tiny_model)
    call = srv.stub.ScreenModel(_request(model_id, _clean(), max_steps=10_000))
    first = next(call)
    assert first.progress.stage == "cleanse"
    call.cancel()
    servicer = srv.built.servicer
    wait_for(lambda: servicer.stats.abandoned == 1, what="the screen to be abandoned")
    wait_for(lambda: not any(t.name == "ScreenModel" for t in threading.enumerate()),
             what="the worker thread to stop")
    assert servicer.stats.completed == 0
    wait_for(lambda: servicer.admission.running == 0, what="the slot to be freed")


def test_a_deadline_stops_the_screen(srv, tiny_model):
    model_id = _upload(srv.stub, tiny_model)
    with pytest.raises(grpc.RpcError) as caught:
        list(srv.stub.ScreenModel(_request(model_id, _clean(), max_steps=10_000), timeout=1.0))
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: not any(t.name == "ScreenModel" for t in threading.enumerate()),
             what="the worker thread to stop")
    assert srv.built.servicer.stats.completed == 0


@pytest.mark.parametrize("fields, code, message", [
    (dict(), grpc.StatusCode.INVALID_ARGUMENT, "clean holds 40 inputs; ScreenModel needs at least 48"),
    (dict(max_steps=10_001), grpc.StatusCode.RESOURCE_EXHAUSTED, "max_cleanse_steps"),
    (dict(max_steps=0), grpc.StatusCode.INVALID_ARGUMENT, "max_steps is 0; it must be at least 1"),
    (dict(set_size=2), grpc.StatusCode.INVALID_ARGUMENT, "set_size is 2; it must be at least 3"),
    (dict(n_sets=0), grpc.StatusCode.INVALID_ARGUMENT, "n_sets is 0; it must be at least 1"),
    (dict(sigmas=(0.3, 0.1)), grpc.StatusCode.INVALID_ARGUMENT, "sigmas is [0.3, 0.1]; it must increase"),
    (dict(sigmas=(0.1, -1.0)), grpc.StatusCode.INVALID_ARGUMENT, "sigmas[1] is -1.0"),
    (dict(sigma=float("nan")), grpc.StatusCode.INVALID_ARGUMENT, "sigma is nan"),
    (dict(max_zero_share=1.5), grpc.StatusCode.INVALID_ARGUMENT, "max_zero_share is 1.5"),
    (dict(alpha=1.0), grpc.StatusCode.INVALID_ARGUMENT, "alpha is 1.0"),
    (dict(anomaly_threshold=-1.0), grpc.StatusCode.INVALID_ARGUMENT, "anomaly_threshold is -1.0"),
    (dict(input_min=0.0), grpc.StatusCode.INVALID_ARGUMENT, "Only one of input_min and input_max"),
    (dict(input_min=1.0, input_max=0.0), grpc.StatusCode.INVALID_ARGUMENT, "input_min < input_max"),
    (dict(n_samples=10**6), grpc.StatusCode.RESOURCE_EXHAUSTED, "max_n_samples"),
])
def test_bad_requests_are_refused_by_field_before_any_work(srv, tiny_model, fields, code, message):
    model_id = _upload(srv.stub, tiny_model)
    n = 40 if not fields else 60
    with pytest.raises(grpc.RpcError) as caught:
        list(srv.stub.ScreenModel(_request(model_id, _clean(n), **fields)))
    assert caught.value.code() == code
    assert message in caught.value.details()
    assert srv.built.servicer.stats.started == 0


def test_the_work_limit_counts_every_sigma_the_automatic_rule_may_measure(tmp_path, tiny_model):
    # 20 x 4 x 2 x (3 classes + null + 3 sigmas) = 1120 forwards; a fixed sigma: 800
    with running_server(tmp_path / "store", limits=ServiceLimits(max_forwards=1000)) as srv:
        model_id = _upload(srv.stub, tiny_model)
        with pytest.raises(grpc.RpcError) as caught:
            list(srv.stub.ScreenModel(_request(model_id, _clean())))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "up to 1120 forward passes" in caught.value.details()
        events = list(srv.stub.ScreenModel(_request(model_id, _clean(), sigma=0.3)))
        assert events[-1].result.sigma == 0.3


def test_the_client_and_the_cli_give_the_servers_screen(srv, tiny_model, tmp_path, capsys):
    from wobbledetect import NeuralCleanseWarning
    from wobbledetect.cli import main
    from wobbledetect.client import ScreeningClient

    clean = _clean()
    seen = []
    with ScreeningClient(f"127.0.0.1:{srv.port}") as client:
        model_id = client.upload_model(tiny_model).model_id
        with pytest.warns(NeuralCleanseWarning):
            result = client.screen_model(model_id, clean, sigmas=PARAMS["sigmas"], n_samples=20,
                                         set_size=4, n_sets=2, max_steps=5, seed=3,
                                         on_progress=lambda *p: seen.append(p))
    screen = _library_screen(tiny_model, clean)
    for column, values in screen.table_.items():
        np.testing.assert_array_equal(result.table[column], values, err_msg=column)
    assert result.report() == screen.report()
    assert seen[0] == ("cleanse", 0, 3) and seen[-1] == ("wobbliness", 4, 4)
    assert result.masks is None  # not asked for

    np.save(tmp_path / "clean.npy", clean)
    (tmp_path / "m.onnx").write_bytes(tiny_model)
    argv = ["screen-model", "--server", f"127.0.0.1:{srv.port}", "--model", str(tmp_path / "m.onnx"),
            "--clean", str(tmp_path / "clean.npy"), "--n-samples", "20", "--set-size", "4",
            "--n-sets", "2", "--max-steps", "5", "--seed", "3", "--sigma", "0.3", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    fixed = _library_screen(tiny_model, clean, sigmas=(0.3,))
    assert fixed.report() in text
    assert "warning: NeuralCleanseWarning: Neural Cleanse found no candidate" in text
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["class"] for row in data["classes"]] == [0, 1, 2]
    assert data["sigma"] == 0.3 and data["backdoored"] == fixed.backdoored_
    assert [row["mask_norm"] for row in data["classes"]] == fixed.table_["mask_norm"].tolist()
    # too few inputs: the server's reason, exit 1
    np.save(tmp_path / "few.npy", clean[:10])
    assert main([*argv[:6], str(tmp_path / "few.npy"), *argv[7:]]) == 1
    assert "ScreenModel failed with INVALID_ARGUMENT: clean holds 10 inputs" in capsys.readouterr().err



def test_a_model_without_a_torch_conversion_is_an_invalid_argument(srv, tiny_model, monkeypatch):
    from wobbledetect import _gradients

    def unconvertible(proto):
        raise NotImplementedError("Converter is not implemented (OperationDescription(op_type='NoSuchOp'))")

    monkeypatch.setattr(_gradients, "_convert", unconvertible)
    model_id = _upload(srv.stub, tiny_model)
    with pytest.raises(grpc.RpcError) as caught:
        list(srv.stub.ScreenModel(_request(model_id, _clean())))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "could not be converted to torch by onnx2torch" in caught.value.details()
    assert srv.built.servicer.stats.completed == 0


def test_a_server_with_tokens_refuses_a_screen_model_without_one(tmp_path, tiny_model):
    with running_server(tmp_path / "store", tokens=("s3cret",)) as server:
        metadata = (("authorization", "Bearer s3cret"),)
        model_id = server.stub.UploadModel(iter([pb.UploadModelRequest(chunk=tiny_model)]),
                                           metadata=metadata).model.model_id
        with pytest.raises(grpc.RpcError) as caught:
            list(server.stub.ScreenModel(_request(model_id, _clean())))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        events = list(server.stub.ScreenModel(_request(model_id, _clean()), metadata=metadata))
        assert events[-1].WhichOneof("event") == "result"
        assert server.built.servicer.stats.started == 1  # the refused call computed nothing
