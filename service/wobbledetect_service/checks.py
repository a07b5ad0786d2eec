"""What the store checks before it accepts a model: ONNX the service can screen."""

from __future__ import annotations

import ctypes
import os

import numpy as np

from .errors import invalid_argument

__all__ = ["inspect_onnx"]


def inspect_onnx(source) -> tuple[tuple, int]:
    """Check that ``source`` is a model the service can screen; return (input_shape, n_classes).

    INVALID_ARGUMENT, saying why, for anything else: bytes that are not an ONNX model,
    a model ``onnx.checker`` rejects, weights in external files (they would be read from
    the server's disk), not exactly one input, a non-float32 input, an input without a
    fixed per-input shape, or a model that fails a trial run through the library.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        The model's file, or its bytes. The store passes the path of an upload: the
        checker and the trial run then read the file themselves, the parsed model is
        dropped before they start, and the trial session is not kept in the library's
        cache of in-memory models -- a check holds about one copy of the model at a time.

    Examples
    --------
    >>> from wobbledetect_service.checks import inspect_onnx
    >>> inspect_onnx(b"not onnx")
    Traceback (most recent call last):
    ...
    wobbledetect_service.errors.ServiceError: The upload is not an ONNX model ...
    """
    import onnx

    is_path = isinstance(source, (str, os.PathLike))
    if is_path:
        source = os.fspath(source)

    def not_onnx(why):
        return invalid_argument(
            f"The upload is not an ONNX model onnx.checker accepts ({why}). Upload the "
            ".onnx file itself, e.g. from wobbledetect.to_onnx."
        )

    try:
        # Parses only; reads no other file.
        if is_path:
            model = onnx.load_model(source, load_external_data=False)
        else:
            model = onnx.load_model_from_string(source)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and kin
        raise not_onnx(f"{type(exc).__name__}: {_short(exc)}") from None
    # Before the checker, which would probe the paths external data names on this disk
    # (and say whether they exist).
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _all_tensors(model.graph)):
        raise invalid_argument(
            "The model keeps weights in external data files, which the server will not "
            "read; save it with its weights inline (onnx.save(model, path, "
            "save_as_external_data=False))."
        )
    # Plain values only: a sub-message would keep the whole parsed model (weights) alive.
    has_nodes_and_outputs = bool(model.graph.node) and bool(model.graph.output)
    weights = {t.name for t in model.graph.initializer}
    inputs = [
        (i.name, i.type.tensor_type.elem_type,
         [(d.dim_value, d.HasField("dim_value"), d.dim_param)
          for d in i.type.tensor_type.shape.dim])
        for i in model.graph.input if i.name not in weights
    ]
    del model, weights  # the checker and the trial run load their own copy
    try:
        onnx.checker.check_model(source)  # a path is read by the checker itself
    except Exception as exc:  # noqa: BLE001 - ValidationError and kin
        raise not_onnx(f"{type(exc).__name__}: {_short(exc)}") from None
    if not has_nodes_and_outputs:
        raise not_onnx("its graph has no nodes or no outputs")
    if len(inputs) != 1:
        raise invalid_argument(
            f"The model has {len(inputs)} inputs ({[name for name, _, _ in inputs]}); the "
            "service screens models with exactly one input, a batch of float32 tensors."
        )
    name, elem_type, dims = inputs[0]
    if elem_type != onnx.TensorProto.FLOAT:
        raise invalid_argument(
            f"The model's input {name!r} has element type "
            f"{onnx.TensorProto.DataType.Name(elem_type)}; the service feeds "
            "float32 (export the model with a float input)."
        )
    shape = tuple(value if fixed else None for value, fixed, _ in dims[1:])
    if not shape or any(d is None or d < 1 for d in shape):
        raise invalid_argument(
            f"The model's input {name!r} has shape "
            f"{[param or value for value, _, param in dims]}; the service needs a batch "
            "dimension followed by a fixed per-input shape, e.g. ['batch', 1, 28, 28] "
            "(wobbledetect.to_onnx(net, input_shape) exports one)."
        )
    from wobbledetect import WobblinessTransformer

    try:
        # From a path, onnxruntime reads the file, and the session is not cached.
        trial = WobblinessTransformer(source, device="cpu", input_shape=shape, n_samples=1)
        trial.fit(np.zeros((2, *shape), dtype=np.float32))
    except Exception as exc:  # noqa: BLE001 - onnxruntime errors, ModelOutputError, ...
        raise invalid_argument(
            f"The model failed its trial run on a batch of 2 zero inputs of shape {shape}: "
            f"{type(exc).__name__}: {_short(exc)}"
        ) from None
    n_classes = int(trial.n_classes_)
    del trial  # the session, and with it the model's weights
    _return_freed_memory()
    return shape, n_classes


def _return_freed_memory() -> None:
    """Hand the heap memory the check freed back to the system (glibc's ``malloc_trim``).

    glibc keeps freed heap pages for reuse, and after the first large free it serves
    allocations of up to 32 MB from the heap: the check's copies of a 100 MB model would
    stay in the server's RSS. benchmarks/upload_memory.py --distinct (4 x 111 MiB): RSS
    after the uploads 939 MiB without the trim, 733 MiB with it (624 MiB idle).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (OSError, AttributeError):
        return  # not glibc (musl, macOS): nothing to hand back this way
    trim(0)


def _all_tensors(graph):
    """Every TensorProto of a graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _all_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _all_tensors(subgraph)


def _short(exc, limit=300):
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
