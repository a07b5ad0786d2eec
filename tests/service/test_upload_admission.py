"""Uploads: one ``created`` per model however many arrive at once, their checks take
the screens' admission slots, and the check runs from the file."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

import wobbledetect_service.store
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect_service.limits import ServiceLimits
from wobbledetect_service.store import ModelStore

from .conftest import running_server, screen_request, tiny_onnx, wait_for

#: The small screen the tests send.
SCREEN = dict(n_clean=10, sigma=2.0, seed=1, data_seed=0)


class GatedCheck:
    """Replaces the store's model check: counts the checks, and each waits for ``gate``."""

    def __init__(self, monkeypatch, *, delay=0.0, gated=False):
        self.real = wobbledetect_service.store.inspect_onnx
        self.delay = delay
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.started = 0
        self._lock = threading.Lock()
        monkeypatch.setattr(wobbledetect_service.store, "inspect_onnx", self)

    def __call__(self, source):
        with self._lock:
            self.started += 1
        time.sleep(self.delay)  # a 100 MB model takes seconds: the window of the race
        assert self.gate.wait(30), "the test never opened the gate"
        return self.real(source)


def _upload(stub, data, **kwargs):
    return stub.UploadModel(iter([pb.UploadModelRequest(chunk=data)]), timeout=30, **kwargs)


def _at_once(n, function):
    """Run ``function(i)`` in ``n`` threads released together; return results in order."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = function(i)
        except Exception as exc:  # noqa: BLE001 - returned to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_uploads_of_the_same_bytes_create_it_exactly_once(tmp_path, monkeypatch):
    check = GatedCheck(monkeypatch, delay=0.3)
    data = tiny_onnx(seed=21)
    with running_server(tmp_path / "store") as server:
        responses = _at_once(4, lambda i: _upload(server.stub, data))
        listed = server.stub.ListModels(pb.ListModelsRequest()).models
    assert sorted(r.created for r in responses) == [False, False, False, True]
    assert len({r.model.model_id for r in responses}) == 1
    assert [m.model_id for m in listed] == [responses[0].model.model_id]
    assert check.started == 1  # the others waited for it, then found the model stored
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_two_servers_sharing_a_store_create_a_model_once(tmp_path, monkeypatch):
    GatedCheck(monkeypatch, delay=0.3)
    stores = [ModelStore(tmp_path, max_model_bytes=1 << 20) for _ in range(2)]
    data = tiny_onnx(seed=22)

    def put(i):
        with stores[i].upload() as upload:
            upload.write(data)
            return upload.commit()

    results = _at_once(2, put)
    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0] == results[1][0]





def test_an_upload_check_takes_a_screen_slot(tmp_path, monkeypatch):
    limits = ServiceLimits(max_concurrent_screens=1, max_queued_screens=0)
    with running_server(tmp_path / "store", limits=limits) as server:
        model_id = _upload(server.stub, tiny_onnx(seed=0)).model.model_id
        check = GatedCheck(monkeypatch, gated=True)
        upload = server.stub.UploadModel.future(
            iter([pb.UploadModelRequest(chunk=tiny_onnx(seed=23))]), timeout=30)
        try:
            wait_for(lambda: check.started == 1, what="the upload's check")
            assert server.built.servicer.admission.running == 1
            with pytest.raises(grpc.RpcError) as busy:
                server.stub.Screen(screen_request(model_id, **SCREEN), timeout=10)
        finally:
            check.gate.set()
        assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrent_screens=1" in busy.value.details()
        assert upload.result().created
        assert server.built.servicer.admission.running == 0
        assert len(server.stub.Screen(screen_request(model_id, **SCREEN), timeout=30).candidates) == 1


def test_an_upload_is_refused_before_its_bytes_when_the_server_is_full(tmp_path, monkeypatch):
    limits = ServiceLimits(max_concurrent_screens=1, max_queued_screens=0)
    check = GatedCheck(monkeypatch, gated=True)
    stalled = threading.Event()
    data = tiny_onnx(seed=25)

    def slow_client():  # sends a first chunk, then stalls
        yield pb.UploadModelRequest(chunk=data[:50])
        stalled.wait(30)
        yield pb.UploadModelRequest(chunk=data[50:])

    with running_server(tmp_path / "store", limits=limits) as server:
        first = server.stub.UploadModel.future(
            iter([pb.UploadModelRequest(chunk=tiny_onnx(seed=24))]), timeout=30)
        try:
            wait_for(lambda: check.started == 1, what="the first upload's check")
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as busy:
                server.stub.UploadModel(slow_client(), timeout=5)
            waited = time.monotonic() - started
        finally:
            stalled.set()
            check.gate.set()
        assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, busy.value.details()
        assert "max_queued_screens=0" in busy.value.details()
        assert waited < 3  # answered without waiting for the stalled client's bytes
        assert first.result().created


def test_a_queued_upload_completes_once_a_slot_frees(tmp_path, monkeypatch):
    limits = ServiceLimits(max_concurrent_screens=1, max_queued_screens=1)
    check = GatedCheck(monkeypatch, gated=True)
    with running_server(tmp_path / "store", limits=limits) as server:
        admission = server.built.servicer.admission
        futures = [server.stub.UploadModel.future(
            iter([pb.UploadModelRequest(chunk=tiny_onnx(seed=s))]), timeout=30)
            for s in (26, 27)]
        try:
            wait_for(lambda: admission.running == 1 and admission.queued == 1,
                      what="one check running and one upload queued")
            assert check.started == 1  # the queued one has not started its check
        finally:
            check.gate.set()
        assert [f.result().created for f in futures] == [True, True]
        assert check.started == 2 and admission.running == admission.queued == 0


def test_an_upload_leaves_no_onnxruntime_session_behind(tmp_path):
    from wobbledetect import _models

    with running_server(tmp_path / "store") as server:
        with _models._onnx_lock:
            _models._onnx_cache.clear()  # a cache: emptying it changes no result
        response = _upload(server.stub, tiny_onnx(seed=28))
        assert response.created
        # The check ran the model from its file: no session of its bytes is kept (a
        # 100 MB model's session would stay in memory until evicted).
        assert len(_models._onnx_cache) == 0
