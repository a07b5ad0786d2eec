"""Sequential sampling: forwards saved and ROC AUC with and without it, in one run.

Two setups, each scored exactly like its source, once with the paper's procedure (all
``n_samples`` copies) and once with ``sequential_tol``, the same noise seed for both:

- ``--setup demo``: the demo (digits CNN, T1 corner trigger, sets of 50: clean, active
  trigger, unused trigger -- ``wobbledetect.lab.demo.prepare_demo``), the demo's sigma
  grid; AUC of active-trigger sets vs clean + unused-trigger sets, reference = the clean
  calibration sets.
- ``--setup fig6-quick`` / ``fig6``: the Fig. 6 design (``wobbledetect.lab.reproduce.
  fig6``; quick: 1 clean + 3 backdoored nets on the 12k-image subset, or the full-mode
  nets, trained or taken from the model cache), each (reference, candidate) pair scored
  by the Levene detector; AUC of the paper's direction.

Printed per sigma: forwards per input of the triggered sets (the positives), of the
other sets, the saving factors, and both AUCs.

Usage::

    python benchmarks/sequential.py --setup demo               # about 2 minutes on 2 CPU cores
    python benchmarks/sequential.py --setup fig6-quick --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from sklearn.metrics import roc_auc_score

from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer, vote_entropy


def _wobbliness(wob, sets):
    """W and forwards per input of ``sets`` (n_sets, set_size, ...), from one vote count."""
    counts = wob.vote_counts(sets)
    W = vote_entropy(counts.reshape(-1, counts.shape[-1])).reshape(counts.shape[:2])
    return W, counts.sum(axis=-1)


def demo_rows(args):
    from wobbledetect.lab.demo import SIGMA_GRID, prepare_demo

    setup = prepare_demo(log=lambda line: print(line, flush=True))
    reference_sets = setup.X_cal[setup.names_cal == "clean"]
    rows = {}
    for sigma in SIGMA_GRID:
        row = {}
        for name, tol in (("full", None), ("sequential", args.sequential_tol)):
            wob = WobblinessTransformer(
                setup.net, sigma=sigma, n_samples=args.n_samples, sequential_tol=tol,
                input_shape=setup.X_eval.shape[2:], random_state=0,
            ).fit(setup.X_eval[:1])
            reference, _ = _wobbliness(wob, reference_sets)
            W, forwards = _wobbliness(wob, setup.X_eval)
            score = LeveneBackdoorDetector().fit(reference).decision_function(W)
            row[name] = _summary(setup.y_eval, score, forwards)
        rows[str(sigma)] = row
    return rows


def fig6_rows(args):
    from wobbledetect.lab.reproduce import fig6
    from wobbledetect.lab.reproduce._common import SET_SIZE, Experiment, sigma_key

    quick = args.setup == "fig6-quick"
    exp = Experiment("fig6", args.work_dir, quick=quick, data_dir=args.data_dir,
                     cache_dir=args.cache_dir, dataset="fashion-mnist",
                     log=lambda line: print(line, flush=True))
    threat = args.threat or ("T1" if quick else "T3")
    seeds = (0,) if quick else (0, 1, 2)
    repetitions = 2 if quick else 5
    configs = [exp.net_config(None, None, s) for s in seeds] + [
        exp.net_config(threat, t, s) for t in ("square", "checker2", "checker") for s in seeds]
    sets = fig6._draw_sets(exp.data, repetitions, np.random.RandomState(0))
    n_candidates = len(sets) // repetitions - 1
    candidates = ["clean", *fig6.CANDIDATE_TRIGGERS]
    rows = {}
    models = {config.label: exp.net(config) for config in configs}
    for sigma in exp.sigmas:
        row = {}
        for name, tol in (("full", None), ("sequential", args.sequential_tol)):
            labels, scores, forwards = [], [], []
            for config in configs:
                wob = WobblinessTransformer(
                    models[config.label], sigma=sigma, n_samples=exp.n_samples,
                    sequential_tol=tol, input_shape=exp.data.input_shape, random_state=0,
                ).fit(exp.data.X_test[:2])
                W, f = _wobbliness(wob, sets)
                W = W.reshape(repetitions, 1 + n_candidates, SET_SIZE)
                f = f.reshape(repetitions, 1 + n_candidates, SET_SIZE)
                scores.append(fig6._scores(W, "smoother"))
                forwards.append(f[:, 1:].reshape(-1, SET_SIZE))
                labels += [int(config.trigger == c) for _ in range(repetitions) for c in candidates]
            row[name] = _summary(np.array(labels), np.concatenate(scores), np.concatenate(forwards))
        rows[sigma_key(sigma)] = row
    return rows


def _summary(y, score, forwards):
    """AUC, and forwards per input of the positive (triggered) and the other sets."""
    y = np.asarray(y)
    return {
        "auc": float(roc_auc_score(y, score)),
        "forwards_per_input_triggered": float(forwards[y == 1].mean()),
        "forwards_per_input_other": float(forwards[y == 0].mean()),
        "forwards_total": int(forwards.sum()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=("demo", "fig6-quick", "fig6"), default="demo")
    parser.add_argument("--sequential-tol", type=float, default=0.05)
    parser.add_argument("--n-samples", type=int, default=250, help="demo only (Fig. 6 uses its own)")
    parser.add_argument("--threat", choices=("T1", "T3"), default=None,
                        help="fig6 setups (default: T1 quick, T3 full)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--work-dir", default="bench-output/sequential-work")
    parser.add_argument("--out", default=None, help="default: bench-output/sequential-<setup>.json")
    args = parser.parse_args(argv)
    rows = demo_rows(args) if args.setup == "demo" else fig6_rows(args)

    print(f"\n{args.setup}: sequential_tol {args.sequential_tol}; forwards per input, "
          "full -> sequential (saving)")
    print(f"{'sigma':>6}{'triggered sets':>28}{'other sets':>28}{'AUC full':>10}{'AUC seq':>9}{'dAUC':>8}")
    for sigma, row in rows.items():
        full, seq = row["full"], row["sequential"]
        cells = "".join(
            f"{full[k]:>15.0f} -> {seq[k]:>4.0f} ({full[k] / seq[k]:>3.1f}x)"
            for k in ("forwards_per_input_triggered", "forwards_per_input_other")
        )
        print(f"{sigma:>6}{cells}{full['auc']:>10.3f}{seq['auc']:>9.3f}{seq['auc'] - full['auc']:>+8.3f}")
    out = args.out or f"bench-output/sequential-{args.setup}.json"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as handle:
        json.dump({"setup": args.setup, "sequential_tol": args.sequential_tol, "by_sigma": rows},
                  handle, indent=2)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
