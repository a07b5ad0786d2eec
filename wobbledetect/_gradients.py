"""A differentiable torch module from a model: what gradient-based methods need.

W only needs the predicted class, so it runs any model (:mod:`wobbledetect._models`).
Neural Cleanse and universal perturbations optimise inputs through the model, so they
need a torch module with gradients:

- a fitted skorch net: its ``module_``;
- a ``torch.nn.Module``: itself;
- an ONNX model (path, ``bytes`` or ``onnx.ModelProto``): converted by ``onnx2torch``
  (a maintained converter; it covers the standard operators up to opset 17). Newer
  models are version-converted to opset 17 first, and ``Reshape`` nodes that torch's
  exporter marks ``allowzero=1`` are cleared of it where their target shape is a
  constant without zeros -- the only case the attribute changes nothing in, and the one
  onnx2torch refuses. The converted module is then checked against onnxruntime on real
  inputs; a model whose conversion fails or disagrees is refused with
  :class:`~wobbledetect.ModelConversionError`.

Plain callables have no gradients and are refused with a message that says what to pass.
The module returned is a private copy in eval mode, its parameters frozen, on the device.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ._exceptions import ModelConversionError
from ._models import (
    _is_onnx_proto, _is_skorch_net, _onnx_source, _skorch_module, check_scores, resolve_device,
)

__all__ = ["differentiable_module", "open_module", "first_output", "ONNX2TORCH_OPSET"]

#: The newest ONNX opset onnx2torch converts; newer models are version-converted to it.
ONNX2TORCH_OPSET = 17
#: Largest difference between onnxruntime's and the converted module's scores accepted,
#: relative to the scores' scale.
CONVERSION_RTOL = 1e-3


def differentiable_module(model, device, *, check_inputs=None) -> torch.nn.Module:
    """A frozen, eval-mode torch module on ``device`` that computes ``model``'s scores.

    Parameters
    ----------
    model : skorch net, torch.nn.Module, str, os.PathLike, bytes or onnx.ModelProto
        The trained classifier.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    check_inputs : ndarray of float32, optional
        A few real inputs: an ONNX model's conversion is checked on them against
        onnxruntime (same argmax, scores within ``CONVERSION_RTOL``).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ModelConversionError
        An ONNX model that onnx2torch cannot convert, or whose conversion disagrees with
        onnxruntime.
    TypeError
        A plain callable, or an object that is no model.

    Examples
    --------
    >>> import torch
    >>> from wobbledetect._gradients import differentiable_module
    >>> net = torch.nn.Linear(4, 3)
    >>> module = differentiable_module(net, "cpu")
    >>> module is net, module.training, any(p.requires_grad for p in module.parameters())
    (False, False, False)
    """
    resolved = resolve_device(device)
    if _is_skorch_net(model):
        module = copy.deepcopy(_skorch_module(model))
    elif isinstance(model, torch.nn.Module):
        module = copy.deepcopy(model)
    elif isinstance(model, (bytes, bytearray, str)) or _is_onnx_proto(model) or hasattr(model, "__fspath__"):
        module = _from_onnx(model, check_inputs)
    elif callable(model):
        raise TypeError(
            "The 'model' parameter is a plain callable, which has no gradients; this method "
            "optimises inputs through the model. Pass the torch.nn.Module, the fitted skorch "
            "net or the model exported to ONNX."
        )
    else:
        raise TypeError(
            "The 'model' parameter must be a fitted skorch net, a torch.nn.Module or an ONNX "
            f"model (path, bytes or onnx.ModelProto); got an object of type {type(model).__name__}."
        )
    return module.to(resolved).eval().requires_grad_(False)


def _from_onnx(model, check_inputs):
    import onnx

    source = _onnx_source(model)
    try:
        proto = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
    except Exception as exc:  # onnx raises DecodeError and others
        raise ModelConversionError(
            f"The 'model' parameter could not be read as an ONNX model: {exc}"
        ) from exc
    try:
        module = _convert(proto)
    except Exception as exc:  # onnx2torch raises NotImplementedError, KeyError, ...
        raise ModelConversionError(
            "The ONNX model could not be converted to torch by onnx2torch "
            f"({type(exc).__name__}: {exc}). This method needs gradients through the model: "
            "export it with standard operators (opset 17 or lower converts best), or pass the "
            "torch.nn.Module or skorch net itself."
        ) from exc
    if check_inputs is not None:
        _check_conversion(module, source, np.ascontiguousarray(check_inputs, dtype=np.float32))
    return module


def _convert(proto):
    from onnx import numpy_helper, version_converter
    from onnx2torch import convert

    version = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if version > ONNX2TORCH_OPSET:
        proto = version_converter.convert_version(proto, ONNX2TORCH_OPSET)
    constants = {init.name: init for init in proto.graph.initializer}
    constants.update({node.output[0]: node.attribute[0].t for node in proto.graph.node
                      if node.op_type == "Constant" and node.attribute
                      and node.attribute[0].name == "value"})
    for node in proto.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in constants:
            continue
        if (numpy_helper.to_array(constants[node.input[1]]) != 0).all():
            for attribute in node.attribute:
                if attribute.name == "allowzero":
                    attribute.i = 0  # no 0 in the shape: allowzero changes nothing
    return convert(proto)


def _check_conversion(module, source, inputs):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    with torch.no_grad():
        got = module.eval()(torch.from_numpy(inputs))
    got = first_output(got).numpy()
    scale = max(float(np.abs(expected).max()), 1e-6)
    if got.shape != expected.shape:
        difference = f"scores of shape {got.shape} instead of {expected.shape}"
    elif (got.argmax(1) != expected.argmax(1)).any() or np.abs(got - expected).max() > CONVERSION_RTOL * scale:
        difference = f"largest score difference {float(np.abs(got - expected).max()):.3g}"
    else:
        return
    raise ModelConversionError(
        "The ONNX model converted by onnx2torch does not compute what onnxruntime computes "
        f"on {len(inputs)} check inputs ({difference}); gradients through it would be wrong. "
        "Pass the torch.nn.Module or skorch net itself."
    )


def first_output(out):
    """The scores of a module's output: skorch's convention lets a module return a tuple
    whose first item is ``y_pred``."""
    return out[0] if isinstance(out, (tuple, list)) else out


def open_module(model, device, inputs):
    """:func:`differentiable_module` on ``device``, checked on the first inputs of ``inputs``.

    What the estimators that optimise inputs do first at ``fit``: resolve the device,
    open the model with gradients (an ONNX conversion checked on these inputs), run it
    once and count its classes.

    Parameters
    ----------
    model : skorch net, torch.nn.Module, str, os.PathLike, bytes or onnx.ModelProto
    device : str or torch.device
    inputs : ndarray of float32, shape (n_inputs, *input_shape)

    Returns
    -------
    module : torch.nn.Module
    device : torch.device
    scores : torch.Tensor
        The module's scores of the first (up to 8) inputs.
    n_classes : int
    """
    device = resolve_device(device)
    trial = inputs[:8]
    module = differentiable_module(model, device, check_inputs=trial)
    with torch.no_grad():
        scores = first_output(module(torch.from_numpy(trial).to(device)))
    return module, device, scores, check_scores(scores, len(trial))
