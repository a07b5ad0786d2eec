"""The ``wobbledetect`` command.

Each subcommand lives with the code it drives and registers itself here through a
``register(subparsers)`` function; the heavy imports happen only when it runs, so that
``wobbledetect --help`` answers at once (``import wobbledetect`` loads its names lazily). Argument
parsing and printing live in the CLI; the jobs themselves return their numbers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["main", "build_parser"]

#: Modules whose ``register(subparsers)`` adds subcommands, in help order.
SUBCOMMAND_MODULES = (
    "wobbledetect.lab.demo_cli",
    "wobbledetect.lab.reproduce_cli",
    "wobbledetect_service.cli",
    "wobbledetect.screen_cli",
    "wobbledetect.screen_model_cli",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="wobbledetect",
        description="Detect backdoor triggers in neural networks through backdoor smoothing.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"wobbledetect {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None):
    """Entry point of the ``wobbledetect`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``wobbledetect screen --json | head``): stop quietly, as
        # Unix tools do, without the traceback Python prints by default. Point stdout
        # at /dev/null so that the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a killed writer
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
