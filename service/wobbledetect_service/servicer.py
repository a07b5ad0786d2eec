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
import time

import grpc
import numpy as np

from wobbledetect import (
    MIN_SET_SIZE,
    FitProgress,
    LeveneBackdoorDetector,
    ModelScreen,
    NeuralCleanse,
    WobbledetectError,
    WobblinessTransformer,
    check_inputs,
    check_set_size,
)
from wobbledetect._grpc_codec import from_tensor, to_tensor
from wobbledetect._grpc_results import DIRECTIONS, class_screen_fields, direction_name
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect.v1 import screening_pb2_grpc, tensor_pb2

from .admission import Abandoned, Admission
from .errors import ServiceError, invalid_argument, resource_exhausted
from .limits import ServiceLimits
from .screening import Progress, iter_model_screen, iter_screen, iter_wobbliness, summarize
from .store import ModelInfo, ModelStore, check_model_id

__all__ = ["ScreeningServicer", "DEFAULT_SIGMA", "DEFAULT_N_SAMPLES", "DEFAULT_ALPHA", "MAX_SIGMA"]

logger = logging.getLogger(__name__)

_WOBBLINESS_DEFAULTS = WobblinessTransformer(model=None).get_params()
#: Defaults of unset fields: the library's own defaults.
DEFAULT_SIGMA = float(_WOBBLINESS_DEFAULTS["sigma"])
DEFAULT_N_SAMPLES = int(_WOBBLINESS_DEFAULTS["n_samples"])
DEFAULT_ALPHA = float(LeveneBackdoorDetector().alpha)
#: ModelScreen's defaults: what ScreenModel's unset fields mean.
_SCREEN_MODEL_DEFAULTS = ModelScreen(model=None).get_params()
#: Neural Cleanse's defaults: ScreenModel's max_steps and input range when unset.
_CLEANSE_DEFAULTS = NeuralCleanse(model=None).get_params()
DEFAULT_MAX_STEPS = int(_CLEANSE_DEFAULTS["max_steps"])
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

    @_rpc
    def ScreenModel(self, request, context):
        for item in self._admitted(self._screen_model(request, context), context):
            if isinstance(item, FitProgress):
                yield pb.ScreenModelEvent(progress=pb.ScreenModelProgress(
                    stage=item.stage, done=item.done, total=item.total))
            else:
                yield pb.ScreenModelEvent(result=item)

    # -- internals -------------------------------------------------------------------

    def _screen_model(self, request, context):
        """Check a ScreenModelRequest and return the generator that computes it."""
        info = self.store.get(request.model_id)
        params, seed = self._screen_model_parameters(request)
        clean, _ = _inputs(request, "clean", info.input_shape, max_lead=1)
        needed = 6 * params["n_sets"] * params["set_size"]
        if len(clean) < needed:
            raise invalid_argument(
                f"clean holds {len(clean)} inputs; ScreenModel needs at least {needed} "
                f"(6 x n_sets={params['n_sets']} x set_size={params['set_size']}: half for "
                "Neural Cleanse, and reference, null and stamped sets from the other half). "
                "Send more clean inputs, or a smaller n_sets or set_size."
            )
        n_sigmas = 1 if "sigma" in params else len(params["sigmas"])
        if len(clean) > self.limits.max_inputs:
            raise resource_exhausted(
                f"clean holds {len(clean)} inputs, over this server's limit of "
                f"{self.limits.max_inputs} (max_inputs)."
            )
        forwards = (params["n_samples"] * params["set_size"] * params["n_sets"]
                    * (info.n_classes + 1 + n_sigmas))
        if forwards > self.limits.max_forwards:
            raise resource_exhausted(
                f"This screen measures W with up to {forwards} forward passes (n_samples x "
                f"set_size x n_sets x (n_classes {info.n_classes} + 1 + {n_sigmas} sigma(s))), "
                f"over this server's limit of {self.limits.max_forwards} (max_forwards); "
                "lower n_samples, set_size or n_sets, or send a fixed sigma."
            )

        def results():
            _, model = self.store.read(info.model_id)  # only once admitted: queues stay light
            screen = None
            for item in iter_model_screen(model, clean, params=params, is_active=context.is_active):
                if isinstance(item, FitProgress):
                    yield item
                else:
                    screen = item
            yield _screen_model_response(screen, request, seed=seed)

        return results()

    def _screen_model_parameters(self, request):
        """ModelScreen's parameters from a request (checked here, by field name), and the seed."""
        d = _SCREEN_MODEL_DEFAULTS
        params = {}
        if request.HasField("sigma"):
            params["sigma"] = _sigma(request.sigma, "sigma")
        if request.sigmas:
            sigmas = [_sigma(value, f"sigmas[{i}]") for i, value in enumerate(request.sigmas)]
            if sigmas != sorted(set(sigmas)):
                raise invalid_argument(
                    f"sigmas is {sigmas}; it must increase strictly (the automatic sigma is "
                    "the smallest acceptable one)."
                )
            params["sigmas"] = tuple(sigmas)
        else:
            params["sigmas"] = tuple(d["sigmas"])
        max_zero_share = _optional(request, "max_zero_share", d["max_zero_share"])
        if not 0.0 <= max_zero_share <= 1.0:
            raise invalid_argument(
                f"max_zero_share is {max_zero_share!r}; it must be in [0, 1], the share of "
                f"zero clean W the automatic sigma accepts (default {d['max_zero_share']})."
            )
        n_samples = self._n_samples(request)
        set_size = _optional(request, "set_size", d["set_size"])
        if set_size < MIN_SET_SIZE:
            raise invalid_argument(
                f"set_size is {set_size}; it must be at least {MIN_SET_SIZE} (the Levene "
                f"test needs 3 values per set; the paper uses {d['set_size']})."
            )
        n_sets = _optional(request, "n_sets", d["n_sets"])
        if n_sets < 1:
            raise invalid_argument(
                f"n_sets is {n_sets}; it must be at least 1 (sets per class candidate; "
                f"default {d['n_sets']})."
            )
        anomaly_threshold = _optional(request, "anomaly_threshold", d["anomaly_threshold"])
        if not (math.isfinite(anomaly_threshold) and anomaly_threshold >= 0):
            raise invalid_argument(
                f"anomaly_threshold is {anomaly_threshold!r}; it must be a finite number >= 0 "
                f"(default {d['anomaly_threshold']}, Neural Cleanse's)."
            )
        max_steps = self._count(request, "max_steps", DEFAULT_MAX_STEPS, "max_cleanse_steps",
                                f"Neural Cleanse's steps per class; default {DEFAULT_MAX_STEPS}")
        if request.HasField("input_min") != request.HasField("input_max"):
            raise invalid_argument(
                "Only one of input_min and input_max is set; set both (the range of valid "
                "input values), or neither for [0, 1]."
            )
        input_range = tuple(_CLEANSE_DEFAULTS["input_range"])
        if request.HasField("input_min"):
            input_range = (request.input_min, request.input_max)
            if not (all(map(math.isfinite, input_range)) and input_range[0] < input_range[1]):
                raise invalid_argument(
                    f"input_min, input_max is {input_range}; they must be finite with "
                    "input_min < input_max (the range of valid input values)."
                )
        seed = request.seed if request.HasField("seed") else secrets.randbits(32)
        params.update(
            max_zero_share=float(max_zero_share), n_samples=n_samples, set_size=int(set_size),
            n_sets=int(n_sets), alpha=_alpha(request), anomaly_threshold=float(anomaly_threshold),
            cleanse=NeuralCleanse(None, max_steps=int(max_steps), input_range=input_range),
            device=self.device, random_state=int(seed),
        )
        return params, int(seed)

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
        calibration = []
        for i, tensor in enumerate(request.calibration):
            calibration_set, _ = _inputs(tensor, f"calibration[{i}]", info.input_shape, max_lead=1)
            check_set_size(calibration_set, f"calibration[{i}]")
            calibration.append(calibration_set)
        self._check_work(
            len(clean) + sum(len(c) for c in candidates) + sum(len(c) for c in calibration),
            n_samples)

        def results():
            _, model = self.store.read(info.model_id)  # only once admitted: queues stay light
            outcome = None
            for item in iter_screen(
                model, clean, candidates, sigma=sigma, n_samples=n_samples, seed=seed,
                alpha=alpha, direction=direction, device=self.device,
                input_shape=info.input_shape, chunk_forwards=self.limits.chunk_forwards,
                calibration=calibration,
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
            started = time.perf_counter()
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
            logger.debug("computation completed in %.3f s (peer %s)", time.perf_counter() - started,
                         context.peer())

    def _noise_parameters(self, request):
        sigma = _sigma(request.sigma if request.HasField("sigma") else DEFAULT_SIGMA, "sigma")
        n_samples = self._n_samples(request)
        seed = request.seed if request.HasField("seed") else secrets.randbits(32)
        return float(sigma), n_samples, int(seed)

    def _n_samples(self, request):
        return self._count(request, "n_samples", DEFAULT_N_SAMPLES, "max_n_samples",
                           f"noisy copies per input; the paper uses {DEFAULT_N_SAMPLES}")

    def _count(self, request, name, default, limit_name, meaning):
        """A count field: at least 1 (else INVALID_ARGUMENT), at most the server's limit
        ``limit_name`` (else RESOURCE_EXHAUSTED); ``default`` when unset."""
        value = _optional(request, name, default)
        if value < 1:
            raise invalid_argument(f"{name} is {value}; it must be at least 1 ({meaning}).")
        limit = getattr(self.limits, limit_name)
        if value > limit:
            raise resource_exhausted(
                f"{name} is {value}, over this server's limit of {limit} ({limit_name})."
            )
        return int(value)

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


def _sigma(sigma, name):
    if not (math.isfinite(sigma) and 0.0 < sigma <= MAX_SIGMA):
        raise invalid_argument(
            f"{name} is {sigma!r}; it must be a finite number in (0, {MAX_SIGMA:g}], the "
            f"noise's standard deviation in input units (default {DEFAULT_SIGMA})."
        )
    return float(sigma)


def _optional(request, name, default):
    """The field's value when it is set, else ``default``."""
    return getattr(request, name) if request.HasField(name) else default


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
        device=outcome.device, n_calibration=outcome.n_calibration,
    )
    for index, candidate in enumerate(outcome.candidates):
        result = response.candidates.add(
            index=index, p_value=candidate.p_value, score=candidate.score,
            verdict=pb.VERDICT_TRIGGER if candidate.triggered else pb.VERDICT_CLEAN,
            summary=pb.WobblinessSummary(**summarize(candidate.wobbliness)),
        )
        if request.return_wobbliness:
            result.wobbliness.CopyFrom(to_tensor(candidate.wobbliness))
        if candidate.calibrated_p_value is not None:
            result.calibrated_p_value = candidate.calibrated_p_value
    if request.return_wobbliness:
        response.clean_wobbliness.CopyFrom(to_tensor(outcome.clean_wobbliness))
    for warning in outcome.warnings:
        added = response.warnings.add(category=type(warning).__name__, message=str(warning))
        if getattr(warning, "row", None) is not None:
            added.candidate_index = warning.row
    return response


def _screen_model_response(screen, request, *, seed):
    """A fitted :class:`~wobbledetect.ModelScreen` as a ``ScreenModelResponse``."""
    t, cleanse = screen.table_, screen.cleanse_
    response = pb.ScreenModelResponse(
        backdoored=screen.backdoored_, score=screen.score_,
        anomaly_threshold=screen.anomaly_threshold, sigma=screen.sigma_,
        zero_shares=[pb.ZeroShare(sigma=float(s), zero_share=share)
                     for s, share in screen.zero_share_.items()],
        null_scores=screen.null_scores_.tolist(), n_samples=screen.n_samples,
        set_size=screen.set_size, n_sets=screen.n_sets, alpha=screen.alpha, seed=seed,
        device=str(cleanse.device_),
        warnings=[pb.ScreenWarning(category=type(w).__name__, message=str(w))
                  for w in screen.warnings_],
    )
    if screen.suspected_class_ >= 0:
        response.suspected_class = screen.suspected_class_
    for i in range(len(t["class"])):
        row = response.classes.add(**class_screen_fields(t, i),
                                   reached_threshold=bool(cleanse.reached_threshold_[i]))
        if request.return_candidates:
            row.mask.CopyFrom(to_tensor(cleanse.masks_[i]))
            row.pattern.CopyFrom(to_tensor(cleanse.patterns_[i]))
    return response
