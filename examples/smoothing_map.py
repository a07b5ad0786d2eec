"""Where backdoor smoothing holds: AUC and median W per trigger x sigma x threat model.

Usage::

    python examples/smoothing_map.py --quick --out out/smoothing-map --data-dir ../shared/data   # CI size, minutes
    python examples/smoothing_map.py --out out/smoothing-map --data-dir DATA                     # full, pre-registered

Writes ``smoothing_map.png`` and ``smoothing_map.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.smoothing_map`. Same as ``wobbledetect reproduce smoothing-map``.
"""

import argparse

from wobbledetect.lab.reproduce.smoothing_map import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--out", default="out/smoothing-map", help="output folder (default: out/smoothing-map)")
    parser.add_argument("--data-dir", default=None, help="holds fashion-mnist/ (default: $WOBBLEDETECT_DATA)")
    parser.add_argument("--cache-dir", default=None, help="model cache (default: $WOBBLEDETECT_CACHE)")
    parser.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "cifar10"))
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick, data_dir=args.data_dir, cache_dir=args.cache_dir,
        dataset=args.dataset)


if __name__ == "__main__":
    main()
