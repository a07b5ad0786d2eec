"""Request bodies that are not protobuf: INVALID_ARGUMENT and one log line, not INTERNAL.

gRPC Python deserializes a request before any servicer code runs; when the bytes are not
the method's message it answers INTERNAL ("Exception deserializing request!") and logs a
traceback. :class:`RequestDecodingInterceptor` wraps every handler's deserializer so that
a :class:`~google.protobuf.message.DecodeError` becomes a placeholder, and the handler's
behaviour answers that placeholder with INVALID_ARGUMENT -- before the servicer for a
single request, at the bad message for a request stream (an upload stops there and
leaves nothing behind).
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf.message import DecodeError

from .errors import ServiceError

__all__ = ["RequestDecodingInterceptor", "UnparsableRequest", "rebuild_handler"]

logger = logging.getLogger(__name__)


class UnparsableRequest(ServiceError):
    """A request message whose bytes are not the method's protobuf (INVALID_ARGUMENT).

    A :class:`~.errors.ServiceError`, so that a servicer reading a request stream maps it
    to its status code like any other refusal.
    """

    def __init__(self, message: str):
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)


class RequestDecodingInterceptor(grpc.ServerInterceptor):
    """Answer request bodies that are not the method's protobuf with INVALID_ARGUMENT.

    Wraps every handler that has a request deserializer (handlers without one take raw
    bytes and are left alone). Install it after an authentication interceptor, so that
    an unauthenticated call is refused before its body is looked at.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> import grpc
    >>> from wobbledetect.v1 import screening_pb2 as pb
    >>> from wobbledetect_service.decoding import RequestDecodingInterceptor
    >>> handler = grpc.unary_unary_rpc_method_handler(
    ...     lambda request, context: pb.ListModelsResponse(),
    ...     request_deserializer=pb.ListModelsRequest.FromString)
    >>> details = SimpleNamespace(method="/wobbledetect.v1.ScreeningService/ListModels")
    >>> tolerant = RequestDecodingInterceptor().intercept_service(lambda _: handler, details)
    >>> tolerant.request_deserializer(b"\\xff\\xff\\xff")
    <unparsable 3-byte wobbledetect.v1.ListModelsRequest body>
    >>> type(tolerant.request_deserializer(b"")).__name__
    'ListModelsRequest'
    """

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return _tolerant(handler, handler_call_details.method)


class _Unparsable:
    """What the wrapped deserializer returns for bytes its message cannot parse."""

    def __init__(self, body: bytes, message_name: str, error: Exception):
        self.body_size = len(body)
        self.head = bytes(body[:16])
        self.message_name = message_name
        self.error = error

    def __repr__(self):
        return f"<unparsable {self.body_size}-byte {self.message_name} body>"

    def explanation(self) -> str:
        shown = self.head.hex(" ") + (" ..." if self.body_size > len(self.head) else "")
        return (
            f"The request body is not a valid {self.message_name} protobuf: the "
            f"{self.body_size}-byte message (starting {shown or 'empty'}) failed to parse "
            f"({type(self.error).__name__}). Send a serialized {self.message_name}, as "
            "the generated stubs (proto/wobbledetect/v1) or a client built from server "
            "reflection write it."
        )


def _tolerant(handler, method):
    """``handler`` with a deserializer that never raises DecodeError, and a behaviour
    that answers what it could not parse with INVALID_ARGUMENT."""
    parse = handler.request_deserializer
    message_name = _message_name(parse)

    def deserialize(body):
        try:
            return parse(body)
        except DecodeError as exc:
            return _Unparsable(body, message_name, exc)

    def refuse(unparsable, context):
        logger.warning("refused %s: %s", method, unparsable.explanation())
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, unparsable.explanation())

    if handler.request_streaming:
        inner = handler.stream_stream if handler.response_streaming else handler.stream_unary

        def checked(requests, state):
            for request in requests:
                if isinstance(request, _Unparsable):
                    state["refused"] = request
                    logger.warning("refused %s: %s", method, request.explanation())
                    raise UnparsableRequest(request.explanation())
                yield request

        def answer_refused(state, context):
            # The behaviour may have turned UnparsableRequest into a status already (the
            # servicer's ServiceError mapping) or into something else; this one wins.
            if "refused" in state:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, state["refused"].explanation())

        if handler.response_streaming:

            def behaviour(requests, context):
                state = {}
                try:
                    yield from inner(checked(requests, state), context)
                except Exception:
                    answer_refused(state, context)
                    raise

        else:

            def behaviour(requests, context):
                state = {}
                try:
                    return inner(checked(requests, state), context)
                except Exception:
                    answer_refused(state, context)
                    raise

    else:
        inner = handler.unary_stream if handler.response_streaming else handler.unary_unary

        def behaviour(request, context):
            if isinstance(request, _Unparsable):
                refuse(request, context)
            return inner(request, context)

    return rebuild_handler(handler, behaviour, deserialize)


def rebuild_handler(handler, behaviour, request_deserializer):
    """A handler of the same kind (streaming on each side) as ``handler``, with the same
    response serializer, calling ``behaviour`` on what ``request_deserializer`` returns
    (``None``: the raw request bytes)."""
    if handler.request_streaming and handler.response_streaming:
        make = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        make = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        make = grpc.unary_stream_rpc_method_handler
    else:
        make = grpc.unary_unary_rpc_method_handler
    return make(behaviour, request_deserializer, handler.response_serializer)


def _message_name(parse) -> str:
    """The full name of the message a ``Message.FromString`` deserializer parses."""
    descriptor = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", None) or "request message"
