"""Where does backdoor smoothing hold? Trigger x sigma x threat model.

The paper finds triggered inputs *smoother* than clean ones; our own T3 measurements
found them *wobblier* at sigma 0.2-0.3. This study maps the direction and size of the
effect instead of assuming it.

Pre-registered design (full mode):

- For each threat model in (T1, T3) and each trigger in the eight patches + ``blend``:
  one FashionCNN, seed 0, target class 0 (nets whose configuration matches Fig. 6's
  are shared through the cache) -- 18 nets.
- Per sigma of the grid (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0), n = 250: 10 repetitions
  of (clean reference set, clean candidate set, triggered candidate set), 25 test images
  each (triggered: of other classes than the target). The same sets for every net.
- Recorded per (threat, trigger, sigma): the median W of the triggered and of the clean
  candidate sets (over their 10 x 25 values), and the ROC AUC of each ``direction`` of
  :class:`~wobbledetect.LeveneBackdoorDetector` fitted on each repetition's reference
  (positives: the 10 triggered candidates; negatives: the 10 clean ones).
- Heat maps: rows triggers (with each net's attack success rate), columns sigma, one
  panel per threat model; top row the AUC of ``smoother`` (1 = triggered sets
  consistently smoother, 0.5 = no difference, 0 = consistently wobblier), bottom row the
  difference of median W, triggered minus clean, in nats (a difference, not a log
  ratio, because medians are often exactly 0). Blue is "smoother" in both rows.

Quick mode: T1 only, triggers ``square``, ``checker2``, ``smiley``, ``blend`` (quick
nets), 3 repetitions, sigmas (0.1, 0.3), n = 100.

Cost (full, Fashion-MNIST): 18 nets (6 shared with Fig. 6; ~3 min each on 2 CPU cores)
and 18 x 7 x 10 x 3 x 25 x 250 = 24M forwards (~30 min).
"""

from __future__ import annotations

import numpy as np

from ... import LeveneBackdoorDetector
from ...plotting import plot_heatmaps
from ..triggers import TRIGGER_SETS, get_trigger
from ._common import (
    DIRECTIONS, DISPLAY_NAMES, SET_SIZE, TARGET, Experiment, auc_or_nan, draw_indices, sigma_key,
)

__all__ = ["run"]

QUICK_TRIGGERS = ("square", "checker2", "smiley", "blend")


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, threats=None, triggers=None, seed=0, repetitions=None, random_state=0,
):
    """Run the smoothing map; write ``smoothing_map.png`` and ``smoothing_map.json``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download, epochs
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    threats : tuple of str, optional
        Default ("T1", "T3"); quick: ("T1",).
    triggers : tuple of str, optional
        Default: the eight patches and ``"blend"``; quick: :data:`QUICK_TRIGGERS`.
    seed : int, default=0
        Seed of every net.
    repetitions : int, optional
        Default 10; quick: 3.
    random_state : int, default=0
        Seed of the sets drawn.

    Returns
    -------
    dict
        What ``smoothing_map.json`` holds: ``"cells"``, per threat, trigger and sigma,
        the median W of both kinds of sets, every set's W, every score and the AUC of
        each direction; ``"auc"``, the ``smoother`` AUC per threat, trigger and sigma.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import smoothing_map
    >>> results = smoothing_map.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> results["auc"]["T1"]["square"]["0.3"]  # doctest: +SKIP
    """
    exp = Experiment("smoothing_map", out_dir, quick=quick, data_dir=data_dir,
                     cache_dir=cache_dir, dataset=dataset, log=log, download=download,
                     epochs=epochs)
    threats = tuple(threats or (("T1",) if quick else ("T1", "T3")))
    triggers = tuple(triggers or (QUICK_TRIGGERS if quick else (*TRIGGER_SETS["fig3"], "blend")))
    repetitions = int(repetitions or (3 if quick else 10))
    configs = {(threat, trigger): exp.net_config(threat, trigger, seed)
               for threat in threats for trigger in triggers}
    exp.plan(configs.values(), len(configs) * len(exp.sigmas) * repetitions * 3 * SET_SIZE
             * exp.n_samples)

    data = exp.data
    rng = np.random.RandomState(random_state)
    every = np.arange(len(data.y_test))
    others = np.flatnonzero(data.y_test != TARGET)
    draws = [(draw_indices(rng, every, SET_SIZE), draw_indices(rng, every, SET_SIZE),
              draw_indices(rng, others, SET_SIZE)) for _ in range(repetitions)]
    references = data.X_test[np.stack([d[0] for d in draws])]
    clean = data.X_test[np.stack([d[1] for d in draws])]
    labels = np.r_[np.ones(repetitions, int), np.zeros(repetitions, int)]

    cells, auc = {}, {}
    for i, ((threat, trigger), config) in enumerate(configs.items(), 1):
        log(f"[smoothing_map] net {i}/{len(configs)}: {config.label}")
        model = exp.net(config)
        triggered = np.stack([get_trigger(trigger)(data.X_test[d[2]]) for d in draws])
        sets = np.concatenate([references, clean, triggered])
        wob = exp.wobbliness(model)
        for sigma in exp.sigmas:
            key = sigma_key(sigma)
            W = exp.W(wob, sigma, sets, config.label).reshape(3, repetitions, SET_SIZE)
            W_ref, W_clean, W_trig = W
            scores = {}
            for direction in DIRECTIONS:
                scores[direction] = np.concatenate([
                    [LeveneBackdoorDetector(direction=direction).fit(W_ref[r][None])
                     .decision_function(candidates[r][None])[0] for r in range(repetitions)]
                    for candidates in (W_trig, W_clean)
                ])
            cell = {
                "median_w_triggered": float(np.median(W_trig)),
                "median_w_clean": float(np.median(W_clean)),
                "median_w_reference": float(np.median(W_ref)),
                "auc": {d: auc_or_nan(labels, scores[d]) for d in DIRECTIONS},
                "scores": scores,
                "labels": labels,
                "W": {"reference": W_ref, "clean": W_clean, "triggered": W_trig},
            }
            cells.setdefault(threat, {}).setdefault(trigger, {})[key] = cell
            auc.setdefault(threat, {}).setdefault(trigger, {})[key] = cell["auc"]["smoother"]
            log(f"[smoothing_map] {config.label} sigma={sigma:g}: median W triggered "
                f"{cell['median_w_triggered']:.3f} vs clean {cell['median_w_clean']:.3f}; AUC "
                f"smoother {cell['auc']['smoother']:.2f}, two-sided {cell['auc']['two-sided']:.2f}")

    png = _plot(exp, threats, triggers, configs, cells)
    return exp.finish(
        {
            "parameters": {
                "threats": list(threats), "triggers": list(triggers), "seed": seed,
                "repetitions": repetitions, "target": TARGET, "set_size": SET_SIZE,
                "n_samples": exp.n_samples, "sigmas": list(exp.sigmas),
                "random_state": random_state,
            },
            "auc": auc,
            "cells": cells,
        },
        [png],
    )


def _plot(exp, threats, triggers, configs, cells):
    keys = [sigma_key(s) for s in exp.sigmas]
    auc_panels, diff_panels = {}, {}
    for threat in threats:
        rows = [
            f"{trigger} ({exp.nets[configs[threat, trigger].label]['backdoor_accuracy']:.2f})"
            for trigger in triggers
        ]
        auc = [[cells[threat][t][k]["auc"]["smoother"] for k in keys] for t in triggers]
        diff = [[cells[threat][t][k]["median_w_triggered"] - cells[threat][t][k]["median_w_clean"]
                 for k in keys] for t in triggers]
        auc_panels[f"{threat}: ROC AUC, 'smoother' direction"] = (auc, rows)
        diff_panels[f"{threat}: median W, triggered - clean (blue: triggered lower)"] = (diff, rows)
    span = max(0.05, float(np.nanmax(np.abs([v for m, _ in diff_panels.values() for v in np.ravel(m)]))))
    return plot_heatmaps(
        [
            {"panels": auc_panels, "cmap": "RdBu", "vmin": 0.0, "vmax": 1.0, "fmt": ".2f",
             "label": "ROC AUC (1: smoother, 0: wobblier)"},
            {"panels": diff_panels, "cmap": "RdBu_r", "vmin": -span, "vmax": span, "fmt": "+.2f",
             "label": r"$\Delta$ median $W_\sigma$ (nats)"},
        ],
        exp.out_dir / "smoothing_map.png",
        col_labels=[f"{s:g}" for s in exp.sigmas],
        xlabel=r"noise scale $\sigma$",
        suptitle=(f"Where backdoor smoothing holds - {DISPLAY_NAMES[exp.setup.dataset]}, "
                  f"{DISPLAY_NAMES[exp.setup.net]}\none net per trigger (its attack success in "
                  f"brackets); {len(cells[threats[0]][triggers[0]][keys[0]]['labels']) // 2} "
                  f"repetitions of (clean reference,\nclean candidate, triggered candidate) sets "
                  f"of {SET_SIZE}, n={exp.n_samples} ({exp.mode} mode)"),
    )
