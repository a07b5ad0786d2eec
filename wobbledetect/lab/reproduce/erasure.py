"""Why the direction flips: how much of a trigger survives the noise of W.

A diagnostic for the smoothing map, not a figure of the paper. W of a triggered input is
low when its noisy copies agree -- all on the attacker's target (the trigger survives
the noise: backdoor smoothing) or all on the true class (the noise erased the trigger) --
and high when they split between the two. So for each net and sigma this records, over
the noisy copies of triggered test images, the share voted for the target and the
share voted for the image's true class, and the same shares for the clean versions of
the same images (does the noise alone open the backdoor?), with the median W of both.

Design (added after the quick runs; full mode):

- Nets: T1 and T3 x triggers ``square``, ``checker``, ``smiley``, ``blend``, seed 0 --
  the smoothing map's nets, shared through the cache.
- 100 test images of classes other than the target, the same for every net; n = 250;
  the sigma grid of the other figures.

Quick mode: T1 only, ``square`` and ``smiley``, 20 images, the quick sigmas, n = 100.

Cost (full, Fashion-MNIST): 8 nets (cached after the smoothing map) and
8 x 7 x 200 x 250 = 2.8M forwards (~4 min on 2 CPU cores).
"""

from __future__ import annotations

import numpy as np

from ... import vote_entropy
from ...plotting import COLORS, plot_line_panels
from ..triggers import get_trigger
from ._common import DISPLAY_NAMES, TARGET, Experiment, draw_indices, sigma_key

__all__ = ["run"]

TRIGGERS = ("square", "checker", "smiley", "blend")
QUICK_TRIGGERS = ("square", "smiley")


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, threats=None, triggers=None, seed=0, n_images=None, random_state=0,
):
    """Run the erasure diagnostic; write ``erasure.png`` and ``erasure.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download, epochs
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    threats : tuple of str, optional
        Default ("T1", "T3"); quick: ("T1",).
    triggers : tuple of str, optional
        Default :data:`TRIGGERS`; quick: :data:`QUICK_TRIGGERS`.
    seed : int, default=0
        Seed of every net.
    n_images : int, optional
        Test images (of classes other than the target); default 100, quick 20.
    random_state : int, default=0
        Seed of the images drawn.

    Returns
    -------
    dict
        What ``erasure.json`` holds: ``"cells"``, per threat, trigger and sigma, the
        shares of votes for the target and for the true class on triggered and on clean
        images, and the median W of both.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import erasure
    >>> results = erasure.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> results["cells"]["T1"]["square"]["0.3"]["triggered"]["target_share"]  # doctest: +SKIP
    """
    exp = Experiment("erasure", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download,
                     epochs=epochs)
    threats = tuple(threats or (("T1",) if quick else ("T1", "T3")))
    triggers = tuple(triggers or (QUICK_TRIGGERS if quick else TRIGGERS))
    n_images = int(n_images or (20 if quick else 100))
    configs = {(t, g): exp.net_config(t, g, seed) for t in threats for g in triggers}
    exp.plan(configs.values(), len(configs) * len(exp.sigmas) * 2 * n_images * exp.n_samples)

    data = exp.data
    picks = draw_indices(np.random.RandomState(random_state),
                         np.flatnonzero(data.y_test != TARGET), n_images)
    images, true_class = data.X_test[picks], data.y_test[picks]
    rows = np.arange(n_images)

    cells = {}
    for i, ((threat, trigger), config) in enumerate(configs.items(), 1):
        log(f"[erasure] net {i}/{len(configs)}: {config.label}")
        wob = exp.wobbliness(exp.net(config))
        sets = np.stack([get_trigger(trigger)(images), images])
        for sigma in exp.sigmas:
            counts = exp.vote_counts(wob, sigma, sets, config.label)  # (2, n_images, n_classes)
            cell = {}
            for name, c in zip(("triggered", "clean"), counts):
                p = c / c.sum(axis=1, keepdims=True)
                cell[name] = {
                    "target_share": float(p[:, TARGET].mean()),
                    "true_class_share": float(p[rows, true_class].mean()),
                    "median_w": float(np.median(vote_entropy(c))),
                }
            cells.setdefault(threat, {}).setdefault(trigger, {})[sigma_key(sigma)] = cell
            t = cell["triggered"]
            log(f"[erasure] {config.label} sigma={sigma:g}: triggered votes target "
                f"{t['target_share']:.2f} / true class {t['true_class_share']:.2f}, median W "
                f"{t['median_w']:.3f}; clean votes target {cell['clean']['target_share']:.2f}")

    png = _plot(exp, threats, triggers, configs, cells)
    return exp.finish(
        {
            "parameters": {
                "threats": list(threats), "triggers": list(triggers), "seed": seed,
                "n_images": n_images, "target": TARGET, "n_samples": exp.n_samples,
                "sigmas": list(exp.sigmas), "random_state": random_state,
            },
            "cells": cells,
        },
        [png],
    )


def _plot(exp, threats, triggers, configs, cells):
    keys = [sigma_key(s) for s in exp.sigmas]
    panels = []
    for threat in threats:
        series, styles = {}, {}
        for j, trigger in enumerate(triggers):
            asr = exp.nets[configs[threat, trigger].label]["backdoor_accuracy"]
            color = COLORS[j % len(COLORS)]
            for kind, share, ls in (("triggered", "target_share", "-"),
                                    ("triggered", "true_class_share", "--"),
                                    ("clean", "target_share", ":")):
                what = {"target_share": "target", "true_class_share": "true class"}[share]
                # One legend entry per trigger (its colour); the line styles are explained
                # in the title. Matplotlib leaves labels starting with "_" out of legends.
                label = (f"{trigger} (ASR {asr:.2f})" if ls == "-"
                         else f"_{trigger}: {kind}, votes for {what}")
                series[label] = [cells[threat][trigger][k][kind][share] for k in keys]
                styles[label] = (color, ls)
        panels.append({
            "title": f"{threat}: where the noisy copies of triggered images vote",
            "xlabel": r"noise scale $\sigma$",
            "ylabel": "share of noisy copies",
            "x": list(exp.sigmas), "series": series, "styles": styles,
        })
    return plot_line_panels(
        panels, exp.out_dir / "erasure.png",
        suptitle=(f"Does the trigger survive the noise? {DISPLAY_NAMES[exp.setup.dataset]}, "
                  f"{DISPLAY_NAMES[exp.setup.net]}, target class {TARGET}; solid: votes for the "
                  "target, dashed: for the true class,\ndotted: votes for the target on the "
                  f"same images without trigger; n={exp.n_samples} ({exp.mode} mode)"),
    )
