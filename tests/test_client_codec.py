"""The tensor codec shared by the client and the service (``wobbledetect._grpc_codec``)."""

from __future__ import annotations

import numpy as np
import pytest

from wobbledetect import InputDtypeError
from wobbledetect._grpc_codec import TensorError, from_tensor, to_tensor
from wobbledetect.v1 import tensor_pb2


@pytest.mark.parametrize("dtype, wire", [
    (np.float32, tensor_pb2.DTYPE_FLOAT32), (np.float64, tensor_pb2.DTYPE_FLOAT64),
    (np.float16, tensor_pb2.DTYPE_FLOAT32),
    (np.dtype(">f8"), tensor_pb2.DTYPE_FLOAT64),  # big-endian input is sent little-endian
])
def test_round_trip_keeps_values_and_shape(dtype, wire):
    array = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    tensor = to_tensor(array)
    assert tensor.dtype == wire and list(tensor.shape) == [2, 3, 4]
    back = from_tensor(tensor)
    np.testing.assert_array_equal(back, array.astype(np.float64))
    assert back.flags.writeable and back.dtype.isnative


def test_the_bytes_are_little_endian_row_major():
    tensor = to_tensor(np.array([[1.0, 2.0]], dtype=np.float32))
    assert tensor.data == b"\x00\x00\x80\x3f\x00\x00\x00\x40"


@pytest.mark.parametrize("tensor, words", [
    (tensor_pb2.Tensor(dtype=0, shape=[1], data=bytes(4)), "DTYPE_UNSPECIFIED"),
    (tensor_pb2.Tensor(dtype=9, shape=[1], data=bytes(4)), "unknown value 9"),
    (tensor_pb2.Tensor(dtype=1, shape=[], data=b""), "1 to 8 dimensions"),
    (tensor_pb2.Tensor(dtype=1, shape=[1] * 9, data=bytes(4)), "1 to 8 dimensions"),
    (tensor_pb2.Tensor(dtype=1, shape=[2, 0], data=b""), "at least 1"),
    (tensor_pb2.Tensor(dtype=1, shape=[-2, -2], data=bytes(16)), "at least 1"),
    (tensor_pb2.Tensor(dtype=1, shape=[2, 2], data=bytes(15)), "holds 15 bytes"),
    (tensor_pb2.Tensor(dtype=2, shape=[2**62, 2**62], data=bytes(8)), "needs 170141183460469231731687303715884105728"),
])
def test_malformed_tensors_are_refused_naming_the_field(tensor, words):
    with pytest.raises(TensorError, match="^inputs") as error:
        from_tensor(tensor, name="inputs")
    assert words in str(error.value)


@pytest.mark.parametrize("array", [np.array(1.0), np.zeros((0, 3)), np.array(["a"])])
def test_arrays_that_cannot_be_sent_are_refused(array):
    with pytest.raises(TensorError):
        to_tensor(array)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, bool])
def test_integer_arrays_are_refused_not_sent_as_0_255_floats(dtype):
    # They were sent as float32 and screened as if they were in the model's range.
    with pytest.raises(InputDtypeError, match=r"candidates\[1\] has dtype .* / 255"):
        to_tensor(np.ones((2, 3), dtype=dtype), "candidates[1]")


def test_an_unknown_wire_dtype_says_how_to_scale_integers():
    with pytest.raises(TensorError, match="must be scaled to the model's input range"):
        from_tensor(tensor_pb2.Tensor(dtype=5, shape=[1], data=bytes(1)), name="clean")
