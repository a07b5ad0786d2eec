"""Fig. 4: W of clean vs active-trigger and clean vs unused-trigger batches, over sigma.

Pre-registered design (full mode):

- One T1 FashionCNN: trigger 1 (``square``), target class 0, seed 0 -- the same net as
  Fig. 6's T1/square/seed-0 net (shared through the cache).
- Left: a clean batch of 25 test images vs a batch of 25 test images of other classes
  than the target with the active trigger. Right: a *new* clean batch vs a batch with
  trigger 4 (``checker``), never seen in training.
- Box plots of W over the sigma grid (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0), n = 250.
- Per sigma, the median and mean W of each batch, and the Levene test of each triggered
  batch against its clean batch (:class:`~wobbledetect.LeveneBackdoorDetector` fitted on
  the clean batch): the p-value and the score of every ``direction``.
- The attack success rate of the active and of the unused trigger, clean accuracy.

Quick mode: the quick net (12,000 training images, 2 epochs), sigmas (0.1, 0.3), n = 100.

Cost (full): 1 net (~3 min to train on 2 CPU cores, shared with Fig. 6) and
4 x 25 x 250 x 7 = 175k forwards (~15 s).
"""

from __future__ import annotations

import numpy as np

from ... import LeveneBackdoorDetector
from ...plotting import plot_w_box_panels
from ..train import backdoor_accuracy
from ..triggers import get_trigger
from ._common import DIRECTIONS, DISPLAY_NAMES, SET_SIZE, TARGET, Experiment, draw_indices, sigma_key

__all__ = ["run"]



def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, trigger="square", unused_trigger="checker", threat="T1", seed=0,
    random_state=0,
):
    """Run Fig. 4; write ``fig4.png`` and ``fig4.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
    quick : bool, default=False
        The CI-sized run (see the module docstring).
    data_dir : str or os.PathLike, optional
        Holds ``fashion-mnist/`` (or ``cifar10/``); default ``$WOBBLEDETECT_DATA``.
    cache_dir : str or os.PathLike, optional
        Model and data cache; default ``$WOBBLEDETECT_CACHE`` or ``~/.cache/wobbledetect``.
    dataset : {"fashion-mnist", "cifar10"}, default="fashion-mnist"
    log : callable, default=print
        Receives every progress line.
    download : bool, default=False
        Let torchvision download missing data into the cache directory.
    epochs : int, optional
        Training epochs of every net (in the cache key). Default: the pre-registered 4
        on Fashion-MNIST, 3 on CIFAR-10; quick mode 2 (1).
    trigger, unused_trigger : str
        The trained trigger and the one never seen in training.
    threat : str, default="T1"
    seed : int, default=0
        Seed of the net.
    random_state : int, default=0
        Seed of the batches drawn.

    Returns
    -------
    dict
        What ``fig4.json`` holds: per sigma the W of all four batches, their medians and
        means, the Levene p-value and per-direction scores; accuracies.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import fig4
    >>> results = fig4.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> results["per_sigma"]["0.3"]["median_w"]  # doctest: +SKIP
    """
    exp = Experiment("fig4", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download,
                     epochs=epochs)
    config = exp.net_config(threat, trigger, seed)
    exp.plan([config], 4 * SET_SIZE * exp.n_samples * len(exp.sigmas))
    model = exp.net(config)
    data = exp.data
    asr = exp.nets[config.label]["backdoor_accuracy"]
    unused_asr = backdoor_accuracy(model, data.X_test, data.y_test, unused_trigger, threat,
                                   target=TARGET, n_classes=data.n_classes)
    log(f"[fig4] attack success: active trigger {trigger!r} {asr:.3f}, "
        f"unused trigger {unused_trigger!r} {unused_asr:.3f}")

    rng = np.random.RandomState(random_state)
    every = np.arange(len(data.y_test))
    others = np.flatnonzero(data.y_test != TARGET)
    batches = {
        "clean (left)": data.X_test[draw_indices(rng, every, SET_SIZE)],
        "active trigger": get_trigger(trigger)(data.X_test[draw_indices(rng, others, SET_SIZE)]),
        "clean (right)": data.X_test[draw_indices(rng, every, SET_SIZE)],
        "unused trigger": get_trigger(unused_trigger)(data.X_test[draw_indices(rng, others, SET_SIZE)]),
    }
    sets = np.stack(list(batches.values()))
    wob = exp.wobbliness(model)
    per_sigma = {}
    for sigma in exp.sigmas:
        W = dict(zip(batches, exp.W(wob, sigma, sets, "4 batches")))
        per_sigma[sigma_key(sigma)] = {
            "W": W,
            "median_w": {name: float(np.median(w)) for name, w in W.items()},
            "mean_w": {name: float(np.mean(w)) for name, w in W.items()},
            "levene": {
                "active trigger vs clean": _levene(W["clean (left)"], W["active trigger"]),
                "unused trigger vs clean": _levene(W["clean (right)"], W["unused trigger"]),
            },
        }
        medians = per_sigma[sigma_key(sigma)]["median_w"]
        tests = per_sigma[sigma_key(sigma)]["levene"]
        log(f"[fig4] sigma={sigma:g}: median W clean {medians['clean (left)']:.3f} vs active "
            f"{medians['active trigger']:.3f} (Levene p={tests['active trigger vs clean']['p_value']:.2g}); "
            f"clean {medians['clean (right)']:.3f} vs unused {medians['unused trigger']:.3f} "
            f"(p={tests['unused trigger vs clean']['p_value']:.2g})")

    clean_acc = exp.nets[config.label]["clean_accuracy"]
    ticks = [f"{s:g}" for s in exp.sigmas]
    panels = {
        f"active trigger {trigger!r} (attack success {asr:.2f})": {
            t: {"clean": per_sigma[sigma_key(s)]["W"]["clean (left)"],
                "active trigger": per_sigma[sigma_key(s)]["W"]["active trigger"]}
            for t, s in zip(ticks, exp.sigmas)
        },
        f"unused trigger {unused_trigger!r} (attack success {unused_asr:.2f})": {
            t: {"clean": per_sigma[sigma_key(s)]["W"]["clean (right)"],
                "unused trigger": per_sigma[sigma_key(s)]["W"]["unused trigger"]}
            for t, s in zip(ticks, exp.sigmas)
        },
    }
    png = plot_w_box_panels(
        panels, exp.out_dir / "fig4.png", xlabel=r"noise scale $\sigma$",
        suptitle=(f"Fig. 4 - {DISPLAY_NAMES[dataset]}, {DISPLAY_NAMES[config.net]}, {threat} "
                  f"backdoor -> class {TARGET} (clean accuracy {clean_acc:.2f})\n$W_\\sigma$ of "
                  f"{SET_SIZE} test images per batch, n={exp.n_samples} ({exp.mode} mode)"),
    )
    return exp.finish(
        {
            "parameters": {
                "threat": threat, "trigger": trigger, "unused_trigger": unused_trigger,
                "target": TARGET, "seed": seed, "set_size": SET_SIZE,
                "n_samples": exp.n_samples, "sigmas": list(exp.sigmas),
                "random_state": random_state, "training": config.key_dict(),
            },
            "clean_accuracy": clean_acc,
            "backdoor_accuracy": {"active": asr, "unused": unused_asr},
            "per_sigma": per_sigma,
        },
        [png],
    )


def _levene(clean, candidate):
    """The Levene test of ``candidate`` against ``clean``: p-value and each direction's score."""
    scores = {}
    for direction in DIRECTIONS:
        detector = LeveneBackdoorDetector(direction=direction).fit(clean[None])
        scores[direction] = float(detector.score_samples(candidate[None])[0])
        p_value = float(detector.p_values(candidate[None])[0])
    return {"p_value": p_value, "score": scores}
