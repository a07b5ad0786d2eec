"""The model-level table of docs/results.md ("Is this model backdoored?"), from screen-zoo runs.

Usage::

    python examples/screen_zoo_table.py examples/results/screen-zoo-digits/screen_zoo.json \
        examples/results/screen-zoo-fashion-mnist/screen_zoo.json
    python examples/screen_zoo_table.py examples/results/screen-zoo-fashion-mnist --records
    python examples/screen_zoo_table.py --by-threat [--took] examples/results/screen-zoo-fashion-mnist/screen_zoo.json

The first form reads finished runs' JSONs: one table per zoo and, with more than one, a
pooled one (every net of every zoo; the scores are anomaly indices, which have no unit,
so pooling them is meaningful). The second scores the nets screened so far
(``nets/*.json``) with the run's own :func:`~wobbledetect.lab.reproduce.screen_zoo.summarize`,
for a look at a run that is not finished. ``--by-threat`` adds, per zoo, one table per
threat model (its backdoored nets against all the zoo's clean nets): a breakdown the
pre-registered design does not ask for, printed as such; ``--took`` leaves out the
backdoored nets whose backdoor did not take (another such breakdown); ``--nets`` lists
each net's scores and the classes they name.

Prints, in Markdown, per score (Neural Cleanse alone, W of the NC candidates alone, their
combination): the model-level ROC AUC at sigma "auto" and over the sigma grid (best sigma,
chosen with the labels: an upper bound a defender cannot choose), how many backdoored
nets it names the target of, and how many nets it flags at the index 2; then sigma
"auto"'s choices, the median wall time per net and the stamped sets the Levene test
could not judge.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROWS = {"nc": "Neural Cleanse alone", "w": "W of the NC candidates alone (smoothing index)",
        "combined": "combined (`ModelScreen`'s verdict)"}
TOOK = 0.5


def from_json(path, took=False):
    """``(name, screens, backdoored, where, n_sets)`` of a finished run's JSON.

    With ``took``, the backdoored nets whose backdoor did not take (attack success below
    ``TOOK``, as in the attacks run) are left out, and the name says how many.
    """
    saved = json.loads(Path(path).read_text())
    parameters = saved["parameters"]
    labels, backdoored = parameters["nets"], parameters["backdoored"]
    name = saved["dataset"]
    if took:
        keep = [i for i, label in enumerate(labels)
                if not (backdoored[i] and saved["nets"][label]["backdoor_accuracy"] < TOOK)]
        name += (f", nets whose backdoor took (attack success ≥ {TOOK}; {len(labels) - len(keep)} left out; "
                 "a breakdown, not pre-registered)")
        labels, backdoored = [labels[i] for i in keep], [backdoored[i] for i in keep]
    screens = [saved["screens"][label] for label in labels]
    where = ["auto", *(_key(s) for s in parameters["sigmas"])]
    return name, screens, backdoored, where, parameters["n_sets"]


def from_records(out_dir):
    """The same from the per-net records of a run (finished or not), in file-name order."""
    records = [json.loads(p.read_text()) for p in sorted(Path(out_dir, "nets").glob("*.json"))]
    if not records:
        raise ValueError(f"{out_dir}/nets holds no screen records")
    settings = {k: v for k, v in records[0]["signature"].items() if k != "key"}
    for record in records:
        if {k: v for k, v in record["signature"].items() if k != "key"} != settings:
            raise ValueError(f"{out_dir}/nets mixes screens of different settings: one run's records only")
    screens = [r["screen"] for r in records]
    backdoored = [int(s["threat"] is not None) for s in screens]
    where = ["auto", *(_key(s) for s in settings["sigmas"])]
    return Path(out_dir).name + " (records so far)", screens, backdoored, where, settings["n_sets"]


def _key(sigma):
    from wobbledetect.lab.reproduce._common import sigma_key

    return sigma_key(float(sigma))


def table(name, screens, backdoored, where, n_sets):
    """One zoo's (or a pool's) table as Markdown lines."""
    from wobbledetect.lab.reproduce.screen_zoo import summarize

    summary = summarize(screens, backdoored, where, n_sets)
    n_back, n_clean = sum(backdoored), len(backdoored) - sum(backdoored)
    autos = sorted({s["sigma_auto"] for s in screens})
    lines = [f"**{name}** ({n_clean} clean and {n_back} backdoored nets):", "",
             "| score | model-level ROC AUC, σ auto | over the σ grid (best σ) | target class named "
             "| flagged at index 2: backdoored / clean |",
             "| --- | --- | --- | --- | --- |"]
    for score, row in ROWS.items():
        auc = summary["auc"][score]
        grid = {k: v for k, v in auc.items() if k != "auto"}
        share_named = summary["target_accuracy"][score]["auto"]
        flagged = summary["flagged"][score]
        # a run in progress may hold one kind of net only: no AUC, nothing to name yet
        spread = ("(no σ)" if score == "nc" else "–" if not grid or not n_back or not n_clean else
                  f"{min(grid.values()):.2f}–{max(grid.values()):.2f} (best σ {max(grid, key=grid.get)})")
        auto = "–" if np.isnan(auc["auto"]) else f"{auc['auto']:.2f}"
        named = f"{round(share_named * n_back)} of {n_back}" if n_back else "–"
        lines.append(f"| {row} | {auto} | {spread} | {named} | "
                     f"{flagged['backdoored']} of {flagged['of_backdoored']} / "
                     f"{flagged['clean']} of {flagged['of_clean']} |")
    seconds = [s["seconds"] for s in screens]
    fit = [s["fit_seconds"] for s in screens if "fit_seconds" in s]
    untestable = summary["untestable_sets"]
    lines += ["", f"σ auto: {', '.join(f'{s:g}' for s in autos)}; wall time per net: "
              + (f"the screen (fit) median {np.median(fit):.0f} s ({min(fit):.0f}–{max(fit):.0f} s, "
                 f"{len(fit)} nets); " if fit else "")
              + f"with W at the rest of the σ grid median {np.median(seconds):.0f} s "
              f"({min(seconds):.0f}–{max(seconds):.0f} s)."]
    if untestable["scored"]:
        counts = ", ".join(f"{n} at σ {k}" for k, n in untestable["untested"].items()) or "none"
        lines.append(f"Stamped sets the Levene test could not judge, of {untestable['scored']} per σ: {counts}"
                     + (f" ({len(untestable['not_recorded'])} net(s) not counted)." if untestable["not_recorded"]
                        else "."))
    else:
        lines.append("Stamped sets the Levene test could not judge: not recorded (the screens predate the count).")
    return lines


def per_net(name, screens, backdoored, where, n_sets):
    """One row per net at sigma auto: each score with the class it names, NC's flags, the verdict."""
    del where, n_sets
    lines = [f"**{name}, per net** (σ auto; in brackets the class each score names; target 0):", "",
             "| net | σ auto | Neural Cleanse | W of the candidates | combined | NC flags | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for screen, label in zip(screens, backdoored):
        net = (f"{screen['threat']}/{screen['trigger']}/seed{screen['seed']}" if label
               else f"clean/seed{screen['seed']}")
        cells = []
        for score in ROWS:
            value = screen["auto"][score]
            cells.append("–" if value["score"] is None else f"{value['score']:.2f} ({value['class']})")
        flags = ", ".join(str(c) for c in screen["nc_flagged"]) or "none"
        lines.append(f"| {net} | {screen['sigma_auto']:g} | {' | '.join(cells)} | {flags} | "
                     f"{'backdoored' if screen['backdoored'] else 'clean'} |")
    return lines


def by_threat(name, screens, backdoored, where, n_sets):
    """One ``(name, ...)`` zoo per threat model: its backdoored nets and every clean net."""
    threats = sorted({s["threat"] for s, b in zip(screens, backdoored) if b})
    for threat in threats:
        keep = [i for i, (s, b) in enumerate(zip(screens, backdoored)) if not b or s["threat"] == threat]
        yield (f"{name}, {threat} nets only (a breakdown, not pre-registered)", [screens[i] for i in keep],
               [backdoored[i] for i in keep], where, n_sets)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="screen_zoo.json files, or with --records one run's folder")
    parser.add_argument("--records", action="store_true", help="score the per-net records in PATH/nets")
    parser.add_argument("--took", action="store_true",
                        help="leave out the backdoored nets whose backdoor did not take (finished runs only)")
    parser.add_argument("--nets", action="store_true", help="add one row per net: its scores and classes")
    parser.add_argument("--by-threat", action="store_true",
                        help="add one table per threat model (T1, T3): its backdoored nets against all clean nets")
    args = parser.parse_args(argv)
    if args.records and len(args.paths) != 1:
        parser.error("--records takes one run folder")
    if args.records and args.took:
        parser.error("--took needs finished runs' JSONs (the per-net records do not hold the attack success)")
    zoos = [from_records(args.paths[0])] if args.records else [from_json(p, args.took) for p in args.paths]
    lines = []
    for zoo in zoos:
        lines += [*table(*zoo), ""]
        for part in by_threat(*zoo) if args.by_threat else ():
            lines += [*table(*part), ""]
        if args.nets:
            lines += [*per_net(*zoo), ""]
    if len(zoos) > 1:  # at sigma auto only: the zoos' grids need not be the same
        screens = [s for z in zoos for s in z[1]]
        n_sets = {z[4] for z in zoos}
        if len(n_sets) > 1:  # the untestable counts' denominator needs one n_sets
            screens = [{k: v for k, v in s.items() if k != "untested_sets"} for s in screens]
        name = ("pooled over " + " and ".join(z[0].split(",")[0] for z in zoos)
                + (", nets whose backdoor took" if args.took else ""))
        lines += [*table(name, screens, [b for z in zoos for b in z[2]], ["auto"], min(n_sets)), ""]
    sys.stdout.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
