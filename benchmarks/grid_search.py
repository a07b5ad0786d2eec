"""Wall time of a parallel sigma search: GridSearchCV(n_jobs) over the detector pipeline.

The README's quick start on the demo-sized net (the digits CNN, 1x8x8, random weights --
the cost does not depend on them; torch model, ``inference="auto"``, which picks
onnxruntime on a CPU): 12 clean and 12 triggered sets of 25 images, 4 sigmas x 3 folds,
n_samples 250. joblib's workers start with ``OMP_NUM_THREADS = cores // n_jobs``, so torch
runs on that share in each (onnxruntime's sessions keep their own default, one thread per
physical core).

Usage::

    python benchmarks/grid_search.py                 # n_jobs 2, 5 timed fits
    python benchmarks/grid_search.py --n-jobs 1 --repeats 5

Numbers vary with machine load; compare code versions back to back (ABBA), not across
hours.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed fits after the first")
    parser.add_argument("--n-samples", type=int, default=250)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")

    import torch
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline

    from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer
    from wobbledetect.lab import DigitsCNN, draw_sets, get_trigger, load_digits_images

    X, y = load_digits_images()
    torch.manual_seed(0)
    net = DigitsCNN().eval()
    pool = X[y != 0]
    clean = draw_sets(pool, 12, 25, random_state=1)
    triggered = draw_sets(pool, 12, 25, transform=get_trigger("square"), random_state=2)
    sets, labels = np.concatenate([clean, triggered]), np.r_[np.zeros(12, int), np.ones(12, int)]
    pipeline = Pipeline([
        ("wobbliness", WobblinessTransformer(net, input_shape=(1, 8, 8), n_samples=args.n_samples,
                                             random_state=0)),
        ("levene", LeveneBackdoorDetector()),
    ])
    search = GridSearchCV(pipeline, {"wobbliness__sigma": [0.1, 0.2, 0.4, 0.8]}, scoring="roc_auc",
                          n_jobs=args.n_jobs, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    times = []
    for _ in range(1 + args.repeats):  # the first fit also starts joblib's workers: not counted
        started = time.perf_counter()
        search.fit(sets, labels)
        times.append(time.perf_counter() - started)
    print(f"GridSearchCV n_jobs={args.n_jobs}, 4 sigmas x 3 folds, n_samples {args.n_samples}: "
          f"first fit (workers start) {times[0]:.1f} s; then {' '.join(f'{t:.1f}' for t in times[1:])} s, "
          f"median {np.median(times[1:]):.2f} s")


if __name__ == "__main__":
    main()
