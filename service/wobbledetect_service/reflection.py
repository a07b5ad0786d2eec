"""Server reflection in both protocol versions, ``grpc.reflection.v1`` and ``v1alpha``.

grpcio-reflection implements only ``grpc.reflection.v1alpha`` (grpc/grpc#38576 asks for
v1); current grpcurl, grpcui and Postman ask for ``grpc.reflection.v1``. The two
protocols are the same messages, field for field, under another package name, so the
v1 method is answered by the same v1alpha servicer object, behind a generic handler
registered at the v1 method path: nothing of reflection is re-implemented here. So
that a v1 client can also describe the v1 service itself, a copy of grpcio-reflection's
``reflection.proto`` renamed to package ``grpc.reflection.v1`` is added to the
descriptor pool the servicer reads.
"""

from __future__ import annotations

import threading

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

__all__ = ["enable_reflection", "V1_SERVICE_NAME", "V1ALPHA_SERVICE_NAME"]

V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1_FILE = "grpc/reflection/v1/reflection.proto"

_pool_lock = threading.Lock()


def enable_reflection(service_names, server, pool=None):
    """Serve reflection on ``server`` under both ``grpc.reflection.v1`` and ``v1alpha``.

    Parameters
    ----------
    service_names : iterable of str
        Full names of the services to list; both reflection services are added.
    server : grpc.Server
        Not yet started.
    pool : DescriptorPool or None
        Where the services' descriptors are; None: protobuf's default pool.

    Returns
    -------
    tuple of str
        The service names reflection lists.

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> import grpc
    >>> from wobbledetect_service.reflection import enable_reflection
    >>> server = grpc.server(ThreadPoolExecutor(max_workers=1))
    >>> for name in enable_reflection(["wobbledetect.v1.ScreeningService"], server):
    ...     print(name)
    grpc.reflection.v1.ServerReflection
    grpc.reflection.v1alpha.ServerReflection
    wobbledetect.v1.ScreeningService
    """
    pool = descriptor_pool.Default() if pool is None else pool
    _add_v1_descriptor(pool)
    names = tuple(sorted({*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME}))
    servicer = reflection.ReflectionServicer(names, pool=pool)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # v1alpha
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {"ServerReflectionInfo": v1}),)
    )
    return names


def _add_v1_descriptor(pool):
    """Add ``grpc/reflection/v1/reflection.proto`` to ``pool`` unless it is there."""
    with _pool_lock:
        try:
            pool.FindFileByName(V1_FILE)
            return  # added before, or a later grpcio-reflection ships it
        except KeyError:
            pass
        v1alpha = reflection_pb2.DESCRIPTOR
        proto = descriptor_pb2.FileDescriptorProto()
        v1alpha.CopyToProto(proto)
        proto.name = V1_FILE
        proto.package = V1_PACKAGE
        proto.ClearField("options")  # v1alpha's language options (java_package, ...)
        old, new = f".{v1alpha.package}.", f".{V1_PACKAGE}."
        messages = list(proto.message_type)
        while messages:
            message = messages.pop()
            messages.extend(message.nested_type)
            for field in message.field:
                if field.type_name.startswith(old):
                    field.type_name = new + field.type_name[len(old):]
        for service in proto.service:
            for method in service.method:
                method.input_type = new + method.input_type[len(old):]
                method.output_type = new + method.output_type[len(old):]
        pool.Add(proto)
