"""Fig. 4: W of clean vs active-trigger and clean vs unused-trigger batches over sigma.

Usage::

    python examples/fig4_active_vs_unused.py --quick --out out/fig4 --data-dir ../shared/data   # CI size, minutes
    python examples/fig4_active_vs_unused.py --out out/fig4 --data-dir DATA                     # full, pre-registered

Writes ``fig4.png`` and ``fig4.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.fig4`. Same as ``wobbledetect reproduce fig4``.
"""

import argparse

from wobbledetect.lab.reproduce.fig4 import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--out", default="out/fig4", help="output folder (default: out/fig4)")
    parser.add_argument("--data-dir", default=None, help="holds fashion-mnist/ (default: $WOBBLEDETECT_DATA)")
    parser.add_argument("--cache-dir", default=None, help="model cache (default: $WOBBLEDETECT_CACHE)")
    parser.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "cifar10"))
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick, data_dir=args.data_dir, cache_dir=args.cache_dir,
        dataset=args.dataset)


if __name__ == "__main__":
    main()
