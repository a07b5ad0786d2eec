"""Batches that mix triggered and clean inputs: how many poisons must a batch of 25 hold?

The detectors run (:mod:`.detectors`) scores sets that are wholly clean or wholly
triggered, where the trivial baseline -- the share of a set's most common predicted class
-- already scores 1.0. A defender's batch is more often a stream with a few poisoned
inputs in it. Pre-registered (``docs/results.md``, "Pre-registered design: batches that
mix triggered and clean inputs"):

- No new forward pass: the detectors run's per-net records (``DIR/nets/*.npz``) hold W
  (each sigma), STRIP entropy and the predicted class of every input. W is content-keyed,
  so a mixed set's values are its inputs' recorded values.
- For each backdoored net and k in ``MIXED_COUNTS``: mixed set j is the first k inputs of
  triggered set j and the last 25 - k of clean candidate set j; the negatives are the
  clean candidate sets. k = 25 is the detectors run itself (its AUCs come out equal).
- The detectors run's per-set detectors, and two built from calibrated per-input
  p-values (``ConformalDetector(combine="bonferroni")`` on the net's calibration inputs):
  a set is flagged when its smallest p is below alpha / 25 (Bonferroni), scored by
  ``-log10`` of that p; for STRIP and for W "smoother".
- Per net and k the ROC AUC of each detector; per threat model the median over its
  backdoored nets, W at each net's clean-only-rule sigma and at the best sigma of the
  grid by median AUC (an oracle: it uses the labels); the smallest k at which the median
  reaches ``SEEN_FROM``. True-positive rates at alpha of the calibrated set detectors
  (the net's calibration sets) and of the Bonferroni ones, and their false-positive rates
  on the clean candidate sets, pooled over nets.

``wobbledetect reproduce mixed-batches --out DIR`` reads ``DIR/detectors.json`` and
``DIR/nets/`` and writes ``mixed_batches.json`` and ``mixed_batches.png`` beside them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ... import ConformalDetector, LeveneBackdoorDetector, WobbledetectWarning
from ...plotting import plot_line_panels
from ._common import auc_or_nan, finished_run, jsonable, read_record, record_path, sigma_key, within_net_summary
from .detectors import ALPHA, SET_DETECTORS, _count_untestable, _detector_score, _frozen, _uses_w

__all__ = ["run", "MIXED_COUNTS", "QUICK_COUNTS", "SEEN_FROM", "BONFERRONI", "mix"]

#: Triggered inputs per set of 25 (full mode); quick mode (a quick detectors run): QUICK_COUNTS.
MIXED_COUNTS = (1, 2, 5, 10, 15, 20, 25)
QUICK_COUNTS = (1, 25)
#: The median AUC from which a detector counts as seeing k poisons in the summary.
SEEN_FROM = 0.9
#: Set detectors built from calibrated per-input p-values: name -> the values they test
#: (STRIP entropy, or W at every sigma).
BONFERRONI = {"STRIP per input, Bonferroni": "STRIP", "W smoother per input, Bonferroni": "W"}


def mix(clean, triggered, k):
    """Set j: the first ``k`` inputs of ``triggered[j]``, then the last ``25 - k`` of ``clean[j]``.

    Parameters
    ----------
    clean, triggered : ndarray of shape (n_sets, set_size)
        Per-input values (W, STRIP entropy or predicted class) of the clean candidate
        sets and of the triggered ones.
    k : int
        Triggered inputs per mixed set, ``0 <= k <= set_size``.

    Returns
    -------
    ndarray of shape (n_sets, set_size)

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect.lab.reproduce.mixed_batches import mix
    >>> mix(np.zeros((1, 5)), np.ones((1, 5)), 2)
    array([[1., 1., 0., 0., 0.]])
    """
    clean, triggered = np.asarray(clean), np.asarray(triggered)
    if clean.shape != triggered.shape:
        raise ValueError(f"clean and triggered sets must have the same shape; got {clean.shape} "
                         f"and {triggered.shape}.")
    if not 0 <= k <= clean.shape[1]:
        raise ValueError(f"k={k!r} triggered inputs do not fit a set of {clean.shape[1]}; pass 0 to "
                         f"{clean.shape[1]}.")
    return np.concatenate([triggered[:, :k], clean[:, k:]], axis=1)


def run(out_dir, *, log=print, epochs=None, counts=None, **ignored):
    """Re-score ``out_dir``'s detectors run on mixed batches; write ``mixed_batches.json`` and ``.png``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The folder of a finished detectors run (``detectors.json`` and ``nets/``).
    log : callable, default=print
    epochs : None
        Refused: the nets are the detectors run's.
    counts : tuple of int, optional
        Triggered inputs per set; default ``MIXED_COUNTS`` (a quick run's: ``QUICK_COUNTS``).
    **ignored
        The options every figure takes (``quick``, ``data_dir``...); a re-scoring reads
        no data and trains nothing.

    Returns
    -------
    dict
        What ``mixed_batches.json`` holds: ``"per_net"[net][k]`` (every AUC),
        ``"summary"[threat][detector][k]`` (median AUCs), ``"seen_from"`` (smallest k per
        detector; W ones at the rule's sigma) and ``"seen_from_best_sigma"`` (W ones at the
        best sigma), ``"true_positive_rates"`` and ``"false_positive_rates"``,
        ``"untestable_sets"[threat]`` (per sigma, the clean sets and, per k, the mixed sets
        the Levene test could not judge, summed over the threat's nets; per net in
        ``"untestable_sets_per_net"``) beside ``"scored_sets"[threat]`` (clean sets, and
        mixed sets at each k), and ``"check_full_sets"`` (k = 25 gives the detectors run's AUCs).

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import mixed_batches
    >>> out = mixed_batches.run("examples/results/detectors")  # doctest: +SKIP
    >>> out["seen_from"]["T3"]["STRIP per input, Bonferroni"]  # doctest: +SKIP
    """
    out_dir, source, detectors = finished_run(out_dir, "detectors", "mixed-batches", epochs)
    p = detectors["parameters"]
    sigmas = [sigma_key(s) for s in p["sigmas"]]
    n_clean, n_calibration, set_size = p["clean_sets"], p["calibration_sets"], p["set_size"]
    if p["triggered_sets"] != n_clean:
        raise ValueError(f"{source}: {p['triggered_sets']} triggered against {n_clean} clean sets; "
                         "mixing pairs them one to one.")
    counts = tuple(counts or (QUICK_COUNTS if detectors["mode"] == "quick" else MIXED_COUNTS))
    for k in counts:
        if not 1 <= k <= set_size:
            raise ValueError(f"counts holds {k!r}; each must be 1 to the set size {set_size}.")

    per_net, flags, check, untestable = {}, {}, {}, {}
    for threat in p["threats"]:
        for label in detectors["summary"][threat]["nets"]:
            arrays = _record(out_dir, label)
            auto = detectors["per_net"][label]["auto_sigma"]
            per_net[label], flags[label] = _score_net(arrays, sigmas, counts, n_clean, n_calibration,
                                                      sigma_key(auto) if auto else None)
            untestable[label] = _untestable(arrays, sigmas, counts, n_clean, n_calibration)
            if set_size in counts:
                check[label] = _same_as_detectors(per_net[label][str(set_size)],
                                                  detectors["per_net"][label]["auc_per_set"])
            log(f"[mixed-batches] {label}: " + _net_line(per_net[label], auto))

    summary, seen, seen_best, tpr, fpr, untestable_sets, scored = {}, {}, {}, {}, {}, {}, {}
    for threat in p["threats"]:
        nets = detectors["summary"][threat]["nets"]
        untestable_sets[threat] = _untestable_totals([untestable[label] for label in nets])
        scored[threat] = {"clean": len(nets) * n_clean, "mixed": len(nets) * n_clean}
        log(_untestable_line(threat, untestable_sets[threat], scored[threat]))
        autos = {label: detectors["per_net"][label]["auto_sigma"] for label in nets}
        summary[threat] = _summarise(per_net, nets, autos, counts, sigmas)
        seen[threat] = {name: _seen_from(cells, counts) for name, cells in summary[threat].items()}
        seen_best[threat] = {name: _seen_from(cells, counts, "best_median_auc")
                             for name, cells in summary[threat].items()
                             if "best_median_auc" in cells[str(counts[0])]}
        tpr[threat], fpr[threat] = _rates(flags, nets, counts)
        log(f"[mixed-batches] {threat}: smallest k with median AUC >= {SEEN_FROM} (W: at the rule's / the "
            "best sigma): " + ", ".join(f"{name} {k}" + (f" / {seen_best[threat][name]}" if name in seen_best[threat]
                                                         else "") for name, k in seen[threat].items()))
    if check:
        log(f"[mixed-batches] k = {set_size} gives the detectors run's per-set AUCs on "
            f"{sum(check.values())} of {len(check)} nets")
    results = {
        "figure": "mixed_batches", "source": source.name, "mode": detectors["mode"],
        "epochs": detectors.get("epochs"),
        "parameters": {"counts": list(counts), "set_size": set_size, "sigmas": p["sigmas"],
                       "alpha": ALPHA, "seen_from": SEEN_FROM, "clean_sets": n_clean,
                       "calibration_sets": n_calibration, "threats": p["threats"],
                       "detectors": [*SET_DETECTORS, *BONFERRONI]},
        "summary": summary, "seen_from": seen, "seen_from_best_sigma": seen_best,
        "true_positive_rates": tpr, "false_positive_rates": fpr,
        "untestable_sets": untestable_sets, "scored_sets": scored, "untestable_sets_per_net": untestable,
        "check_full_sets": check, "per_net": per_net,
    }
    results["files"] = [_plot(results, out_dir / "mixed_batches.png"), "mixed_batches.json"]
    (out_dir / "mixed_batches.json").write_text(json.dumps(jsonable(results), indent=2) + "\n")
    log(f"[mixed-batches] wrote mixed_batches.png, mixed_batches.json to {out_dir}")
    return results


def _record(out_dir, label):
    path = record_path(out_dir, label)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the detectors run in {out_dir} did not keep "
                                f"{label}'s record. Run `wobbledetect reproduce detectors --out {out_dir}`.")
    return read_record(path)[0]


def _score_net(arrays, sigmas, counts, n_clean, n_calibration, auto):
    """One backdoored net: per k, every detector's AUC (W ones per sigma) and, at the
    net's rule sigma ``auto``, which sets each calibrated detector flags at alpha."""
    clean = slice(1, 1 + n_clean)
    calibration = slice(1 + n_clean, 1 + n_clean + n_calibration)
    triggered = slice(1 + n_clean + n_calibration, None)
    values = {"STRIP": arrays["STRIP"], **{key: arrays[f"W_{key}"] for key in sigmas}}
    per_input = {what: ConformalDetector(alpha=ALPHA, tail="lower").fit(v[calibration].reshape(-1, 1))
                 for what, v in values.items()}
    flaggers = _flaggers(values, calibration, auto)
    y = np.r_[np.zeros(n_clean), np.ones(n_clean)]
    aucs, flags = {}, {"clean": {name: flag({w: v[clean] for w, v in values.items()})
                                 for name, flag in flaggers.items()}}
    for k in counts:
        mixed = {what: mix(v[clean], v[triggered], k) for what, v in values.items()}
        rows = {what: np.concatenate([v[clean], mixed[what]]) for what, v in values.items()}
        predicted = np.concatenate([arrays["predicted"][clean],
                                    mix(arrays["predicted"][clean], arrays["predicted"][triggered], k)])
        cell = {}
        for name in SET_DETECTORS:
            def auc(what):
                return auc_or_nan(y, _detector_score(name, rows[what], predicted, values[what][:1]))

            cell[name] = {key: auc(key) for key in sigmas} if _uses_w(name) else auc("STRIP")
        for name, what in BONFERRONI.items():
            def auc(what):
                return auc_or_nan(y, _smallest_p_score(per_input[what], rows[what]))

            cell[name] = {key: auc(key) for key in sigmas} if what == "W" else auc("STRIP")
        aucs[str(k)] = cell
        flags[str(k)] = {name: flag(mixed) for name, flag in flaggers.items()}
    return aucs, flags


def _untestable(arrays, sigmas, counts, n_clean, n_calibration):
    """One net's sets that the Levene test could not judge, per sigma.

    Parameters
    ----------
    arrays : dict
        The net's record (``W_<sigma key>``: reference, clean, calibration, triggered sets).
    sigmas : list of str
        Sigma keys.
    counts : tuple of int
        Triggered inputs per mixed set.
    n_clean, n_calibration : int

    Returns
    -------
    dict
        ``{"clean": {sigma: n}, "mixed": {k: {sigma: n}}}``: clean candidate sets, and
        mixed sets at each k, whose Levene p against the reference set is NaN.
    """
    clean = slice(1, 1 + n_clean)
    triggered = slice(1 + n_clean + n_calibration, None)
    out = {"clean": {}, "mixed": {str(k): {} for k in counts}}
    for key in sigmas:
        W = arrays[f"W_{key}"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WobbledetectWarning)  # counted here instead
            levene = LeveneBackdoorDetector(alpha=ALPHA).fit(W[:1])
            # p NaN, the library's definition (see _count_untestable); the W + Levene
            # detectors score such a set exactly 0
            out["clean"][key] = _count_untestable(levene, W[clean])
            for k in counts:
                out["mixed"][str(k)][key] = _count_untestable(levene, mix(W[clean], W[triggered], k))
    return out


def _untestable_totals(per_net):
    """The untestable sets of ``per_net`` (a list of :func:`_untestable`'s), summed per sigma and k."""
    def total(pick):
        return {key: sum(pick(net)[key] for net in per_net) for key in pick(per_net[0])}

    return {"clean": total(lambda net: net["clean"]),
            "mixed": {k: total(lambda net, k=k: net["mixed"][k]) for k in per_net[0]["mixed"]}}


def _untestable_line(threat, untestable, scored):
    """The log line of a threat's untestable sets: per sigma, clean sets and mixed ones by k."""
    counts = list(untestable["mixed"])

    def some(key):
        return untestable["clean"][key] or any(untestable["mixed"][k][key] for k in counts)

    parts = [f"sigma {key}: clean {n}, mixed by k {'/'.join(counts)} "
             + "/".join(str(untestable["mixed"][k][key]) for k in counts)
             for key, n in untestable["clean"].items() if some(key)]
    none = [key for key in untestable["clean"] if not some(key)]
    return (f"[mixed-batches] {threat}: sets the Levene test could not judge (p NaN: W without spread; "
            f"scored 0), of {scored['clean']} clean and {scored['mixed']} mixed at each k: "
            + "; ".join(parts + ([f"none at sigma {', '.join(none)}"] if none else [])))


def _flaggers(values, calibration, auto):
    """Calibrated set detectors at alpha: name -> function of ``{what: sets}`` to flags.
    W ones at the net's rule sigma ``auto`` (none where the net has no rule sigma)."""
    def conformal_sets(estimator, what, tail, combine="mean"):
        detector = ConformalDetector(estimator, alpha=ALPHA, tail=tail, combine=combine)
        detector.fit(values[what][calibration])
        return lambda sets: detector.predict(sets[what]) == 1

    def bonferroni(what):  # the library's combine="bonferroni": flagged where min p < ALPHA / 25
        return conformal_sets(None, what, "lower", "bonferroni")

    out = {"mean STRIP (calibrated)": conformal_sets(None, "STRIP", "lower"),
           "STRIP per input, Bonferroni": bonferroni("STRIP")}
    if auto is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WobbledetectWarning)
            levene = LeveneBackdoorDetector(alpha=ALPHA).fit(values[auto][:1])
        out |= {"W+Levene smoother (calibrated)": conformal_sets(_frozen(levene), auto, "upper"),
                "mean W smoother (calibrated)": conformal_sets(None, auto, "lower"),
                "W smoother per input, Bonferroni": bonferroni(auto)}
    return out


def _smallest_p_score(per_input, sets):
    """Per set, ``-log10`` of its smallest calibrated per-input p (the design's score; the
    Bonferroni p, ``min(1, 25 p)``, would tie every set whose smallest p is above 1/25)."""
    return -np.log10(per_input.p_values(sets.reshape(-1, 1)).reshape(sets.shape).min(axis=1))


def _net_line(aucs, auto):
    """One net's log line: a few detectors' AUC at each k."""
    names = ("W+Levene smoother", "mean STRIP", "STRIP per input, Bonferroni", "one class")
    return (f"AUC by k ({' / '.join(names)}; W at the rule's sigma) " + "; ".join(
        f"{k}: " + " / ".join(f"{_at(cell[name], auto) if _uses_w(name) else cell[name]:.2f}" for name in names)
        for k, cell in aucs.items()))


def _at(cells, sigma):
    """A W detector's AUC at ``sigma`` (NaN where the net has no rule sigma)."""
    return cells[sigma_key(sigma)] if sigma else np.nan


def _same_as_detectors(cell, stored):
    """Whether k = set size reproduces the detectors run's per-set AUCs."""
    return all(np.allclose(np.array([cell[n][key] for key in stored[n]], dtype=float),
                           np.array(list(stored[n].values()), dtype=float), equal_nan=True)
               if isinstance(stored[n], dict) else np.isclose(cell[n], stored[n])
               for n in SET_DETECTORS)


def _summarise(per_net, nets, autos, counts, sigmas):
    """Per detector and k, the median AUC over ``nets``; W ones at the rule's and the best sigma."""
    out = {}
    for name in [*SET_DETECTORS, *BONFERRONI]:
        out[name] = {}
        for k in map(str, counts):
            cells = [per_net[label][k][name] for label in nets]
            if not isinstance(cells[0], dict):
                out[name][k] = {"median_auc": within_net_summary(cells)["median"]}
                continue
            medians = {key: within_net_summary([c[key] for c in cells])["median"] for key in sigmas}
            best = max(medians, key=lambda key: -np.inf if np.isnan(medians[key]) else medians[key])
            out[name][k] = {
                "median_auc": within_net_summary([_at(c, autos[label]) for c, label in zip(cells, nets)])["median"],
                "best_sigma": float(best), "best_median_auc": medians[best], "median_auc_by_sigma": medians}
    return out


def _seen_from(cells, counts, measure="median_auc"):
    """The smallest k whose median AUC (W: at the rule's sigma, or ``measure``) reaches
    SEEN_FROM, else None."""
    return next((k for k in counts if cells[str(k)][measure] >= SEEN_FROM), None)


def _rates(flags, nets, counts):
    """True-positive rate per detector and k, false-positive rate on the clean sets, over ``nets``."""
    names = sorted({name for label in nets for name in flags[label]["clean"]})

    def rate(key, name):
        hits = [flags[label][key][name] for label in nets if name in flags[label][key]]
        return float(np.mean(np.concatenate(hits))) if hits else None

    return ({name: {str(k): rate(str(k), name) for k in counts} for name in names},
            {name: rate("clean", name) for name in names})


def _plot(results, path):
    counts = results["parameters"]["counts"]
    panels = []
    for threat, summary in results["summary"].items():
        series = {name + (" (rule's sigma)" if "median_auc_by_sigma" in cells[str(counts[0])] else ""):
                  [cells[str(k)]["median_auc"] for k in counts] for name, cells in summary.items()
                  if name != "W+Levene wobblier"}
        panels.append({"title": f"{threat}: sets of {results['parameters']['set_size']}, k triggered",
                       "xlabel": "triggered inputs per set (k)", "ylabel": "median ROC AUC over nets",
                       "x": counts, "series": series, "hline": 0.5})
    return Path(plot_line_panels(
        panels, path, suptitle=f"Mixed batches - re-scored detectors run ({results['mode']} mode)")).name
