"""Why the direction flips: where the noisy copies of triggered inputs vote, over sigma.

A diagnostic beside the smoothing map (not a figure of the paper): the share of noisy
copies of triggered test images voted for the attacker's target and for the true class.

Usage::

    python examples/trigger_erasure.py --quick --out out/erasure --data-dir ../shared/data
    python examples/trigger_erasure.py --out out/erasure --data-dir DATA

Writes ``erasure.png`` and ``erasure.json`` to ``--out``; the design is in
:mod:`wobbledetect.lab.reproduce.erasure`. Same as ``wobbledetect reproduce erasure``.
"""

import sys

from wobbledetect.lab.reproduce_cli import example_main

if __name__ == "__main__":
    sys.exit(example_main("erasure", __doc__))
