"""Training dynamics: W of clean and triggered sets as a backdoored net trains.

Does the paper's direction (triggered sets smoother) appear as a net overfits, and is it
the clean inputs or the triggered ones that move? Pre-registered (``docs/results.md``,
"Pre-registered design: why Fig. 6 does not reproduce", point 4), full mode:

- T1 and T3 nets, trigger ``square``, seed 0, trained once for 32 epochs; the nets of 1,
  2, 4, 8 and 16 epochs are snapshots of that run (weight for weight those nets; see
  :func:`~wobbledetect.lab.zoo.get_net`).
- 10 repetitions of (clean reference, clean candidate, triggered candidate), sets of 25
  drawn once (``random_state``; triggered sets from images of classes other than the
  target), the same for every net and epoch count; sigma 0.1, 0.2, 0.3, 0.5; n = 250.
- Per (threat, epochs, sigma): median and IQR of W over the clean-candidate inputs and
  over the triggered inputs; the share of triggered copies voting for the target and for
  the true class; the AUC of each direction, triggered against clean candidates, each
  scored by :class:`~wobbledetect.LeveneBackdoorDetector` fitted on its repetition's
  reference; each net's clean accuracy, attack success and training accuracy.

Quick mode: T1 only, the quick nets at 1 and 2 epochs, the quick sigmas, n = 100,
3 repetitions.

Cost (full, Fashion-MNIST, 2 CPU cores): 2 x 32 epochs of training (~25 min per net) and
2 x 6 x 4 x 750 x 250 = 9M forwards (~12 min).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ... import vote_entropy
from ...plotting import COLORS, plot_line_panels
from ._common import (
    DIRECTIONS, DISPLAY_NAMES, SET_SIZE, TARGET, Experiment, auc_or_nan, draw_triplets,
    reference_scores, sigma_key,
)

__all__ = ["run", "EPOCHS", "SIGMAS"]

#: Epoch counts of the full mode (the last is trained, the others are its snapshots).
EPOCHS = (1, 2, 4, 8, 16, 32)
QUICK_EPOCHS = (1, 2)
#: Sigmas of the full mode.
SIGMAS = (0.1, 0.2, 0.3, 0.5)


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, threats=None, trigger="square", seed=0, sigmas=None,
    repetitions=None, random_state=0,
):
    """Run the training dynamics; write ``training_dynamics.png`` and ``.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    epochs : tuple of int, optional
        The epoch counts measured; the largest is trained, the others are its snapshots.
        Default :data:`EPOCHS`; quick: (1, 2).
    threats : tuple of str, optional
        Default ("T1", "T3"); quick: ("T1",).
    trigger : str, default="square"
    seed : int, default=0
    sigmas : tuple of float, optional
        Default :data:`SIGMAS`; quick: the quick sigmas.
    repetitions : int, optional
        Default 10; quick: 3.
    random_state : int, default=0
        Seed of the sets drawn.

    Returns
    -------
    dict
        What ``training_dynamics.json`` holds: ``"cells"[threat][epochs][sigma]`` with
        ``"clean"`` and ``"triggered"`` (median, quartiles and every W), the vote shares
        and ``"auc"`` per direction; ``"nets"`` keyed ``<label>/e<epochs>``.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import training_dynamics
    >>> out = training_dynamics.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> out["cells"]["T1"]["2"]["0.3"]["auc"]["smoother"]  # doctest: +SKIP
    """
    epoch_counts = sorted({int(e) for e in (epochs or (QUICK_EPOCHS if quick else EPOCHS))})
    exp = Experiment("training_dynamics", out_dir, quick=quick, data_dir=data_dir,
                     cache_dir=cache_dir, dataset=dataset, log=log, download=download,
                     epochs=epoch_counts[-1])
    threats = tuple(threats or (("T1",) if quick else ("T1", "T3")))
    sigmas = tuple(sigmas or (exp.sigmas if quick else SIGMAS))
    repetitions = int(repetitions or (3 if quick else 10))
    longest = {threat: exp.net_config(threat, trigger, seed) for threat in threats}
    exp.plan(longest.values(), len(threats) * len(epoch_counts) * len(sigmas) * repetitions * 3
             * SET_SIZE * exp.n_samples)

    data = exp.data
    sets, true_class = draw_triplets(data, trigger, repetitions, SET_SIZE,
                                     np.random.RandomState(random_state))
    cells = {}
    for threat in threats:
        # The longest net is trained once and caches the others on the way.
        trained = exp.net(longest[threat], snapshots=epoch_counts[:-1],
                          name=f"{longest[threat].label}/e{epoch_counts[-1]}")
        for e in epoch_counts:
            config = replace(longest[threat], epochs=e)
            name = f"{config.label}/e{e}"
            model = trained if e == epoch_counts[-1] else exp.net(config, name=name)
            wob = exp.wobbliness(model)
            for sigma in sigmas:
                counts = exp.vote_counts(wob, sigma, sets, name)
                cell = _cell(counts, true_class, repetitions, wob.entropy)
                cells.setdefault(threat, {}).setdefault(str(e), {})[sigma_key(sigma)] = cell
                log(f"[training_dynamics] {name} sigma={sigma:g}: median W clean "
                    f"{cell['clean']['median']:.3f}, triggered {cell['triggered']['median']:.3f}; "
                    f"AUC smoother {cell['auc']['smoother']:.3f}; triggered copies vote target "
                    f"{cell['target_share']:.2f}")

    png = _plot(exp, threats, epoch_counts, sigmas, cells)
    return exp.finish(
        {
            "parameters": {
                "threats": list(threats), "trigger": trigger, "seed": seed,
                "epochs": epoch_counts, "sigmas": list(sigmas), "repetitions": repetitions,
                "set_size": SET_SIZE, "n_samples": exp.n_samples, "target": TARGET,
                "random_state": random_state,
            },
            "cells": cells,
        },
        [png],
    )


def _summary(W):
    q1, median, q3 = np.percentile(W, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "W": W.ravel()}


def _cell(counts, true_class, repetitions, estimator):
    """Everything measured for one (net, sigma) from the vote counts of all sets."""
    n_classes = counts.shape[-1]
    W = vote_entropy(counts.reshape(-1, n_classes), estimator=estimator).reshape(
        repetitions, 3, SET_SIZE)
    triggered = counts.reshape(repetitions, 3, SET_SIZE, n_classes)[:, 2]
    shares = triggered / triggered.sum(axis=-1, keepdims=True)
    labels = np.tile([0, 1], repetitions)
    auc = {direction: auc_or_nan(labels, reference_scores(W, direction)) for direction in DIRECTIONS}
    return {
        "reference": _summary(W[:, 0]),
        "clean": _summary(W[:, 1]),
        "triggered": _summary(W[:, 2]),
        "target_share": float(shares[..., TARGET].mean()),
        "true_class_share": float(np.take_along_axis(shares, true_class[..., None], -1).mean()),
        "auc": auc,
    }


def _plot(exp, threats, epoch_counts, sigmas, cells):
    panels = []
    for threat in threats:
        series, styles, auc_series = {}, {}, {}
        for j, sigma in enumerate(sigmas):
            key, color = sigma_key(sigma), COLORS[j % len(COLORS)]
            for kind, ls in (("triggered", "-"), ("clean", ":")):
                label = f"$\\sigma$={sigma:g}" if kind == "triggered" else f"_{sigma:g} clean"
                series[label] = [cells[threat][str(e)][key][kind]["median"] for e in epoch_counts]
                styles[label] = (color, ls)
            auc_series[f"$\\sigma$={sigma:g}"] = [
                cells[threat][str(e)][key]["auc"]["smoother"] for e in epoch_counts]
        top = max(max(v) for v in series.values())
        panels.append({
            "title": f"{threat}: median W, triggered (solid) vs clean (dotted)",
            "xlabel": "training epochs", "ylabel": "median $W_\\sigma$",
            "x": epoch_counts, "series": series, "styles": styles, "ylim": (-0.02, top + 0.1),
        })
        panels.append({
            "title": f"{threat}: AUC 'smoother', triggered vs clean sets",
            "xlabel": "training epochs", "ylabel": "ROC AUC",
            "x": epoch_counts, "series": auc_series, "hline": 0.5,
        })
    return plot_line_panels(
        panels, exp.out_dir / "training_dynamics.png",
        suptitle=(f"Training dynamics - {DISPLAY_NAMES[exp.setup.dataset]}, "
                  f"{DISPLAY_NAMES[exp.setup.net]}, sets of {SET_SIZE}, n={exp.n_samples} "
                  f"({exp.mode} mode)"),
    )
