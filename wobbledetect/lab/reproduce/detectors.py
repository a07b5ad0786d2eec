"""W beside STRIP, per input and per set, with false-positive rates before and after calibration.

Pre-registered (``docs/results.md``, "Pre-registered design: W beside STRIP, and
calibrated false-positive rates"), full mode:

- Fig. 6's zoo at 4 epochs: per threat model (T3, T1) the clean nets of seeds 0-2 and
  the ``square``, ``checker2``, ``checker`` nets of seeds 0-2 (21 distinct nets).
- The same test images for every net, drawn once with ``RandomState(0)``, disjoint: a
  STRIP pool of 1,000; a clean reference set of 25; 20 clean and 20 triggered candidate
  sets of 25 (triggered: classes other than the target, stamped with the net's trigger;
  clean nets have none); 40 clean calibration sets of 25.
- Per input: W at sigma (0.05, 0.1, 0.2, 0.3, 0.5), n = 250, both directions; STRIP
  (N = 100, blend 0.5/0.5). Per set: mean W (both directions), mean STRIP, W + Levene
  against the reference set (both directions), and the baseline "the set is all one
  class" (its share of the most common predicted class as a score; "every input in one
  class" as a verdict).
- :class:`~wobbledetect.ConformalDetector` on the calibration data of the same net: per
  input W (each sigma) and STRIP; per set mean W, mean STRIP and the Levene score.
- Per backdoored net the AUC of every detector; per threat model the median over nets
  and the pooled AUC; for W the best sigma (chosen with the labels: an oracle) and the
  sigma of ``ModelScreen``'s clean-only rule. False-positive rates at alpha = 0.05 on all
  clean sets and inputs (every net), before and after calibration; true-positive rates
  after. Wall time per 100 inputs of W (one sigma) and STRIP.

Quick mode: the quick T1 ``square`` and clean nets of seed 0, sigmas (0.1, 0.3), n = 100,
N = 20, a pool of 200, 4 clean and 4 triggered candidate sets, 24 calibration sets.

Cost (full, 2 CPU cores): about 2.5M forwards for W and 200k for STRIP per net.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ... import (
    ConformalDetector, LeveneBackdoorDetector, STRIPTransformer, WobbledetectWarning,
)
from ...plotting import plot_line_panels
from ..train import predict
from ..triggers import get_trigger
from ._common import (
    DISPLAY_NAMES, NOISE_SEED, SET_SIZE, TARGET, Experiment, NetRecord, auc_or_nan, measure_nets, sigma_key,
    within_net_summary, zoo_configs, zoo_defaults,
)

__all__ = ["run", "DETECTOR_SIGMAS", "ALPHA", "SET_DETECTORS", "INPUT_DETECTORS"]

#: The sigma grid of the full run (0.7 and 1.0 left out for cost; see the design).
DETECTOR_SIGMAS = (0.05, 0.1, 0.2, 0.3, 0.5)
#: The level at which false- and true-positive rates are measured.
ALPHA = 0.05
#: Detectors per input: name -> what it is. Those starting with "W" have one AUC per sigma.
INPUT_DETECTORS = {"W smoother": "-W", "W wobblier": "+W", "STRIP": "-STRIP entropy"}
#: Detectors per set.
SET_DETECTORS = {"mean W smoother": "-mean W", "mean W wobblier": "+mean W",
                 "W+Levene smoother": "Levene score, smaller spread",
                 "W+Levene wobblier": "Levene score, larger spread",
                 "mean STRIP": "-mean STRIP entropy",
                 "one class": "share of the most common predicted class"}
#: Sizes by mode: STRIP pool, clean and triggered candidate sets, calibration sets, N.
_SIZES = {"full": (1000, 20, 20, 40, 100), "quick": (200, 4, 4, 24, 20)}


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, threats=None, triggers=None, seeds=None, scheduler=None,
):
    """Compare W and STRIP on the zoo; write ``detectors.png``, ``.json`` and ``nets/*.npz``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download, epochs
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    threats, triggers, seeds : tuple, optional
        The zoo; default the design's (quick: T1, ``square``, seed 0).
    scheduler : str or int, optional
        Each net as a Dask task (:mod:`wobbledetect.lab.parallel`). Either way each net's
        scores are kept in ``out_dir/nets/``, and a later identical run reads them back.

    Returns
    -------
    dict
        What ``detectors.json`` holds: ``"per_net"`` (every AUC, rate and timing of
        each net), ``"summary"[threat]`` (median and pooled AUCs, best and auto sigma),
        ``"false_positive_rates"`` and ``"true_positive_rates"`` (pooled over nets),
        ``"untestable_sets"`` (per part -- clean candidate, calibration, triggered sets -- and
        sigma, the sets the Levene test could not judge, summed over the nets; per net in
        ``"per_net"``) beside ``"scored_sets"`` (how many sets of each part were scored), and
        ``"seconds_per_100_inputs"``.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import detectors
    >>> out = detectors.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> out["summary"]["T1"]["per_input"]["STRIP"]["median_auc"]  # doctest: +SKIP
    """
    exp = Experiment("detectors", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download, epochs=epochs)
    threats, triggers, seeds = zoo_defaults(quick, threats, triggers, seeds)
    sigmas = exp.sigmas if quick else DETECTOR_SIGMAS
    n_pool, n_clean, n_triggered, n_calibration, n_blends = _SIZES[exp.mode]
    nets, distinct = zoo_configs(exp, threats, triggers, seeds)
    data = exp.data
    draw = _draw(data, np.random.RandomState(0), n_pool, n_clean, n_triggered, n_calibration)
    n_inputs = sum(SET_SIZE * (1 + n_clean + n_calibration + (n_triggered if c.trigger else 0))
                   for c in distinct)
    exp.plan(distinct, n_inputs * exp.n_samples * len(sigmas))

    signature = {"sigmas": [sigma_key(x) for x in sigmas], "n_samples": exp.n_samples,
                 "noise_seed": NOISE_SEED, "sizes": [n_pool, n_clean, n_triggered, n_calibration, n_blends],
                 "set_size": SET_SIZE, "draw_seed": 0}
    measure = (draw, sigmas, n_blends, signature)
    records = measure_nets(exp, distinct, signature, _measure_net, measure, scheduler=scheduler)
    per_net, scores = {}, {}
    for config in distinct:
        label = config.label
        arrays, meta = records[label]
        W = {sigma_key(x): arrays[f"W_{sigma_key(x)}"] for x in sigmas}
        H, predicted = arrays["STRIP"], arrays["predicted"]
        per_net[label] = _score_net(W, H, predicted, sigmas, n_clean, n_calibration,
                                    backdoored=config.trigger is not None)
        per_net[label]["seconds_per_100_inputs"] = meta["seconds_per_100_inputs"]
        scores[label] = {"W": W, "H": H, "predicted": predicted}
        log(f"[detectors] {label}: " + _net_line(per_net[label], sigmas))

    summary = {threat: _summarise(nets[threat], per_net, scores, sigmas, n_clean, n_calibration)
               for threat in threats}
    fpr, tpr = _rates(per_net, sigmas)
    untestable, scored = _untestable_totals(
        per_net, sigmas, {"clean": n_clean, "calibration": n_calibration, "triggered": n_triggered})
    log(_untestable_line(untestable, scored))
    timing = {what: float(np.median([net["seconds_per_100_inputs"][what] for net in per_net.values()]))
              for what in ("W", "STRIP")}
    png = plot_line_panels(
        [_panel(threat, summary[threat], sigmas) for threat in threats], exp.out_dir / "detectors.png",
        suptitle=(f"W vs STRIP - median per-net ROC AUC, {DISPLAY_NAMES[exp.setup.dataset]}, "
                  f"{exp.epochs} epochs ({exp.mode} mode)"))
    log(f"[detectors] false-positive rate at alpha {ALPHA} on clean sets: W+Levene paper p "
        + ", ".join(f"{s}: {fpr['per_set']['W+Levene smoother (paper p)'][sigma_key(s)]:.2f}" for s in sigmas)
        + " | calibrated " + ", ".join(
            f"{fpr['per_set']['W+Levene smoother (calibrated)'][sigma_key(s)]:.2f}" for s in sigmas))
    result = exp.finish(
        {
            "parameters": {"threats": list(threats), "triggers": list(triggers), "seeds": list(seeds),
                           "sigmas": list(sigmas), "n_samples": exp.n_samples, "alpha": ALPHA,
                           "set_size": SET_SIZE, "strip_pool": n_pool, "strip_n": n_blends,
                           "clean_sets": n_clean, "triggered_sets": n_triggered,
                           "calibration_sets": n_calibration, "target": TARGET,
                           "noise_seed": NOISE_SEED, "detectors_per_input": INPUT_DETECTORS,
                           "detectors_per_set": SET_DETECTORS},
            "summary": summary,
            "false_positive_rates": fpr,
            "true_positive_rates": tpr,
            "untestable_sets": untestable,
            "scored_sets": scored,
            "seconds_per_100_inputs": timing,
            "per_net": per_net,
        },
        [png],
    )
    return result


def _measure_net(exp, config, measure):
    """One net: train or load it, measure W, STRIP and its predictions, save a NetRecord."""
    draw, sigmas, n_blends, signature = measure
    data = exp.data
    model = exp.net(config)
    sets = data.X_test[draw["sets"]]  # reference, clean, calibration
    if config.trigger is not None:
        sets = np.concatenate([sets, get_trigger(config.trigger)(data.X_test[draw["triggered"]])])
    W, H, seconds = _measure(exp, model, sets, data.X_test[draw["pool"]], sigmas, n_blends, config.label)
    predicted = predict(model, sets.reshape(-1, *data.input_shape)).reshape(sets.shape[:2])
    NetRecord(exp, config, signature).save(
        {"STRIP": H, "predicted": predicted, **{f"W_{key}": values for key, values in W.items()}},
        seconds_per_100_inputs=seconds)


def _draw(data, rng, n_pool, n_clean, n_triggered, n_calibration):
    """Disjoint test indices: the STRIP pool; the sets (reference, clean, calibration) as
    one array of shape (1 + n_clean + n_calibration, SET_SIZE); the triggered sets' images."""
    order = rng.permutation(len(data.y_test))
    n_sets = 1 + n_clean + n_calibration
    pool, sets = order[:n_pool], order[n_pool:n_pool + n_sets * SET_SIZE]
    rest = order[n_pool + n_sets * SET_SIZE:]
    others = rest[data.y_test[rest] != TARGET][:n_triggered * SET_SIZE]
    return {"pool": pool, "sets": sets.reshape(n_sets, SET_SIZE),
            "triggered": others.reshape(n_triggered, SET_SIZE)}


def _measure(exp, model, sets, pool, sigmas, n_blends, label):
    """W at every sigma and STRIP entropy of every input of ``sets``, and their times."""
    wob = exp.wobbliness(model)
    strip = STRIPTransformer(model, n_superimpositions=n_blends, random_state=NOISE_SEED,
                             input_shape=exp.data.input_shape).fit(pool)
    started = time.perf_counter()
    H = strip.transform(sets)
    strip_seconds = time.perf_counter() - started
    W, w_seconds = {}, []
    for sigma in sigmas:
        started = time.perf_counter()
        W[sigma_key(sigma)] = exp.W(wob, sigma, sets, f"{label} ({len(sets)} sets)")
        w_seconds.append(time.perf_counter() - started)
    n = sets.shape[0] * sets.shape[1] / 100
    return W, H, {"W": float(np.mean(w_seconds) / n), "STRIP": strip_seconds / n}


def _score_net(W, H, predicted, sigmas, n_clean, n_calibration, *, backdoored):
    """Every AUC (backdoored nets) and every false-/true-positive indicator of one net."""
    clean = slice(1, 1 + n_clean)
    calibration = slice(1 + n_clean, 1 + n_clean + n_calibration)
    triggered = slice(1 + n_clean + n_calibration, None)
    evaluated = np.r_[np.arange(len(predicted))[clean], np.arange(len(predicted))[triggered]]
    parts = {"clean": clean, "calibration": calibration, "triggered": triggered if backdoored else None}
    # per part (None for a part the net lacks: a clean net's triggered sets) and sigma, the
    # sets the Levene test could not judge; counted in the W + Levene loop below
    out = {"auc_per_input": {}, "auc_per_set": {}, "flagged": {}, "auto_sigma": None, "zero_share": {},
           "untestable_sets": {part: None if rows is None else {} for part, rows in parts.items()}}
    for sigma in sigmas:  # ModelScreen's clean-only rule, on the calibration sets
        key = sigma_key(sigma)
        out["zero_share"][key] = float(np.mean(W[key][calibration] == 0))
        if out["auto_sigma"] is None and out["zero_share"][key] <= 0.5:
            out["auto_sigma"] = float(sigma)
    for kind, names in (("per_input", INPUT_DETECTORS), ("per_set", SET_DETECTORS)):
        for name in names:
            def auc(base):
                if not backdoored:
                    return None
                y = _labels(n_clean, len(predicted) - 1 - n_clean - n_calibration, kind, base.shape[1])
                return auc_or_nan(y, _detector_score(name, base[evaluated], predicted[evaluated], base[:1]))

            out[f"auc_{kind}"][name] = (
                {sigma_key(s): auc(W[sigma_key(s)]) for s in sigmas} if _uses_w(name) else auc(H))

    def add_flags(name, key, clean_flags, triggered_flags):
        out["flagged"].setdefault(name, {})[key] = {
            "clean": float(np.mean(clean_flags)),
            "triggered": float(np.mean(triggered_flags)) if backdoored else None,
            "n_clean": int(np.size(clean_flags))}

    def calibrated(name, key, conformal, values, *, per_input=False):
        def rows(part):
            return values[part].reshape(-1, 1) if per_input else values[part]

        conformal.fit(rows(calibration))
        add_flags(name, key, conformal.predict(rows(clean)),
                  conformal.predict(rows(triggered)) if backdoored else [])

    with warnings.catch_warnings():
        # Small sigmas give W mostly 0: the detector says so for every set.
        warnings.simplefilter("ignore", WobbledetectWarning)
        for sigma in sigmas:
            key, Ws = sigma_key(sigma), W[sigma_key(sigma)]
            levene = LeveneBackdoorDetector(alpha=ALPHA).fit(Ws[:1])
            for part, rows in parts.items():
                if rows is not None:
                    out["untestable_sets"][part][key] = _count_untestable(levene, Ws[rows])
            add_flags("W+Levene smoother (paper p)", key, levene.predict(Ws[clean]),
                      levene.predict(Ws[triggered]) if backdoored else [])
            calibrated("W+Levene smoother (calibrated)", key,
                       ConformalDetector(_frozen(levene), alpha=ALPHA), Ws)
            calibrated("mean W smoother (calibrated)", key, ConformalDetector(alpha=ALPHA, tail="lower"), Ws)
            calibrated("W smoother per input (calibrated)", key,
                       ConformalDetector(alpha=ALPHA, tail="lower"), Ws, per_input=True)
        calibrated("mean STRIP (calibrated)", "-", ConformalDetector(alpha=ALPHA, tail="lower"), H)
        calibrated("STRIP per input (calibrated)", "-", ConformalDetector(alpha=ALPHA, tail="lower"), H,
                   per_input=True)
    share = _one_class_share(predicted)
    add_flags("one class (rule)", "-", share[clean] == 1.0, share[triggered] == 1.0 if backdoored else [])
    return out


def _count_untestable(levene, sets):
    """How many rows of ``sets`` the fitted Levene detector could not judge.

    Parameters
    ----------
    levene : LeveneBackdoorDetector
        Fitted on the net's clean reference set.
    sets : ndarray of shape (n_sets, set_size)
        W of each set at the detector's sigma.

    Returns
    -------
    int
        Sets whose p-value is NaN.
    """
    # The library's definition of "could not be tested": p NaN (the set and the reference
    # without spread after eq. (4), or too few values left). Their score is exactly 0, "no
    # evidence", and the DegenerateWobblinessWarning that says so is silenced here. A
    # score of exactly 0 (the attacks run's rule, which keeps only scores) would also
    # count a tested set whose spread equals the reference's.
    return int(np.count_nonzero(np.isnan(levene.p_values(sets))))


def _untestable_totals(per_net, sigmas, sizes):
    """The untestable sets of every net, summed per part and sigma, and the sets scored.

    Parameters
    ----------
    per_net : dict
        ``{label: net}`` from :func:`_score_net`; ``net["untestable_sets"][part]`` is
        ``{sigma key: count}``, or None for a part the net lacks (a clean net's triggered sets).
    sigmas : sequence of float
    sizes : dict
        ``{part: sets of that part per net}``.

    Returns
    -------
    untestable : dict
        ``{part: {sigma key: count}}``, summed over the nets.
    scored : dict
        ``{part: sets scored at each sigma}``, over the nets that have the part.
    """
    untestable, scored = {}, {}
    for part, size in sizes.items():
        nets = [net["untestable_sets"][part] for net in per_net.values()
                if net["untestable_sets"][part] is not None]
        untestable[part] = {sigma_key(s): sum(net[sigma_key(s)] for net in nets) for s in sigmas}
        scored[part] = len(nets) * size
    return untestable, scored


def _untestable_line(untestable, scored):
    """The log line of the untestable sets: per sigma, clean / calibration / triggered."""
    parts = list(scored)
    return (f"[detectors] sets the Levene test could not judge (p NaN: W without spread; scored 0), "
            f"{' / '.join(parts)} of {' / '.join(str(scored[part]) for part in parts)}: " + ", ".join(
                f"sigma {key} {' / '.join(str(untestable[part][key]) for part in parts)}"
                for key in untestable[parts[0]]))


def _labels(n_clean, n_triggered, kind, set_size):
    """0 for the clean candidate sets, 1 for the triggered ones (per input: repeated)."""
    y = np.r_[np.zeros(n_clean), np.ones(n_triggered)]
    return np.repeat(y, set_size) if kind == "per_input" else y


def _one_class_share(predicted):
    """Per set, the share of its inputs in the set's most common predicted class."""
    return np.array([np.bincount(row).max() / len(row) for row in predicted])


def _nanmedian(values):
    """The median of the AUCs that are defined (None and NaN left out); NaN when none is."""
    return within_net_summary(values)["median"]


def _uses_w(name):
    return name.startswith(("W ", "W+", "mean W"))


def _frozen(detector):
    from sklearn.frozen import FrozenEstimator

    return FrozenEstimator(detector)


def _summarise(configs, per_net, scores, sigmas, n_clean, n_calibration):
    """Median per-net and pooled AUC per detector over a threat model's backdoored nets."""
    backdoored = [c.label for c in configs if c.trigger is not None]
    out = {"nets": backdoored, "per_input": {}, "per_set": {}}
    for kind, names in (("per_input", INPUT_DETECTORS), ("per_set", SET_DETECTORS)):
        for name in names:
            values = [per_net[label][f"auc_{kind}"][name] for label in backdoored]

            def pooled(key):
                y, s = [], []
                for label in backdoored:
                    base = scores[label]["W"][key] if key is not None else scores[label]["H"]
                    predicted = scores[label]["predicted"]
                    start = 1 + n_clean + n_calibration
                    evaluated = np.r_[1:1 + n_clean, start:len(base)]
                    y.append(_labels(n_clean, len(base) - start, kind, base.shape[1]))
                    s.append(_detector_score(name, base[evaluated], predicted[evaluated], base[:1]))
                return auc_or_nan(np.concatenate(y), np.concatenate(s))

            if not _uses_w(name):
                out[kind][name] = {"median_auc": float(_nanmedian(values)), "pooled_auc": pooled(None)}
                continue
            medians = {sigma_key(s): float(_nanmedian([v[sigma_key(s)] for v in values])) for s in sigmas}
            best = max(medians, key=medians.get)
            auto = [v[sigma_key(per_net[label]["auto_sigma"])] if per_net[label]["auto_sigma"] else np.nan
                    for v, label in zip(values, backdoored)]
            out[kind][name] = {"median_auc": medians, "best_sigma": float(best),
                               "best_median_auc": medians[best],
                               "auto_sigma_median_auc": float(_nanmedian(auto)),
                               "pooled_auc": {sigma_key(s): pooled(sigma_key(s)) for s in sigmas}}
    return out


def _detector_score(name, rows, predicted, reference):
    """The score of detector ``name`` on the evaluated rows (per input: flattened);
    higher means more trigger-like. ``reference``: the clean reference set's values."""
    if name in ("W smoother", "STRIP"):
        return -rows.ravel()
    if name == "W wobblier":
        return rows.ravel()
    if name in ("mean W smoother", "mean STRIP"):
        return -rows.mean(1)
    if name == "mean W wobblier":
        return rows.mean(1)
    if name.startswith("W+Levene"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WobbledetectWarning)
            detector = LeveneBackdoorDetector(alpha=ALPHA, direction=name.split()[-1]).fit(reference)
            return detector.decision_function(rows)
    if name == "one class":
        return _one_class_share(predicted)
    raise KeyError(name)


def _rates(per_net, sigmas):
    """False- and true-positive rates at ALPHA, pooled over nets (weighted by their counts)."""
    fpr = {"per_set": {}, "per_input": {}}
    tpr = {"per_set": {}, "per_input": {}}
    names = per_net[next(iter(per_net))]["flagged"]
    for name in names:
        kind = "per_input" if "per input" in name else "per_set"
        keys = per_net[next(iter(per_net))]["flagged"][name]
        for key in keys:
            entries = [net["flagged"][name][key] for net in per_net.values()]
            n = np.array([e["n_clean"] for e in entries])
            fpr[kind].setdefault(name, {})[key] = float(np.sum([e["clean"] for e in entries] * n) / n.sum())
            hits = [e["triggered"] for e in entries if e["triggered"] is not None]
            tpr[kind].setdefault(name, {})[key] = float(np.mean(hits)) if hits else None
    return fpr, tpr


def _net_line(net, sigmas):
    auc_set = net["auc_per_set"]
    if auc_set["one class"] is None:
        return f"clean net; auto sigma {net['auto_sigma']}"
    best = max(sigmas, key=lambda s: auc_set["W+Levene smoother"][sigma_key(s)])
    return (f"STRIP per input {net['auc_per_input']['STRIP']:.2f}, per set {auc_set['mean STRIP']:.2f}; "
            f"W+Levene smoother {auc_set['W+Levene smoother'][sigma_key(best)]:.2f} (best sigma {best:g}); "
            f"one class {auc_set['one class']:.2f}")


def _panel(threat, summary, sigmas):
    series, styles = {}, {}
    for kind, names in (("per_input", ("W smoother", "W wobblier")),
                        ("per_set", ("mean W smoother", "W+Levene smoother", "W+Levene wobblier"))):
        for name in names:
            series[f"{name} ({kind.replace('_', ' ')})"] = [
                summary[kind][name]["median_auc"][sigma_key(s)] for s in sigmas]
    for kind, name in (("per_input", "STRIP"), ("per_set", "mean STRIP"), ("per_set", "one class")):
        series[f"{name} ({kind.replace('_', ' ')})"] = [summary[kind][name]["median_auc"]] * len(sigmas)
        styles[f"{name} ({kind.replace('_', ' ')})"] = ("black" if "STRIP" in name else "#8c564b",
                                                         ":" if kind == "per_input" else "--")
    return {"title": f"{threat}: {len(summary['nets'])} backdoored nets", "xlabel": "sigma",
            "ylabel": "median ROC AUC over nets", "x": list(sigmas), "series": series,
            "styles": styles, "hline": 0.5}
