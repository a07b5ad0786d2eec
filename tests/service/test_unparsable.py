"""Request bodies that are not protobuf: INVALID_ARGUMENT (or UNAUTHENTICATED without a
valid token) and one log line without a traceback -- for every kind of method."""

from __future__ import annotations

import logging

import grpc
import pytest

from wobbledetect.v1 import screening_pb2 as pb

from .conftest import running_server

GARBAGE = b"\xff\xff\xff"  # a field tag with no end: no protobuf message parses it
TOKEN = "s3cret"

#: (method path, kind of call, request message) -- one method of each kind.
METHODS = [
    ("/wobbledetect.v1.ScreeningService/ListModels", "unary_unary",
     "wobbledetect.v1.ListModelsRequest"),
    ("/wobbledetect.v1.ScreeningService/UploadModel", "stream_unary",
     "wobbledetect.v1.UploadModelRequest"),
    ("/wobbledetect.v1.ScreeningService/ScreenStream", "unary_stream",
     "wobbledetect.v1.ScreenRequest"),
    ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "stream_stream",
     "grpc.reflection.v1alpha.ServerReflectionRequest"),
]


def _raw_call(channel, method, kind, bodies, metadata=None):
    """Send ``bodies`` (raw bytes, unserialized) to ``method``; return the RpcError."""
    call = getattr(channel, kind)(method, request_serializer=None, response_deserializer=None)
    request = iter(bodies) if kind.startswith("stream") else bodies[0]
    with pytest.raises(grpc.RpcError) as error:
        response = call(request, timeout=20, metadata=metadata)
        if kind.endswith("stream"):
            list(response)
    return error.value


def _records_of(caplog, call):
    """The log records emitted while ``call()`` ran (any logger, INFO and up)."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        result = call()
    return result, list(caplog.records)


@pytest.mark.parametrize("method, kind, message", METHODS)
def test_a_body_that_is_not_protobuf_is_an_invalid_argument(
        tmp_path, caplog, method, kind, message):
    with running_server(tmp_path / "store") as server:
        error, records = _records_of(
            caplog, lambda: _raw_call(server.channel, method, kind, [GARBAGE]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert f"not a valid {message} protobuf" in error.details()
    assert "3-byte message (starting ff ff ff)" in error.details()
    assert [r.levelno for r in records] == [logging.WARNING], [r.getMessage() for r in records]
    assert records[0].exc_info is None and method in records[0].getMessage()


def test_an_upload_whose_second_message_is_not_protobuf_stops_and_leaves_nothing(
        tmp_path, caplog, tiny_model):
    with running_server(tmp_path / "store") as server:
        first = pb.UploadModelRequest(chunk=tiny_model[:40]).SerializeToString()
        error, records = _records_of(caplog, lambda: _raw_call(
            server.channel, METHODS[1][0], "stream_unary", [first, GARBAGE, first]))
        assert server.stub.ListModels(pb.ListModelsRequest()).models == []
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "UploadModelRequest" in error.details()
    assert len(records) == 1 and records[0].exc_info is None
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


@pytest.mark.parametrize("method, kind, message", METHODS)
@pytest.mark.parametrize("metadata, expected", [
    (None, grpc.StatusCode.UNAUTHENTICATED),
    ((("authorization", "Bearer wrong"),), grpc.StatusCode.UNAUTHENTICATED),
    ((("authorization", f"Bearer {TOKEN}"),), grpc.StatusCode.INVALID_ARGUMENT),
])
def test_with_tokens_the_token_is_checked_before_the_body(
        tmp_path, caplog, method, kind, message, metadata, expected):
    with running_server(tmp_path / "store", tokens=[TOKEN]) as server:
        error, records = _records_of(
            caplog, lambda: _raw_call(server.channel, method, kind, [GARBAGE], metadata))
    assert error.code() == expected, error.details()
    if expected == grpc.StatusCode.UNAUTHENTICATED:
        assert "authorization: Bearer <token>" in error.details()
    else:
        assert message in error.details()
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None and method in records[0].getMessage()


def test_valid_bodies_still_work_through_the_interceptors(tmp_path, tiny_model):
    with running_server(tmp_path / "store", tokens=[TOKEN]) as server:
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        uploaded = server.stub.UploadModel(
            iter([pb.UploadModelRequest(chunk=tiny_model)]), metadata=metadata)
        listed = server.stub.ListModels(pb.ListModelsRequest(), metadata=metadata)
    assert uploaded.created and [m.model_id for m in listed.models] == [uploaded.model.model_id]
