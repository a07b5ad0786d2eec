"""Acceptance 1: through the service, exactly the library's numbers for the same seed."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer
from wobbledetect._grpc_codec import from_tensor, to_tensor
from wobbledetect.v1 import screening_pb2 as pb

from .conftest import TINY_SHAPE, tiny_onnx

SIGMA, N_SAMPLES, SEED = 0.2, 100, 1234


def _upload(stub, data, chunk=4096):
    requests = [pb.UploadModelRequest(chunk=data[i : i + chunk]) for i in range(0, len(data), chunk)]
    return stub.UploadModel(iter(requests))


@pytest.mark.slow
def test_screening_the_demo_backdoor_gives_the_library_p_values_and_verdicts(
    server, backdoored_digits
):
    digits = backdoored_digits
    assert digits.backdoor_accuracy > 0.9  # the backdoor works, so there is something to find
    upload = _upload(server.stub, digits.onnx_bytes)
    assert upload.created
    assert upload.model.model_id == hashlib.sha256(digits.onnx_bytes).hexdigest()
    assert list(upload.model.input_shape) == [1, 8, 8] and upload.model.n_classes == 10

    candidates = [digits.triggered, digits.clean_candidate]
    response = server.stub.Screen(pb.ScreenRequest(
        model_id=upload.model.model_id, clean=to_tensor(digits.clean),
        candidates=[to_tensor(c) for c in candidates],
        sigma=SIGMA, n_samples=N_SAMPLES, alpha=0.05, seed=SEED, return_wobbliness=True,
    ))

    # The library in process, same model bytes, same seed.
    wob = WobblinessTransformer(
        digits.onnx_bytes, sigma=SIGMA, n_samples=N_SAMPLES, random_state=SEED, device="cpu"
    ).fit(digits.clean)
    W_clean = wob.transform(digits.clean).ravel()
    W_candidates = wob.transform(np.stack(candidates))  # (2, 25): one row per set
    detector = LeveneBackdoorDetector(alpha=0.05).fit(W_clean[None])

    np.testing.assert_array_equal(from_tensor(response.clean_wobbliness), W_clean)
    for result, W in zip(response.candidates, W_candidates):
        np.testing.assert_array_equal(from_tensor(result.wobbliness), W)
    np.testing.assert_array_equal([c.p_value for c in response.candidates],
                                  detector.p_values(W_candidates))
    np.testing.assert_array_equal([c.score for c in response.candidates],
                                  detector.decision_function(W_candidates))
    verdicts = [c.verdict == pb.VERDICT_TRIGGER for c in response.candidates]
    assert verdicts == list(detector.predict(W_candidates) == 1)
    # And the numbers mean what they should: the triggered set is flagged, clean is not.
    assert verdicts == [True, False]
    assert response.candidates[0].p_value < 1e-3
    assert response.candidates[0].summary.median < response.clean_summary.median
    assert (response.n_reference, response.n_reference_outliers) == (
        detector.reference_.size, detector.n_reference_outliers_)
    assert (response.seed, response.sigma, response.n_samples, response.alpha) == (
        SEED, SIGMA, N_SAMPLES, 0.05)
    assert response.direction == pb.DIRECTION_SMOOTHER and response.device == "cpu"


def test_compute_wobbliness_equals_transform_and_vote_frequencies(server, tiny_model):
    model_id = _upload(server.stub, tiny_model).model.model_id
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, *TINY_SHAPE))  # float64 on the wire
    response = server.stub.ComputeWobbliness(pb.ComputeWobblinessRequest(
        model_id=model_id, inputs=to_tensor(X), sigma=0.7, n_samples=120, seed=9,
        return_vote_frequencies=True,
    ))
    wob = WobblinessTransformer(tiny_model, sigma=0.7, n_samples=120, random_state=9).fit(X)
    W = from_tensor(response.wobbliness)
    assert W.shape == (40,)
    np.testing.assert_array_equal(W, wob.transform(X).ravel())
    np.testing.assert_array_equal(from_tensor(response.vote_frequencies), wob.vote_frequencies(X))
    assert W.min() >= 0 and 0.5 < W.max() < np.log(3)  # entropies, some really wobbly


def test_sets_keep_their_shape_and_chunking_does_not_change_w(tmp_path, tiny_model):
    from wobbledetect_service.limits import ServiceLimits

    from .conftest import running_server

    X = np.random.RandomState(1).normal(size=(3, 7, *TINY_SHAPE)).astype(np.float32)
    results = []
    for chunk_forwards in (1, 50, 10_000):  # 1 input per chunk, 1 per chunk, all at once
        limits = ServiceLimits(chunk_forwards=chunk_forwards)
        with running_server(tmp_path / "store", limits=limits) as srv:
            model_id = _upload(srv.stub, tiny_model).model.model_id
            response = srv.stub.ComputeWobbliness(pb.ComputeWobblinessRequest(
                model_id=model_id, inputs=to_tensor(X), sigma=0.5, n_samples=64, seed=5))
            results.append(from_tensor(response.wobbliness))
    assert results[0].shape == (3, 7)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)
    expected = WobblinessTransformer(tiny_model, sigma=0.5, n_samples=64, random_state=5).fit(
        X[0]).transform(X)
    np.testing.assert_array_equal(results[0], expected)


def test_unequal_set_sizes_are_nan_padded_as_the_detector_expects(server, tiny_model):
    model_id = _upload(server.stub, tiny_model).model.model_id
    rng = np.random.RandomState(2)
    clean = rng.normal(size=(30, *TINY_SHAPE))
    small, large = rng.normal(size=(6, *TINY_SHAPE)), rng.normal(scale=0.05, size=(45, *TINY_SHAPE))
    response = server.stub.Screen(pb.ScreenRequest(
        model_id=model_id, clean=to_tensor(clean),
        candidates=[to_tensor(small), to_tensor(large)], sigma=0.5, n_samples=64, seed=3,
        direction=pb.DIRECTION_TWO_SIDED,
    ))
    wob = WobblinessTransformer(tiny_model, sigma=0.5, n_samples=64, random_state=3).fit(clean)
    W_clean, W_small, W_large = (wob.transform(a).ravel() for a in (clean, small, large))
    rows = np.full((2, 45), np.nan)
    rows[0, :6], rows[1] = W_small, W_large
    reference = np.full((1, 45), np.nan)
    reference[0, :30] = W_clean
    detector = LeveneBackdoorDetector(direction="two-sided").fit(reference)
    np.testing.assert_array_equal([c.p_value for c in response.candidates], detector.p_values(rows))
    assert [c.summary.count for c in response.candidates] == [6, 45]
    assert response.direction == pb.DIRECTION_TWO_SIDED


def test_an_unset_seed_is_drawn_returned_and_reproduces(server, tiny_model):
    model_id = _upload(server.stub, tiny_model).model.model_id
    X = np.random.RandomState(3).normal(size=(10, *TINY_SHAPE))
    request = pb.ComputeWobblinessRequest(model_id=model_id, inputs=to_tensor(X), sigma=0.6)
    first = server.stub.ComputeWobbliness(request)
    again = server.stub.ComputeWobbliness(request)
    assert first.seed != again.seed  # drawn per call (a 1 in 2**32 chance of a false failure)
    request.seed = first.seed
    replay = server.stub.ComputeWobbliness(request)
    np.testing.assert_array_equal(from_tensor(replay.wobbliness), from_tensor(first.wobbliness))
    assert (first.sigma, first.n_samples) == (0.6, 250)  # the library's default n


def test_screen_stream_reports_progress_then_the_same_result(tmp_path, tiny_model):
    from wobbledetect_service.limits import ServiceLimits

    from .conftest import running_server

    with running_server(tmp_path / "store", limits=ServiceLimits(chunk_forwards=640)) as srv:
        model_id = _upload(srv.stub, tiny_model).model.model_id
        rng = np.random.RandomState(4)
        request = pb.ScreenRequest(
            model_id=model_id, clean=to_tensor(rng.normal(size=(20, *TINY_SHAPE))),
            candidates=[to_tensor(rng.normal(size=(12, *TINY_SHAPE)))],
            sigma=0.5, n_samples=64, seed=11,
        )
        events = list(srv.stub.ScreenStream(request))
        unary = srv.stub.Screen(request)
    progress = [e.progress for e in events[:-1]]
    assert all(e.WhichOneof("event") == "progress" for e in events[:-1])
    # 32 inputs, 640 // 64 = 10 inputs per chunk: 10, 20, 30, 32.
    assert [(p.inputs_done, p.inputs_total) for p in progress] == [
        (10, 32), (20, 32), (30, 32), (32, 32)]
    assert events[-1].WhichOneof("event") == "result"
    assert events[-1].result == unary


def test_model_store_rpcs_list_get_delete_and_idempotent_upload(server, tiny_model):
    other = tiny_onnx(seed=1)
    first = _upload(server.stub, tiny_model)
    again = _upload(server.stub, tiny_model, chunk=7)
    second = _upload(server.stub, other)
    assert first.created and not again.created and second.created
    assert again.model == first.model
    listed = server.stub.ListModels(pb.ListModelsRequest()).models
    assert [m.model_id for m in listed] == sorted([first.model.model_id, second.model.model_id])
    assert server.stub.GetModel(pb.GetModelRequest(model_id=second.model.model_id)) == second.model
    assert first.model.size_bytes == len(tiny_model)
    server.stub.DeleteModel(pb.DeleteModelRequest(model_id=first.model.model_id))
    listed = server.stub.ListModels(pb.ListModelsRequest()).models
    assert [m.model_id for m in listed] == [second.model.model_id]


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_host_the_model_runs_on_cuda_with_the_librarys_numbers(tmp_path, tiny_model):
    from .conftest import running_server

    X = np.random.RandomState(5).normal(size=(30, *TINY_SHAPE))
    with running_server(tmp_path / "store", device="auto") as srv:
        model_id = _upload(srv.stub, tiny_model).model.model_id
        response = srv.stub.ComputeWobbliness(pb.ComputeWobblinessRequest(
            model_id=model_id, inputs=to_tensor(X), sigma=0.5, n_samples=128, seed=2))
    assert response.device.startswith("cuda")  # the CUDA execution provider is in use
    wob = WobblinessTransformer(tiny_model, sigma=0.5, n_samples=128, random_state=2,
                                device="cuda").fit(X)
    np.testing.assert_array_equal(from_tensor(response.wobbliness), wob.transform(X).ravel())
