"""Busy servers, queues, cancellation and deadlines: a cancelled screen stops computing."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from wobbledetect._grpc_codec import from_tensor, to_tensor
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect_service.limits import ServiceLimits

from .conftest import TINY_SHAPE, running_server, screen_request, wait_for

#: A screen of ~16M forwards of the tiny model: tens of seconds if it ran to the end.
LONG = dict(n_clean=1595, n_samples=10_000)
LONG_INPUTS = LONG["n_clean"] + 5  # with the candidate set of 5
LIMITS = dict(max_inputs=10_000, max_forwards=10**9, chunk_forwards=20_000)


def _upload(stub, data):
    return stub.UploadModel(iter([pb.UploadModelRequest(chunk=data)])).model.model_id


def _assert_stops(servicer, total_chunks):
    """After a cancel: the computation is abandoned, frees its slot, and computes no more."""
    wait_for(lambda: servicer.stats.abandoned == 1, what="the screen to be abandoned")
    wait_for(lambda: servicer.admission.running == 0, what="the slot to be freed")
    chunks = servicer.stats.chunks
    time.sleep(0.5)
    assert servicer.stats.chunks == chunks  # nothing computes in the background
    assert chunks < total_chunks / 2  # it stopped early (measured: ~40 of 800 on 2 CPUs)
    assert servicer.stats.completed == 0


def test_a_cancelled_screen_stops_computing(tmp_path, tiny_model):
    with running_server(tmp_path / "store", limits=ServiceLimits(**LIMITS)) as server:
        model_id = _upload(server.stub, tiny_model)
        future = server.stub.Screen.future(screen_request(model_id, **LONG))
        servicer = server.built.servicer
        wait_for(lambda: servicer.stats.chunks >= 2, what="the screen to compute")
        future.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            future.result()
        _assert_stops(servicer, total_chunks=LONG_INPUTS // 2)


def test_a_screen_past_its_deadline_stops_computing(tmp_path, tiny_model):
    with running_server(tmp_path / "store", limits=ServiceLimits(**LIMITS)) as server:
        model_id = _upload(server.stub, tiny_model)
        with pytest.raises(grpc.RpcError) as late:
            server.stub.Screen(screen_request(model_id, **LONG), timeout=1.0)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        _assert_stops(server.built.servicer, total_chunks=LONG_INPUTS // 2)


def test_a_cancelled_progress_stream_stops_computing(tmp_path, tiny_model):
    with running_server(tmp_path / "store", limits=ServiceLimits(**LIMITS)) as server:
        model_id = _upload(server.stub, tiny_model)
        stream = server.stub.ScreenStream(screen_request(model_id, **LONG))
        first = next(stream)
        assert first.progress.inputs_total == LONG_INPUTS
        assert 0 < first.progress.inputs_done < LONG_INPUTS
        stream.cancel()
        _assert_stops(server.built.servicer, total_chunks=LONG_INPUTS // 2)


def test_a_busy_server_refuses_more_than_it_runs_and_queues(tmp_path, tiny_model):
    limits = ServiceLimits(max_concurrent_screens=1, max_queued_screens=1, **LIMITS)
    with running_server(tmp_path / "store", limits=limits) as server:
        model_id = _upload(server.stub, tiny_model)
        servicer = server.built.servicer
        running = server.stub.Screen.future(screen_request(model_id, **LONG))
        wait_for(lambda: servicer.admission.running == 1, what="a running screen")
        queued = server.stub.Screen.future(screen_request(model_id, seed=1))
        wait_for(lambda: servicer.admission.queued == 1, what="a queued screen")
        for call in (
            lambda: server.stub.Screen(screen_request(model_id, seed=2)),
            lambda: list(server.stub.ScreenStream(screen_request(model_id, seed=2))),
            lambda: server.stub.ComputeWobbliness(pb.ComputeWobblinessRequest(
                model_id=model_id, inputs=to_tensor(np.zeros((2, *TINY_SHAPE))))),
        ):
            with pytest.raises(grpc.RpcError) as busy:
                call()
            assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "busy" in busy.value.details() and "max_concurrent_screens=1" in busy.value.details()
        # Cheap calls are still answered while every slot is taken.
        assert len(server.stub.ListModels(pb.ListModelsRequest(), timeout=5).models) == 1
        running.cancel()
        assert len(queued.result(timeout=30).candidates) == 1  # the queued one then runs
        assert servicer.admission.running == servicer.admission.queued == 0


def test_a_client_that_leaves_the_queue_frees_its_place(tmp_path, tiny_model):
    limits = ServiceLimits(max_concurrent_screens=1, max_queued_screens=1, **LIMITS)
    with running_server(tmp_path / "store", limits=limits) as server:
        model_id = _upload(server.stub, tiny_model)
        admission = server.built.servicer.admission
        running = server.stub.Screen.future(screen_request(model_id, **LONG))
        wait_for(lambda: admission.running == 1, what="a running screen")
        waiting = server.stub.Screen.future(screen_request(model_id, seed=1))
        wait_for(lambda: admission.queued == 1, what="a queued screen")
        waiting.cancel()
        wait_for(lambda: admission.queued == 0, what="the queue to empty")
        assert server.built.servicer.stats.started == 1  # the cancelled one never ran
        running.cancel()


def test_queued_screens_all_complete_with_their_own_results(tmp_path, tiny_model):
    limits = ServiceLimits(max_concurrent_screens=1, max_queued_screens=8)
    with running_server(tmp_path / "store", limits=limits) as server:
        model_id = _upload(server.stub, tiny_model)
        requests = [screen_request(model_id, n_clean=25, n_samples=200, seed=s) for s in range(6)]
        results = [None] * len(requests)

        def run(i):
            results[i] = server.stub.Screen(requests[i], timeout=60)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for request, result in zip(requests, results):
            assert result == server.stub.Screen(request)  # same as alone, seed for seed
        assert len({r.candidates[0].p_value for r in results}) == len(results)


def test_oversized_messages_and_models_are_resource_exhausted(tmp_path):
    from .conftest import tiny_onnx

    limits = ServiceLimits(max_message_bytes=32 << 10, max_model_bytes=8 << 10)
    with running_server(tmp_path / "store", limits=limits) as server:
        big = pb.ComputeWobblinessRequest(model_id="0" * 64,
                                          inputs=to_tensor(np.zeros((3000, *TINY_SHAPE))))
        with pytest.raises(grpc.RpcError) as large:
            server.stub.ComputeWobbliness(big)
        assert large.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        padded = tiny_onnx() + bytes(9 << 10)  # chunks under the message limit, model over
        chunks = [pb.UploadModelRequest(chunk=padded[i : i + 1024]) for i in range(0, len(padded), 1024)]
        with pytest.raises(grpc.RpcError) as too_big:
            server.stub.UploadModel(iter(chunks))
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_model_bytes" in too_big.value.details()
        assert list(server.built.store.tmp_dir.iterdir()) == []
        # A response larger than the limit cannot be sent either; the server says so.
        model_id = server.stub.UploadModel(iter([pb.UploadModelRequest(chunk=tiny_onnx())])).model.model_id
        X = np.zeros((1500, *TINY_SHAPE), np.float32)  # 24 KB in; 1500 x 3 float64 = 36 KB out
        with pytest.raises(grpc.RpcError) as reply:
            server.stub.ComputeWobbliness(pb.ComputeWobblinessRequest(
                model_id=model_id, inputs=to_tensor(X), n_samples=1,
                return_vote_frequencies=True))
        assert reply.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        ok = server.stub.ComputeWobbliness(pb.ComputeWobblinessRequest(
            model_id=model_id, inputs=to_tensor(X[:10]), n_samples=1))
        assert from_tensor(ok.wobbliness).shape == (10,)


def test_waiting_computations_start_in_arrival_order():
    from wobbledetect_service.admission import Admission

    admission = Admission(max_running=1, max_queued=5)
    started, release = [], threading.Event()

    def compute(i):
        with admission.slot(lambda: True):
            started.append(i)
            release.wait(5)

    first = threading.Thread(target=compute, args=(0,))
    first.start()
    wait_for(lambda: admission.running == 1)
    waiters = []
    for i in range(1, 5):
        waiters.append(threading.Thread(target=compute, args=(i,)))
        waiters[-1].start()
        wait_for(lambda: admission.queued == i)  # enqueued before the next one arrives
    release.set()
    for thread in [first, *waiters]:
        thread.join(10)
    assert started == [0, 1, 2, 3, 4]
    assert admission.running == admission.queued == 0
