"""Sequential sampling: forwards saved and ROC AUC with and without it, in one run.

Two setups, each scored exactly like its source, with the paper's procedure (all
``n_samples`` copies) and with sequential stopping at each of several tolerances:

- ``--setup demo``: the demo (digits CNN, T1 corner trigger, sets of 50: clean, active
  trigger, unused trigger -- ``wobbledetect.lab.demo.prepare_demo``), the demo's sigma
  grid; AUC of active-trigger sets vs clean + unused-trigger sets, reference = the clean
  calibration sets.
- ``--setup fig6-quick`` / ``fig6``: the Fig. 6 design (``wobbledetect.lab.reproduce.
  fig6``; quick: 1 clean + 3 backdoored nets on the 12k-image subset, or the full-mode
  nets, trained or taken from the model cache), each (reference, candidate) pair scored
  by the Levene detector; AUC of the paper's direction.

The votes are counted once per (net, sigma), per noise block of 64 copies
(``vote_counts(per_block=True)``). Noise is keyed by (input, block), so the counts that
sequential stopping would give for a tolerance are the first blocks of each input up to
where the rule stops it (``wobbledetect.replay_sequential``) -- the same numbers as a
run with ``sequential_tol`` (tests/test_inference.py checks that they are identical),
for every tolerance from one set of forwards. Stopping is decided after blocks of 64, so
with n = 250 the tolerances that differ are those whose bound is first met after 64
copies (``> 0.0457``), 128 (``> 0.0231``) and 192 (``> 0.0155``): the default
``--tols 0.05 0.025 0.016``.

Printed per sigma and rule: forwards per input of the triggered sets (the positives),
of the other sets, the saving factors, both AUCs, and the share of triggered and of
other sets whose W has an interquartile range of 0 (the paper's 1.5 IQR rule then drops
every non-zero W of the set). Besides each tolerance, the rules
include plain fewer copies (``n=64``, ``n=128``, ``n=192``: every input's first blocks,
the same draws as a run with that ``n_samples``), the baseline sequential stopping has to
beat at equal cost.

``--save-counts`` also writes every per-block count (and the labels) to an npz beside
the JSON, so that any other stopping rule can be replayed offline without drawing again.
``--noise-seed S`` draws other noise (the transformer's ``random_state``; nets and sets
unchanged): ``benchmarks/seed_spread.py`` compares the npz of several seeds.

Usage::

    python benchmarks/sequential.py --setup demo               # about 15 s on 2 CPU cores
    python benchmarks/sequential.py --setup fig6 --threat T1 --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from sklearn.metrics import roc_auc_score

from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer, replay_sequential, vote_entropy


def _block_counts(model, sigma, n_samples, input_shape, sets, noise_seed=0):
    """Per-block votes of ``sets`` (n_sets, set_size, ...) with all copies."""
    wob = WobblinessTransformer(model, sigma=sigma, n_samples=n_samples,
                                input_shape=input_shape, random_state=noise_seed).fit(sets[0][:1])
    return wob.vote_counts(sets, per_block=True)


def variant_counts(block_counts, tols):
    """``name -> counts``: the full run, each tolerance, and fewer copies.

    ``"n=64"``, ``"n=128"``, ...: every input with only its first blocks -- the same draws
    as a run with that ``n_samples`` (blocks are nested) -- the baseline that sequential
    stopping has to beat at equal cost.

    Examples
    --------
    >>> blocks = np.array([[[64, 0], [64, 0], [58, 0]], [[60, 4], [61, 3], [55, 3]]])
    >>> {name: c.tolist() for name, c in variant_counts(blocks, [0.05]).items()}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'full': [[186, 0], [176, 10]], 'tol 0.05': [[64, 0], [176, 10]],
     'n=64': [[64, 0], [60, 4]], 'n=128': [[128, 0], [121, 7]]}
    """
    counts = {"full": block_counts.sum(axis=-2)}
    for tol in tols:
        counts[f"tol {tol:g}"] = replay_sequential(block_counts, tol)
    cumulative = np.cumsum(block_counts, axis=-2)
    copies = cumulative.sum(axis=-1).reshape(-1, cumulative.shape[-2])[0]  # after each block
    for b in range(block_counts.shape[-2] - 1):
        counts[f"n={copies[b]}"] = cumulative[..., b, :]
    return counts


def _variants(block_counts, tols):
    """``name -> (W, forwards per input)`` of each of :func:`variant_counts`."""
    out = {}
    for name, c in variant_counts(block_counts, tols).items():
        W = vote_entropy(c.reshape(-1, c.shape[-1])).reshape(c.shape[:-1])
        out[name] = (W, c.sum(axis=-1))
    return out


def demo_rows(args, saved):
    from wobbledetect.lab.demo import SIGMA_GRID, prepare_demo

    setup = prepare_demo(log=lambda line: print(line, flush=True))
    reference_sets = setup.X_cal[setup.names_cal == "clean"]
    shape = setup.X_eval.shape[2:]
    rows = {}
    saved["evaluation_labels"] = np.asarray(setup.y_eval)
    for sigma in args.sigmas or SIGMA_GRID:
        n_samples = args.n_samples or 250
        reference_blocks = _block_counts(setup.net, sigma, n_samples, shape, reference_sets, args.noise_seed)
        evaluation_blocks = _block_counts(setup.net, sigma, n_samples, shape, setup.X_eval, args.noise_seed)
        saved[f"sigma={sigma}/reference"] = reference_blocks
        saved[f"sigma={sigma}/evaluation"] = evaluation_blocks
        reference = _variants(reference_blocks, args.tols)
        evaluation = _variants(evaluation_blocks, args.tols)
        row = {}
        for name, (W, forwards) in evaluation.items():
            score = LeveneBackdoorDetector().fit(reference[name][0]).decision_function(W)
            row[name] = _summary(setup.y_eval, score, forwards, W)
        rows[str(sigma)] = row
        _print_sigma(str(sigma), row)
    return rows


def fig6_rows(args, saved):
    from wobbledetect.lab.reproduce import fig6
    from wobbledetect.lab.reproduce._common import SET_SIZE, Experiment, reference_scores, sigma_key

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
    sets = np.stack(sets)
    n_candidates = len(sets) // repetitions - 1
    candidates = ["clean", *fig6.CANDIDATE_TRIGGERS]
    # Per net, (repetition, set): 1 where the candidate is the net's trigger; set 0 is the
    # reference (saved count arrays: (repetition, set, input, block, class)).
    net_labels = {
        config.label: np.array([[0] + [int(config.trigger == c) for c in candidates]] * repetitions)
        for config in configs
    }
    labels = np.concatenate([l[:, 1:].ravel() for l in net_labels.values()])
    saved.update({f"labels/{name}": l for name, l in net_labels.items()})
    models = {config.label: exp.net(config) for config in configs}
    rows = {}
    for sigma in args.sigmas or exp.sigmas:
        per_variant = {}
        for config in configs:
            blocks = _block_counts(models[config.label], sigma, args.n_samples or exp.n_samples,
                                   exp.data.input_shape, sets, args.noise_seed)
            saved[f"sigma={sigma}/{config.label}"] = blocks.reshape(
                repetitions, 1 + n_candidates, *blocks.shape[1:])
            for name, (W, f) in _variants(blocks, args.tols).items():
                W = W.reshape(repetitions, 1 + n_candidates, SET_SIZE)
                f = f.reshape(repetitions, 1 + n_candidates, SET_SIZE)
                scores, forwards, candidate_W = per_variant.setdefault(name, ([], [], []))
                scores.append(reference_scores(W, "smoother"))
                forwards.append(f[:, 1:].reshape(-1, SET_SIZE))
                candidate_W.append(W[:, 1:].reshape(-1, SET_SIZE))
        row = {name: _summary(labels, *map(np.concatenate, values)) for name, values in per_variant.items()}
        rows[sigma_key(sigma)] = row
        _print_sigma(sigma_key(sigma), row)
    return rows


def _summary(y, score, forwards, W):
    """AUC, forwards per input of the positive (triggered) and the other sets, and the
    share of sets whose W has an interquartile range of 0 (three quarters or more of the
    inputs unanimous): there the 1.5 IQR rule drops every non-zero W."""
    y = np.asarray(y)
    q25, q75 = np.percentile(W, [25, 75], axis=1)
    iqr_zero = q75 == q25
    return {
        "auc": float(roc_auc_score(y, score)),
        "forwards_per_input_triggered": float(forwards[y == 1].mean()),
        "forwards_per_input_other": float(forwards[y == 0].mean()),
        "forwards_total": int(forwards.sum()),
        "share_iqr_zero_triggered": float(iqr_zero[y == 1].mean()),
        "share_iqr_zero_other": float(iqr_zero[y == 0].mean()),
    }


def _print_sigma(sigma, row):
    """One line per tolerance: forwards per input full -> sequential (saving), AUCs."""
    full = row["full"]
    print(f"{'sigma':>6}{'rule':>11}{'triggered sets':>24}{'other sets':>24}"
          f"{'AUC full':>10}{'AUC seq':>9}{'dAUC':>8}{'IQR 0 (trig/other)':>20}", flush=True)
    for name, seq in row.items():
        cells = "".join(
            f"{full[k]:>11.0f} -> {seq[k]:>4.0f} ({full[k] / seq[k]:>3.1f}x)"
            for k in ("forwards_per_input_triggered", "forwards_per_input_other")
        )
        print(f"{sigma:>6}{name:>11}{cells}{full['auc']:>10.3f}{seq['auc']:>9.3f}"
              f"{seq['auc'] - full['auc']:>+8.3f}"
              f"{seq['share_iqr_zero_triggered']:>14.2f} / {seq['share_iqr_zero_other']:.2f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=("demo", "fig6-quick", "fig6"), default="demo")
    parser.add_argument("--tols", type=float, nargs="+", default=[0.05, 0.025, 0.016],
                        help="sequential tolerances to replay (default: the three that differ at n=250)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=None,
                        help="default: the setup's own grid")
    parser.add_argument("--n-samples", type=int, default=None,
                        help="copies per input (default: the setup's own: 250; Fig. 6 quick 100)")
    parser.add_argument("--threat", choices=("T1", "T3"), default=None,
                        help="fig6 setups (default: T1 quick, T3 full)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--work-dir", default="bench-output/sequential-work")
    parser.add_argument("--out", default=None, help="default: bench-output/sequential-<setup>.json")
    parser.add_argument("--noise-seed", type=int, default=0,
                        help="random_state of the transformer (the noise draws); sets and nets stay fixed")
    parser.add_argument("--save-counts", action="store_true",
                        help="also save every per-block vote count (npz beside the JSON)")
    args = parser.parse_args(argv)
    for tol in args.tols:
        if not 0 < tol < 1:
            parser.error(f"--tols: each tolerance must be in (0, 1), got {tol}")
    saved = {}  # per-block votes, for --save-counts
    rows = demo_rows(args, saved) if args.setup == "demo" else fig6_rows(args, saved)

    print(f"\n{args.setup}: forwards per input, full -> sequential (saving)")
    for sigma, row in rows.items():
        _print_sigma(sigma, row)
    suffix = ((f"-{args.threat}" if args.threat else "") + (f"-n{args.n_samples}" if args.n_samples else "")
              + (f"-seed{args.noise_seed}" if args.noise_seed else ""))
    out = args.out or f"bench-output/sequential-{args.setup}{suffix}.json"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as handle:
        json.dump({"setup": args.setup, "threat": args.threat, "n_samples": args.n_samples,
                   "noise_seed": args.noise_seed, "tols": args.tols,
                   "by_sigma": rows}, handle, indent=2)
    print(f"\nwrote {out}")
    if args.save_counts:
        counts_path = out.removesuffix(".json") + "-block-counts.npz"
        np.savez_compressed(counts_path, **{k: v.astype(np.int16) for k, v in saved.items()})
        print(f"wrote {counts_path} (per-block votes: replay any other stopping rule offline)")


if __name__ == "__main__":
    main()
