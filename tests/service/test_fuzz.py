"""Acceptance 3: hundreds of generated malformed requests, each answered with the right code.

A seeded generator cycles through every kind of defect (tensor dtypes, shapes, byte
lengths, NaN/inf, float64 overflow, sigma, n_samples, alpha, direction, model ids, empty
and undersized sets, work and size limits, broken uploads) with random parameters; each
case carries the one status code it must get. Afterwards the server must still be
healthy, answer a valid screen, and hold nothing but the one valid model.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from wobbledetect import MIN_SET_SIZE
from wobbledetect._grpc_codec import to_tensor
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect.v1 import tensor_pb2
from wobbledetect_service.limits import ServiceLimits

from .conftest import TINY_SHAPE, running_server, tiny_onnx

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

LIMITS = ServiceLimits(
    max_message_bytes=64 << 10, max_model_bytes=16 << 10, max_n_samples=64, max_inputs=32,
    max_forwards=1024, chunk_forwards=256,
)
N_CASES = 600


class Cases:
    """Malformed requests: each category builds one random case from ``rng``."""

    def __init__(self, model_id, model_bytes, rng):
        self.model_id = model_id
        self.model_bytes = model_bytes
        self.rng = rng

    # -- valid building blocks -------------------------------------------------------

    def batch(self, n=None, dtype=None):
        n = n or self.rng.randint(MIN_SET_SIZE, 7)
        dtype = dtype or (np.float32 if self.rng.rand() < 0.5 else np.float64)
        return to_tensor(self.rng.normal(size=(n, *TINY_SHAPE)).astype(dtype))

    def noise_fields(self):
        return dict(sigma=float(self.rng.uniform(0.05, 2.0)),
                    n_samples=int(self.rng.randint(1, 9)), seed=int(self.rng.randint(2**32)))

    def compute(self):
        return pb.ComputeWobblinessRequest(model_id=self.model_id, inputs=self.batch(),
                                           **self.noise_fields())

    def screen(self, n_candidates=None):
        n_candidates = n_candidates or self.rng.randint(1, 4)
        return pb.ScreenRequest(
            model_id=self.model_id, clean=self.batch(),
            candidates=[self.batch() for _ in range(n_candidates)],
            alpha=float(self.rng.uniform(0.01, 0.2)), **self.noise_fields())

    def target(self):
        """A valid request of a computing RPC, and the Tensor inside it to break."""
        kind = self.rng.choice(["compute", "screen-clean", "screen-candidate", "stream"])
        if kind == "compute":
            request = self.compute()
            return "ComputeWobbliness", request, request.inputs
        request = self.screen()
        method = "ScreenStream" if kind == "stream" else "Screen"
        if kind == "screen-clean" or (kind == "stream" and self.rng.rand() < 0.5):
            return method, request, request.clean
        return method, request, request.candidates[self.rng.randint(len(request.candidates))]

    def scalar_target(self):
        """A valid request of a computing RPC (to break a scalar field of)."""
        method = self.rng.choice(["ComputeWobbliness", "Screen", "ScreenStream"])
        return method, self.compute() if method == "ComputeWobbliness" else self.screen()

    # -- tensors ---------------------------------------------------------------------

    def dtype_unknown(self):
        method, request, tensor = self.target()
        tensor.dtype = int(self.rng.choice([0, 3, 7, 11, 16, 1000, 2**31 - 1]))
        return method, request, INVALID

    def bytes_too_few(self):
        method, request, tensor = self.target()
        tensor.data = tensor.data[: self.rng.randint(0, len(tensor.data))]
        return method, request, INVALID

    def bytes_too_many(self):
        method, request, tensor = self.target()
        tensor.data = tensor.data + bytes(self.rng.randint(1, 17))
        return method, request, INVALID

    def bytes_of_the_other_dtype(self):
        method, request, tensor = self.target()
        tensor.dtype = 3 - tensor.dtype  # float32 <-> float64: length no longer matches
        return method, request, INVALID

    def dim_negative(self):
        method, request, tensor = self.target()
        tensor.shape[self.rng.randint(len(tensor.shape))] = -int(self.rng.randint(1, 2**40))
        return method, request, INVALID

    def dim_zero(self):
        method, request, tensor = self.target()
        tensor.shape[self.rng.randint(len(tensor.shape))] = 0
        tensor.data = b""
        return method, request, INVALID

    def dim_absurd(self):
        method, request, tensor = self.target()
        tensor.shape[self.rng.randint(len(tensor.shape))] = int(self.rng.randint(2**20, 2**62))
        return method, request, INVALID

    def shape_empty(self):
        method, request, tensor = self.target()
        del tensor.shape[:]
        return method, request, INVALID

    def shape_too_many_dims(self):
        method, request, tensor = self.target()
        tensor.shape.extend([1] * int(self.rng.randint(5, 12)))  # > 8 dimensions
        return method, request, INVALID

    def shape_wrong_per_input(self):
        method, request, tensor = self.target()
        n = tensor.shape[0]
        wrong = [[n, 4], [n, 2, 2], [n, 1, 4, 1], [n, 4, 1, 1], [n * 4], [n, 2, 1, 2]]
        del tensor.shape[:]
        tensor.shape.extend(wrong[self.rng.randint(len(wrong))])  # same bytes, wrong shape
        return method, request, INVALID

    def shape_too_many_leading_dims(self):
        method, request, tensor = self.target()
        n = tensor.shape[0]
        lead = [1, 1, n] if method == "ComputeWobbliness" or tensor is request.clean else [1, n]
        del tensor.shape[:]
        tensor.shape.extend([*lead, *TINY_SHAPE])
        return method, request, INVALID

    def values_nan_or_inf(self):
        method, request, tensor = self.target()
        dtype = np.float32 if tensor.dtype == tensor_pb2.DTYPE_FLOAT32 else np.float64
        values = np.frombuffer(tensor.data, dtype=dtype).copy()
        hit = self.rng.choice(len(values), size=self.rng.randint(1, 4), replace=False)
        values[hit] = self.rng.choice([np.nan, np.inf, -np.inf], size=len(hit))
        tensor.data = values.tobytes()
        return method, request, INVALID

    def values_beyond_float32(self):
        method, request, tensor = self.target()
        values = np.frombuffer(tensor.data, dtype=np.float32 if tensor.dtype == 1 else np.float64)
        values = values.astype(np.float64)
        values[self.rng.randint(len(values))] = self.rng.choice([1e39, -1e300, 3.5e38])
        tensor.dtype = tensor_pb2.DTYPE_FLOAT64
        tensor.data = values.tobytes()
        return method, request, INVALID

    def tensor_missing(self):
        method, request = self.scalar_target()
        request.ClearField("inputs" if method == "ComputeWobbliness" else "clean")
        return method, request, INVALID

    # -- scalar parameters -----------------------------------------------------------

    def sigma_invalid(self):
        method, request = self.scalar_target()
        request.sigma = float(self.rng.choice(
            [0.0, -0.0, -1e-12, -1.0, -1e308, np.nan, np.inf, -np.inf, 1.0000001e6, 1e308]))
        return method, request, INVALID

    def n_samples_not_positive(self):
        method, request = self.scalar_target()
        request.n_samples = int(self.rng.choice([0, -1, -250, -(2**63)]))
        return method, request, INVALID

    def n_samples_over_limit(self):
        method, request = self.scalar_target()
        request.n_samples = int(self.rng.choice([65, 1000, 10**12, 2**63 - 1]))
        return method, request, EXHAUSTED

    def too_many_inputs(self):
        method, request = self.scalar_target()
        field = request.inputs if method == "ComputeWobbliness" else request.clean
        field.CopyFrom(self.batch(n=int(self.rng.randint(33, 60))))
        return method, request, EXHAUSTED

    def too_much_work(self):
        method, request = self.scalar_target()
        field = request.inputs if method == "ComputeWobbliness" else request.clean
        field.CopyFrom(self.batch(n=int(self.rng.randint(17, 25))))
        if method != "ComputeWobbliness":  # stay within max_inputs = 32
            del request.candidates[:]
            request.candidates.append(self.batch(n=MIN_SET_SIZE))
        request.n_samples = 64  # >= 17 * 64 = 1088 forwards > max_forwards = 1024
        return method, request, EXHAUSTED

    def message_too_large(self):
        method, request = self.scalar_target()
        field = request.inputs if method == "ComputeWobbliness" else request.clean
        field.CopyFrom(to_tensor(np.zeros((self.rng.randint(5000, 9000), *TINY_SHAPE))))
        return method, request, EXHAUSTED  # > 64 KiB: refused by gRPC itself

    def alpha_invalid(self):
        method, request = self.scalar_target()
        if method == "ComputeWobbliness":
            method, request = "Screen", self.screen()
        request.alpha = float(self.rng.choice([0.0, 1.0, -0.05, 1.5, np.nan, np.inf, -np.inf]))
        return method, request, INVALID

    def direction_unknown(self):
        request = self.screen()
        request.direction = int(self.rng.choice([4, 5, 99, -1, 2**31 - 1]))
        return str(self.rng.choice(["Screen", "ScreenStream"])), request, INVALID

    def candidates_empty(self):
        request = self.screen()
        del request.candidates[:]
        return str(self.rng.choice(["Screen", "ScreenStream"])), request, INVALID

    def set_too_small(self):
        request = self.screen()
        small = self.batch(n=int(self.rng.randint(1, MIN_SET_SIZE)))
        if self.rng.rand() < 0.5:
            request.clean.CopyFrom(small)
        else:
            request.candidates[self.rng.randint(len(request.candidates))].CopyFrom(small)
        return str(self.rng.choice(["Screen", "ScreenStream"])), request, INVALID

    # -- model ids -------------------------------------------------------------------

    def _bad_id(self):
        good = "".join(self.rng.choice(list("0123456789abcdef"), 64))
        return str(self.rng.choice([
            "", good[:63], good + "0", good.upper(), "../" + good[3:], good[:-1] + "g",
            "/etc/passwd", "x" * 10_000, good[:32] + " " + good[33:], "é" * 64,
            good[:10] + "\x00" + good[11:],
        ]))

    def _unknown_id(self):
        return "".join(self.rng.choice(list("0123456789abcdef"), 64))

    def model_id_malformed(self):
        method = str(self.rng.choice(
            ["ComputeWobbliness", "Screen", "ScreenStream", "ScreenModel", "GetModel", "DeleteModel"]))
        request = self._request_for(method)
        request.model_id = self._bad_id()
        return method, request, INVALID

    def model_id_unknown(self):
        method = str(self.rng.choice(
            ["ComputeWobbliness", "Screen", "ScreenStream", "ScreenModel", "GetModel", "DeleteModel"]))
        request = self._request_for(method)
        request.model_id = self._unknown_id()
        return method, request, NOT_FOUND

    def _request_for(self, method):
        if method == "ComputeWobbliness":
            return self.compute()
        if method in ("Screen", "ScreenStream"):
            return self.screen()
        if method == "ScreenModel":
            return pb.ScreenModelRequest(model_id=self.model_id, clean=self.screen().clean)
        return getattr(pb, f"{method}Request")(model_id=self.model_id)

    # -- uploads ---------------------------------------------------------------------

    def _chunks(self, data):
        size = int(self.rng.randint(1, 4096))
        return [pb.UploadModelRequest(chunk=data[i : i + size]) for i in range(0, len(data), size)]

    def upload_not_onnx(self):
        data = self.rng.bytes(int(self.rng.randint(1, 8000)))
        return "UploadModel", self._chunks(data), INVALID

    def upload_truncated(self):
        data = self.model_bytes[: self.rng.randint(1, len(self.model_bytes))]
        return "UploadModel", self._chunks(data), INVALID

    def upload_empty(self):
        return "UploadModel", [pb.UploadModelRequest()] * int(self.rng.randint(0, 3)), INVALID

    def upload_too_large(self):
        data = self.model_bytes + bytes(int(self.rng.randint(16 << 10, 40 << 10)))
        return "UploadModel", self._chunks(data), EXHAUSTED

    def upload_wrong_expected_id(self):
        chunks = self._chunks(self.model_bytes)
        chunks[0].expected_model_id = self._unknown_id()
        return "UploadModel", chunks, INVALID

    def upload_malformed_expected_id(self):
        chunks = self._chunks(self.model_bytes)
        chunks[-1].expected_model_id = self._bad_id() or "0"
        return "UploadModel", chunks, INVALID

    def upload_unusable_onnx(self):
        broken = [
            dict(batch=None, input_shape=("h", 2, 2)),  # no fixed per-input shape
            dict(elem_type=6),  # int32 input
            dict(two_inputs=True),
            dict(external=True),  # weights in a file on the server's disk
            dict(n_classes=1),  # one score: no vote to take
        ]
        options = broken[self.rng.randint(len(broken))]
        if options.get("batch", "") is None:
            options["batch"] = "batch"
        return "UploadModel", self._chunks(tiny_onnx(seed=int(self.rng.randint(10**6)), **options)), INVALID

    #: A word of the message each category must get: proof that the intended check fired.
    MESSAGES = {
        "dtype_unknown": ".dtype is", "bytes_too_few": ".data holds",
        "bytes_too_many": ".data holds", "bytes_of_the_other_dtype": ".data holds",
        "dim_negative": "at least 1", "dim_zero": "at least 1", "dim_absurd": ".data holds",
        "shape_empty": "1 to 8 dimensions", "shape_too_many_dims": "1 to 8 dimensions",
        "shape_wrong_per_input": "the model takes inputs of shape",
        "shape_too_many_leading_dims": "the model takes inputs of shape",
        "values_nan_or_inf": "NaN or inf", "values_beyond_float32": "float32's range",
        "tensor_missing": "is missing", "sigma_invalid": "sigma is",
        "n_samples_not_positive": "at least 1", "n_samples_over_limit": "max_n_samples",
        "too_many_inputs": "max_inputs", "too_much_work": "max_forwards",
        "message_too_large": "larger than max", "alpha_invalid": "alpha is",
        "direction_unknown": "not a Direction", "candidates_empty": "candidates is empty",
        "set_too_small": "the Levene test needs at least", "model_id_malformed": "model_id",
        "model_id_unknown": "No model with id", "upload_not_onnx": "not an ONNX model",
        "upload_truncated": "not an ONNX model", "upload_empty": "upload is empty",
        "upload_too_large": "max_model_bytes", "upload_wrong_expected_id": "damaged in transfer",
        "upload_malformed_expected_id": "expected_model_id", "upload_unusable_onnx": "The model",
    }

    CATEGORIES = (
        "dtype_unknown", "bytes_too_few", "bytes_too_many", "bytes_of_the_other_dtype",
        "dim_negative", "dim_zero", "dim_absurd", "shape_empty", "shape_too_many_dims",
        "shape_wrong_per_input", "shape_too_many_leading_dims", "values_nan_or_inf",
        "values_beyond_float32", "tensor_missing", "sigma_invalid", "n_samples_not_positive",
        "n_samples_over_limit", "too_many_inputs", "too_much_work", "message_too_large",
        "alpha_invalid", "direction_unknown", "candidates_empty", "set_too_small",
        "model_id_malformed", "model_id_unknown", "upload_not_onnx", "upload_truncated",
        "upload_empty", "upload_too_large", "upload_wrong_expected_id",
        "upload_malformed_expected_id", "upload_unusable_onnx",
    )


def _call(stub, method, request):
    """The status code the server answers ``request`` with (OK if it does not fail)."""
    try:
        if method == "UploadModel":
            stub.UploadModel(iter(request), timeout=30)
        elif method in ("ScreenStream", "ScreenModel"):
            list(getattr(stub, method)(request, timeout=30))
        else:
            getattr(stub, method)(request, timeout=30)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


@pytest.mark.slow
def test_malformed_requests_get_the_right_status_and_the_server_stays_healthy(tmp_path):
    model_bytes = tiny_onnx()
    with running_server(tmp_path / "store", limits=LIMITS) as server:
        stub = server.stub
        model_id = stub.UploadModel(iter([pb.UploadModelRequest(chunk=model_bytes)])).model.model_id
        cases = Cases(model_id, model_bytes, np.random.RandomState(20240601))
        wrong, seen = [], {}
        for i in range(N_CASES):
            category = Cases.CATEGORIES[i % len(Cases.CATEGORIES)]
            method, request, expected = getattr(cases, category)()
            code, details = _call(stub, method, request)
            seen[category] = seen.get(category, 0) + 1
            if code != expected or Cases.MESSAGES[category] not in details:
                wrong.append(f"{category} via {method}: expected {expected.name} "
                             f"({Cases.MESSAGES[category]!r}), got {code.name} ({details})")
        assert not wrong, f"{len(wrong)} of {N_CASES} wrong:\n" + "\n".join(wrong[:20])
        assert sum(seen.values()) >= 500 and min(seen.values()) >= 15

        health = health_pb2_grpc.HealthStub(server.channel)
        for service in ("", "wobbledetect.v1.ScreeningService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        request = cases.screen(n_candidates=2)
        request.sigma, request.n_samples = 1.0, 64  # enough noise for W to vary: a real test
        response = stub.Screen(request)
        assert len(response.candidates) == 2 and 0 <= response.candidates[0].p_value <= 1
        listed = stub.ListModels(pb.ListModelsRequest()).models
        assert [m.model_id for m in listed] == [model_id]  # no failed upload was kept
        assert list(server.built.store.tmp_dir.iterdir()) == []
        stats = server.built.servicer.stats
        assert stats.started == stats.completed  # nothing left running or half-counted
