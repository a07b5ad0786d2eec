"""NumPy arrays to and from ``wobbledetect.v1.Tensor``: raw little-endian bytes + shape + dtype.

Shared by the client and the service (``wobbledetect_service``). Importing it imports the
generated protobuf module, not grpc.
"""

from __future__ import annotations

import math

import numpy as np

from ._exceptions import WobbledetectError
from ._inputs import check_floating
from .v1 import tensor_pb2

__all__ = ["TensorError", "to_tensor", "from_tensor", "WIRE_DTYPES", "MAX_NDIM"]

#: Element types a Tensor may carry, as little-endian NumPy dtypes.
WIRE_DTYPES = {
    tensor_pb2.DTYPE_FLOAT32: np.dtype("<f4"),
    tensor_pb2.DTYPE_FLOAT64: np.dtype("<f8"),
}

#: Most dimensions a Tensor may have (a set of sets of 3-D images has 5).
MAX_NDIM = 8


class TensorError(WobbledetectError, ValueError):
    """A ``Tensor`` message that does not describe a valid array (or an array that cannot be sent)."""


def to_tensor(array, name="array") -> tensor_pb2.Tensor:
    """Encode an array as a ``Tensor``: float64 stays float64, float16/32 become float32.

    Parameters
    ----------
    array : array-like
        Floating-point numbers. Integers and booleans are refused, as by the library
        (:func:`wobbledetect.check_floating`): their scale is never guessed.
    name : str, default="array"
        What to call the array in error messages.

    Returns
    -------
    wobbledetect.v1.tensor_pb2.Tensor

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect._grpc_codec import from_tensor, to_tensor
    >>> t = to_tensor(np.arange(6.0).reshape(2, 3))
    >>> list(t.shape), len(t.data)
    ([2, 3], 48)
    >>> from_tensor(t)
    array([[0., 1., 2.],
           [3., 4., 5.]])
    """
    check_floating(array, name)
    array = np.asarray(array)
    if array.dtype.kind != "f":
        raise TensorError(
            f"Cannot send {name} of dtype {array.dtype} as a tensor; pass float32 or "
            "float64 numbers."
        )
    if array.ndim == 0 or array.size == 0:
        raise TensorError(
            f"Cannot send an array of shape {array.shape}: a tensor needs at least one "
            "dimension and every dimension at least 1."
        )
    is_double = array.dtype.kind == "f" and array.dtype.itemsize == 8  # either byte order
    code = tensor_pb2.DTYPE_FLOAT64 if is_double else tensor_pb2.DTYPE_FLOAT32
    wire = WIRE_DTYPES[code]
    data = np.ascontiguousarray(array, dtype=wire).tobytes()
    return tensor_pb2.Tensor(dtype=code, shape=list(array.shape), data=data)


def from_tensor(tensor, *, name="tensor") -> np.ndarray:
    """Decode a ``Tensor``, checking dtype, shape and byte length.

    Parameters
    ----------
    tensor : wobbledetect.v1.tensor_pb2.Tensor
    name : str, default="tensor"
        The field's name, used in error messages.

    Returns
    -------
    ndarray
        float32 or float64 in native byte order, of the tensor's shape; a writable copy.

    Raises
    ------
    TensorError
        Unknown dtype, no or too many dimensions, a dimension below 1, or a byte length
        that is not ``prod(shape) * itemsize``.
    """
    dtype = WIRE_DTYPES.get(tensor.dtype)
    if dtype is None:
        raise TensorError(
            f"{name}.dtype is {_dtype_name(tensor.dtype)}; use DTYPE_FLOAT32 or "
            "DTYPE_FLOAT64. Integer data (e.g. 8-bit pixels) must be scaled to the "
            "model's input range first (e.g. uint8 / 255 as float32): its scale is never "
            "guessed."
        )
    shape = tuple(int(d) for d in tensor.shape)
    if not 1 <= len(shape) <= MAX_NDIM:
        raise TensorError(
            f"{name}.shape is {list(shape)}; a tensor needs 1 to {MAX_NDIM} dimensions."
        )
    if any(d < 1 for d in shape):
        raise TensorError(f"{name}.shape is {list(shape)}; every dimension must be at least 1.")
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on absurd shapes
    if len(tensor.data) != expected:
        raise TensorError(
            f"{name}.data holds {len(tensor.data)} bytes, but shape {list(shape)} of "
            f"{_dtype_name(tensor.dtype)} needs {expected} (prod(shape) * {dtype.itemsize}, "
            "little-endian, row-major)."
        )
    array = np.frombuffer(tensor.data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)  # writable, native order


def _dtype_name(code: int) -> str:
    try:
        return tensor_pb2.DType.Name(code)
    except ValueError:
        return f"unknown value {code}"
