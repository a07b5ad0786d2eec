"""The server as an operator runs it, ``wobbledetect serve`` in its own process: killed
with SIGKILL mid-upload (acceptance 5), and stopped gracefully with SIGTERM."""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from wobbledetect._grpc_codec import from_tensor, to_tensor
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect.v1 import screening_pb2_grpc

from .conftest import TINY_SHAPE, tiny_onnx, wait_for

pytestmark = pytest.mark.slow


class ServeProcess:
    """``python -m wobbledetect.cli serve`` on a free port; its stdout says which."""

    def __init__(self, store, *extra, log_path=None):
        # The log goes to a file: a pipe nobody reads could fill up and block the server.
        self.log = open(log_path or f"{store}.log", "a+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wobbledetect.cli", "serve", "--address", "127.0.0.1:0",
             "--store", str(store), "--log-level", "debug", *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.process.stdout],
                         daemon=True).start()
        try:
            line = lines.get(timeout=120)
        except queue.Empty:
            self.process.kill()
            raise AssertionError(f"serve did not start: {self.read_log()}") from None
        assert line.startswith("wobbledetect serve: listening on 127.0.0.1:"), line
        self.port = int(line.rsplit(":", 1)[1])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = screening_pb2_grpc.ScreeningServiceStub(self.channel)

    def read_log(self):
        self.log.seek(0)
        return self.log.read()

    def close(self):
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self.log.close()


def test_sigkill_mid_upload_leaves_a_consistent_store(tmp_path):
    store = tmp_path / "store"
    complete = tiny_onnx(seed=1)
    partial = tiny_onnx(seed=2, input_shape=(1, 64, 64))  # 48 KB: many chunks
    server = ServeProcess(store)
    try:
        done = server.stub.UploadModel(iter([pb.UploadModelRequest(chunk=complete)]))
        assert done.created

        def slow_chunks():
            for start in range(0, len(partial), 512):
                yield pb.UploadModelRequest(chunk=partial[start : start + 512])
                time.sleep(0.02)

        upload = server.stub.UploadModel.future(slow_chunks())
        # Kill once the server has written part of the second model to disk.
        tmp = store / "tmp"
        wait_for(lambda: any(p.stat().st_size > 4096 for p in tmp.iterdir()), timeout=30.0)
        server.process.send_signal(signal.SIGKILL)
        assert server.process.wait(timeout=30) == -signal.SIGKILL
        with pytest.raises(grpc.RpcError):
            upload.result(timeout=30)
        assert len(list(tmp.iterdir())) == 1  # the half-written upload, as the kill left it
    finally:
        server.close()

    restarted = ServeProcess(store)
    try:
        listed = restarted.stub.ListModels(pb.ListModelsRequest()).models
        assert [m.model_id for m in listed] == [done.model.model_id]
        partial_id = hashlib.sha256(partial).hexdigest()
        with pytest.raises(grpc.RpcError) as gone:
            restarted.stub.GetModel(pb.GetModelRequest(model_id=partial_id))
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        assert list((store / "tmp").iterdir()) == []
        assert os.listdir(store / "models") == [f"{done.model.model_id}.onnx"]
        assert (store / "models" / f"{done.model.model_id}.onnx").read_bytes() == complete
        # The surviving model loads and computes.
        response = restarted.stub.ComputeWobbliness(pb.ComputeWobblinessRequest(
            model_id=done.model.model_id, inputs=to_tensor(np.zeros((3, *TINY_SHAPE))),
            sigma=0.5, n_samples=32, seed=0))
        assert from_tensor(response.wobbliness).shape == (3,)
        # And the interrupted upload can simply be sent again.
        again = restarted.stub.UploadModel(iter([pb.UploadModelRequest(chunk=partial)]))
        assert again.created and again.model.model_id == partial_id
    finally:
        restarted.close()


def test_sigterm_lets_the_running_screen_finish_then_exits_cleanly(tmp_path):
    server = ServeProcess(tmp_path / "store", "--grace", "60")
    try:
        model_id = server.stub.UploadModel(
            iter([pb.UploadModelRequest(chunk=tiny_onnx())])).model.model_id
        rng = np.random.RandomState(0)
        request = pb.ScreenRequest(
            model_id=model_id, clean=to_tensor(rng.normal(size=(300, *TINY_SHAPE))),
            candidates=[to_tensor(rng.normal(size=(100, *TINY_SHAPE)))],
            sigma=0.5, n_samples=10_000, seed=0,
        )
        stream = server.stub.ScreenStream(request)
        next(stream)  # it is computing
        server.process.send_signal(signal.SIGTERM)

        def refused():
            try:
                server.stub.ListModels(pb.ListModelsRequest(), timeout=5)
            except grpc.RpcError as exc:
                return exc.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
            return False

        wait_for(refused, timeout=30.0)  # new calls are turned away...
        assert server.process.poll() is None  # ...while the server drains
        events = list(stream)
        assert events[-1].WhichOneof("event") == "result"  # the screen finished
        assert len(events[-1].result.candidates) == 1
        assert server.process.wait(timeout=60) == 0
    finally:
        server.close()


def test_serve_shares_the_cpu_threads_among_concurrent_screens(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # torch in the server starts with 2 threads
    server = ServeProcess(tmp_path / "store", "--max-concurrent-screens", "2")
    try:
        assert "1 CPU thread(s) per concurrent computation" in server.read_log()
    finally:
        server.close()
