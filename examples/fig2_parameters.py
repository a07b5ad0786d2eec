"""Fig. 2: W box plots over n and over sigma on clean Fashion-MNIST test images.

Usage::

    python examples/fig2_parameters.py --quick --out out/fig2 --data-dir ../shared/data   # CI size, minutes
    python examples/fig2_parameters.py --out out/fig2 --data-dir DATA                     # full, pre-registered

Writes ``fig2.png`` and ``fig2.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.fig2`. Same as ``wobbledetect reproduce fig2``.
"""

import argparse

from wobbledetect.lab.reproduce.fig2 import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--out", default="out/fig2", help="output folder (default: out/fig2)")
    parser.add_argument("--data-dir", default=None, help="holds fashion-mnist/ (default: $WOBBLEDETECT_DATA)")
    parser.add_argument("--cache-dir", default=None, help="model cache (default: $WOBBLEDETECT_CACHE)")
    parser.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "cifar10"))
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick, data_dir=args.data_dir, cache_dir=args.cache_dir,
        dataset=args.dataset)


if __name__ == "__main__":
    main()
