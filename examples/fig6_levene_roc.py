"""Fig. 6: ROC of the Levene detector over 3 clean + 9 backdoored nets, T3 and T1.

Usage::

    python examples/fig6_levene_roc.py --quick --out out/fig6 --data-dir ../shared/data   # CI size, minutes
    python examples/fig6_levene_roc.py --out out/fig6 --data-dir DATA                     # full, pre-registered

Writes ``fig6.png`` and ``fig6.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.fig6`. Same as ``wobbledetect reproduce fig6``.
"""

import argparse

from wobbledetect.lab.reproduce.fig6 import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--out", default="out/fig6", help="output folder (default: out/fig6)")
    parser.add_argument("--data-dir", default=None, help="holds fashion-mnist/ (default: $WOBBLEDETECT_DATA)")
    parser.add_argument("--cache-dir", default=None, help="model cache (default: $WOBBLEDETECT_CACHE)")
    parser.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "cifar10"))
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick, data_dir=args.data_dir, cache_dir=args.cache_dir,
        dataset=args.dataset)


if __name__ == "__main__":
    main()
