"""``wobbledetect reproduce``: the paper's figures on real data (see :mod:`.reproduce`)."""

from __future__ import annotations

import sys

__all__ = ["register"]

#: The figures the subcommand runs (names of :data:`wobbledetect.lab.reproduce.FIGURES`).
CHOICES = ("fig2", "fig4", "fig5", "fig6", "fig6-scoring", "smoothing-map", "select-sigma", "erasure",
           "training-dynamics", "set-size", "set-size-zoo", "cross-trigger", "fig7", "nc-candidates",
           "screen-zoo", "detectors", "mixed-batches", "attacks")


def _log(line):
    print(line, flush=True)


#: Options that only some figures take: option -> (its run() parameter, the figures).
FIGURE_OPTIONS = {
    "--trigger-set": ("trigger_set", ("fig6", "cross-trigger")),
    "--dynamics-json": ("dynamics_json", ("set-size",)),
    "--snapshots": ("snapshots", ("fig6",)),
    "--scheduler": ("scheduler", ("fig6", "set-size-zoo", "detectors", "attacks", "fig7", "nc-candidates")),
}


def _run(args):
    from .reproduce import run_figure

    extra = {"epochs": args.epochs} if args.epochs is not None else {}
    dataset = args.dataset or ("digits" if args.figure == "screen-zoo" else "fashion-mnist")
    if dataset == "digits" and args.figure != "screen-zoo":
        print(f"wobbledetect reproduce: --dataset digits is for screen-zoo only (the paper's "
              f"figures need Fashion-MNIST or CIFAR-10), not for {args.figure}.", file=sys.stderr)
        return 2
    for option, (name, figures) in FIGURE_OPTIONS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if args.figure not in figures:
            print(f"wobbledetect reproduce: {option} is an option of {', '.join(figures)} only, "
                  f"not of {args.figure}; leave it out.", file=sys.stderr)
            return 2
        extra[name] = value
    try:
        results = run_figure(
            args.figure, args.out, quick=args.quick, data_dir=args.data_dir,
            cache_dir=args.cache_dir, dataset=dataset, download=args.download, log=_log,
            **extra,
        )
    except FileNotFoundError as exc:
        print(f"wobbledetect reproduce: {exc}", file=sys.stderr)
        return 2
    if "auc" in results:
        print(f"auc: {results['auc']}", flush=True)
    return 0


def _scheduler(text):
    """``--scheduler``: a Dask scheduler's address, or ``local:N`` for N local worker processes."""
    import argparse

    if text.startswith("local:"):
        return _positive_int(text[len("local:"):])
    if "://" not in text:
        raise argparse.ArgumentTypeError(
            f"must be a scheduler address such as tcp://10.0.0.1:8786, or local:N; got {text!r}")
    return text


def _positive_int(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _add_options(parser):
    """The options shared by ``wobbledetect reproduce`` and the scripts in examples/."""
    parser.add_argument("--quick", action="store_true",
                        help="small training subset, fewer nets, sigmas and repetitions")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding fashion-mnist/ (the four original .gz files) or "
                        "cifar10/ (default: $WOBBLEDETECT_DATA)")
    parser.add_argument("--cache-dir", default=None,
                        help="trained nets and decompressed data (default: $WOBBLEDETECT_CACHE, "
                        "else ~/.cache/wobbledetect)")
    parser.add_argument("--dataset", choices=("fashion-mnist", "cifar10", "digits"), default=None,
                        help="default: fashion-mnist (screen-zoo: digits); digits is for "
                        "screen-zoo only")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="training epochs of every net (default: the figure's pre-registered "
                        "4 on Fashion-MNIST; quick mode 2); part of each net's cache key")
    parser.add_argument("--download", action="store_true",
                        help="let torchvision download missing data into the cache folder")


def register(subparsers):
    """Add the ``reproduce`` subcommand."""
    parser = subparsers.add_parser(
        "reproduce",
        help="reproduce a figure of the paper on real data; writes a PNG and a JSON",
        description="Train (or reuse from the cache) backdoored reference nets on real data "
        "and reproduce one figure of the paper: fig2 (W over n and sigma), fig4 (clean vs "
        "active and unused trigger), fig5 (mean W vs backdoor accuracy, T2), fig6 (Levene "
        "ROC over 3 clean + 9 backdoored nets, T3 and T1), smoothing-map (where backdoor "
        "smoothing holds: trigger x sigma x threat model), select-sigma (GridSearchCV), "
        "erasure (why the direction flips: where triggered inputs' noisy copies vote), "
        "fig6-scoring (a finished fig6 re-scored pooled / within each net / normalised per "
        "net), training-dynamics (W over training epochs), set-size (the AUC for sets of 25 "
        "to 250), cross-trigger (which triggers fire on each other's nets), fig7 (universal "
        "adversarial perturbations in place of triggers; needs the [uap] extra), nc-candidates "
        "(Neural Cleanse's per-class candidates and their W), screen-zoo "
        "(ModelScreen's verdict over clean and backdoored nets; --dataset digits or "
        "fashion-mnist), detectors (W beside STRIP, per input and per set, false-positive "
        "rates before and after conformal calibration), mixed-batches (a finished detectors "
        "run re-scored on batches with k triggered inputs), attacks (the AUC against fewer poisons, "
        "fainter blends and SAM training). "
        "Full mode trains many nets (hours on a CPU); --quick is the CI-sized run.",
    )
    parser.add_argument("figure", choices=CHOICES, help="which figure")
    parser.add_argument("--out", required=True, help="output folder for <figure>.png and .json")
    _add_options(parser)
    parser.add_argument("--trigger-set", choices=("fig3", "separated"), default=None,
                        help="fig6 and cross-trigger: the paper's Fig. 3 patches (default) or the "
                        "separated set, four patches in four corners")
    parser.add_argument("--dynamics-json", default=None,
                        help="set-size: a training_dynamics.json of the same nets, to report the "
                        "AUC at each net's best sigma there")
    parser.add_argument("--snapshots", type=_epoch_list, default=None, metavar="E[,E...]",
                        help="fig6: while training a net, also cache it after these epochs "
                        "(below --epochs), so that the shorter run finds its nets trained")
    parser.add_argument("--scheduler", type=_scheduler, default=None, metavar="ADDRESS|local:N",
                        help="fig6, set-size-zoo, detectors, attacks, fig7, nc-candidates: run each net as a "
                        "Dask task, on the scheduler at ADDRESS "
                        "(tcp://host:8786) or on N local worker processes; same results as "
                        "the serial run (needs the [dask] extra)")
    parser.set_defaults(func=_run)


def _epoch_list(text):
    import argparse

    try:
        return tuple(_positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be positive integers separated by commas, like 4 or 4,8; got {text!r}") from None


def example_main(figure, description, argv=None):
    """``main`` of the script in examples/ for ``figure``: the CLI's options, same run.

    Parameters
    ----------
    figure : str
        One of :data:`CHOICES`.
    description : str
        The script's docstring (its first line is the help text).
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.
    """
    import argparse

    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--out", default=f"out/{figure}", help=f"output folder (default: out/{figure})")
    _add_options(parser)
    args = parser.parse_args(argv)
    args.figure = figure
    return _run(args)
