"""The tables of docs/results.md's attacks section, from a ``wobbledetect reproduce attacks`` run.

Usage::

    python examples/attacks_table.py examples/results/attacks/attacks.json
    python examples/attacks_table.py examples/results/attacks --records   # a run still going

The first form reads the finished run's JSON. The second scores the nets measured so far
(``nets/*.npz``) with the run's own code (full mode's families and AUCs), for a look at a
run that is not finished; cells with a net missing say how many of their nets are in.

Prints, in Markdown: per family and strength, how many nets took, their clean accuracy
and attack success (mean, and the range over seeds), W + Levene's pooled AUC ("smoother"
at the best sigma and at the fixed sigma, "wobblier" at the best sigma) and STRIP's;
the candidate sets the Levene test could not judge (score exactly 0: W without spread),
per sigma; the nets that did not take; SAM's AUC minus its Adam cell's.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np


def from_records(out_dir):
    """``(parameters, cells)`` as in ``attacks.json``, from the records in ``out_dir/nets``."""
    from wobbledetect.lab.reproduce import attacks
    from wobbledetect.lab.reproduce._common import Experiment, read_record, record_path

    exp = Experiment("attacks", out_dir, quick=False, data_dir=None, cache_dir=None,
                     dataset="fashion-mnist", log=lambda *a: None)
    cells, first = {}, None
    for family, (_, settings) in attacks.FAMILIES.items():
        for strength, changes in settings:
            measured, sigmas = [], []
            for seed in (0, 1, 2):
                label = replace(exp.net_config(None, None, seed), **changes).label
                path = record_path(out_dir, label)
                if path.is_file():
                    arrays, meta = read_record(path)
                    signature = {k: v for k, v in meta["signature"].items() if k != "key"}
                    if first is None:
                        first = (path, signature)
                    elif signature != first[1]:
                        raise ValueError(f"{path} was measured with {signature}, {first[0]} with "
                                         f"{first[1]}: one run's records only (rerun the odd net)")
                    sigmas = [float(s) for s in signature["sigmas"]]
                    measured.append((label, meta["net"], arrays, meta))
            if measured:
                cells.setdefault(family, {})[str(strength)] = attacks.score_cell(measured, sigmas)
    parameters = {"fixed_sigma": attacks.FIXED_SIGMA, "takes_at": attacks.TAKES_AT, "seeds": [0, 1, 2],
                  "families": {f: {"strength": what, "cells": [s for s, _ in settings]}
                               for f, (what, settings) in attacks.FAMILIES.items()}}
    return parameters, cells


def _f(value, digits=2):
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def _spread(values, digits=3):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return _f(values[0], digits)
    return f"{_f(float(np.mean(values)), digits)} ({_f(min(values), digits)}–{_f(max(values), digits)})"


def _untestable(cell):
    """``k / k / ... of n``: the candidate sets whose Levene score is exactly 0, per sigma."""
    counts = cell.get("untestable_sets")
    if counts is None:
        return "?"
    return " / ".join(str(n) for n in counts.values()) + f" of {cell['scored_sets']}"


def tables(parameters, cells):
    """The Markdown lines of the three tables."""
    fixed = parameters["fixed_sigma"]
    n_seeds = len(parameters["seeds"])
    lines = [f"| attack | strength | took | clean accuracy | attack success | smoother, best σ "
             f"| smoother, σ {fixed:g} | wobblier, best σ | STRIP per set | STRIP per input "
             "| sets W cannot judge, per σ |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    failed = []
    for family, spec in parameters["families"].items():
        for strength in spec["cells"]:
            cell = cells.get(family, {}).get(str(strength))
            if cell is None:
                lines.append(f"| {family} | {spec['strength']} {strength:g} | not measured yet |"
                             + " |" * 8)
                continue
            nets = cell["nets"]
            took = f"{cell['took']} of {len(nets)}" + ("" if len(nets) == n_seeds else f" (of {n_seeds} nets, "
                                                          f"{len(nets)} measured)")
            auc = cell["auc"]
            if auc is None:
                scores = ["–"] * 6
            else:
                scores = [f"{_f(auc['smoother']['best'])} (σ {auc['smoother']['best_sigma']:g})",
                          _f(auc["smoother"]["fixed"]),
                          f"{_f(auc['wobblier']['best'])} (σ {auc['wobblier']['best_sigma']:g})",
                          _f(auc["strip_per_set"]), _f(auc["strip_per_input"]),
                          _untestable(cell)]
            lines.append(f"| {family} | {spec['strength']} {strength:g} | {took} "
                         f"| {_spread([n['clean_accuracy'] for n in nets])} "
                         f"| {_spread([n['attack_success'] for n in nets])} | " + " | ".join(scores) + " |")
            failed += [(family, strength, n) for n in nets if not n["took"]]
    lines += ["", "Nets whose attack did not take (attack success below "
              f"{parameters['takes_at']:g}; kept out of their cell's AUC):", ""]
    lines += [f"- {family}, {strength:g}: `{n['label']}` — attack success {n['attack_success']:.3f}, "
              f"clean accuracy {n['clean_accuracy']:.3f}" for family, strength, n in failed] or ["- none"]
    sam, adam = cells.get("SAM (T3, square)", {}), cells.get("poison count (T3, square)", {})
    lines += ["", "| poisons | direction | SAM − Adam, best σ | SAM − Adam, σ "
              f"{fixed:g} |", "| --- | --- | --- | --- |"]
    if not sam:
        lines.append("| – | – | not measured yet | |")
    for strength, cell in sam.items():
        other = adam.get(strength)
        for direction in ("smoother", "wobblier"):
            if cell["auc"] is None or other is None or other["auc"] is None:
                lines.append(f"| {strength} | {direction} | – | – |")
                continue
            a, b = cell["auc"][direction], other["auc"][direction]
            diff = [None if x is None or y is None else x - y for x, y in ((a["best"], b["best"]),
                                                                            (a["fixed"], b["fixed"]))]
            lines.append(f"| {strength} | {direction} | {_f(diff[0], 2)} | {_f(diff[1], 2)} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="attacks.json, or with --records the run's folder")
    parser.add_argument("--records", action="store_true",
                        help="score the nets measured so far (SOURCE is the run's --out folder)")
    args = parser.parse_args(argv)
    if args.records:
        if not (args.source / "nets").is_dir():
            parser.error(f"--records needs the run's folder, holding nets/; {args.source} does not")
        parameters, cells = from_records(args.source)
    else:
        if not args.source.is_file():
            parser.error(f"{args.source} is not a file; pass attacks.json, or the run's folder with --records")
        results = json.loads(args.source.read_text())
        parameters, cells = results["parameters"], results["cells"]
    print("\n".join(tables(parameters, cells)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
