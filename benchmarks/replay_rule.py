"""Replay a stopping rule that also stops *split* inputs, on saved per-block Fig. 6 counts.

The library's sequential sampling stops only unanimous inputs. This script tests, offline,
a rule that also stops an input whose votes are split once its W is pinned down: at each
block boundary before the last (m = 64, 128, 192 copies), an input stops if

- it is unanimous and ``1 - 0.05**(1/m) <= --tol`` (the library's rule), or
- it is split and the delta-method standard error of its plug-in W,
  ``sqrt((sum_k p_k log^2 p_k - W^2) / m)``, is at most ``--se-tol`` nats.

It reads the npz that ``benchmarks/sequential.py --setup fig6 --save-counts`` writes (the
votes of every block of every input of every net), scores each (reference, candidate) pair
with the Levene detector ("smoother") exactly like that benchmark, and prints per sigma
the AUC with all copies and with the rule, and forwards per input of triggered and other
sets. No forward is run. The rule and ``--se-tol 0.08`` were fixed on the demo and
written down before the Fig. 6 counts were looked at (docs/performance.md).

Usage::

    python benchmarks/sequential.py --setup fig6 --threat T1 --sigmas 0.05 0.1 0.2 0.3 \\
        --save-counts --data-dir ../shared/data --out bench-output/counts/sequential-fig6-T1.json
    python benchmarks/replay_rule.py bench-output/counts/sequential-fig6-T1-block-counts.npz
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from wobbledetect import vote_entropy
from wobbledetect._sequential import counts_until_stop, minority_bound
from wobbledetect.lab.reproduce._common import reference_scores


def pinned_down_counts(block_counts, *, tol=0.05, se_tol=0.08):
    """The counts of each input up to the block where the rule stops it.

    Parameters
    ----------
    block_counts : ndarray of shape (..., n_blocks, n_classes)
        Per-block votes of a full run.
    tol : float
        Minority-mass bound for unanimous inputs (the library's ``sequential_tol``).
    se_tol : float
        Largest standard error of W (nats) at which a split input stops.

    Returns
    -------
    ndarray of shape (..., n_classes)

    Examples
    --------
    >>> import numpy as np
    >>> blocks = np.array([[[64, 0, 0], [64, 0, 0], [58, 0, 0]],  # unanimous: stops after 64
    ...                    [[32, 32, 0], [32, 32, 0], [29, 29, 0]],  # even split: SE 0, stops
    ...                    [[63, 1, 0], [64, 0, 0], [58, 0, 0]],  # one minority vote: SE 0.065
    ...                    [[56, 4, 4], [56, 4, 4], [51, 4, 3]]])  # SE 0.109 after 64, 0.077 after 128
    >>> pinned_down_counts(blocks).tolist()
    [[64, 0, 0], [32, 32, 0], [63, 1, 0], [112, 8, 8]]

    The third input shows the weak spot of the delta method: one minority vote in 64
    copies gives a small standard error, although W is then known only roughly.
    """
    cumulative = np.cumsum(block_counts, axis=-2)
    m = cumulative.sum(axis=-1)
    p = cumulative / m[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(p > 0, np.log(p), 0.0)
    W = -(p * log_p).sum(axis=-1)
    se = np.sqrt(np.maximum((p * log_p**2).sum(axis=-1) - W**2, 0.0) / m)
    unanimous = cumulative.max(axis=-1) == m
    return counts_until_stop(cumulative, np.where(unanimous, minority_bound(m) <= tol, se <= se_tol))


def score_saved_counts(path, rules):
    """Score every rule on the saved per-block counts of a Fig. 6 run.

    Parameters
    ----------
    path : str
        npz of ``benchmarks/sequential.py --setup fig6 --save-counts``.
    rules : callable
        ``rules(block_counts) -> {name: counts}``: each rule's counts of every input.

    Returns
    -------
    dict
        ``sigma -> name -> (AUC, forwards per input of triggered sets, of the others)``,
        each candidate scored against its repetition's clean reference ("smoother").
    """
    saved = np.load(path)
    labels = {key.split("/", 1)[1]: saved[key] for key in saved if key.startswith("labels/")}
    if not labels:
        raise SystemExit(f"{path}: no 'labels/...' arrays; give the npz of a Fig. 6 run of "
                         "benchmarks/sequential.py --save-counts")
    sigmas = sorted({key.split("/")[0] for key in saved if key.startswith("sigma=")},
                    key=lambda s: float(s.split("=")[1]))
    out = {}
    for sigma in sigmas:
        per_rule = {}
        for net, net_labels in labels.items():
            blocks = saved[f"{sigma}/{net}"].astype(np.int64)  # (rep, set, input, block, class)
            for name, counts in rules(blocks).items():
                W = vote_entropy(counts.reshape(-1, counts.shape[-1])).reshape(counts.shape[:-1])
                y, scores, forwards = per_rule.setdefault(name, ([], [], []))
                y.append(net_labels[:, 1:].ravel())  # set 0 of each repetition is the reference
                scores.append(reference_scores(W, "smoother"))
                forwards.append(counts.sum(axis=-1)[:, 1:].reshape(-1, counts.shape[2]).mean(axis=1))
        out[sigma] = {}
        for name, parts in per_rule.items():
            y, scores, forwards = map(np.concatenate, parts)
            out[sigma][name] = (roc_auc_score(y, scores), forwards[y == 1].mean(), forwards[y == 0].mean())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="+", help="npz files of sequential.py --save-counts (Fig. 6)")
    parser.add_argument("--tol", type=float, default=0.05)
    parser.add_argument("--se-tol", type=float, default=0.08)
    args = parser.parse_args(argv)

    def rules(blocks):
        return {"full": blocks.sum(axis=-2),
                "rule": pinned_down_counts(blocks, tol=args.tol, se_tol=args.se_tol)}

    for path in args.counts:
        print(f"{path}: tol {args.tol}, se-tol {args.se_tol}")
        for sigma, result in score_saved_counts(path, rules).items():
            (auc, trig, other), (auc_r, trig_r, other_r) = result["full"], result["rule"]
            print(f"  {sigma}: AUC {auc:.3f} -> {auc_r:.3f} ({auc_r - auc:+.3f}); forwards per input, "
                  f"triggered {trig:.0f} -> {trig_r:.0f} ({trig / trig_r:.1f}x), "
                  f"other {other:.0f} -> {other_r:.0f} ({other / other_r:.1f}x)")


if __name__ == "__main__":
    main()
