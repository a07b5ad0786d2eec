"""Sequential sampling: forwards saved and ROC AUC with and without it, in one run.

On the demo's setup (digits CNN, T1 corner trigger, sets of 50: clean, active trigger,
unused trigger -- ``wobbledetect.lab.demo.prepare_demo``), for every sigma of the demo's
grid (fixed in advance, not chosen here): W of the evaluation sets with the paper's
procedure (all ``n_samples`` copies) and with ``sequential_tol``; the forwards each
spends per group, the saving factor, and the Levene detector's ROC AUC (active trigger
vs clean + unused-trigger sets, reference = the clean calibration sets, the demo's
protocol) for both.

Usage::

    python benchmarks/sequential.py                       # about 2 minutes on 2 CPU cores
    python benchmarks/sequential.py --sequential-tol 0.03
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from sklearn.metrics import roc_auc_score

from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer, vote_entropy
from wobbledetect.lab.demo import GROUPS, SIGMA_GRID, prepare_demo


def measure(setup, sigma, n_samples, sequential_tol, random_state=0):
    wob = WobblinessTransformer(
        setup.net, sigma=sigma, n_samples=n_samples, sequential_tol=sequential_tol,
        input_shape=setup.X_eval.shape[2:], random_state=random_state,
    ).fit(setup.X_eval[:1])

    def wobbliness(sets):
        counts = wob.vote_counts(sets)  # (n_sets, set_size, n_classes)
        W = vote_entropy(counts.reshape(-1, counts.shape[-1])).reshape(counts.shape[:2])
        return W, counts.sum(axis=-1)

    reference, reference_forwards = wobbliness(setup.X_cal[setup.names_cal == "clean"])
    W, forwards = wobbliness(setup.X_eval)
    detector = LeveneBackdoorDetector().fit(reference)
    auc = roc_auc_score(setup.y_eval, detector.decision_function(W))
    return {
        "auc": float(auc),
        "forwards_per_input": {g: float(forwards[setup.names_eval == g].mean()) for g in GROUPS},
        "forwards_total": int(forwards.sum() + reference_forwards.sum()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential-tol", type=float, default=0.05)
    parser.add_argument("--n-samples", type=int, default=250)
    parser.add_argument("--out", default="bench-output/sequential.json")
    args = parser.parse_args(argv)
    setup = prepare_demo(log=lambda line: print(line, flush=True))
    rows = {}
    print(f"\nn_samples {args.n_samples}, sequential_tol {args.sequential_tol}; "
          "forwards per input (full -> sequential, saving)")
    print(f"{'sigma':>6} " + "".join(f"{g:>30}" for g in GROUPS) + f"{'AUC full':>10}{'AUC seq':>9}{'dAUC':>8}")
    for sigma in SIGMA_GRID:
        full = measure(setup, sigma, args.n_samples, None)
        seq = measure(setup, sigma, args.n_samples, args.sequential_tol)
        rows[str(sigma)] = {"full": full, "sequential": seq}
        cells = "".join(
            f"{full['forwards_per_input'][g]:>13.0f} -> {seq['forwards_per_input'][g]:>5.0f} "
            f"({full['forwards_per_input'][g] / seq['forwards_per_input'][g]:>4.1f}x)"
            for g in GROUPS
        )
        print(f"{sigma:>6} {cells}{full['auc']:>10.3f}{seq['auc']:>9.3f}{seq['auc'] - full['auc']:>+8.3f}")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"sequential_tol": args.sequential_tol, "n_samples": args.n_samples,
                   "by_sigma": rows}, handle, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
