"""Choose sigma with GridSearchCV over the Pipeline (W -> Levene), scored by ROC AUC.

Usage::

    python examples/select_sigma.py --quick --out out/select-sigma --data-dir ../shared/data   # CI size, minutes
    python examples/select_sigma.py --out out/select-sigma --data-dir DATA                     # full, pre-registered

Writes ``select_sigma.png`` and ``select_sigma.json`` to ``--out``; the design and its cost are in
:mod:`wobbledetect.lab.reproduce.select_sigma`. Same as ``wobbledetect reproduce select-sigma``.
"""

import sys

from wobbledetect.lab.reproduce_cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("select-sigma", __doc__))
