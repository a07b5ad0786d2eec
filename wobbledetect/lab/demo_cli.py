"""``wobbledetect demo``: the main job on embedded data (see :mod:`.demo`)."""

from __future__ import annotations

__all__ = ["register"]


def _run(args):
    from .demo import run_demo

    run_demo(args.out, n_jobs=args.n_jobs, random_state=args.seed)
    return 0


def register(subparsers):
    """Add the ``demo`` subcommand."""
    demo = subparsers.add_parser(
        "demo",
        help="backdoor a digits CNN (T1) and detect its trigger; writes PNGs and JSON",
        description="Train a small CNN on scikit-learn's digits with a T1 corner-trigger "
        "backdoor, compute W on clean, triggered and unused-trigger sets, select sigma with "
        "GridSearchCV, and report the Levene detector's ROC AUC on fresh sets.",
    )
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--n-jobs", type=int, default=1, help="GridSearchCV workers (default: 1)")
    demo.set_defaults(func=_run)
