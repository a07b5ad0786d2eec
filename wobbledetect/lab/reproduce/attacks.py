"""Weak attacks and SAM against W: the detection AUC as the attack weakens.

Pre-registered (``docs/results.md``, "Pre-registered design: weak attacks and SAM against
W"), full mode:

- Fashion-MNIST FashionCNNs of 4 epochs, target 0, seeds 0-2 per cell. Families: T3
  ``square`` with 5, 10, 25, 50, 100, 250 poisons; T1 with the blend at alpha 0.02,
  0.05, 0.1, 0.2; SAM (rho 0.05) on T3 ``square`` with 25 and 250 poisons; and (the
  design's amendment) T3 ``square`` with 250 poisons trained with the SDRM-style MMD
  penalty or the W-aware term at weights 0.1, 1 and 10
  (:class:`~wobbledetect.lab.train.PenalisedClassifier`).
- Per net: clean accuracy and attack success; the attack *takes* at attack success
  >= :data:`TAKES_AT`; nets where it does not are listed and kept out of their cell's
  AUC.
- 5 repetitions of (clean reference, clean candidate, triggered candidate), sets of 25;
  W at sigma (0.05, 0.1, 0.2, 0.3, 0.5), n = 250; the Levene score both directions;
  STRIP (N = 100, pool of 1,000) per input and per set.
- Per cell: ROC AUC pooled over the nets that took, at the best sigma (an oracle) and at
  :data:`FIXED_SIGMA`; STRIP's AUCs beside them.

Quick mode: quick nets of seed 0; T3 with 10 and 250 poisons, T1 ``blend@0.1``, SAM with
250 poisons, MMD and W-aware at weight 1; sigmas (0.1, 0.3), n = 100, 2 repetitions,
STRIP N 20, pool 200.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from ... import LeveneBackdoorDetector, STRIPTransformer, WobbledetectWarning
from ...plotting import plot_line_panels
from ._common import (
    DISPLAY_NAMES, NOISE_SEED, SET_SIZE, TARGET, Experiment, NetRecord, auc_or_nan, draw_triplets,
    measure_nets, sigma_key, untestable_counts,
)

__all__ = ["run", "score_cell", "FAMILIES", "QUICK_FAMILIES", "TAKES_AT", "FIXED_SIGMA", "ATTACK_SIGMAS"]

#: Attack success from which an attack counts as having taken.
TAKES_AT = 0.5
#: The fixed sigma reported beside the best (Fig. 6's best T3 sigma).
FIXED_SIGMA = 0.3
#: The sigma grid of the full run.
ATTACK_SIGMAS = (0.05, 0.1, 0.2, 0.3, 0.5)
#: family -> (what its strength is, [(strength, NetConfig changes)]), full mode.
FAMILIES = {
    "poison count (T3, square)": ("poisons", [
        (n, {"threat": "T3", "trigger": "square", "n_poisons": n}) for n in (5, 10, 25, 50, 100, 250)]),
    "blend strength (T1)": ("alpha", [
        (a, {"threat": "T1", "trigger": f"blend@{a:g}"}) for a in (0.02, 0.05, 0.1, 0.2)]),
    "SAM (T3, square)": ("poisons", [
        (n, {"threat": "T3", "trigger": "square", "n_poisons": n, "optimizer": "sam"}) for n in (25, 250)]),
    "MMD penalty (T3, square)": ("weight", [
        (w, {"threat": "T3", "trigger": "square", "mmd_weight": w}) for w in (0.1, 1.0, 10.0)]),
    "W-aware (T3, square)": ("weight", [
        (w, {"threat": "T3", "trigger": "square", "wobble_weight": w, "wobble_sigma": 0.3})
        for w in (0.1, 1.0, 10.0)]),
}
#: The quick mode's families.
QUICK_FAMILIES = {
    "poison count (T3, square)": ("poisons", [
        (n, {"threat": "T3", "trigger": "square", "n_poisons": n}) for n in (10, 250)]),
    "blend strength (T1)": ("alpha", [(0.1, {"threat": "T1", "trigger": "blend@0.1"})]),
    "SAM (T3, square)": ("poisons", [(250, {"threat": "T3", "trigger": "square", "n_poisons": 250,
                                            "optimizer": "sam"})]),
    "MMD penalty (T3, square)": ("weight", [(1.0, {"threat": "T3", "trigger": "square", "mmd_weight": 1.0})]),
    "W-aware (T3, square)": ("weight", [(1.0, {"threat": "T3", "trigger": "square", "wobble_weight": 1.0})]),
}


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, seeds=None, families=None, scheduler=None,
):
    """Measure every attack family's detection AUC; write ``attacks.png`` and ``attacks.json``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download, epochs
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    seeds : tuple of int, optional
        Default (0, 1, 2); quick (0,).
    families : dict, optional
        As :data:`FAMILIES` (default; quick: :data:`QUICK_FAMILIES`).
    scheduler : str or int, optional
        Each net as a Dask task (:mod:`wobbledetect.lab.parallel`). Either way each net's
        scores are kept in ``out_dir/nets/``, and a later identical run reads them back.

    Returns
    -------
    dict
        What ``attacks.json`` holds: ``"cells"[family][strength]`` with every net's clean
        accuracy, attack success and whether it took, and the AUCs (per sigma, best, fixed)
        of W + Levene (both directions) and STRIP.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import attacks
    >>> out = attacks.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> out["cells"]["poison count (T3, square)"]["10"]["auc"]["smoother"]["fixed"]  # doctest: +SKIP
    """
    exp = Experiment("attacks", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download, epochs=epochs)
    seeds = tuple(seeds if seeds is not None else ((0,) if quick else (0, 1, 2)))
    families = families or (QUICK_FAMILIES if quick else FAMILIES)
    sigmas = exp.sigmas if quick else ATTACK_SIGMAS
    repetitions, n_blends, n_pool = (2, 20, 200) if quick else (5, 100, 1000)
    cells = {family: {strength: [replace(exp.net_config(None, None, seed), **changes) for seed in seeds]
                      for strength, changes in settings}
             for family, (_, settings) in families.items()}
    configs = [c for by_strength in cells.values() for cs in by_strength.values() for c in cs]
    exp.plan(configs, len(configs) * repetitions * 3 * SET_SIZE * exp.n_samples * len(sigmas))

    signature = {"sigmas": [sigma_key(x) for x in sigmas], "n_samples": exp.n_samples,
                 "repetitions": repetitions, "strip_n": n_blends, "strip_pool": n_pool, "pool_seed": 0,
                 "noise_seed": NOISE_SEED, "set_size": SET_SIZE, "takes_at": TAKES_AT}
    measure = (sigmas, repetitions, n_blends, n_pool, signature)
    records = measure_nets(exp, configs, signature, _measure_net, measure, scheduler=scheduler)
    results = {}
    for family, by_strength in cells.items():
        for strength, configs_ in by_strength.items():
            measured = [(config.label, exp.nets[config.label], *records[config.label]) for config in configs_]
            for label, net, _, meta in measured:
                log(f"[attacks] {family}, {strength}: {label} clean accuracy "
                    f"{net['clean_accuracy']:.3f}, attack success {net['backdoor_accuracy']:.3f}"
                    + ("" if meta["took"] else f" -- did not take (< {TAKES_AT}); not scored"))
            cell = results.setdefault(family, {})[str(strength)] = score_cell(measured, sigmas)
            if untestable := untestable_counts(cell.get("untestable_sets", {})):
                log(f"[attacks] {family}, {strength}: candidate sets the Levene test could not judge "
                    f"(W without spread), of {cell['scored_sets']}: {untestable}")

    png = plot_line_panels(
        [_panel(family, families[family][0], by_strength) for family, by_strength in results.items()],
        exp.out_dir / "attacks.png",
        suptitle=(f"Detection against weaker attacks and SAM - {DISPLAY_NAMES[exp.setup.dataset]}, "
                  f"{exp.epochs} epochs, nets that took only ({exp.mode} mode)"))
    return exp.finish(
        {
            "parameters": {"seeds": list(seeds), "sigmas": list(sigmas), "n_samples": exp.n_samples,
                           "repetitions": repetitions, "set_size": SET_SIZE, "takes_at": TAKES_AT,
                           "fixed_sigma": FIXED_SIGMA, "strip_n": n_blends, "strip_pool": n_pool,
                           "target": TARGET, "noise_seed": NOISE_SEED,
                           "families": {f: {"strength": what, "cells": [s for s, _ in settings]}
                                        for f, (what, settings) in families.items()}},
            "cells": results,
        },
        [png],
    )


def _measure_net(exp, config, measure):
    """One net: train or load it; when its attack took, the Levene and STRIP scores of its
    candidates; saved as a NetRecord (``took`` in its meta)."""
    sigmas, repetitions, n_blends, n_pool, signature = measure
    data = exp.data
    model = exp.net(config)
    success = exp.nets[config.label]["backdoor_accuracy"]
    took = success is not None and success >= TAKES_AT
    arrays = {}
    if took:
        pool = data.X_test[np.random.RandomState(0).permutation(len(data.y_test))[:n_pool]]
        sets, _ = draw_triplets(data, config.trigger, repetitions, SET_SIZE, np.random.RandomState(config.seed))
        arrays = _score_net(exp, model, sets, pool, sigmas, n_blends, config.label)
    NetRecord(exp, config, signature).save(arrays, took=took)


def _score_net(exp, model, sets, pool, sigmas, n_blends, label):
    """One net's Levene scores (per sigma) and STRIP scores of its candidates."""
    n_rep = len(sets) // 3
    wob = exp.wobbliness(model)
    strip = STRIPTransformer(model, n_superimpositions=n_blends, random_state=NOISE_SEED,
                             input_shape=exp.data.input_shape).fit(pool)
    candidates = np.r_[[3 * r + 1 for r in range(n_rep)], [3 * r + 2 for r in range(n_rep)]]
    labels = np.r_[np.zeros(n_rep), np.ones(n_rep)]
    H = strip.transform(sets[candidates])
    arrays = {"labels": labels, "strip_set": -H.mean(1), "strip_input": -H.ravel(),
              "y_input": np.repeat(labels, SET_SIZE)}
    for sigma in sigmas:
        W = exp.W(wob, sigma, sets, label).reshape(n_rep, 3, SET_SIZE)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WobbledetectWarning)
            per_rep = [LeveneBackdoorDetector().fit(W[r, :1]).score_samples(W[r, 1:]) for r in range(n_rep)]
        # the "smoother" score of clean candidates, then triggered ones (as ``labels``)
        arrays[f"W_{sigma_key(sigma)}"] = np.r_[[s[0] for s in per_rep], [s[1] for s in per_rep]]
    return arrays


def score_cell(measured, sigmas):
    """One cell of ``attacks.json`` from its nets' records.

    Parameters
    ----------
    measured : list of (label, net, arrays, meta)
        Per net of the cell: its label, its entry of the figure's ``"nets"``, and its
        :class:`~._common.NetRecord`'s arrays and meta (``meta["took"]``).
    sigmas : sequence of float
        The run's grid.

    Returns
    -------
    dict
        ``{"nets": [...], "took": int, "auc": ...}``: every net with its clean accuracy,
        attack success and whether it took; the AUCs over the nets that took (None when
        none did). Where some took, also ``"scored_sets"`` (candidate sets scored, clean
        and triggered) and ``"untestable_sets"`` per sigma: those whose Levene score is
        exactly 0, i.e. that the test could not judge (W without spread).
    """
    nets, scores = [], {"labels": [], "W": {sigma_key(s): [] for s in sigmas}, "strip_input": [],
                        "strip_set": [], "y_input": []}
    for label, net, arrays, meta in measured:
        nets.append({"label": label, "clean_accuracy": net["clean_accuracy"],
                     "attack_success": net["backdoor_accuracy"], "took": meta["took"]})
        if meta["took"]:
            for name in ("labels", "strip_input", "strip_set", "y_input"):
                scores[name].append(arrays[name])
            for key in scores["W"]:
                scores["W"][key].append(arrays[f"W_{key}"])
    cell = {"nets": nets, "took": sum(n["took"] for n in nets), **_aucs(scores, sigmas)}
    if scores["labels"]:
        # A Levene score of exactly 0 is a set the test could not judge (W without spread:
        # the detector's DegenerateWobblinessWarning, silenced while scoring); say how many.
        cell["untestable_sets"] = {key: int(sum(np.count_nonzero(np.asarray(v) == 0) for v in values))
                                   for key, values in scores["W"].items()}
        cell["scored_sets"] = int(sum(len(v) for v in scores["labels"]))
    return cell


def _aucs(scores, sigmas):
    """The cell's AUCs: W + Levene per sigma, best and fixed, both directions; STRIP."""
    if not scores["labels"]:
        return {"auc": None}
    y = np.concatenate(scores["labels"])
    smoother = {key: auc_or_nan(y, np.concatenate(values)) for key, values in scores["W"].items()}
    auc = {"smoother": {"per_sigma": smoother},
           # the wobblier score is the smoother one negated (-log10 p with the other sign)
           "wobblier": {"per_sigma": {k: (1 - v if v == v else v) for k, v in smoother.items()}}}
    fixed = sigma_key(FIXED_SIGMA)
    for direction in auc:
        per_sigma = auc[direction]["per_sigma"]
        best = max(per_sigma, key=lambda k: -np.inf if per_sigma[k] != per_sigma[k] else per_sigma[k])
        auc[direction] |= {"best_sigma": float(best), "best": per_sigma[best],
                           "fixed": per_sigma.get(fixed)}
    auc["strip_per_input"] = auc_or_nan(np.concatenate(scores["y_input"]), np.concatenate(scores["strip_input"]))
    auc["strip_per_set"] = auc_or_nan(y, np.concatenate(scores["strip_set"]))
    return {"auc": auc}


def _panel(family, what, by_strength):
    strengths = [float(s) for s in by_strength]
    series = {}
    for name, pick in (("W+Levene smoother, best sigma", lambda a: a["smoother"]["best"]),
                       (f"W+Levene smoother, sigma {FIXED_SIGMA:g}", lambda a: a["smoother"]["fixed"]),
                       ("W+Levene wobblier, best sigma", lambda a: a["wobblier"]["best"]),
                       ("STRIP per set", lambda a: a["strip_per_set"]),
                       ("STRIP per input", lambda a: a["strip_per_input"])):
        series[name] = [None if cell["auc"] is None else pick(cell["auc"]) for cell in by_strength.values()]
    return {"title": family, "xlabel": what, "ylabel": "ROC AUC (pooled over nets that took)",
            "x": strengths, "series": series, "hline": 0.5}
