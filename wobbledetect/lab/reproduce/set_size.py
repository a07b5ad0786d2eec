"""Set size: the Levene detector's AUC for sets of 25, 50, 100 and 250 inputs.

The paper tests sets of 25 in Fig. 4 and 250 in Fig. 2; Fig. 6 does not say. More inputs
per set give the Levene test more power, on clean and triggered sets alike. Pre-registered
(``docs/results.md``, "Pre-registered design: why Fig. 6 does not reproduce", point 5),
full mode:

- The T1 and T3 ``square`` nets of seed 0 at ``epochs`` (the design runs 4 and 16: the
  training-dynamics run's snapshots, shared through the cache).
- 10 repetitions of a clean reference, a clean candidate and a triggered candidate of
  250 test images each (``random_state``); the sets of 25, 50 and 100 are the first
  inputs of those of 250 (nested, reference and candidates alike); sigma 0.1, 0.2, 0.3,
  0.5; n = 250.
- The AUC of each direction per (net, sigma, size), triggered against clean candidates.
  With ``dynamics_json`` (a training-dynamics result), each net's *best sigma* is the one
  with the highest "smoother" AUC at 25 inputs there -- chosen on other sets than these.

Quick mode: T1 only, the quick net, sizes 25 and 50, the quick sigmas, n = 100,
3 repetitions.

Cost (full, per training length, 2 CPU cores): 2 nets x 4 sigmas x 10 x 750 x 250 =
15M forwards (~19 min).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...plotting import COLORS, plot_line_panels
from ._common import (
    DIRECTIONS, DISPLAY_NAMES, TARGET, Experiment, auc_or_nan, draw_triplets, reference_scores,
    sigma_key,
)

__all__ = ["run", "SIZES", "SIGMAS", "best_sigma"]

#: Set sizes of the full mode (the paper's 25 and 250, and two between).
SIZES = (25, 50, 100, 250)
QUICK_SIZES = (25, 50)
SIGMAS = (0.1, 0.2, 0.3, 0.5)


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, threats=None, trigger="square", seed=0, sizes=None, sigmas=None,
    repetitions=None, random_state=0, dynamics_json=None,
):
    """Run the set-size comparison; write ``set_size.png`` and ``set_size.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    epochs : int, optional
        Training epochs of the nets (default: the pre-registered 4; quick 2).
    threats : tuple of str, optional
        Default ("T1", "T3"); quick: ("T1",).
    trigger : str, default="square"
    seed : int, default=0
    sizes : tuple of int, optional
        Default :data:`SIZES`; quick: (25, 50).
    sigmas : tuple of float, optional
        Default :data:`SIGMAS`; quick: the quick sigmas.
    repetitions : int, optional
        Default 10; quick: 3.
    random_state : int, default=0
    dynamics_json : str or os.PathLike, optional
        A ``training_dynamics.json`` measured on the same nets: each net's best sigma is
        read from it (:func:`best_sigma`) and its AUCs reported at that sigma.

    Returns
    -------
    dict
        What ``set_size.json`` holds: ``"auc"[threat][direction][sigma][size]``, the
        median W of every set of the largest size, and, with ``dynamics_json``,
        ``"best_sigma"`` and ``"auc_at_best_sigma"``.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import set_size
    >>> out = set_size.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> out["auc"]["T1"]["smoother"]["0.3"]["50"]  # doctest: +SKIP
    """
    exp = Experiment("set_size", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download, epochs=epochs)
    threats = tuple(threats or (("T1",) if quick else ("T1", "T3")))
    sizes = tuple(sorted({int(s) for s in (sizes or (QUICK_SIZES if quick else SIZES))}))
    sigmas = tuple(sigmas or (exp.sigmas if quick else SIGMAS))
    repetitions = int(repetitions or (3 if quick else 10))
    largest = sizes[-1]
    configs = {threat: exp.net_config(threat, trigger, seed) for threat in threats}
    exp.plan(configs.values(), len(threats) * len(sigmas) * repetitions * 3 * largest * exp.n_samples)

    data = exp.data
    sets, _ = draw_triplets(data, trigger, repetitions, largest, np.random.RandomState(random_state))
    auc, median_w = {}, {}
    for threat, config in configs.items():
        wob = exp.wobbliness(exp.net(config))
        for sigma in sigmas:
            key = sigma_key(sigma)
            W = exp.W(wob, sigma, sets, config.label).reshape(repetitions, 3, largest)
            median_w.setdefault(threat, {})[key] = {
                kind: np.median(W[:, j], axis=1) for j, kind in enumerate(("reference", "clean", "triggered"))
            }
            for direction in DIRECTIONS:
                auc.setdefault(threat, {}).setdefault(direction, {})[key] = {
                    str(size): _auc(W[..., :size], direction) for size in sizes
                }
            log(f"[set_size] {config.label} sigma={sigma:g}: AUC smoother by size " + ", ".join(
                f"{size}: {auc[threat]['smoother'][key][str(size)]:.2f}" for size in sizes))

    results = {
        "parameters": {
            "threats": list(threats), "trigger": trigger, "seed": seed, "sizes": list(sizes),
            "sigmas": list(sigmas), "repetitions": repetitions, "n_samples": exp.n_samples,
            "target": TARGET, "random_state": random_state,
        },
        "auc": auc,
        "median_w": median_w,
    }
    if dynamics_json is not None:
        dynamics = json.loads(Path(dynamics_json).read_text())
        results["best_sigma"] = {
            threat: best_sigma(dynamics, threat, exp.epochs, sigmas) for threat in threats}
        results["auc_at_best_sigma"] = {
            threat: {direction: auc[threat][direction][results["best_sigma"][threat]]
                     for direction in DIRECTIONS}
            for threat in threats
        }
        results["dynamics_json"] = Path(dynamics_json).name
    png = _plot(exp, threats, sizes, sigmas, auc, results.get("best_sigma"))
    return exp.finish(results, [png])


def best_sigma(dynamics, threat, epochs, sigmas):
    """The sigma of ``sigmas`` with the highest "smoother" AUC in a training-dynamics result.

    Ties go to the smaller sigma. Raises if the result lacks the net or every sigma.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce.set_size import best_sigma
    >>> dynamics = {"cells": {"T1": {"4": {"0.1": {"auc": {"smoother": 0.7}},
    ...                                    "0.3": {"auc": {"smoother": 0.9}}}}}}
    >>> best_sigma(dynamics, "T1", 4, (0.1, 0.3))
    '0.3'
    """
    cells = dynamics.get("cells", {}).get(threat, {}).get(str(epochs))
    keys = [sigma_key(s) for s in sigmas if cells and sigma_key(s) in cells]
    if not keys:
        raise ValueError(f"The training-dynamics result has no {threat} net at {epochs} epochs "
                         f"with any of the sigmas {list(sigmas)}.")
    return max(keys, key=lambda k: (cells[k]["auc"]["smoother"], -float(k)))


def _auc(W, direction):
    """AUC of triggered (label 1) vs clean candidates, each against its repetition's reference."""
    return auc_or_nan(np.tile([0, 1], len(W)), reference_scores(W, direction))


def _plot(exp, threats, sizes, sigmas, auc, best):
    panels = []
    for threat in threats:
        series, styles = {}, {}
        for j, sigma in enumerate(sigmas):
            key = sigma_key(sigma)
            mark = " (best)" if best and best[threat] == key else ""
            label = f"$\\sigma$={sigma:g}{mark}"
            series[label] = [auc[threat]["smoother"][key][str(size)] for size in sizes]
            styles[label] = (COLORS[j % len(COLORS)], "-")
        panels.append({"title": f"{threat}: AUC 'smoother' by set size", "xlabel": "inputs per set",
                       "ylabel": "ROC AUC", "x": list(sizes), "series": series, "styles": styles,
                       "hline": 0.5})
    return plot_line_panels(
        panels, exp.out_dir / "set_size.png",
        suptitle=(f"Set size - {DISPLAY_NAMES[exp.setup.dataset]}, {DISPLAY_NAMES[exp.setup.net]}, "
                  f"{exp.epochs} epochs, n={exp.n_samples} ({exp.mode} mode)"),
    )
