"""Acceptance 6: reflection lists the service, and a generic client calls it knowing only
what reflection serves, or only the .proto files -- never the generated stubs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer

from .conftest import TINY_SHAPE

REPO = Path(__file__).resolve().parents[2]
SERVICE = "wobbledetect.v1.ScreeningService"


class GenericClient:
    """Calls methods by name with messages built from descriptors in ``pool``."""

    def __init__(self, channel, pool):
        self.channel = channel
        self.service = pool.FindServiceByName(SERVICE)

    def message(self, method, side="input"):
        descriptor = getattr(self.service.FindMethodByName(method), f"{side}_type")
        return message_factory.GetMessageClass(descriptor)

    def call(self, method, request):
        descriptor = self.service.FindMethodByName(method)
        path = f"/{SERVICE}/{method}"
        response_class = self.message(method, "output")
        kind = ("stream" if descriptor.client_streaming else "unary") + "_" + (
            "stream" if descriptor.server_streaming else "unary")
        callable_ = getattr(self.channel, kind)(
            path, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString)
        return callable_(request, timeout=30)


def _tensor(client, method, field, array):
    """A wobbledetect.v1.Tensor built from the request's descriptor, not from tensor_pb2."""
    tensor = getattr(client.message(method)(), field).__class__()
    float64 = tensor.DESCRIPTOR.fields_by_name["dtype"].enum_type.values_by_name["DTYPE_FLOAT64"]
    tensor.dtype = float64.number
    tensor.shape.extend(array.shape)
    tensor.data = np.ascontiguousarray(array, dtype="<f8").tobytes()
    return tensor


def _upload_and_screen(client, model_bytes):
    upload_request = client.message("UploadModel")
    response = client.call("UploadModel", iter([upload_request(chunk=model_bytes)]))
    assert response.model.model_id == hashlib.sha256(model_bytes).hexdigest()
    rng = np.random.RandomState(0)
    clean, candidate = rng.normal(size=(20, *TINY_SHAPE)), rng.normal(scale=0.3, size=(20, *TINY_SHAPE))
    request = client.message("Screen")(
        model_id=response.model.model_id, clean=_tensor(client, "Screen", "clean", clean),
        sigma=0.5, n_samples=64, seed=3,
    )
    request.candidates.append(_tensor(client, "Screen", "clean", candidate))
    screened = client.call("Screen", request)
    wob = WobblinessTransformer(model_bytes, sigma=0.5, n_samples=64, random_state=3).fit(clean)
    detector = LeveneBackdoorDetector().fit(wob.transform(clean).reshape(1, -1))
    expected = detector.p_values(wob.transform(candidate).reshape(1, -1))[0]
    assert screened.candidates[0].p_value == expected
    return response.model.model_id


def test_reflection_lists_the_services(server):
    database = ProtoReflectionDescriptorDatabase(server.channel)
    assert set(database.get_services()) == {
        SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection"}


def _ask_v1(channel, **request_fields):
    """One request to grpc.reflection.v1 (the method path current grpcurl and Postman use),
    written with the v1alpha message classes: the two versions share their wire format."""
    from grpc_reflection.v1alpha import reflection_pb2

    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    (response,) = call(iter([reflection_pb2.ServerReflectionRequest(**request_fields)]),
                       timeout=10)
    return response


def test_reflection_v1_lists_the_services(server):
    response = _ask_v1(server.channel, list_services="")
    assert {s.name for s in response.list_services_response.service} == {
        SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection"}


def test_reflection_v1_describes_the_service_and_itself(server):
    files = {}
    for symbol in (SERVICE, "grpc.reflection.v1.ServerReflection"):
        response = _ask_v1(server.channel, file_containing_symbol=symbol)
        assert response.WhichOneof("message_response") == "file_descriptor_response", response
        for blob in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
            files[proto.name] = proto
    pool = descriptor_pool.DescriptorPool()
    for name in ("wobbledetect/v1/tensor.proto", "wobbledetect/v1/screening.proto",
                 "grpc/reflection/v1/reflection.proto"):
        pool.Add(files[name])
    screening = pool.FindServiceByName(SERVICE)
    assert screening.methods_by_name["ScreenStream"].output_type.full_name == (
        "wobbledetect.v1.ScreenEvent")
    v1 = pool.FindServiceByName("grpc.reflection.v1.ServerReflection")
    method = v1.methods_by_name["ServerReflectionInfo"]
    assert method.input_type.full_name == "grpc.reflection.v1.ServerReflectionRequest"
    assert method.client_streaming and method.server_streaming


def test_a_generic_client_calls_the_service_from_reflection_alone(server, tiny_model):
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(server.channel))
    client = GenericClient(server.channel, pool)
    assert [m.name for m in client.service.methods] == [
        "UploadModel", "ListModels", "GetModel", "DeleteModel", "ComputeWobbliness", "Screen",
        "ScreenStream", "ScreenModel"]
    model_id = _upload_and_screen(client, tiny_model)
    listed = client.call("ListModels", client.message("ListModels")())
    assert [m.model_id for m in listed.models] == [model_id]


def test_a_generic_client_calls_the_service_from_the_proto_files_alone(server, tiny_model, tmp_path):
    from grpc_tools import protoc

    descriptor_set = tmp_path / "wobbledetect.pb"
    protos = ["wobbledetect/v1/screening.proto", "wobbledetect/v1/tensor.proto"]
    assert protoc.main(["protoc", f"-I{REPO / 'proto'}", "--include_imports",
                        f"--descriptor_set_out={descriptor_set}", *protos]) == 0
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file:
        pool.Add(file)
    client = GenericClient(server.channel, pool)
    model_id = _upload_and_screen(client, tiny_model)
    # A server-streaming call too: progress events, then the result.
    request = client.message("ScreenStream")(
        model_id=model_id, clean=_tensor(client, "Screen", "clean", np.ones((4, *TINY_SHAPE))),
        sigma=0.5, n_samples=8, seed=1)
    request.candidates.append(_tensor(client, "Screen", "clean", np.zeros((3, *TINY_SHAPE))))
    events = list(client.call("ScreenStream", request))
    assert events[-1].WhichOneof("event") == "result"
    assert events[-2].progress.inputs_done == events[-2].progress.inputs_total == 7
