"""One interface over every kind of model: the predicted class of each row of a batch.

Eq. (1) of the paper only needs ``argmax_k g_k(x)``. :class:`ClassPredictor` is that and
nothing more; :func:`make_predictor` builds the right one for

- a fitted skorch ``NeuralNet`` / ``NeuralNetClassifier`` (its ``module_`` is used directly,
  bypassing skorch's DataLoader so that batches stay on the device);
- a plain ``torch.nn.Module``;
- an ONNX model given as a path, ``bytes`` or ``onnx.ModelProto`` (run with onnxruntime:
  the CUDA execution provider when the device is a GPU, the CPU one otherwise);
- any callable mapping a float32 NumPy batch to class scores (e.g. ``clf.predict_proba``).

Predictors own a private copy of device-bound state (an eval-mode module on the device,
an ``InferenceSession``); they are rebuilt from the user's model rather than pickled.
Sessions of in-memory ONNX models (``bytes``, ``ModelProto``) are kept in a small cache
keyed by the model's content and the device, so that fitting again on the same model --
a grid search, or a server screening an uploaded model once more -- skips onnxruntime's
session set-up (graph optimisation; on CUDA the provider's start-up). onnxruntime
sessions may be run from several threads at once.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from ._exceptions import InputShapeError, ModelNotFittedError, ModelOutputError

__all__ = ["ClassPredictor", "HoldsModel", "make_predictor", "resolve_device", "trial_forward"]

#: Sessions of in-memory ONNX models kept, least recently used dropped first.
ONNX_CACHE_SIZE = 4
_onnx_cache: OrderedDict = OrderedDict()  # (content digest, device) -> OnnxPredictor
_onnx_lock = threading.Lock()


def resolve_device(device) -> torch.device:
    """Turn the ``device`` parameter into a :class:`torch.device`.

    ``"auto"`` is CUDA when :func:`torch.cuda.is_available`, else the CPU.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"The 'device' parameter must be 'auto', 'cpu', 'cuda', 'cuda:N' or a "
            f"torch.device; got {device!r}."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"The 'device' parameter is {device!r} but CUDA is not available on this "
            "host; use device='auto' (GPU when present) or device='cpu'."
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(
            f"The 'device' parameter must be a CPU or CUDA device; got {device!r}."
        )
    return resolved


@dataclass
class ClassPredictor:
    """Base class: ``predict_classes(batch) -> classes`` on one device.

    Attributes
    ----------
    device : torch.device
        Where batches must live when handed to :meth:`predict_classes`, and where noise
        is drawn.
    input_shape : tuple of int or None
        The shape of one input as declared by the model itself (ONNX), else None.
    path : str
        The inference path: ``"eager"``, ``"onnx"``, ``"frozen"``, ``"channels_last"``,
        ``"compile"`` or ``"onnxruntime"`` (a model given as ONNX), ``"callable"``.
    """

    device: torch.device
    input_shape: tuple | None = None
    path: str = "eager"

    def scores(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw class scores ``(len(batch), n_classes)`` (used to validate the model)."""
        raise NotImplementedError

    def predict_classes(self, batch: torch.Tensor) -> torch.Tensor:
        """Eq. (1): the index of the highest score of each row, as int64 on ``device``.

        A row whose scores are not all finite gets ``n_classes`` (one past the last
        class), so that the vote counter sees it without a device synchronisation.
        """
        scores = self.scores(batch)
        finite = torch.isfinite(scores).all(dim=1)
        return torch.where(finite, scores.argmax(dim=1), scores.shape[1])


class TorchPredictor(ClassPredictor):
    """A ``torch.nn.Module``, copied, set to eval mode and moved to ``device``.

    The copy keeps the caller's module untouched (no ``.eval()`` or ``.to()`` on it).
    """

    def __init__(self, module: torch.nn.Module, device: torch.device):
        super().__init__(device=device)
        self.module = copy.deepcopy(module).to(device).eval().requires_grad_(False)
        self.forward = self.module
        self.channels_last = False

    @classmethod
    def wrap(cls, forward, device, *, path, channels_last=False):
        """A predictor around an already prepared callable (a fast path), not copied."""
        self = cls.__new__(cls)
        ClassPredictor.__init__(self, device=device, path=path)
        self.module = forward
        self.forward = forward
        self.channels_last = channels_last
        return self

    def scores(self, batch):
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = self.forward(batch)
        # skorch convention: a module may return a tuple whose first item is y_pred.
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out


class OnnxPredictor(ClassPredictor):
    """An ONNX model run by onnxruntime: CUDA execution provider on a GPU device."""

    def __init__(self, model, device: torch.device):
        import onnxruntime as ort

        super().__init__(device=device)
        # A path is opened as a path, so that external weight files beside it resolve.
        source = _onnx_source(model)
        options = ort.SessionOptions()
        # 3 = errors only: a CPU-only host must not print provider warnings.
        options.log_severity_level = 3
        # onnxruntime's pool threads busy-wait after each run by default; between runs
        # the noise for the next batch is drawn on the same cores, and spinning threads
        # would halve its speed. Measured on 2 cores: no cost to the forward itself.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                index = device.index if device.index is not None else 0
                providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
            else:
                warnings.warn(
                    "device is CUDA but this onnxruntime has no CUDAExecutionProvider; "
                    "the ONNX model runs on the CPU. Install onnxruntime-gpu.",
                    stacklevel=3,
                )
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ValueError(
                f"The 'model' parameter could not be loaded by onnxruntime: {exc}"
            ) from exc
        if device.type == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            warnings.warn(
                "onnxruntime could not start its CUDA execution provider (CUDA/cuDNN "
                "libraries missing?); the ONNX model runs on the CPU.",
                stacklevel=3,
            )
            self.device = torch.device("cpu")
        elif device.type == "cuda":
            self.device = device
        else:
            self.device = torch.device("cpu")
        self.path = "onnxruntime"
        self.output_name = self.session.get_outputs()[0].name
        self._output_dtype = None  # known after the first run; enables IO binding on CUDA
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        if first.type != "tensor(float)":
            raise ValueError(
                f"The ONNX model's input {first.name!r} has type {first.type}; "
                "wobbledetect feeds float32 tensors (export the model with a float input)."
            )
        dims = first.shape
        self.fixed_batch = dims[0] if dims and isinstance(dims[0], int) else None
        rest = tuple(dims[1:])
        if rest and all(isinstance(d, int) and d > 0 for d in rest):
            self.input_shape = rest

    def scores(self, batch):
        if self.fixed_batch is not None and len(batch) != self.fixed_batch:
            parts = [self.scores(part) for part in _pad_split(batch, self.fixed_batch)]
            return torch.cat(parts)[: len(batch)]
        if self.device.type == "cuda" and self._output_dtype is not None:
            return self._scores_on_device(batch)
        out = np.asarray(self.session.run([self.output_name], {self.input_name: batch.detach().cpu().numpy()})[0])
        self._output_dtype, self._n_columns = out.dtype, out.shape[1] if out.ndim == 2 else None
        return torch.from_numpy(out).to(self.device)

    def _scores_on_device(self, batch):
        """Run on CUDA buffers bound in place: no copy of the noisy batch through the host."""
        batch = batch.contiguous()
        index = self.device.index if self.device.index is not None else 0
        out = torch.empty(
            (len(batch), self._n_columns),
            dtype=torch.from_numpy(np.empty(0, self._output_dtype)).dtype,
            device=self.device,
        )
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, "cuda", index, np.float32, tuple(batch.shape), batch.data_ptr())
        binding.bind_output(self.output_name, "cuda", index, self._output_dtype, tuple(out.shape), out.data_ptr())
        torch.cuda.synchronize(self.device)  # the noise kernels must finish before ORT reads
        self.session.run_with_iobinding(binding)
        return out


class CallablePredictor(ClassPredictor):
    """Any callable mapping a float32 NumPy batch to class scores (runs on the CPU)."""

    def __init__(self, function, device: torch.device):
        super().__init__(device=torch.device("cpu"), path="callable")
        self.function = function

    def scores(self, batch):
        try:
            out = self.function(batch.detach().cpu().numpy())
        except Exception as exc:
            from sklearn.exceptions import NotFittedError

            if isinstance(exc, NotFittedError):
                raise ModelNotFittedError(
                    f"The 'model' parameter is a callable whose estimator is not fitted "
                    f"({exc}). Fit it before computing W."
                ) from exc
            raise
        if isinstance(out, torch.Tensor):
            return out.detach()
        return torch.from_numpy(np.asarray(out, dtype=np.float64))


def _pad_split(batch, size):
    """Split ``batch`` into pieces of exactly ``size`` rows, zero-padding the last."""
    for start in range(0, len(batch), size):
        part = batch[start : start + size]
        if len(part) < size:
            pad = torch.zeros((size - len(part), *part.shape[1:]), dtype=part.dtype)
            part = torch.cat([part.cpu(), pad])
        yield part


def _onnx_source(model) -> str | bytes:
    """What ``InferenceSession`` takes: the path as a string, or the serialized model."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise ValueError(
                f"The 'model' parameter is the path {path!r}, which is not a file; "
                "pass the path of an .onnx file, its bytes, or an onnx.ModelProto."
            )
        return path
    return model.SerializeToString()  # onnx.ModelProto


def _is_onnx_proto(model) -> bool:
    return type(model).__name__ == "ModelProto" and hasattr(model, "SerializeToString")


def _skorch_module(net):
    """The fitted ``module_`` of a skorch net, or a clear error."""
    if not getattr(net, "initialized_", False) or not hasattr(net, "module_"):
        raise ModelNotFittedError(
            f"The 'model' parameter is a {type(net).__name__} that is not initialized; "
            "call net.fit(X, y) (or net.initialize() and net.load_params(...)) first."
        )
    return net.module_


def make_predictor(model, device) -> ClassPredictor:
    """Build the :class:`ClassPredictor` for ``model`` on ``device``.

    Parameters
    ----------
    model : skorch net, torch.nn.Module, str, os.PathLike, bytes, onnx.ModelProto or callable
        The trained classifier.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Returns
    -------
    ClassPredictor
    """
    resolved = resolve_device(device)
    if _is_skorch_net(model):
        return TorchPredictor(_skorch_module(model), resolved)
    if isinstance(model, torch.nn.Module):
        return TorchPredictor(model, resolved)
    if isinstance(model, (bytes, bytearray)) or _is_onnx_proto(model):
        return _cached_onnx_predictor(_onnx_source(model), resolved)
    if isinstance(model, (str, os.PathLike)):
        return OnnxPredictor(model, resolved)
    if type(model).__name__ == "InferenceSession":
        raise TypeError(
            "The 'model' parameter is an onnxruntime.InferenceSession, which cannot be "
            "cloned or pickled; pass the ONNX model itself (a path, bytes or "
            "onnx.ModelProto) and wobbledetect opens the session."
        )
    if callable(model):
        if resolved.type != "cpu" and not (isinstance(device, str) and device == "auto"):
            raise ValueError(
                f"The 'device' parameter is {device!r}, but a plain callable model runs "
                "on NumPy arrays on the CPU; use device='cpu' or 'auto', or pass a "
                "torch.nn.Module to run on the GPU."
            )
        return CallablePredictor(model, resolved)
    raise TypeError(
        f"The 'model' parameter must be a fitted skorch net, a torch.nn.Module, an ONNX "
        f"model (path, bytes or onnx.ModelProto) or a callable returning class scores; "
        f"got an object of type {type(model).__name__}."
    )


def _cached_onnx_predictor(source: bytes, device: torch.device) -> OnnxPredictor:
    """The session of the serialized model ``source`` on ``device``, built once."""
    key = (hashlib.blake2b(source, digest_size=16).digest(), str(device))
    with _onnx_lock:
        predictor = _onnx_cache.get(key)
        if predictor is not None:
            _onnx_cache.move_to_end(key)
            return predictor
    predictor = OnnxPredictor(source, device)  # outside the lock: may take seconds
    with _onnx_lock:
        predictor = _onnx_cache.setdefault(key, predictor)
        _onnx_cache.move_to_end(key)
        while len(_onnx_cache) > ONNX_CACHE_SIZE:
            _onnx_cache.popitem(last=False)
    return predictor


def _is_skorch_net(model) -> bool:
    try:
        from skorch import NeuralNet
    except ImportError:  # pragma: no cover - skorch is a dependency
        return False
    return isinstance(model, NeuralNet)


def trial_forward(predictor, inputs) -> int:
    """Run the model once on a few clean ``inputs`` (float32 NumPy); return ``n_classes``."""
    # A copy: the inputs may be read-only (e.g. np.frombuffer), which torch warns about.
    batch = torch.from_numpy(inputs.copy()).to(predictor.device)
    try:
        scores = predictor.scores(batch)
    except (RuntimeError, ValueError, TypeError) as exc:
        if isinstance(exc, (InputShapeError, ModelNotFittedError)):
            raise
        raise InputShapeError(
            f"The model failed on a float32 batch of shape {tuple(batch.shape)} "
            f"({type(exc).__name__}: {exc}). If X holds sets of inputs, or the model "
            "takes another shape, pass input_shape=... (one input's shape); the "
            "model must accept float32."
        ) from exc
    return check_scores(scores, len(inputs))


def output_kind(scores) -> str:
    """``"probabilities"`` when every row of ``scores`` is in [0, 1] and sums to 1 (within
    1e-4), else ``"logits"``: what a model's class scores are.

    Examples
    --------
    >>> import torch
    >>> from wobbledetect._models import output_kind
    >>> output_kind(torch.tensor([[0.2, 0.8]])), output_kind(torch.tensor([[2.0, -1.0]]))
    ('probabilities', 'logits')
    """
    ones = torch.ones(len(scores), dtype=scores.dtype, device=scores.device)
    is_probability = bool(((scores >= 0) & (scores <= 1)).all()) and torch.allclose(
        scores.sum(dim=1), ones, atol=1e-4)
    return "probabilities" if is_probability else "logits"


def check_scores(scores, n_rows: int) -> int:
    """Validate a model's output on a trial batch and return ``n_classes``."""
    shape = tuple(scores.shape)
    if scores.ndim != 2 or shape[0] != n_rows:
        raise ModelOutputError(
            f"The model returned an output of shape {shape} for a batch of {n_rows} "
            f"inputs; expected class scores of shape ({n_rows}, n_classes)."
        )
    if shape[1] < 2:
        raise ModelOutputError(
            f"The model returned {shape[1]} score column(s); W needs scores for at least "
            "2 classes (for a binary model with one logit z, return [-z, z])."
        )
    if not torch.isfinite(scores.float()).all():
        raise ModelOutputError(
            "The model returned NaN or infinite scores on a clean input; check the model "
            "and the input scaling."
        )
    return shape[1]


class HoldsModel:
    """Mixin of the estimators that hold a trained model in their ``model`` parameter.

    The model is data, not a hyper-parameter: ``clone`` keeps the trained object itself,
    where scikit-learn's default would clone a skorch net back to an untrained one (as
    :class:`sklearn.frozen.FrozenEstimator` does).
    """

    def __sklearn_clone__(self):
        from sklearn.base import clone

        params = self.get_params(deep=False)
        model = params.pop("model")
        return type(self)(model=model, **{k: clone(v, safe=False) for k, v in params.items()})


class ScoresInputs(HoldsModel):
    """Mixin of the transformers that score each input through a model (W, STRIP).

    They take sets of inputs (3-D and deeper ``X``) and return float64 scores, and they
    pickle without device-bound state: the predictor is dropped (rebuilt on first use)
    and a torch module on a GPU is copied to the CPU, so an object pickled on a GPU host
    loads on a CPU one.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("predictor_", None)  # device-bound; rebuilt on first use
        model = state.get("model")
        if isinstance(model, torch.nn.Module) and any(
            t.device.type != "cpu" for t in (*model.parameters(), *model.buffers())
        ):
            state["model"] = copy.deepcopy(model).cpu()
        return state
