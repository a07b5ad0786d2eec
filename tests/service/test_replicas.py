"""Replicas: several ``wobbledetect serve`` processes sharing one model store, behind the
client's round-robin and retry policy (loopback addresses only)."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from wobbledetect.client import ScreeningClient
from wobbledetect.v1 import screening_pb2 as pb

from .conftest import TINY_SHAPE, tiny_onnx
from .test_process import ServeProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def replicas(tmp_path):
    store = tmp_path / "store"
    started = [ServeProcess(store, log_path=tmp_path / f"replica{i}.log") for i in range(2)]
    yield started
    for replica in started:
        replica.close()


def test_identical_uploads_through_two_replicas_at_once_store_the_model_once(replicas, tmp_path):
    model = tiny_onnx(seed=3, input_shape=(1, 64, 64))  # 48 KB: the two commits overlap
    barrier = threading.Barrier(4)
    answers = []

    def upload(replica):
        barrier.wait()
        answers.append(replica.stub.UploadModel(iter(
            [pb.UploadModelRequest(chunk=model[i:i + 4096]) for i in range(0, len(model), 4096)])))

    threads = [threading.Thread(target=upload, args=(replica,)) for replica in replicas * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 4 and len({a.model.model_id for a in answers}) == 1
    assert sorted(a.created for a in answers) == [False, False, False, True]
    assert [p.name for p in (tmp_path / "store" / "models").iterdir()] == [
        f"{answers[0].model.model_id}.onnx"]
    for replica in replicas:  # each answers on its own, from the shared store
        assert [m.model_id for m in replica.stub.ListModels(pb.ListModelsRequest()).models] == [
            answers[0].model.model_id]
        health = health_pb2_grpc.HealthStub(replica.channel).Check(
            health_pb2.HealthCheckRequest(service="wobbledetect.v1.ScreeningService"))
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_replica_killed_under_load_loses_no_screen(replicas, tmp_path):
    n_screens, n_threads, kill_after = 60, 3, 20
    rng = np.random.RandomState(0)
    clean, candidate = rng.normal(size=(20, *TINY_SHAPE)), rng.normal(size=(10, *TINY_SHAPE))
    addresses = [f"127.0.0.1:{replica.port}" for replica in replicas]
    answered, failed, lock = [], [], threading.Lock()
    killed = threading.Event()
    with ScreeningClient(addresses, timeout=60) as client:
        model_id = client.upload_model(tiny_onnx()).model_id
        expected = client.screen(model_id, clean, candidate, sigma=0.5, n_samples=256, seed=1)

        def load(share):
            for _ in range(share):
                try:
                    result = client.screen(model_id, clean, candidate, sigma=0.5, n_samples=256, seed=1)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    failed.append(exc)
                    continue
                with lock:
                    answered.append(result.candidates[0].p_value)
                    if len(answered) == kill_after and not killed.is_set():
                        os.kill(replicas[0].process.pid, signal.SIGKILL)
                        killed.set()

        threads = [threading.Thread(target=load, args=(n_screens // n_threads,)) for _ in range(n_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    assert killed.is_set() and replicas[0].process.wait(30) == -signal.SIGKILL
    assert not failed, failed[:3]
    assert len(answered) == n_screens  # every screen sent was answered
    assert set(answered) == {expected.candidates[0].p_value}  # by the same numbers
    counts = [replica.read_log().count("computation completed") for replica in replicas]
    # Both served before the kill; the survivor served the rest (a screen cut by the kill
    # was retried there, so the counts may add up to more than the screens).
    assert counts[0] >= 1 and counts[1] >= n_screens - counts[0] and counts[1] > counts[0] / 2
    print(f"replica kill test: {n_screens} screens sent, {len(answered)} answered, "
          f"{len(failed)} failed; completed per replica (the killed one first): {counts}")
