"""Fig. 5: mean W of triggered sets vs backdoor accuracy across T2 nets and target classes.

Pre-registered design (full mode):

- T2 (15% poisons, all-to-all, label c -> c + 1 mod 10) FashionCNNs: triggers 3
  (``checker2``, small) and 5 (``smiley``, larger), 5 seeds each = 10 nets.
- For each net and class c: the backdoor accuracy of class c is the share of *all*
  class-c test images with the trigger classified as (c + 1) mod 10; the mean W over a
  set of 25 triggered class-c test images (the same images for every net).
- Pairs with a backdoor accuracy under 0.1 (random guess for 10 classes) are excluded,
  and counted.
- Per sigma of the grid (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0): Kendall's tau and
  Pearson's r between mean W and backdoor accuracy, with p-values
  (:func:`scipy.stats.kendalltau`, :func:`scipy.stats.pearsonr`); n = 250. The paper
  reports tau = -0.49 (p = 1.5e-10) and r = -0.58 (p = 1.8e-8) on 79 pairs.

Quick mode: 2 quick nets (one per trigger, seed 0), sigmas (0.1, 0.3), n = 100.

Cost (full, Fashion-MNIST): 10 nets (~3 min each on 2 CPU cores, ~30 min) and
10 x 10 x 25 x 250 x 7 = 4.4M forwards (~6 min).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from ...plotting import plot_scatter_panels
from ..train import predict
from ..triggers import get_trigger
from ._common import DISPLAY_NAMES, SET_SIZE, Experiment, draw_indices, sigma_key

__all__ = ["run"]

#: Backdoor accuracies below this (random guess among 10 classes) are excluded.
RANDOM_GUESS = 0.1
PAPER = {"kendall_tau": -0.49, "kendall_p": 1.5e-10, "pearson_r": -0.58, "pearson_p": 1.8e-8,
         "pairs": 79, "excluded": {"checker2": 19, "smiley": 2}}


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, triggers=("checker2", "smiley"), seeds=None, random_state=0,
):
    """Run Fig. 5; write ``fig5.png`` and ``fig5.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download, epochs
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    triggers : tuple of str, default=("checker2", "smiley")
    seeds : tuple of int, optional
        Default (0, 1, 2, 3, 4); quick: (0,).
    random_state : int, default=0
        Seed of the sets drawn.

    Returns
    -------
    dict
        What ``fig5.json`` holds: every (net, class) point, the exclusions, and
        ``"correlation"``: per sigma Kendall's tau and Pearson's r with p-values.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import fig5
    >>> results = fig5.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> results["correlation"]["0.3"]["kendall_tau"]  # doctest: +SKIP
    """
    exp = Experiment("fig5", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download,
                     epochs=epochs)
    seeds = tuple(seeds if seeds is not None else ((0,) if quick else (0, 1, 2, 3, 4)))
    configs = [exp.net_config("T2", trigger, seed) for trigger in triggers for seed in seeds]
    data = exp.data
    classes = range(data.n_classes)
    exp.plan(configs, len(configs) * len(classes) * SET_SIZE * exp.n_samples * len(exp.sigmas))

    rng = np.random.RandomState(random_state)
    base = {c: data.X_test[draw_indices(rng, np.flatnonzero(data.y_test == c), SET_SIZE)]
            for c in classes}
    points = []
    for i, config in enumerate(configs, 1):
        log(f"[fig5] net {i}/{len(configs)}: {config.label}")
        model = exp.net(config)
        trigger = get_trigger(config.trigger)
        sets = np.stack([trigger(base[c]) for c in classes])
        per_class_asr = []
        for c in classes:
            predicted = predict(model, trigger(data.X_test[data.y_test == c]))
            per_class_asr.append(float(np.mean(predicted == (c + 1) % data.n_classes)))
        wob = exp.wobbliness(model)
        mean_w = {sigma_key(s): exp.W(wob, s, sets, config.label).mean(axis=1) for s in exp.sigmas}
        for c in classes:
            points.append({
                "net": config.label, "trigger": config.trigger, "seed": config.seed, "class": c,
                "backdoor_accuracy": per_class_asr[c],
                "excluded": per_class_asr[c] < RANDOM_GUESS,
                "mean_w": {key: float(values[c]) for key, values in mean_w.items()},
            })

    kept = [p for p in points if not p["excluded"]]
    correlation = {}
    for sigma in exp.sigmas:
        key = sigma_key(sigma)
        correlation[key] = _correlate([p["mean_w"][key] for p in kept],
                                      [p["backdoor_accuracy"] for p in kept])
        c = correlation[key]
        log(f"[fig5] sigma={sigma:g}: Kendall tau {_fmt(c['kendall_tau'])} "
            f"(p={_fmt(c['kendall_p'], '.2g')}), Pearson r {_fmt(c['pearson_r'])} "
            f"(p={_fmt(c['pearson_p'], '.2g')}) on {c['n']} pairs")
    excluded = {t: sum(p["excluded"] for p in points if p["trigger"] == t) for t in triggers}
    log(f"[fig5] excluded (backdoor accuracy < {RANDOM_GUESS}): "
        + ", ".join(f"{t} {n} of {len(seeds) * len(classes)}" for t, n in excluded.items()))

    png = _plot(exp, points, correlation, triggers)
    return exp.finish(
        {
            "parameters": {
                "threat": "T2", "triggers": list(triggers), "seeds": list(seeds),
                "set_size": SET_SIZE, "n_samples": exp.n_samples, "sigmas": list(exp.sigmas),
                "random_state": random_state, "exclude_below": RANDOM_GUESS,
            },
            "points": points,
            "excluded": excluded,
            "n_pairs": len(kept),
            "correlation": correlation,
            "paper": PAPER,
        },
        [png],
    )


def _correlate(mean_w, accuracy):
    """Kendall's tau and Pearson's r with p-values; NaN where they are undefined."""
    result = {"n": len(mean_w)}
    x, y = np.asarray(mean_w, float), np.asarray(accuracy, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return result | {"kendall_tau": np.nan, "kendall_p": np.nan,
                         "pearson_r": np.nan, "pearson_p": np.nan}
    tau = scipy.stats.kendalltau(x, y)
    r = scipy.stats.pearsonr(x, y)
    return result | {"kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
                     "pearson_r": float(r.statistic), "pearson_p": float(r.pvalue)}


def _fmt(value, spec=".2f"):
    return "n/a" if value is None or not np.isfinite(value) else format(value, spec)


def _plot(exp, points, correlation, triggers):
    panels, excluded = {}, {}
    for sigma in exp.sigmas:
        key = sigma_key(sigma)
        c = correlation[key]
        title = (f"$\\sigma$={sigma:g}: $\\tau$={_fmt(c['kendall_tau'])} (p={_fmt(c['kendall_p'], '.1g')}), "
                 f"r={_fmt(c['pearson_r'])} (p={_fmt(c['pearson_p'], '.1g')})")
        panels[title] = {
            trigger: ([p["mean_w"][key] for p in points if p["trigger"] == trigger and not p["excluded"]],
                      [p["backdoor_accuracy"] for p in points if p["trigger"] == trigger and not p["excluded"]])
            for trigger in triggers
        }
        excluded[title] = ([p["mean_w"][key] for p in points if p["excluded"]],
                           [p["backdoor_accuracy"] for p in points if p["excluded"]])
    n_nets = len({p["net"] for p in points})
    return plot_scatter_panels(
        panels, exp.out_dir / "fig5.png", excluded=excluded, hline=RANDOM_GUESS,
        xlabel=r"mean $W_\sigma$ of a triggered set (nats)", ylabel="backdoor accuracy of the class",
        suptitle=(f"Fig. 5 - T2 (all-to-all) on {DISPLAY_NAMES[exp.setup.dataset]}: "
                  f"{n_nets} {DISPLAY_NAMES[exp.setup.net]} nets x {len(points) // max(n_nets, 1)} "
                  f"classes\nsets of {SET_SIZE}, n={exp.n_samples}; pairs under "
                  f"{RANDOM_GUESS} (dotted) excluded ({exp.mode} mode)"),
    )
