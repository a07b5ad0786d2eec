"""Choose sigma with ``GridSearchCV`` over the Pipeline (W -> Levene), scored by ROC AUC.

Pre-registered design (full mode):

- The T1 / ``square`` / seed-0 FashionCNN of Fig. 4 and Fig. 6 (from the cache),
  exported to ONNX once so that every fold's ``fit`` is cheap.
- The test set is split in two halves (even and odd positions): *calibration* sets from
  one, *evaluation* sets from the other; 20 sets of 25 of each kind: clean, active
  trigger (``square``), unused trigger (``checker``); triggered sets only use images of
  other classes than the target.
- ``GridSearchCV(Pipeline([("wobbliness", WobblinessTransformer(...)), ("levene",
  LeveneBackdoorDetector())]), {"wobbliness__sigma": grid}, scoring="roc_auc")`` with a
  stratified 3-fold split over the calibration sets and ``levene__reference`` = the
  clean sets (so unused-trigger sets are negatives but never part of the reference), on
  the sigma grid (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0), n = 250.
- The refitted Pipeline scores the evaluation sets: ROC AUC of active trigger vs clean
  and unused-trigger sets, and vs clean sets only.

Quick mode: the quick net, 6 sets of each kind, sigmas (0.1, 0.3), n = 100.

Cost (full): no training if Fig. 4 ran; 60 sets x 25 x 250 = 375k forwards per W pass,
7 sigmas x 3 folds + refit + evaluation = 23 passes, 8.6M forwards (~11 min).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from ... import LeveneBackdoorDetector, WobblinessTransformer, to_onnx
from ...plotting import plot_roc_panels
from ..sets import draw_sets
from ..triggers import get_trigger
from ._common import DISPLAY_NAMES, NOISE_SEED, SET_SIZE, TARGET, Experiment, auc_or_nan, sigma_key

__all__ = ["run"]


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, trigger="square", unused_trigger="checker", threat="T1", seed=0,
    n_sets=None, n_jobs=1, random_state=0,
):
    """Select sigma by cross-validated ROC AUC; write ``select_sigma.png`` and ``.json``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download, epochs
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    trigger, unused_trigger : str
    threat : str, default="T1"
    seed : int, default=0
    n_sets : int, optional
        Sets of each kind for calibration and again for evaluation; default 20 (quick 6).
    n_jobs : int, default=1
        ``GridSearchCV`` workers.
    random_state : int, default=0

    Returns
    -------
    dict
        What ``select_sigma.json`` holds: the cross-validated AUC per sigma, the chosen
        sigma, and ``"auc"``, the evaluation AUC.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import select_sigma
    >>> results = select_sigma.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> results["sigma"], results["auc"]  # doctest: +SKIP
    """
    exp = Experiment("select_sigma", out_dir, quick=quick, data_dir=data_dir,
                     cache_dir=cache_dir, dataset=dataset, log=log, download=download,
                     epochs=epochs)
    n_sets = int(n_sets or (6 if quick else 20))
    config = exp.net_config(threat, trigger, seed)
    n_pass = 3 * n_sets * SET_SIZE * exp.n_samples
    exp.plan([config], n_pass * (3 * len(exp.sigmas) + 2))
    model = exp.net(config)
    data = exp.data
    rng = np.random.RandomState(random_state)
    halves = {"calibration": np.arange(len(data.y_test)) % 2 == 0}
    halves["evaluation"] = ~halves["calibration"]
    kinds = {"clean": None, "active trigger": trigger, "unused trigger": unused_trigger}

    def make_sets(half):
        sets, names = [], []
        for name, kind in kinds.items():
            pool = data.X_test[halves[half] & ((data.y_test != TARGET) | (kind is None))]
            transform = None if kind is None else get_trigger(kind)
            sets.append(draw_sets(pool, n_sets, SET_SIZE, transform=transform, random_state=rng))
            names += [name] * n_sets
        names = np.array(names)
        return np.concatenate(sets), (names == "active trigger").astype(int), names

    X_cal, y_cal, names_cal = make_sets("calibration")
    X_eval, y_eval, names_eval = make_sets("evaluation")
    # GridSearchCV refits the Pipeline for every fold and sigma: an ONNX model keeps
    # those fits cheap on any device (exp.net gives one on a CPU already).
    if isinstance(model, torch.nn.Module):
        model = to_onnx(model, data.input_shape)
    pipeline = Pipeline([
        ("wobbliness", WobblinessTransformer(
            model, n_samples=exp.n_samples,
            input_shape=data.input_shape, random_state=NOISE_SEED)),
        ("levene", LeveneBackdoorDetector()),
    ])
    log(f"[select_sigma] GridSearchCV over sigma {list(exp.sigmas)} on {len(X_cal)} calibration "
        f"sets of {SET_SIZE} (3-fold, ROC AUC)...")
    search = GridSearchCV(
        pipeline, {"wobbliness__sigma": list(exp.sigmas)}, scoring="roc_auc",
        cv=StratifiedKFold(3, shuffle=True, random_state=random_state), n_jobs=n_jobs,
    ).fit(X_cal, y_cal, levene__reference=names_cal == "clean")
    sigma = float(search.best_params_["wobbliness__sigma"])
    cv_auc = {sigma_key(s): float(a) for s, a in zip(exp.sigmas, search.cv_results_["mean_test_score"])}
    cv_std = {sigma_key(s): float(a) for s, a in zip(exp.sigmas, search.cv_results_["std_test_score"])}
    log("[select_sigma] cross-validated AUC: "
        + ", ".join(f"sigma={s} {a:.3f}" for s, a in cv_auc.items()) + f"; chosen sigma={sigma:g}")

    score = search.best_estimator_.decision_function(X_eval)
    vs_clean = names_eval != "unused trigger"
    auc = auc_or_nan(y_eval, score)
    auc_vs_clean = auc_or_nan(y_eval[vs_clean], score[vs_clean])
    log(f"[select_sigma] evaluation at sigma={sigma:g}: ROC AUC {auc:.3f} (active vs clean + "
        f"unused), {auc_vs_clean:.3f} (active vs clean)")

    png = plot_roc_panels(
        {f"evaluation sets, chosen $\\sigma$={sigma:g}": {
            "active vs clean + unused": (y_eval, score),
            "active vs clean only": (y_eval[vs_clean], score[vs_clean]),
        }},
        exp.out_dir / "select_sigma.png",
        suptitle=(f"sigma chosen by GridSearchCV (3-fold ROC AUC on {len(X_cal)} calibration sets)"
                  f"\n{DISPLAY_NAMES[dataset]}, {config.label}, sets of {SET_SIZE}, "
                  f"n={exp.n_samples} ({exp.mode} mode)"),
        summary={
            "title": "cross-validated ROC AUC by $\\sigma$", "xlabel": r"noise scale $\sigma$",
            "ylabel": "ROC AUC (mean of 3 folds)", "x": list(exp.sigmas),
            "series": {"calibration (cross-validated)": list(cv_auc.values())}, "hline": 0.5,
        },
    )
    return exp.finish(
        {
            "parameters": {
                "threat": threat, "trigger": trigger, "unused_trigger": unused_trigger,
                "seed": seed, "n_sets_per_kind": n_sets, "set_size": SET_SIZE,
                "n_samples": exp.n_samples, "sigmas": list(exp.sigmas), "cv": 3,
                "random_state": random_state,
            },
            "cv_auc": cv_auc,
            "cv_auc_std": cv_std,
            "sigma": sigma,
            "auc": auc,
            "auc_vs_clean_only": auc_vs_clean,
            "evaluation": {"names": names_eval, "labels": y_eval, "scores": score},
        },
        [png],
    )
