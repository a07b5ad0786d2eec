"""How small may a set be for the Levene test to mean anything? (``MIN_SET_SIZE``)

Draws pairs of sets of equal size ``k`` from the *same* distribution, so every rejection
is a false positive, tests them the way :class:`wobbledetect.LeveneBackdoorDetector`
does (Levene with its default ``center="mean"``, or ``--center median``, with and
without eq. (4)'s outlier removal), and
prints, per ``k``, the share rejected at alpha = 0.05 and the share with p < 1e-6. A
calibrated test rejects about 5% and almost never gives p < 1e-6. A second table tests
sets of size ``k`` against a reference of 50 values, the detector's usual situation.

Usage::

    python benchmarks/min_set_size.py [--center mean|median] [--repetitions 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import scipy.stats

from wobbledetect import outlier_mask

SIZES = (2, 3, 4, 5, 6, 8, 10, 25)


def rejection_rates(k, n_reference, *, repetitions, rng, remove_outliers, center="mean",
                    alpha=0.05):
    """Share of equal-variance pairs with p < alpha, and with p < 1e-6.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rejection_rates(2, 2, repetitions=50, rng=rng, remove_outliers=False)
    (1.0, 1.0)
    """
    rejected = tiny = 0
    for _ in range(repetitions):
        reference, candidate = rng.normal(size=n_reference), rng.normal(size=k)
        if remove_outliers:
            reference = reference[~outlier_mask(reference)]
            candidate = candidate[~outlier_mask(candidate)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = scipy.stats.levene(reference, candidate, center=center).pvalue
        rejected += p < alpha
        tiny += p < 1e-6
    return float(rejected / repetitions), float(tiny / repetitions)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--center", choices=["mean", "median"], default="mean")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    for title, same_size in (("k against k", True), ("k against a reference of 50", False)):
        print(f"{title}, center={args.center}: share with p < 0.05 / share with p < 1e-6 "
              f"({args.repetitions} pairs of N(0, 1) sets each)")
        print(f"{'k':>4}  {'no outlier removal':>20}  {'eq. (4) outlier removal':>24}")
        for k in SIZES:
            cells = [
                rejection_rates(k, k if same_size else 50, repetitions=args.repetitions,
                                rng=rng, remove_outliers=remove, center=args.center)
                for remove in (False, True)
            ]
            print(f"{k:>4}  " + "  ".join(f"{a:>10.3f} / {b:<9.3f}" for a, b in cells))
        print()


if __name__ == "__main__":
    main()
