"""``wobbledetect.v1.ScreeningService``: request -> checked arrays -> library -> response.

Every check that can fail names the field, the value received and what is valid, and
becomes a status code (see :mod:`.errors`). The computations are in :mod:`.screening`;
between two chunks of inputs the servicer checks that its client is still there, so a
cancelled call, or one past its deadline, stops computing.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import secrets
import threading

import grpc
import numpy as np

from wobbledetect import (
    LeveneBackdoorDetector,
    WobbledetectError,
    WobblinessTransformer,
    check_inputs,
    check_set_size,
)
from wobbledetect._grpc_codec import from_tensor, to_tensor
from wobbledetect._grpc_results import DIRECTIONS, direction_name
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect.v1 import screening_pb2_grpc, tensor_pb2

from .admission import Abandoned, Admission
from .errors import ServiceError, invalid_argument, resource_exhausted
from .limits import ServiceLimits
from .screening import Progress, iter_screen, iter_wobbliness, summarize
from .store import ModelInfo, ModelStore, check_model_id

__all__ = ["ScreeningServicer", "DEFAULT_SIGMA", "DEFAULT_N_SAMPLES", "DEFAULT_ALPHA", "MAX_SIGMA"]

logger = logging.getLogger(__name__)

_WOBBLINESS_DEFAULTS = WobblinessTransformer(model=None).get_params()
#: Defaults of unset fields: the library's own defaults.
DEFAULT_SIGMA = float(_WOBBLINESS_DEFAULTS["sigma"])
DEFAULT_N_SAMPLES = int(_WOBBLINESS_DEFAULTS["n_samples"])
DEFAULT_ALPHA = float(LeveneBackdoorDetector().alpha)
#: Largest sigma accepted. Far beyond any input scale, noise this large makes every W
#: meaningless, and past float32's range it would overflow to inf.
MAX_SIGMA = 1e6



class Stats:
    """Counters an operator (and the tests) can read: what ran, finished and was abandoned."""

    def __init__(self):
        self._lock = threading.Lock()
        self.started = 0
        self.completed = 0
        self.abandoned = 0
        self.chunks = 0

    def add(self, name, n=1):
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


def _rpc(method):
    """Answer ServiceError with its status code, the library's own refusals (a
    WobbledetectError: bad inputs, a set too small, a model that fails on them) with
    INVALID_ARGUMENT and the library's message, a client gone away with CANCELLED, and
    anything unexpected with INTERNAL (details in the server log, not sent to clients)."""

    def fail(self, context, exc):
        if isinstance(exc, ServiceError):
            context.abort(exc.code, exc.message)
        if isinstance(exc, WobbledetectError):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if isinstance(exc, Abandoned) or not context.is_active():
            self.stats.add("abandoned")
            logger.info("%s: client cancelled or deadline passed; stopped", method.__name__)
            context.abort(grpc.StatusCode.CANCELLED, "Cancelled; the computation was stopped.")
        logger.exception("%s failed", method.__name__)
        context.abort(
            grpc.StatusCode.INTERNAL,
            f"Internal error in {method.__name__} ({type(exc).__name__}); see the server log.",
        )

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def streaming(self, request, context):
            try:
                yield from method(self, request, context)
            except Exception as exc:  # noqa: BLE001 - mapped to a status code
                fail(self, context, exc)

        return streaming

    @functools.wraps(method)
    def unary(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status code
            fail(self, context, exc)

    return unary


class ScreeningServicer(screening_pb2_grpc.ScreeningServiceServicer):
    """The ScreeningService over a :class:`~.store.ModelStore`.

    Parameters
    ----------
    store : ModelStore
    limits : ServiceLimits
    device : str, default="auto"
        Where models run: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    """

    def __init__(self, store: ModelStore, limits: ServiceLimits, *, device="auto"):
        self.store = store
        self.limits = limits
        self.device = device
        self.admission = Admission(limits.max_concurrent_screens, limits.max_queued_screens)
        self.stats = Stats()

    # -- model store -----------------------------------------------------------------

    @_rpc
    def UploadModel(self, request_iterator, context):
        # The bytes stream to a file (memory: one message); the check that follows loads
        # and runs the model, so it takes an admission slot like a screen. When neither
        # a slot nor a place in the queue is free, refuse before receiving the bytes.
        self.admission.refuse_if_full()
        with self.store.upload() as upload:
            for request in request_iterator:
                if request.expected_model_id:
                    expected = check_model_id(request.expected_model_id, "expected_model_id")
                    if upload.expected_id not in (None, expected):
                        raise invalid_argument(
                            "expected_model_id was sent twice with different values "
                            f"({upload.expected_id} and {expected}); send it once."
                        )
                    upload.expected_id = expected
                upload.write(request.chunk)
            info, created = upload.commit(admit=lambda: self.admission.slot(context.is_active))
        return pb.UploadModelResponse(model=_model_message(info), created=created)

    @_rpc
    def ListModels(self, request, context):
        return pb.ListModelsResponse(models=[_model_message(i) for i in self.store.list()])

    @_rpc
    def GetModel(self, request, context):
        return _model_message(self.store.get(request.model_id))

    @_rpc
    def DeleteModel(self, request, context):
        self.store.delete(request.model_id)
        return pb.DeleteModelResponse()

    # -- computations ----------------------------------------------------------------

    @_rpc
    def ComputeWobbliness(self, request, context):
        info = self.store.get(request.model_id)
        sigma, n_samples, seed = self._noise_parameters(request)
        inputs, lead = _inputs(request, "inputs", info.input_shape, max_lead=2)
        self._check_work(len(inputs), n_samples)

        def computation():
            _, model = self.store.read(info.model_id)  # only once admitted: queues stay light
            yield from iter_wobbliness(
                model, inputs, sigma=sigma, n_samples=n_samples, seed=seed,
                device=self.device, input_shape=info.input_shape,
                chunk_forwards=self.limits.chunk_forwards,
            )

        outcome = self._run(computation(), context)
        response = pb.ComputeWobblinessResponse(
            wobbliness=to_tensor(outcome.wobbliness.reshape(lead)),
            sigma=sigma, n_samples=n_samples, seed=seed, device=outcome.device,
        )
        if request.return_vote_frequencies:
            counts = outcome.counts.astype(np.float64)
            frequencies = counts / counts.sum(axis=1, keepdims=True)
            response.vote_frequencies.CopyFrom(to_tensor(frequencies.reshape(*lead, -1)))
        return response

    @_rpc
    def Screen(self, request, context):
        return self._run(self._screen(request), context)

    @_rpc
    def ScreenStream(self, request, context):
        for item in self._admitted(self._screen(request), context):
            if isinstance(item, Progress):
                yield pb.ScreenEvent(progress=pb.ScreenProgress(
                    inputs_done=item.inputs_done, inputs_total=item.inputs_total))
            else:
                yield pb.ScreenEvent(result=item)

    # -- internals -------------------------------------------------------------------

    def _screen(self, request):
        """Check a ScreenRequest and return the generator that computes it."""
        info = self.store.get(request.model_id)
        sigma, n_samples, seed = self._noise_parameters(request)
        alpha = _alpha(request)
        direction, direction_code = _direction(request)
        clean, _ = _inputs(request, "clean", info.input_shape, max_lead=2)
        check_set_size(clean, "clean")
        if not request.candidates:
            raise invalid_argument("candidates is empty; send at least one candidate set.")
        candidates = []
        for i, tensor in enumerate(request.candidates):
            candidate, _ = _inputs(tensor, f"candidates[{i}]", info.input_shape, max_lead=1)
            check_set_size(candidate, f"candidates[{i}]")
            candidates.append(candidate)
        self._check_work(len(clean) + sum(len(c) for c in candidates), n_samples)

        def results():
            _, model = self.store.read(info.model_id)  # only once admitted: queues stay light
            outcome = None
            for item in iter_screen(
                model, clean, candidates, sigma=sigma, n_samples=n_samples, seed=seed,
                alpha=alpha, direction=direction, device=self.device,
                input_shape=info.input_shape, chunk_forwards=self.limits.chunk_forwards,
            ):
                if isinstance(item, Progress):
                    yield item
                else:
                    outcome = item
            yield _screen_response(
                outcome, request, sigma=sigma, n_samples=n_samples, seed=seed, alpha=alpha,
                direction=direction_code,
            )

        return results()

    def _run(self, computation, context):
        """Run a computation to its end (see :meth:`_admitted`); return its final item."""
        result = None
        for item in self._admitted(computation, context):
            result = item
        return result

    def _admitted(self, computation, context):
        """Drive a computation in an admission slot, checking the client between chunks."""
        with self.admission.slot(context.is_active):
            self.stats.add("started")
            try:
                for item in computation:
                    if not context.is_active():
                        raise Abandoned()
                    if isinstance(item, Progress):
                        self.stats.add("chunks")
                    yield item
            except GeneratorExit:  # gRPC dropped a cancelled stream between two events
                self.stats.add("abandoned")
                raise
            except WobbledetectError as exc:
                raise invalid_argument(
                    f"The model could not be run on these inputs: {exc}"
                ) from exc
            finally:
                computation.close()  # stops the library work between chunks
            self.stats.add("completed")

    def _noise_parameters(self, request):
        sigma = request.sigma if request.HasField("sigma") else DEFAULT_SIGMA
        if not (math.isfinite(sigma) and 0.0 < sigma <= MAX_SIGMA):
            raise invalid_argument(
                f"sigma is {sigma!r}; it must be a finite number in (0, {MAX_SIGMA:g}], the "
                f"noise's standard deviation in input units (default {DEFAULT_SIGMA})."
            )
        n_samples = request.n_samples if request.HasField("n_samples") else DEFAULT_N_SAMPLES
        if n_samples < 1:
            raise invalid_argument(
                f"n_samples is {n_samples}; it must be at least 1 (noisy copies per input; "
                f"the paper uses {DEFAULT_N_SAMPLES})."
            )
        if n_samples > self.limits.max_n_samples:
            raise resource_exhausted(
                f"n_samples is {n_samples}, over this server's limit of "
                f"{self.limits.max_n_samples} (max_n_samples)."
            )
        seed = request.seed if request.HasField("seed") else secrets.randbits(32)
        return float(sigma), int(n_samples), int(seed)

    def _check_work(self, n_inputs, n_samples):
        if n_inputs > self.limits.max_inputs:
            raise resource_exhausted(
                f"The request holds {n_inputs} inputs, over this server's limit of "
                f"{self.limits.max_inputs} (max_inputs); split it into smaller requests."
            )
        if n_inputs * n_samples > self.limits.max_forwards:
            raise resource_exhausted(
                f"{n_inputs} inputs x n_samples={n_samples} is {n_inputs * n_samples} "
                f"forward passes, over this server's limit of {self.limits.max_forwards} "
                "(max_forwards); send fewer inputs or a smaller n_samples."
            )


def _inputs(message, name, input_shape, *, max_lead):
    """The inputs of a request field as a flat float array ``(n, *input_shape)``, and the
    leading shape they came in (``(n,)`` or, when ``max_lead == 2``, ``(n_sets, set_size)``)."""
    if isinstance(message, tensor_pb2.Tensor):
        tensor = message
    elif not message.HasField(name):
        raise invalid_argument(f"{name} is missing; send the inputs as a Tensor.")
    else:
        tensor = getattr(message, name)
    # The library's checks and words; a refusal is a WobbledetectError, see _rpc.
    return check_inputs(from_tensor(tensor, name=name), input_shape, name=name,
                        max_lead=max_lead)


def _alpha(request):
    alpha = request.alpha if request.HasField("alpha") else DEFAULT_ALPHA
    if not 0.0 < alpha < 1.0:  # also False for NaN
        raise invalid_argument(
            f"alpha is {alpha!r}; it must be in (0, 1), the significance level of the "
            f"Levene test (default {DEFAULT_ALPHA})."
        )
    return float(alpha)


def _direction(request):
    """The library's direction name and its wire code (never DIRECTION_UNSPECIFIED)."""
    try:
        name = direction_name(request.direction)
    except ValueError as exc:
        raise invalid_argument(str(exc)) from None
    return name, DIRECTIONS[name]


def _model_message(info: ModelInfo) -> pb.Model:
    return pb.Model(
        model_id=info.model_id, size_bytes=info.size_bytes, input_shape=list(info.input_shape),
        n_classes=info.n_classes, upload_time_unix=info.upload_time_unix,
    )


def _screen_response(outcome, request, *, sigma, n_samples, seed, alpha, direction):
    response = pb.ScreenResponse(
        clean_summary=pb.WobblinessSummary(**summarize(outcome.clean_wobbliness)),
        n_reference=outcome.n_reference,
        n_reference_outliers=outcome.n_reference_outliers,
        sigma=sigma, n_samples=n_samples, alpha=alpha, seed=seed, direction=direction,
        device=outcome.device,
    )
    for index, candidate in enumerate(outcome.candidates):
        result = response.candidates.add(
            index=index, p_value=candidate.p_value, score=candidate.score,
            verdict=pb.VERDICT_TRIGGER if candidate.triggered else pb.VERDICT_CLEAN,
            summary=pb.WobblinessSummary(**summarize(candidate.wobbliness)),
        )
        if request.return_wobbliness:
            result.wobbliness.CopyFrom(to_tensor(candidate.wobbliness))
    if request.return_wobbliness:
        response.clean_wobbliness.CopyFrom(to_tensor(outcome.clean_wobbliness))
    for warning in outcome.warnings:
        added = response.warnings.add(category=type(warning).__name__, message=str(warning))
        if warning.row is not None:
            added.candidate_index = warning.row
    return response
