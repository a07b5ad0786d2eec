"""Errors that become gRPC status codes, each with a message a person can act on."""

from __future__ import annotations

import grpc

__all__ = ["ServiceError", "invalid_argument", "not_found", "resource_exhausted"]


class ServiceError(Exception):
    """An error to answer with ``code`` and ``message`` (the servicer aborts with them)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid_argument(message: str) -> ServiceError:
    """The request itself is wrong; retrying it unchanged cannot succeed."""
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServiceError:
    """The request names something the server does not have."""
    return ServiceError(grpc.StatusCode.NOT_FOUND, message)


def resource_exhausted(message: str) -> ServiceError:
    """The request is over a limit of this server, or the server is too busy right now."""
    return ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)
