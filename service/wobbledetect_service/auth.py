"""Bearer-token authentication: ``authorization: Bearer <token>`` on every call."""

from __future__ import annotations

import hmac
import logging

import grpc
from grpc_health.v1 import health

from .decoding import rebuild_handler

__all__ = ["BearerTokenInterceptor", "UNAUTHENTICATED_METHODS"]

logger = logging.getLogger(__name__)

#: Methods answered without a token: health checks (load balancers and orchestrators
#: probe without credentials, and the answer reveals nothing but SERVING).
UNAUTHENTICATED_METHODS = frozenset(
    f"/{health.SERVICE_NAME}/{method}" for method in ("Check", "Watch", "List")
)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuse calls without a valid ``authorization: Bearer <token>`` with UNAUTHENTICATED.

    Tokens are compared with :func:`hmac.compare_digest` against every configured token
    (no early exit), so timing reveals neither a token nor which one matched.

    Parameters
    ----------
    tokens : iterable of str
        The accepted tokens; at least one, none empty.

    Examples
    --------
    >>> from wobbledetect_service.auth import BearerTokenInterceptor
    >>> interceptor = BearerTokenInterceptor(["s3cret", "other"])
    >>> interceptor._accepts(b"other"), interceptor._accepts(b"s3cre")
    (True, False)
    """

    def __init__(self, tokens):
        self._tokens = [t.encode() for t in tokens]
        if not self._tokens or not all(self._tokens):
            raise ValueError("BearerTokenInterceptor needs at least one non-empty token.")

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method in UNAUTHENTICATED_METHODS:
            return handler
        presented = _bearer(handler_call_details.invocation_metadata)
        if presented is not None and self._accepts(presented):
            return handler
        why = "no authorization metadata" if presented is None else "a token that is not accepted"
        logger.warning("refused %s: %s", handler_call_details.method, why)
        return _refusal(handler, why)

    def _accepts(self, presented: bytes) -> bool:
        accepted = False
        for token in self._tokens:
            accepted |= hmac.compare_digest(presented, token)
        return accepted


def _bearer(metadata):
    """The token of the first ``authorization`` entry, or None when there is none."""
    for key, value in metadata or ():
        if key == "authorization":
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scheme, _, token = value.partition(" ")
            return token.strip().encode() if scheme.lower() == "bearer" else b""
    return None


def _refusal(handler, why):
    """A handler of the same kind as ``handler`` that answers UNAUTHENTICATED.

    It takes the request as raw bytes (no deserializer): the body of a call that is
    refused is never parsed, so a body that is not protobuf is refused just the same.
    """
    message = (
        f"Unauthenticated: the call carried {why}. Send the metadata "
        "'authorization: Bearer <token>' with a token this server accepts."
    )

    def abort(request_or_iterator, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return rebuild_handler(handler, abort, request_deserializer=None)
