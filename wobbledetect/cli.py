"""The ``wobbledetect`` command: ``demo`` (and, as they land, ``serve``, ``screen``, ``reproduce``).

Argument parsing and printing live here; the jobs themselves return their numbers.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _demo(args):
    from .lab.demo import run_demo

    run_demo(args.out, n_jobs=args.n_jobs, random_state=args.seed)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="wobbledetect",
        description="Detect backdoor triggers in neural networks through backdoor smoothing.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="backdoor a digits CNN (T1) and detect its trigger; writes PNGs and JSON",
    )
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--n-jobs", type=int, default=1, help="GridSearchCV workers (default: 1)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    """Entry point of the ``wobbledetect`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
