"""Fast inference paths for torch models, each checked against eager votes before use.

W costs exactly ``n_samples`` forward passes per input, so the forward path is the whole
cost. On a CPU the fastest path for the paper's nets is ONNX Runtime (about 10x eager
torch for the Fashion-MNIST net, see ``benchmarks/throughput.py``), then a frozen
TorchScript graph, then ``channels_last``. ``inference="auto"`` tries them in that order
and keeps the first that builds *and* classifies a check batch of noisy copies exactly as
eager torch does (up to :data:`VOTE_TOLERANCE`); a path that would change results is never
used. Built paths are cached by a fingerprint of the weights, so refits inside
``GridSearchCV`` do not export again.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from collections import OrderedDict

import torch

from ._models import OnnxPredictor, TorchPredictor

__all__ = ["INFERENCE_PATHS", "VOTE_TOLERANCE", "accelerate"]

logger = logging.getLogger(__name__)

#: Accepted values of the ``inference`` parameter.
INFERENCE_PATHS = ("auto", "eager", "channels_last", "frozen", "onnx", "compile")

#: Paths ``"auto"`` tries, fastest first, per device type (eager is the fallback).
AUTO_ORDER = {"cpu": ("onnx", "frozen", "channels_last"), "cuda": ("channels_last",)}

#: Largest share of check-batch votes a fast path may change relative to eager torch.
#: Different kernels round differently and can flip an argmax at an exact near-tie;
#: on the reference nets we measured 0 flips.
VOTE_TOLERANCE = 0.002

_CHECK_COPIES = 32
_CACHE_SIZE = 8
_cache: OrderedDict = OrderedDict()


def accelerate(predictor, inference, *, input_shape, check_inputs, sigma):
    """The fastest checked predictor for ``inference`` ("auto" or a named path).

    Parameters
    ----------
    predictor : ClassPredictor
        The eager predictor. Anything but a :class:`TorchPredictor` is returned as is.
    inference : str
        One of :data:`INFERENCE_PATHS`.
    input_shape : tuple of int
    check_inputs : torch.Tensor
        A few real inputs; the check batch is ``_CHECK_COPIES`` noisy copies of each.
    sigma : float
        Noise scale of the check batch (the transformer's).

    Returns
    -------
    ClassPredictor
        With a ``path`` attribute naming the path used.
    """
    if not isinstance(predictor, TorchPredictor) or inference == "eager":
        return predictor
    candidates = AUTO_ORDER[predictor.device.type] if inference == "auto" else (inference,)
    check = _check_batch(check_inputs, sigma, predictor.device)
    expected = predictor.predict_classes(check)
    key = _fingerprint(predictor.module, predictor.device, input_shape)
    for path in candidates:
        try:
            fast = _cache.get((key, path))
            if fast is None:
                fast = _build(path, predictor, input_shape)
            flips = int((fast.predict_classes(check).to(expected.device) != expected).sum())
        except Exception as exc:  # export/tracing/compilation can fail in many ways
            _reject(inference, path, f"could not be built or run ({type(exc).__name__}: {exc})")
            continue
        if flips > VOTE_TOLERANCE * len(check):
            _reject(inference, path, f"changed {flips} of {len(check)} votes on the check batch")
            continue
        _cache[(key, path)] = fast
        _cache.move_to_end((key, path))
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
        return fast
    return predictor


def _reject(inference, path, why):
    message = f"Inference path {path!r} {why}; using eager torch instead."
    if inference == "auto":
        logger.info(message)
    else:
        warnings.warn(message, stacklevel=4)


def _check_batch(inputs, sigma, device):
    generator = torch.Generator(device=device).manual_seed(0)
    inputs = inputs.to(device)
    copies = inputs.repeat_interleave(_CHECK_COPIES, dim=0)
    noise = torch.randn(copies.shape, generator=generator, device=device, dtype=copies.dtype)
    return copies + sigma * noise


def _fingerprint(module, device, input_shape):
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(module).encode())
    digest.update(type(module).__qualname__.encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return (digest.hexdigest(), str(device), tuple(input_shape))


def _build(path, predictor, input_shape):
    module, device = predictor.module, predictor.device
    example = torch.zeros((2, *input_shape), device=device)
    if path == "onnx":
        from ._export import to_onnx

        fast = OnnxPredictor(to_onnx(module, input_shape).SerializeToString(), device)
        fast.path = "onnx"
        return fast
    if path == "frozen":
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript deprecation chatter
            traced = torch.jit.trace(module, example, check_trace=False)
            graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        return TorchPredictor.wrap(graph, device, path="frozen")
    if path == "channels_last":
        if len(input_shape) != 3:
            raise ValueError("channels_last needs image inputs of shape (C, H, W)")
        clone = copy.deepcopy(module).to(memory_format=torch.channels_last)
        return TorchPredictor.wrap(clone, device, path="channels_last", channels_last=True)
    if path == "compile":
        return TorchPredictor.wrap(torch.compile(module, dynamic=True), device, path="compile")
    raise ValueError(f"Unknown inference path {path!r}; use one of {INFERENCE_PATHS}.")
