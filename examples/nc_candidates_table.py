"""The tables of docs/results.md's Neural Cleanse candidates part, from a ``reproduce nc-candidates`` run.

Usage::

    python examples/nc_candidates_table.py examples/results/nc-candidates/nc_candidates.json
    python examples/nc_candidates_table.py examples/results/nc-candidates --records   # a run still going

The first form reads the finished run's JSON. The second scores the nets measured so far
(``nets/*.npz``) with the run's own :func:`~wobbledetect.lab.reproduce.nc_candidates.collect`
and :func:`~wobbledetect.lab.reproduce.nc_candidates.summarize`; each threat model's line
says how many of its nets are in.

Prints, in Markdown, per threat model: what Neural Cleanse found (the target named by the
smallest mask on the backdoored nets, classes flagged on the clean ones, the candidates'
success on other training images: the paper's "100%" sanity check), then per sigma the
share of the (net, class) candidates whose stamped sets W flags smoother than clean
(median over repetitions, p < 0.05), the backdoored nets' target candidates, the clean
candidate sets, the same shares flagged wobblier, the sets the Levene test could not judge (score exactly 0: p NaN, or the
rare p = 1, so an upper bound), and whether the design's rule ("reproduced") holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

TARGET = 0


def from_json(path):
    """``(nets, candidates, summary, reproduced)`` of a finished run."""
    saved = json.loads(Path(path).read_text())
    nets = {t: [(label, not label.startswith("clean/")) for label in labels]
            for t, labels in saved["parameters"]["nets_per_threat"].items()}
    return nets, saved["candidates"], saved["summary"], saved["reproduced"], None


def from_records(out_dir):
    """The same, from the per-net records in ``out_dir/nets`` (the full mode's zoo)."""
    from wobbledetect.lab.reproduce import nc_candidates
    from wobbledetect.lab.reproduce._common import (
        Experiment, read_record, record_path, zoo_configs, zoo_defaults)

    exp = Experiment("nc_candidates", out_dir, quick=False, data_dir=None, cache_dir=None,
                     dataset="fashion-mnist", log=lambda *a: None)
    threats, triggers, seeds = zoo_defaults(False, None)
    zoo, _ = zoo_configs(exp, threats, triggers, seeds)
    records, first, nets, planned = {}, None, {}, {}
    for threat, configs in zoo.items():
        planned[threat] = len(configs)
        for config in configs:
            path = record_path(out_dir, config.label)
            if not path.is_file():
                continue
            arrays, meta = records.get(config.label) or read_record(path)
            signature = {k: v for k, v in meta["signature"].items() if k != "key"}
            if first is None:
                first = (path, signature)
            elif signature != first[1]:
                raise ValueError(f"{path} was measured with {signature}, {first[0]} with {first[1]}: "
                                 "one run's records only (rerun the odd net)")
            records[config.label] = (arrays, meta)
            nets.setdefault(threat, []).append((config.label, config.threat is not None))
    if not records:
        raise ValueError(f"{out_dir}/nets holds no nc-candidates records")
    sigmas = first[1]["sigmas"]
    candidates, clean_scores = nc_candidates.collect(records, sigmas)
    summary, reproduced = nc_candidates.summarize(candidates, clean_scores, nets, sigmas)
    return nets, candidates, summary, reproduced, planned


def _share(values, what="≥ 0.99"):
    values = np.asarray(values, dtype=float)
    return f"median {np.median(values):.2f}, min {values.min():.2f}, {np.mean(values >= 0.99):.0%} {what}"


def tables(nets, candidates, summary, reproduced, planned=None):
    """The Markdown lines."""
    lines = []
    for threat, members in nets.items():
        backdoored = [n for n, b in members if b]
        clean = [n for n, b in members if not b]
        count = f"{len(clean)} clean and {len(backdoored)} backdoored nets"
        if planned:
            count += f", {len(members)} of the {planned[threat]} planned"
        named = sum(int(np.argmin(candidates[n]["mask_norms"]) == TARGET) for n in backdoored)
        flagged_target = sum(TARGET in np.atleast_1d(candidates[n]["flagged"]).tolist() for n in backdoored)
        flagged_clean = sum(len(np.atleast_1d(candidates[n]["flagged"])) > 0 for n in clean)
        index = {group: [candidates[n]["model_anomaly_index"] for n in names]
                 for group, names in (("clean", clean), ("backdoored", backdoored))}
        success = np.concatenate([np.asarray(candidates[n]["success_other_training"]) for n, _ in members])
        reached = np.concatenate([np.asarray(candidates[n]["reached_threshold"]) for n, _ in members])
        lines += [f"**{threat}** ({count}):", ""]
        found = ([f"the smallest mask is the target's on {named} of {len(backdoored)} backdoored nets, "
                  f"and NC flags the target on {flagged_target}"] if backdoored else [])
        found += [f"it flags some class on {flagged_clean} of {len(clean)} clean nets"] if clean else []
        lines += [f"- Neural Cleanse: {'; '.join(found)}. Model anomaly index: "
                  + "; ".join(f"{g} {min(v):.1f}–{max(v):.1f}" for g, v in index.items() if v) + ".",
                  f"- Candidates on 1,000 other training images (the paper: \"100% in all cases\"): "
                  f"{_share(success)}; {int(reached.sum())} of {len(reached)} reached NC's 0.99 while crafted.",
                  "",
                  "| σ | candidates flagged smoother | target candidates | clean sets flagged "
                  "| median candidate score | flagged wobblier: candidates / target / clean "
                  "| untestable: candidate / clean sets | reproduced |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for key, s in summary[threat].items():
            target = "–" if s["target_candidates_flagged"] is None else f"{s['target_candidates_flagged']:.2f}"
            target_w = ("–" if s["target_candidates_flagged_wobblier"] is None
                        else f"{s['target_candidates_flagged_wobblier']:.2f}")
            lines.append(
                f"| {key} | {s['candidates_flagged']:.2f} | {target} | {s['clean_flagged']:.2f} | "
                f"{s['median_candidate_score']:+.2f} | {s['candidates_flagged_wobblier']:.2f} / {target_w} / "
                f"{s['clean_flagged_wobblier']:.2f} | {s['untestable_candidate_sets']} of "
                f"{s['scored_candidate_sets']} / {s['untestable_clean_sets']} of {s['scored_clean_sets']} | "
                f"{'yes' if reproduced[threat][key] else 'no'} |")
        lines.append("")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="nc_candidates.json, or with --records the run's folder")
    parser.add_argument("--records", action="store_true", help="score the per-net records in PATH/nets")
    args = parser.parse_args(argv)
    loaded = from_records(args.path) if args.records else from_json(args.path)
    sys.stdout.write("\n".join(tables(*loaded)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
