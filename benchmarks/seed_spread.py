"""How much the Fig. 6 AUC moves with the noise alone, and the stopping rules' ΔAUC over seeds.

``benchmarks/sequential.py --save-counts --noise-seed S`` saves every per-block vote of
the Fig. 6 nets on the same sets with the transformer's ``random_state = S``. Given the
npz files of several seeds (same setup, threat and sigmas), this script prints, per
sigma:

- the AUC of the paper's procedure (all copies) for each seed, their standard deviation
  and range: what a re-run with other noise gives, the AUC's Monte Carlo resolution;
- for each rule -- sequential stopping at each tolerance, fewer copies for every input,
  and the split-input rule of ``replay_rule.py`` -- the saving on triggered sets and the
  ΔAUC against all copies *of the same seed* (same draws), per seed, with mean and
  standard deviation over seeds.

No forward is run. Scoring is exactly ``sequential.py``'s and ``replay_rule.py``'s
(Levene detector, "smoother" direction, each candidate against its repetition's clean
reference set).

Usage::

    for S in 1 2; do python benchmarks/sequential.py --setup fig6 --threat T1 \\
        --sigmas 0.05 0.1 0.2 0.3 --save-counts --noise-seed $S --data-dir ../shared/data \\
        --out bench-output/counts/sequential-fig6-T1-seed$S.json; done
    python benchmarks/seed_spread.py examples/results/sequential/sequential-fig6-T1-block-counts.npz \\
        bench-output/counts/sequential-fig6-T1-seed{1,2}-block-counts.npz
"""

from __future__ import annotations

import argparse

import numpy as np
from replay_rule import pinned_down_counts, score_saved_counts
from sequential import variant_counts


def rule_counts(blocks, tols=(0.05, 0.025), se_tol=0.08):
    """``name -> counts`` of every input under each rule, from per-block counts.

    The rules of ``sequential.py`` (all copies, each tolerance, fewer copies) and the
    split-input rule of ``replay_rule.py`` (``"se 0.08"``, unanimous inputs at ``tols[0]``).

    Examples
    --------
    >>> blocks = np.array([[[64, 0], [64, 0], [58, 0]], [[60, 4], [61, 3], [55, 3]]])
    >>> rule_counts(blocks, tols=(0.05,))["se 0.08"].tolist()  # SE 0.082 after 64, 0.057 after 128
    [[64, 0], [121, 7]]
    """
    counts = variant_counts(blocks, tols)
    counts[f"se {se_tol:g}"] = pinned_down_counts(blocks, tol=tols[0], se_tol=se_tol)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="+",
                        help="npz files of sequential.py --setup fig6 --save-counts, one per noise seed")
    parser.add_argument("--se-tol", type=float, default=0.08)
    args = parser.parse_args(argv)
    if len(args.counts) < 2:
        parser.error(f"counts: give the npz files of at least 2 noise seeds, got {len(args.counts)}")
    runs = [score_saved_counts(path, lambda blocks: rule_counts(blocks, se_tol=args.se_tol))
            for path in args.counts]
    sigmas = [s for s in runs[0] if all(s in run for run in runs)]
    print(f"{len(runs)} seeds: {', '.join(args.counts)}")
    for sigma in sigmas:
        full = np.array([run[sigma]["full"][0] for run in runs])
        print(f"\n{sigma}: AUC with all copies, per seed {' '.join(f'{a:.3f}' for a in full)}; "
              f"SD {full.std(ddof=1):.3f}, range {np.ptp(full):.3f}")
        print(f"{'rule':>10}{'saving (triggered)':>20}{'dAUC per seed':>28}{'mean':>9}{'SD':>7}")
        for name in runs[0][sigma]:
            if name == "full":
                continue
            delta = np.array([run[sigma][name][0] for run in runs]) - full
            saving = np.mean([run[sigma]["full"][1] / run[sigma][name][1] for run in runs])
            print(f"{name:>10}{saving:>19.1f}x{' '.join(f'{d:+.3f}' for d in delta):>28}"
                  f"{delta.mean():>+9.3f}{delta.std(ddof=1):>7.3f}")


if __name__ == "__main__":
    main()
