"""Building and running the gRPC server: servicer, health, reflection, auth, TLS, limits."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from wobbledetect import WobbledetectWarning
from wobbledetect.v1 import screening_pb2, screening_pb2_grpc

from .auth import BearerTokenInterceptor
from .decoding import RequestDecodingInterceptor
from .limits import ServiceLimits
from .reflection import enable_reflection
from .servicer import ScreeningServicer
from .store import ModelStore

__all__ = [
    "create_server", "build_server", "serve", "check_exposure", "is_loopback", "SERVICE_NAME",
    "Server",
]

logger = logging.getLogger(__name__)

#: Full name of the screening service, as reflection and health checks know it.
SERVICE_NAME = screening_pb2.DESCRIPTOR.services_by_name["ScreeningService"].full_name

#: Worker threads beyond the computations running and queued, so that cheap calls
#: (health checks, ListModels, uploads) are answered while the server is busy.
SPARE_THREADS = 8


@dataclass
class Server:
    """A built, not yet started, server and its parts."""

    server: grpc.Server
    port: int
    servicer: ScreeningServicer
    health: health.HealthServicer
    store: ModelStore


def create_server(address, *, store, **options):
    """A ready-to-start gRPC server for the screening service, and the port it bound.

    Parameters
    ----------
    address : str
        ``HOST:PORT`` to listen on; port 0 picks a free port (tests use
        ``"127.0.0.1:0"``).
    store : str, os.PathLike or ModelStore
        The model store folder (created if missing).
    **options
        Keyword arguments of :func:`build_server`: ``tokens``, ``tls_cert``, ``tls_key``,
        ``tls_client_ca``, ``limits``, ``device``, ``insecure``.

    Returns
    -------
    server : grpc.Server
        Not started: call ``server.start()``, and ``server.stop(grace)`` at the end.
    port : int

    Examples
    --------
    >>> import tempfile
    >>> from wobbledetect_service import create_server
    >>> server, port = create_server("127.0.0.1:0", store=tempfile.mkdtemp())
    >>> server.start()
    >>> port > 0
    True
    >>> server.stop(None).wait()
    True
    """
    built = build_server(address, store=store, **options)
    return built.server, built.port


def build_server(
    address,
    *,
    store,
    tokens=(),
    tls_cert=None,
    tls_key=None,
    tls_client_ca=None,
    limits=None,
    device="auto",
    insecure=False,
) -> Server:
    """Build the server; :func:`create_server` returns two of the parts.

    Parameters
    ----------
    address : str
        ``HOST:PORT``.
    store : str, os.PathLike or ModelStore
        The model store.
    tokens : iterable of str, default=()
        Accepted bearer tokens; when given, every call but health checks needs
        ``authorization: Bearer <token>``.
    tls_cert, tls_key : bytes or None
        PEM certificate chain and private key: serve TLS. Both or neither.
    tls_client_ca : bytes or None
        PEM CA bundle: require clients to present a certificate it signed (mutual TLS).
    limits : ServiceLimits or None
        None: the defaults.
    device : str, default="auto"
        Where models run: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    insecure : bool, default=False
        Allow a non-loopback address with neither tokens nor mutual TLS.

    Returns
    -------
    Server

    Raises
    ------
    ValueError
        A non-loopback address without authentication (and not ``insecure``), TLS half
        configured, or an unavailable device.
    RuntimeError
        The address could not be bound.
    """
    from wobbledetect._models import resolve_device

    if isinstance(tokens, (str, bytes)):
        raise TypeError("tokens must be an iterable of str, e.g. ['s3cret']; got a single string.")
    tokens = list(tokens)
    limits = limits or ServiceLimits()
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("TLS needs both tls_cert and tls_key (PEM); got only one of them.")
    if tls_client_ca is not None and tls_cert is None:
        raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key as well.")
    check_exposure(address, tokens=tokens, tls=tls_cert is not None,
                   client_ca=tls_client_ca is not None, insecure=insecure)
    resolve_device(device)  # fail now, with the library's message, not on the first screen
    if not isinstance(store, ModelStore):
        store = ModelStore(store, max_model_bytes=limits.max_model_bytes)

    servicer = ScreeningServicer(store, limits, device=device)
    workers = limits.max_concurrent_screens + limits.max_queued_screens + SPARE_THREADS
    # Authentication first: a refused call's body is never parsed.
    interceptors = [BearerTokenInterceptor(tokens)] if tokens else []
    interceptors.append(RequestDecodingInterceptor())
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wobbledetect-rpc"),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes),
            # Never share a port with another process silently (gRPC's default on Linux).
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=4 * workers,
    )
    screening_pb2_grpc.add_ScreeningServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    enable_reflection((SERVICE_NAME, health.SERVICE_NAME), server)  # v1 and v1alpha
    try:
        if tls_cert is not None:
            credentials = grpc.ssl_server_credentials(
                [(tls_key, tls_cert)],
                root_certificates=tls_client_ca,
                require_client_auth=tls_client_ca is not None,
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"Could not listen on {address!r}: {exc}") from exc
    if not port:
        raise RuntimeError(f"Could not listen on {address!r} (address in use or invalid).")
    return Server(server, port, servicer, health_servicer, store)


def serve(address, *, grace=30.0, on_ready=None, **options) -> int:
    """Run the server until SIGTERM or SIGINT, then shut down gracefully; return 0.

    On the signal, health checks turn NOT_SERVING, new calls are refused, and calls in
    flight get ``grace`` seconds to finish; computations still running then are
    cancelled (they stop at their next chunk).

    Parameters
    ----------
    address : str
    grace : float, default=30.0
        Seconds in-flight calls may take to finish.
    on_ready : callable or None
        Called with the bound port once the server is listening.
    **options
        Keyword arguments of :func:`build_server`.
    """
    built = build_server(address, **options)
    # The detector's warnings (a reference with nothing to compare, ...) travel in each
    # ScreenResponse; in this process, which serve owns, they would only fill stderr.
    warnings.filterwarnings("ignore", category=WobbledetectWarning)
    threads = share_cpu_threads(built.servicer.limits.max_concurrent_screens)
    logger.info("%d CPU thread(s) per concurrent computation", threads)
    stop = threading.Event()

    def request_stop(signum, frame):
        logger.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        built.server.start()
        logger.info("listening on %s (pid %d)", _with_port(address, built.port), os.getpid())
        if on_ready is not None:
            on_ready(built.port)
        while not stop.wait(0.5):
            pass
        built.health.enter_graceful_shutdown()
        built.server.stop(grace).wait()
        logger.info("stopped")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def share_cpu_threads(max_concurrent_screens: int) -> int:
    """Give each of the computations that may run at once an equal share of torch's threads.

    W draws its noise on ``torch.get_num_threads()`` threads; two screens at once, each
    on every core, make the cores switch between twice as many threads as they have.
    ``benchmarks/service_load.py`` on 2 cores with 2 screens at once: 6-29 % more
    screens/s with one thread each (docs/service.md, Load). Called by :func:`serve`, which owns
    its process; a server embedded with :func:`create_server` leaves the host's
    setting alone. Honours a lower ``OMP_NUM_THREADS`` / ``torch.set_num_threads``.

    Returns
    -------
    int
        The threads each computation now gets.

    Examples
    --------
    >>> import torch
    >>> from wobbledetect_service.server import share_cpu_threads
    >>> before = torch.get_num_threads()
    >>> share_cpu_threads(max_concurrent_screens=before * 4)
    1
    >>> torch.set_num_threads(before)
    """
    import torch

    threads = max(1, torch.get_num_threads() // max(1, int(max_concurrent_screens)))
    torch.set_num_threads(threads)
    return threads


def check_exposure(address, *, tokens, tls, client_ca, insecure):
    """Refuse (ValueError) a non-loopback address without tokens or mutual TLS, unless
    ``insecure``; warn when tokens would cross a network in clear text.

    Examples
    --------
    >>> from wobbledetect_service.server import check_exposure
    >>> check_exposure("10.0.0.5:50051", tokens=["s3cret"], tls=True, client_ca=False,
    ...                insecure=False)
    >>> check_exposure("0.0.0.0:50051", tokens=[], tls=False, client_ca=False, insecure=False)
    Traceback (most recent call last):
    ...
    ValueError: Refusing to listen on '0.0.0.0:50051', which is not a loopback address, ...
    """
    if is_loopback(address):
        return
    if not tokens and not client_ca and not insecure:
        raise ValueError(
            f"Refusing to listen on {address!r}, which is not a loopback address, without "
            "authentication: anyone who can reach it could upload models and use this "
            "host's GPU. Give --token (or --token-file), or --tls-client-ca for mutual "
            "TLS; or --insecure if every host on that network is trusted."
        )
    if tokens and not tls:
        logger.warning(
            "bearer tokens travel in clear text on %s: add --tls-cert/--tls-key", address
        )


def is_loopback(address: str) -> bool:
    """Whether ``HOST:PORT`` (or a ``unix:`` socket) is reachable from this host only.

    Examples
    --------
    >>> from wobbledetect_service.server import is_loopback
    >>> [is_loopback(a) for a in ("127.0.0.1:0", "[::1]:50051", "localhost:1", "0.0.0.0:1", "[::]:1")]
    [True, True, True, False, False]
    """
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host, _, port = address.rpartition(":")
    if not port:
        return False
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost, or empty (every interface)


def _with_port(address, port):
    host, _, _ = address.rpartition(":")
    return f"{host}:{port}" if host else address
