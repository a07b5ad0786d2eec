"""Fig. 5: mean W of triggered sets vs backdoor accuracy (T2), Kendall tau and Pearson r.

Usage::

    python examples/fig5_accuracy_vs_w.py --quick --out out/fig5 --data-dir ../shared/data   # CI size, minutes
    python examples/fig5_accuracy_vs_w.py --out out/fig5 --data-dir DATA                     # full, pre-registered

Writes ``fig5.png`` and ``fig5.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.fig5`. Same as ``wobbledetect reproduce fig5``.
"""

import sys

from wobbledetect.lab.reproduce_cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("fig5", __doc__))
