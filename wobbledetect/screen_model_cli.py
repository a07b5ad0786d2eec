"""``wobbledetect screen-model``: is this model backdoored? Asked of a screening server.

Uploads an ONNX model (idempotent) and runs :class:`~wobbledetect.ModelScreen` on the
server through the ``ScreenModel`` RPC, from a ``.npy`` of clean inputs alone; prints
the per-class table and the verdict as ``ModelScreen.report`` does, or JSON.
"""

from __future__ import annotations

import json
import sys

from .screen_cli import _load, _number, _read, add_connection_arguments, connect

__all__ = ["register"]


def _run(args):
    import warnings

    from . import WobbledetectError, WobbledetectWarning, check_floating, check_inputs
    from .client import ServiceCallError

    model_bytes = _read(args.model, "--model")
    clean = _load(args.clean, "--clean")
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()

    def progress(stage, done, total):
        print(f"\r{stage}: {done}/{total}", end="" if (stage, done) != ("wobbliness", total) else "\n",
              file=sys.stderr, flush=True)

    try:
        check_floating(clean, f"--clean {args.clean}")  # before anything is uploaded
        with connect(args) as client:
            model = client.upload_model(model_bytes)
            check_inputs(clean, model.input_shape, name=f"--clean {args.clean}", max_lead=1)
            with warnings.catch_warnings():  # printed below
                warnings.simplefilter("ignore", WobbledetectWarning)
                result = client.screen_model(
                    model.model_id, clean, sigma=args.sigma, n_samples=args.n_samples,
                    set_size=args.set_size, n_sets=args.n_sets, alpha=args.alpha,
                    anomaly_threshold=args.anomaly_threshold, max_steps=args.max_steps,
                    input_range=args.input_range, seed=args.seed,
                    on_progress=progress if show_progress else None,
                )
    except ServiceCallError as exc:
        print(f"wobbledetect screen-model: {exc}", file=sys.stderr)
        return 1
    except (WobbledetectError, ValueError) as exc:
        print(f"wobbledetect screen-model: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_as_json(result, model), indent=2))
    else:
        print(f"model {model.model_id[:12]}... input {model.input_shape}, {model.n_classes} classes | "
              f"n_samples {result.n_samples}, set_size {result.set_size}, n_sets {result.n_sets}, "
              f"seed {result.seed}, on {result.device}")
        print(result.report())
        for w in result.warnings:
            print(f"warning: {w.category}: {w.message}")
    return 0


def _as_json(result, model):
    rows = [
        {column: (_number(float(values[i])) if values.dtype.kind == "f" else values[i].item())
         for column, values in result.table.items()}
        | {"reached_threshold": bool(result.reached_threshold[i])}
        for i in range(len(result.table["class"]))
    ]
    return {
        "model": {"model_id": model.model_id, "input_shape": list(model.input_shape),
                  "n_classes": model.n_classes, "created": model.created},
        "backdoored": result.backdoored, "suspected_class": result.suspected_class,
        "score": _number(result.score), "anomaly_threshold": result.anomaly_threshold,
        "sigma": result.sigma, "zero_share": result.zero_share,
        "null_scores": [_number(v) for v in result.null_scores.tolist()],
        "n_samples": result.n_samples, "set_size": result.set_size, "n_sets": result.n_sets,
        "alpha": result.alpha, "seed": result.seed, "device": result.device,
        "classes": rows,
        "warnings": [{"category": w.category, "message": w.message} for w in result.warnings],
    }


def register(subparsers):
    """Add the ``screen-model`` subcommand."""
    parser = subparsers.add_parser(
        "screen-model",
        help="ask a wobbledetect server whether a model is backdoored (no trigger needed)",
        description="Upload an ONNX model to a screening server (idempotent) and screen it "
        "from clean inputs alone (paper section 5): Neural Cleanse crafts a trigger candidate "
        "per class, and W of clean sets stamped with each is tested against clean sets. "
        "Prints the per-class table and the verdict, or JSON with --json.",
    )
    parser.add_argument("--server", required=True, help="HOST:PORT of the server")
    parser.add_argument("--model", required=True, help="the ONNX model file")
    parser.add_argument("--clean", required=True,
                        help=".npy of clean inputs, shape (n, *input_shape), n >= 6 x n_sets x set_size")
    parser.add_argument("--sigma", type=float, help="noise scale (default: chosen from clean W)")
    parser.add_argument("--n-samples", type=int, help="noisy copies per input (default: 250)")
    parser.add_argument("--set-size", type=int, help="inputs per set (default: 25)")
    parser.add_argument("--n-sets", type=int, help="sets per class candidate (default: 10)")
    parser.add_argument("--alpha", type=float, help="significance level (default: 0.05)")
    parser.add_argument("--anomaly-threshold", type=float, help="flag above this index (default: 2)")
    parser.add_argument("--max-steps", type=int, help="Neural Cleanse steps per class (default: 1000)")
    parser.add_argument("--input-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="valid input values (default: 0 1)")
    parser.add_argument("--seed", type=int, help="seed (default: drawn by the server, printed)")
    add_connection_arguments(parser)
    parser.set_defaults(func=_run)
