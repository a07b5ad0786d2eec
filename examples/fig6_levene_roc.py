"""Fig. 6: ROC of the Levene detector over 3 clean + 9 backdoored nets, T3 and T1.

Usage::

    python examples/fig6_levene_roc.py --quick --out out/fig6 --data-dir ../shared/data   # CI size, minutes
    python examples/fig6_levene_roc.py --out out/fig6 --data-dir DATA                     # full, pre-registered

Writes ``fig6.png`` and ``fig6.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.fig6`. Same as ``wobbledetect reproduce fig6``.
"""

import sys

from wobbledetect.lab.reproduce_cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("fig6", __doc__))
