"""Where backdoor smoothing holds: AUC and median W per trigger x sigma x threat model.

Usage::

    python examples/smoothing_map.py --quick --out out/smoothing-map --data-dir ../shared/data   # CI size, minutes
    python examples/smoothing_map.py --out out/smoothing-map --data-dir DATA                     # full, pre-registered

Writes ``smoothing_map.png`` and ``smoothing_map.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.smoothing_map`. Same as ``wobbledetect reproduce smoothing-map``.
"""

import sys

from wobbledetect.lab.reproduce_cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("smoothing-map", __doc__))
