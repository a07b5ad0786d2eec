"""Fig. 4: W of clean vs active-trigger and clean vs unused-trigger batches over sigma.

Usage::

    python examples/fig4_active_vs_unused.py --quick --out out/fig4 --data-dir ../shared/data   # CI size, minutes
    python examples/fig4_active_vs_unused.py --out out/fig4 --data-dir DATA                     # full, pre-registered

Writes ``fig4.png`` and ``fig4.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.fig4`. Same as ``wobbledetect reproduce fig4``.
"""

import sys

from wobbledetect.lab.reproduce_cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("fig4", __doc__))
