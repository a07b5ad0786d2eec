"""Export a trained network to ONNX (torch's exporter, dynamic batch dimension)."""

from __future__ import annotations

import copy
import warnings

import torch

__all__ = ["to_onnx"]


def to_onnx(model, input_shape, *, input_name="input", output_name="scores"):
    """Export a torch module or fitted skorch net to an ``onnx.ModelProto``.

    The batch dimension is dynamic, so the model takes batches of any size; the per-input
    shape is fixed and declared, which :class:`~wobbledetect.WobblinessTransformer` reads.

    Parameters
    ----------
    model : torch.nn.Module or fitted skorch net
        The network (its ``module_`` for skorch). Not modified: a CPU eval copy is exported.
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)``.
    input_name, output_name : str
        Names of the graph's input and output.

    Returns
    -------
    onnx.ModelProto

    Examples
    --------
    >>> import torch
    >>> from wobbledetect import to_onnx
    >>> proto = to_onnx(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), (1, 2, 2))
    >>> [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    ['batch', 1, 2, 2]
    """
    module = getattr(model, "module_", model)
    module = copy.deepcopy(module).cpu().eval()
    example = torch.zeros((2, *input_shape), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation chatter, not actionable here
        program = torch.onnx.export(
            module,
            (example,),
            None,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    return program.model_proto
