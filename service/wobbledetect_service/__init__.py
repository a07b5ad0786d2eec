"""The wobbledetect gRPC screening service (the application in ``service/``).

Installed as ``wobbledetect_service``. One module per role:

- :mod:`.server` -- ``create_server(address, ...) -> (server, port)`` and ``serve``;
- :mod:`.servicer` -- the thin ``ScreeningService`` servicer;
- :mod:`.screening` -- requests' arrays through the library's estimators, in chunks;
- :mod:`.store` -- the content-addressed on-disk model store;
- :mod:`.auth` -- the bearer-token interceptor;
- :mod:`.admission` -- how many screens run and wait at once;
- :mod:`.limits` -- the limits an operator sets;
- :mod:`.errors` -- errors that become gRPC status codes;
- :mod:`.cli` -- ``wobbledetect serve``.

Importing the package itself is cheap (the CLI imports it to register ``serve``); grpc
and the library load with the modules that need them.
"""

__all__ = ["create_server", "ServiceLimits", "ModelStore"]


def __getattr__(name):
    if name == "create_server":
        from .server import create_server

        return create_server
    if name == "ServiceLimits":
        from .limits import ServiceLimits

        return ServiceLimits
    if name == "ModelStore":
        from .store import ModelStore

        return ModelStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
