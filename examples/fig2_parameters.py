"""Fig. 2: W box plots over n and over sigma on clean Fashion-MNIST test images.

Usage::

    python examples/fig2_parameters.py --quick --out out/fig2 --data-dir ../shared/data   # CI size, minutes
    python examples/fig2_parameters.py --out out/fig2 --data-dir DATA                     # full, pre-registered

Writes ``fig2.png`` and ``fig2.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.fig2`. Same as ``wobbledetect reproduce fig2``.
"""

import sys

from wobbledetect.lab.reproduce_cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("fig2", __doc__))
