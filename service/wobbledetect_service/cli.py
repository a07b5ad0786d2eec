"""``wobbledetect serve``: run the screening service (see :mod:`.server`)."""

from __future__ import annotations

import argparse
import os
import re
import sys

__all__ = ["register", "parse_size", "read_tokens", "TOKENS_ENV"]

#: Environment variable holding accepted tokens (comma- or whitespace-separated), so that
#: they need not appear on the command line, where ``ps`` shows them.
TOKENS_ENV = "WOBBLEDETECT_TOKENS"

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``"64MiB"``, ``"1GB"`` or ``"1000"``.

    Examples
    --------
    >>> from wobbledetect_service.cli import parse_size
    >>> parse_size("64MiB"), parse_size("1.5kb"), parse_size("100")
    (67108864, 1500, 100)
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; write a positive number of bytes with an optional "
            "unit, e.g. 64MiB, 1GB, 500kB."
        )
    return int(float(match.group(1)) * _UNITS[unit])


def read_tokens(tokens=(), token_files=(), environ=None) -> list[str]:
    """Accepted tokens from ``--token``, ``--token-file`` (one per line, ``#`` comments)
    and the environment variable :data:`TOKENS_ENV`."""
    environ = os.environ if environ is None else environ
    found = list(tokens)
    for path in token_files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#"):
                    found.append(line)
    listed = environ.get(TOKENS_ENV, "").strip()
    if listed:
        found += re.split(r"[\s,]+", listed)
    for token in found:
        if not token or any(c.isspace() for c in token):
            raise ValueError("A token may not be empty or contain whitespace.")
    return found


def _read(path):
    if path is None:
        return None
    with open(path, "rb") as handle:
        return handle.read()


def _run(args):
    import logging

    from .limits import ServiceLimits
    from .server import serve

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.token:
        logging.getLogger(__name__).warning(
            "--token puts the token on the command line, visible to every user of this "
            "host (ps); prefer --token-file or %s", TOKENS_ENV,
        )
    try:
        tokens = read_tokens(args.token or (), args.token_file or ())
        limits = ServiceLimits(
            max_message_bytes=args.max_message_size,
            max_model_bytes=args.max_model_size,
            max_n_samples=args.max_n_samples,
            max_inputs=args.max_inputs,
            max_forwards=args.max_forwards,
            max_cleanse_steps=args.max_cleanse_steps,
            max_concurrent_screens=args.max_concurrent_screens,
            max_queued_screens=args.max_queued_screens,
        )

        def ready(port):
            host = args.address.rpartition(":")[0]
            print(f"wobbledetect serve: listening on {host}:{port}", flush=True)

        return serve(
            args.address, store=args.store, tokens=tokens, tls_cert=_read(args.tls_cert),
            tls_key=_read(args.tls_key), tls_client_ca=_read(args.tls_client_ca),
            limits=limits, device=args.device, insecure=args.insecure, grace=args.grace,
            on_ready=ready,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"wobbledetect serve: {exc}", file=sys.stderr)
        return 2


def register(subparsers):
    """Add the ``serve`` subcommand."""
    from .limits import MiB, ServiceLimits

    defaults = ServiceLimits()
    serve = subparsers.add_parser(
        "serve",
        help="run the gRPC screening service (model store, W, backdoor screens)",
        description="Serve wobbledetect.v1.ScreeningService: clients upload ONNX models and "
        "screen candidate inputs against clean ones. Health checking (grpc.health.v1) and "
        "server reflection (grpc.reflection.v1 and v1alpha) are on. SIGTERM shuts down "
        "gracefully. Listening on a non-loopback address needs --token/--token-file/"
        + TOKENS_ENV + " or --tls-client-ca, unless --insecure.",
    )
    serve.add_argument("--address", default="127.0.0.1:50051",
                       help="HOST:PORT to listen on (default: 127.0.0.1:50051; port 0: any free port)")
    serve.add_argument("--store", required=True, help="model store folder (created if missing)")
    auth = serve.add_argument_group("authentication and TLS")
    auth.add_argument("--token", action="append", metavar="TOKEN",
                      help="accepted bearer token (repeatable); visible in ps, prefer --token-file")
    auth.add_argument("--token-file", action="append", metavar="PATH",
                      help=f"file of accepted tokens, one per line (repeatable); also ${TOKENS_ENV}")
    auth.add_argument("--tls-cert", metavar="PEM", help="server certificate chain: serve TLS")
    auth.add_argument("--tls-key", metavar="PEM", help="server private key")
    auth.add_argument("--tls-client-ca", metavar="PEM",
                      help="CA bundle for client certificates: require mutual TLS")
    auth.add_argument("--insecure", action="store_true",
                      help="allow a non-loopback address without tokens or mutual TLS")
    limits = serve.add_argument_group("limits")
    limits.add_argument("--max-message-size", type=parse_size,
                        default=defaults.max_message_bytes,
                        help=f"largest gRPC message (default: {defaults.max_message_bytes // MiB}MiB)")
    limits.add_argument("--max-model-size", type=parse_size, default=defaults.max_model_bytes,
                        help=f"largest ONNX model (default: {defaults.max_model_bytes // MiB}MiB)")
    limits.add_argument("--max-concurrent-screens", type=int,
                        default=defaults.max_concurrent_screens,
                        help="computations at once: screens and checks of uploaded models "
                        f"(default: {defaults.max_concurrent_screens})")
    limits.add_argument("--max-queued-screens", type=int, default=defaults.max_queued_screens,
                        help="computations waiting for a slot before RESOURCE_EXHAUSTED "
                        f"(default: {defaults.max_queued_screens})")
    limits.add_argument("--max-n-samples", type=int, default=defaults.max_n_samples,
                        help=f"largest n_samples (default: {defaults.max_n_samples})")
    limits.add_argument("--max-inputs", type=int, default=defaults.max_inputs,
                        help=f"most inputs per request (default: {defaults.max_inputs})")
    limits.add_argument("--max-forwards", type=int, default=defaults.max_forwards,
                        help=f"most forward passes per request (default: {defaults.max_forwards})")
    limits.add_argument("--max-cleanse-steps", type=int, default=defaults.max_cleanse_steps,
                        help="most Neural Cleanse steps per class in ScreenModel "
                        f"(default: {defaults.max_cleanse_steps})")
    serve.add_argument("--device", default="auto",
                       help="where models run: auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")
    serve.add_argument("--grace", type=float, default=30.0,
                       help="seconds in-flight calls get to finish on SIGTERM (default: 30)")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"], help="(default: info)")
    serve.set_defaults(func=_run)
