"""Choose sigma with GridSearchCV over the Pipeline (W -> Levene), scored by ROC AUC.

Usage::

    python examples/select_sigma.py --quick --out out/select-sigma --data-dir ../shared/data   # CI size, minutes
    python examples/select_sigma.py --out out/select-sigma --data-dir DATA                     # full, pre-registered

Writes ``select_sigma.png`` and ``select_sigma.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.select_sigma`. Same as ``wobbledetect reproduce select-sigma``.
"""

import argparse

from wobbledetect.lab.reproduce.select_sigma import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--out", default="out/select-sigma", help="output folder (default: out/select-sigma)")
    parser.add_argument("--data-dir", default=None, help="holds fashion-mnist/ (default: $WOBBLEDETECT_DATA)")
    parser.add_argument("--cache-dir", default=None, help="model cache (default: $WOBBLEDETECT_CACHE)")
    parser.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "cifar10"))
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick, data_dir=args.data_dir, cache_dir=args.cache_dir,
        dataset=args.dataset)


if __name__ == "__main__":
    main()
