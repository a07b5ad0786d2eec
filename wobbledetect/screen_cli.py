"""``wobbledetect screen``: upload a model to a screening server and screen .npy batches."""

from __future__ import annotations

import json
import os
import sys

__all__ = ["register", "format_table", "format_warnings", "add_connection_arguments", "connect",
           "TOKEN_ENV"]

#: Environment variable holding the client's token (keeps it out of ``ps``).
TOKEN_ENV = "WOBBLEDETECT_TOKEN"


def format_table(result, names, model) -> str:
    """The screen as a table a person reads: one row per candidate set.

    Examples
    --------
    >>> from wobbledetect.client import CandidateResult, ModelInfo, ScreenResult
    >>> from wobbledetect.screen_cli import format_table
    >>> summary = dict(count=25, mean=0.0, std=0.0, min=0.0, q25=0.0, median=0.0, q75=0.0, max=0.0)
    >>> result = ScreenResult(
    ...     candidates=[CandidateResult(0, 1.2e-9, 7.6, True, summary)],
    ...     clean_summary=dict(summary, median=0.131), n_reference=24, n_reference_outliers=1,
    ...     sigma=0.2, n_samples=250, alpha=0.05, seed=7, direction="smoother", device="cpu")
    >>> model = ModelInfo("ab" * 32, 1000, (1, 8, 8), 10, 0)
    >>> print(format_table(result, ["trig.npy"], model))
    model abababababab... input (1, 8, 8), 10 classes | sigma 0.2, n_samples 250, alpha 0.05, seed 7, smoother, on cpu
    clean reference: 25 inputs, median W 0.131 (24 kept, 1 outlier removed)
    candidate  inputs  median W    p-value     score  verdict
    trig.npy       25     0.000    1.2e-09     +7.60  TRIGGER
    """
    lines = [
        f"model {model.model_id[:12]}... input {model.input_shape}, {model.n_classes} classes | "
        f"sigma {result.sigma:g}, n_samples {result.n_samples}, alpha {result.alpha:g}, "
        f"seed {result.seed}, {result.direction}, on {result.device}",
        f"clean reference: {result.clean_summary['count']} inputs, median W "
        f"{result.clean_summary['median']:.3f} ({result.n_reference} kept, "
        f"{result.n_reference_outliers} outlier{'s' if result.n_reference_outliers != 1 else ''} removed)",
    ]
    width = max(len("candidate"), *(len(n) for n in names))
    calibrated = result.n_calibration > 0
    lines.append(f"{'candidate':<{width}}  inputs  median W    p-value     score  verdict"
                 + (f"  calibrated p ({result.n_calibration} clean sets)" if calibrated else ""))
    for name, c in zip(names, result.candidates):
        lines.append((
            f"{name:<{width}}  {c.summary['count']:>6}  {c.summary['median']:>8.3f}  "
            f"{c.p_value:>9.2g}  {c.score:>+8.2f}  {'TRIGGER' if c.triggered else 'clean':<7}"
            + (f"  {c.calibrated_p_value:.3g}" if calibrated else "")
        ).rstrip())
    return "\n".join(lines)


def _load(path, what):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)  # never unpickle a file from elsewhere
    except (OSError, ValueError) as exc:
        raise SystemExit(f"wobbledetect screen: cannot read {what} {path!r} as a .npy array: {exc}")


def _read(path, what=None):
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise SystemExit(f"wobbledetect screen: cannot read {what or 'file'} {path!r}: {exc.strerror}")


def _token(args):
    if args.token:
        return args.token
    if args.token_file:
        return _read(args.token_file, "--token-file").decode("utf-8").strip()
    return os.environ.get(TOKEN_ENV) or None


def _checked(batch, option, path, input_shape, max_lead):
    """The library's checks of a batch, named by the option and file it came from."""
    from . import check_inputs, check_set_size

    name = f"{option} {path}"
    inputs, _ = check_inputs(batch, input_shape, name=name, max_lead=max_lead)
    check_set_size(inputs, name)


def format_warnings(result, names) -> list:
    """One line per warning of the screen, naming the file of the set it concerns."""
    lines = []
    for w in result.warnings:
        where = "clean reference" if w.candidate_index is None else names[w.candidate_index]
        lines.append(f"warning ({where}): {w.category}: {w.message}")
    return lines


def _run(args):
    import warnings

    from . import WobbledetectError, WobbledetectWarning, check_floating
    from .client import ServiceCallError

    model_bytes = _read(args.model, "--model")
    clean = _load(args.clean, "--clean")
    candidates = [_load(path, "--candidate") for path in args.candidate]
    calibration = _load(args.calibration, "--calibration") if args.calibration else None
    names = [os.path.basename(path) for path in args.candidate]
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()

    def progress(done, total):
        print(f"\rW: {done}/{total} inputs", end="" if done < total else "\n",
              file=sys.stderr, flush=True)

    try:
        check_floating(clean, f"--clean {args.clean}")  # before anything is uploaded
        for path, batch in zip(args.candidate, candidates):
            check_floating(batch, f"--candidate {path}")
        if calibration is not None:
            check_floating(calibration, f"--calibration {args.calibration}")
        with connect(args) as client:
            model = client.upload_model(model_bytes)
            _checked(clean, "--clean", args.clean, model.input_shape, max_lead=2)
            for path, batch in zip(args.candidate, candidates):
                _checked(batch, "--candidate", path, model.input_shape, max_lead=1)
            if calibration is not None:
                from . import check_inputs

                check_inputs(calibration, model.input_shape, name=f"--calibration {args.calibration}",
                             max_lead=2)
                if calibration.ndim != len(model.input_shape) + 2:
                    raise ValueError(
                        f"--calibration {args.calibration} has shape {calibration.shape}; it "
                        f"must hold sets, (n_sets, set_size, *{model.input_shape}).")
            with warnings.catch_warnings():  # printed below, naming the files
                warnings.simplefilter("ignore", WobbledetectWarning)
                result = client.screen(
                    model.model_id, clean, candidates, sigma=args.sigma,
                    n_samples=args.n_samples, alpha=args.alpha, seed=args.seed,
                    direction=args.direction, on_progress=progress if show_progress else None,
                    calibration=None if calibration is None else list(calibration),
                )
    except ServiceCallError as exc:
        print(f"wobbledetect screen: {exc}", file=sys.stderr)
        return 1
    except (WobbledetectError, ValueError) as exc:
        print(f"wobbledetect screen: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_as_json(result, names, model), indent=2))
    else:
        print("\n".join([format_table(result, names, model), *format_warnings(result, names)]))
    return 0


def _as_json(result, names, model):
    return {
        "model": {"model_id": model.model_id, "input_shape": list(model.input_shape),
                  "n_classes": model.n_classes, "created": model.created},
        "sigma": result.sigma, "n_samples": result.n_samples, "alpha": result.alpha,
        "seed": result.seed, "direction": result.direction, "device": result.device,
        "clean": {"summary": result.clean_summary, "n_reference": result.n_reference,
                  "n_reference_outliers": result.n_reference_outliers},
        "n_calibration": result.n_calibration,
        "candidates": [
            {"name": name, "p_value": _number(c.p_value), "score": c.score,
             "triggered": c.triggered, "summary": c.summary,
             "calibrated_p_value": c.calibrated_p_value}
            for name, c in zip(names, result.candidates)
        ],
        "warnings": [
            {"category": w.category, "message": w.message,
             "candidate": None if w.candidate_index is None else names[w.candidate_index]}
            for w in result.warnings
        ],
    }


def _number(value):
    """A float for JSON: NaN (an untestable set) becomes null, which every parser reads."""
    return None if value != value else value


def add_connection_arguments(parser):
    """The options every client subcommand shares: output, deadline, progress, and how
    to reach the server (authentication and TLS)."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=float, help="deadline in seconds (default: none)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show progress on stderr (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    auth = parser.add_argument_group("authentication and TLS")
    auth.add_argument("--token", help=f"bearer token (visible in ps; prefer --token-file or ${TOKEN_ENV})")
    auth.add_argument("--token-file", metavar="PATH", help="file holding the bearer token")
    auth.add_argument("--tls-ca", metavar="PEM", help="CA that signed the server's certificate: use TLS")
    auth.add_argument("--tls", action="store_true", help="use TLS with the system's trusted CAs")
    auth.add_argument("--tls-cert", metavar="PEM", help="client certificate (mutual TLS)")
    auth.add_argument("--tls-key", metavar="PEM", help="client private key (mutual TLS)")
    auth.add_argument("--server-name", help="host name in the server's certificate, if not --server's")


def connect(args):
    """A :class:`~wobbledetect.client.ScreeningClient` from the parsed connection options."""
    from .client import ScreeningClient

    return ScreeningClient(
        args.server, token=_token(args), root_certificates=_read(args.tls_ca, "--tls-ca"),
        tls=args.tls, client_certificate=_read(args.tls_cert, "--tls-cert"),
        client_key=_read(args.tls_key, "--tls-key"), server_name=args.server_name,
        timeout=args.timeout,
    )


def register(subparsers):
    """Add the ``screen`` subcommand."""
    screen = subparsers.add_parser(
        "screen",
        help="screen .npy batches for a backdoor trigger on a wobbledetect server",
        description="Upload an ONNX model to a screening server (idempotent) and test "
        "whether each candidate batch's W spread differs from the clean batch's (Levene "
        "test, paper section 3.2.4). Prints a table, or JSON with --json.",
    )
    screen.add_argument("--server", required=True, help="HOST:PORT of the server")
    screen.add_argument("--model", required=True, help="the ONNX model file")
    screen.add_argument("--clean", required=True,
                        help=".npy of clean inputs, shape (n, *input_shape)")
    screen.add_argument("--candidate", required=True, action="append",
                        help=".npy of one candidate set, shape (set_size, *input_shape); repeatable")
    screen.add_argument("--sigma", type=float, help="noise scale (server default: 0.1)")
    screen.add_argument("--n-samples", type=int, help="noisy copies per input (default: 250)")
    screen.add_argument("--alpha", type=float, help="significance level (default: 0.05)")
    screen.add_argument("--seed", type=int, help="noise seed (default: drawn by the server, printed)")
    screen.add_argument("--calibration", metavar="NPY",
                        help=".npy of held-out clean sets, shape (n_sets, set_size, *input_shape): "
                        "adds a calibrated p-value per candidate (at least 1/alpha - 1 sets)")
    screen.add_argument("--direction", default="smoother",
                        choices=["smoother", "wobblier", "two-sided"], help="(default: smoother)")
    add_connection_arguments(screen)
    screen.set_defaults(func=_run)
