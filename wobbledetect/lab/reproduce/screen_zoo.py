"""Is this model backdoored? :class:`~wobbledetect.ModelScreen` over a zoo of clean and backdoored nets.

No paper in our folder reports this table: the model-level ROC AUC of a trigger-free
screen, and whether it names the target. Pre-registered design (``docs/results.md``,
"Pre-registered design: is this model backdoored?", point 3), full mode:

- ``dataset="digits"``: the demo's training (DigitsCNN, 30 epochs, Adam lr 2e-3, batch
  64, the 60/40 split); clean nets of seeds 0-9; T1 nets (15% poisons, target 0) with
  ``square``, ``checker2``, ``diagonal``, ``checker`` x seeds 0-2 and ``square`` seed 3.
  The screen's clean data: the test split, ``n_sets`` 4 (it holds 719 images).
- ``dataset="fashion-mnist"``: clean FashionCNNs of seeds 0-9 at 4 epochs and Fig. 6's 18
  backdoored nets (T1 and T3 x ``square``, ``checker2``, ``checker`` x seeds 0-2). The
  screen's clean data: the first 2,000 test images, ``n_sets`` 10.
- Per net ``ModelScreen`` with its defaults otherwise (``sigma="auto"``, set size 25,
  n = 250, Neural Cleanse's defaults), ``random_state=0``; then the per-class table at
  every sigma of the grid (:meth:`~wobbledetect.ModelScreen.rescore`).
- Scores per net: ``"nc"`` (NC's ``model_anomaly_index_``), ``"w"`` (the largest
  smoothing index), ``"combined"`` (``score_``); each with the class it points at. Per
  score: the model-level ROC AUC (backdoored = 1), the target-class accuracy (share of
  backdoored nets whose class is the target), at ``sigma="auto"`` and at every sigma of
  the grid; the verdict's rates at the threshold; wall time per model.

Quick mode: clean and T1 ``square`` quick nets of seeds 0 and 1, a small Neural Cleanse
(30 steps of 4 batches), 3 sets per class, sigmas (0.1, 0.3), n = 100.

Cost (full, 2 CPU cores): Neural Cleanse on 10 classes (digits: about a minute; the
FashionCNN: about 6 min) and ``(10 + 2) x n_sets x 25 x 250`` forwards per sigma of
the grid (the one ``"auto"`` chose is measured once).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from ... import ModelScreen, NeuralCleanse, WobbledetectWarning
from ...plotting import plot_roc_panels
from ..cache import atomic_write, config_key
from ._common import DISPLAY_NAMES, TARGET, Experiment, auc_or_nan, jsonable, sigma_key, untestable_counts

__all__ = ["run", "summarize", "ZOOS", "SCORES"]

#: The backdoored nets' (trigger, seed) per dataset; the clean nets are seeds 0-9.
ZOOS = {
    "digits": {"threats": ("T1",), "triggers": [(t, s) for t in ("square", "checker2", "diagonal", "checker")
                                                for s in (0, 1, 2)] + [("square", 3)],
               "clean_seeds": tuple(range(10)), "screen_images": None, "n_sets": 4},
    "fashion-mnist": {"threats": ("T1", "T3"), "triggers": [(t, s) for t in ("square", "checker2", "checker")
                                                            for s in (0, 1, 2)],
                      "clean_seeds": tuple(range(10)), "screen_images": 2000, "n_sets": 10},
}
#: The model-level scores: name -> what it is.
SCORES = {"nc": "Neural Cleanse's anomaly index of the smallest mask",
          "w": "the largest smoothing index (W of the candidates, compared over the classes)",
          "combined": "the largest mean of the two signed indices (ModelScreen.score_)"}


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="digits", log=print,
    download=False, epochs=None, random_state=0,
):
    """Screen the zoo of ``dataset``; write ``screen_zoo.png`` and ``screen_zoo.json``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, log, download
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    dataset : {"digits", "fashion-mnist"}, default="digits"
    epochs : int, optional
        Training epochs of the nets (default: the setup's; digits 30, Fashion-MNIST 4).
    random_state : int, default=0
        The screens' seed.

    Returns
    -------
    dict
        What ``screen_zoo.json`` holds: ``"nets"`` (accuracies), ``"screens"`` (one record per
        net), ``"auc"`` and ``"target_accuracy"`` per score at ``"auto"`` and per sigma,
        ``"verdict"`` (true and false positive rates at the threshold), ``"untestable_sets"``
        (stamped sets the Levene test could not judge, per sigma).

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import screen_zoo
    >>> out = screen_zoo.run("out", quick=True)  # doctest: +SKIP
    >>> out["auc"]["combined"]["auto"]  # doctest: +SKIP
    """
    if dataset not in ZOOS:
        raise ValueError(f"The 'dataset' parameter of screen-zoo must be one of {sorted(ZOOS)}; got {dataset!r}.")
    exp = Experiment("screen_zoo", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download, epochs=epochs)
    zoo = ZOOS[dataset]
    if quick:
        configs = ([exp.net_config(None, None, s) for s in (0, 1)]
                   + [exp.net_config("T1", "square", s) for s in (0, 1)])
        n_sets, cleanse = 3, NeuralCleanse(None, max_steps=30, batches_per_step=4)
    else:
        configs = ([exp.net_config(None, None, s) for s in zoo["clean_seeds"]]
                   + [exp.net_config(threat, t, s) for threat in zoo["threats"] for t, s in zoo["triggers"]])
        n_sets, cleanse = zoo["n_sets"], NeuralCleanse(None)
    data = exp.data
    X = data.X_test[:zoo["screen_images"]] if zoo["screen_images"] else data.X_test
    settings = {"n_sets": n_sets, "set_size": 25, "n_samples": exp.n_samples, "sigmas": list(exp.sigmas),
                "random_state": random_state, "screen_images": len(X),
                "cleanse": {k: v for k, v in cleanse.get_params().items() if k != "model"}}
    # 12 groups of sets (clean reference, null, 10 stamped) at every sigma of the grid; the
    # sigma rule adds a clean pass per further sigma it tries before it settles.
    exp.plan(configs, len(configs) * (12 * n_sets * 25 * exp.n_samples) * len(exp.sigmas))

    screens = {}
    for i, config in enumerate(configs, 1):
        path = exp.out_dir / "nets" / f"{config.label.replace('/', '_')}.json"
        signature = jsonable({"key": config_key(config.key_dict()), **settings})
        if path.is_file() and (stored := json.loads(path.read_text()))["signature"] == signature:
            screens[config.label] = stored["screen"]
            exp.nets[config.label] = stored["net"] | {"from_cache": True}
            log(f"[screen_zoo] net {i}/{len(configs)}: {config.label} from {path}")
            continue
        log(f"[screen_zoo] net {i}/{len(configs)}: {config.label}")
        model = exp.net(config)
        started = time.perf_counter()
        with warnings.catch_warnings():
            # NC's and the detector's warnings are per class and set: each record keeps
            # the screen's warnings and its untested sets per sigma instead.
            warnings.simplefilter("ignore", WobbledetectWarning)
            screen = ModelScreen(model, sigmas=exp.sigmas, n_samples=exp.n_samples, n_sets=n_sets,
                                 input_shape=data.input_shape, random_state=random_state,
                                 cleanse=cleanse).fit(X)
            fit_seconds = time.perf_counter() - started
            # rescore(sigma_) measures table_ again, number for number (tested): not twice
            by_sigma = {sigma_key(s): screen.table_ if s == screen.sigma_ else screen.rescore(s)[0]
                        for s in exp.sigmas}
        record = _record(screen, by_sigma, config, time.perf_counter() - started, fit_seconds)
        screens[config.label] = record
        log(f"[screen_zoo] {config.label}: sigma {screen.sigma_:g}, NC {record['auto']['nc']['score']:.2f} "
            f"(class {record['auto']['nc']['class']}), W {record['auto']['w']['score']:.2f} "
            f"(class {record['auto']['w']['class']}), combined {record['auto']['combined']['score']:.2f} "
            f"(class {record['auto']['combined']['class']}) in {record['fit_seconds']:.0f} s, "
            f"{record['seconds']:.0f} s with the grid")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(jsonable({"signature": signature, "screen": record, "net": exp.nets[config.label]}),
                          indent=1)
        # a run stopped mid-write leaves no half record for the resume to choke on
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    labels = [int(config.threat is not None) for config in configs]
    where = ["auto", *(sigma_key(s) for s in exp.sigmas)]
    summary = summarize([screens[c.label] for c in configs], labels, where, n_sets)
    auc, target_accuracy, verdict = summary["auc"], summary["target_accuracy"], summary["verdict"]
    for score in SCORES:
        log(f"[screen_zoo] {score}: model-level AUC {auc[score]['auto']:.3f} at sigma auto "
            f"(grid {min(auc[score].values()):.3f}-{max(auc[score].values()):.3f}), target named in "
            f"{target_accuracy[score]['auto']:.0%} of the backdoored nets")
    log(f"[screen_zoo] verdict at 2.0: {verdict['true_positive_rate']:.0%} of the backdoored nets flagged, "
        f"{verdict['false_positive_rate']:.0%} of the clean ones")
    untestable = summary["untestable_sets"]
    untestable["not_recorded"] = [configs[i].label for i in untestable["not_recorded"]]
    if untestable["untested"]:
        log("[screen_zoo] stamped sets the Levene test could not judge (W without spread), of "
            f"{untestable['scored']}: {untestable_counts(untestable['untested'])}")
    if untestable["not_recorded"]:
        log(f"[screen_zoo] {len(untestable['not_recorded'])} net(s) screened before these sets were "
            "counted: their untestable sets are not known")

    png = plot_roc_panels(
        {f"{len(configs) - sum(labels)} clean vs {sum(labels)} backdoored nets, sigma auto": {
            name: (labels, _finite([screens[c.label]["auto"][name]["score"] for c in configs]))
            for name in SCORES}},
        exp.out_dir / "screen_zoo.png",
        suptitle=(f"Model screening without a trigger (NC candidates + W) - "
                  f"{DISPLAY_NAMES[exp.setup.dataset]}, {DISPLAY_NAMES[exp.setup.net]} ({exp.mode} mode)"),
        summary={"title": "model-level ROC AUC by $\\sigma$ (dotted: 0.5)", "xlabel": r"noise scale $\sigma$",
                 "ylabel": "ROC AUC", "x": list(exp.sigmas), "hline": 0.5,
                 "series": {name: [auc[name][sigma_key(s)] for s in exp.sigmas] for name in ("w", "combined")}},
    )
    return exp.finish(
        {
            "parameters": {**settings, "target": TARGET, "nets": [c.label for c in configs],
                           "backdoored": labels, "scores": SCORES},
            "auc": auc,
            "target_accuracy": target_accuracy,
            "verdict": verdict,
            "flagged": summary["flagged"],
            "untestable_sets": untestable,
            "screens": screens,
            "seconds_per_model": float(np.median([screens[c.label]["seconds"] for c in configs])),
            # the screen alone (fit); records from before it was timed apart have none
            "fit_seconds_per_model": _median_or_none([screens[c.label].get("fit_seconds") for c in configs]),
        },
        [png],
    )


def summarize(screens, backdoored, where, n_sets, threshold=2.0):
    """The zoo's model-level numbers from its nets' screen records.

    Parameters
    ----------
    screens : list of dict
        One record per net (as ``"screens"`` of the JSON holds them).
    backdoored : list of int
        1 for a backdoored net, 0 for a clean one, in the order of ``screens``.
    where : list of str
        ``"auto"`` and the sigma keys of the grid.
    n_sets : int
        Stamped sets per class of each screen.
    threshold : float, default=2.0
        The verdict's threshold (``ModelScreen``'s ``anomaly_threshold``).

    Returns
    -------
    dict
        ``"auc"`` and ``"target_accuracy"`` per score and ``where``; ``"verdict"``
        (the combined score's true and false positive rates at ``threshold``, as each
        screen decided); ``"flagged"`` per score at sigma auto (backdoored and clean nets
        whose score exceeds ``threshold``, and how many there are); ``"untestable_sets"``
        (stamped sets the Levene test could not judge, per ``where``: ``"scored"``, the
        stamped sets per sigma over the nets that counted them; ``"untested"``, where any;
        ``"not_recorded"``, the indices of nets whose records predate the count).
    """
    labels = np.asarray(backdoored)
    auc, target_accuracy = {}, {}
    for score in SCORES:
        for key in where:
            values = _finite([r[key][score]["score"] for r in screens])
            auc.setdefault(score, {})[key] = auc_or_nan(labels, values)
            named = [r[key][score]["class"] == TARGET for r, b in zip(screens, labels) if b]
            target_accuracy.setdefault(score, {})[key] = float(np.mean(named)) if named else float("nan")
    flagged_nets = np.array([r["backdoored"] for r in screens])

    def rate(group):
        return float(flagged_nets[labels == group].mean()) if (labels == group).any() else float("nan")

    verdict = {"true_positive_rate": rate(1), "false_positive_rate": rate(0), "threshold": threshold}
    flagged = {}
    for score in SCORES:
        above = np.array([(r["auto"][score]["score"] or -np.inf) > threshold for r in screens])
        flagged[score] = {"backdoored": int(above[labels == 1].sum()), "of_backdoored": int((labels == 1).sum()),
                          "clean": int(above[labels == 0].sum()), "of_clean": int((labels == 0).sum())}
    counted = [r for r in screens if "untested_sets" in r]
    untested = {key: sum(r["untested_sets"][key] for r in counted) for key in where}
    untestable = {"scored": sum(len(r["table"]["class"]) * n_sets for r in counted),
                  "untested": {k: v for k, v in untested.items() if v},
                  "not_recorded": [i for i, r in enumerate(screens) if "untested_sets" not in r]}
    return {"auc": auc, "target_accuracy": target_accuracy, "verdict": verdict, "flagged": flagged,
            "untestable_sets": untestable}


def _median_or_none(values):
    """The median of the values that are not None; None if there are none."""
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _finite(scores):
    """Scores for a ROC curve: an undefined score (None, NaN) ranks below every defined one."""
    values = np.array([np.nan if v is None else v for v in scores], dtype=float)
    floor = np.nanmin(values) - 1 if np.isfinite(values).any() else 0.0
    return np.where(np.isfinite(values), values, floor)


def _record(screen, by_sigma, config, seconds, fit_seconds):
    """One net's screen: the three scores (and their classes) at "auto" and per sigma.

    ``fit_seconds`` is the screen a user runs (``fit``); ``seconds`` adds W at the rest of
    the grid, measured for this table only.
    """
    def scores(table):
        record = {}
        for name, column in (("w", "smoothing_index"), ("combined", "combined_index")):
            values = table[column]
            finite = np.isfinite(values).any()
            best = int(np.nanargmax(values)) if finite else -1
            record[name] = {"score": float(values[best]) if finite else None,
                            "class": int(table["class"][best]) if finite else -1}
        return record

    nc = screen.cleanse_
    nc_score = {"score": None if np.isnan(nc.model_anomaly_index_) else float(nc.model_anomaly_index_),
                "class": int(nc.classes_[np.argmin(nc.mask_norms_)])}
    auto = {"nc": nc_score} | scores(screen.table_)
    return {
        "sigma_auto": screen.sigma_, "zero_share": screen.zero_share_,
        "auto": auto,
        **{key: {"nc": nc_score} | scores(table) for key, table in by_sigma.items()},
        "backdoored": screen.backdoored_, "suspected_class": screen.suspected_class_,
        "nc_flagged": nc.flagged_classes_.tolist(), "mask_norms": nc.mask_norms_.tolist(),
        "attack_success": nc.attack_success_.tolist(), "nc_steps": nc.n_steps_.tolist(),
        "table": {k: v.tolist() for k, v in screen.table_.items()},
        # Stamped sets the Levene test could not judge (W without spread), over the classes:
        # the screen's warnings say so, silenced while the zoo is scored.
        "untested_sets": {"auto": int(screen.table_["untested_sets"].sum()),
                          **{key: int(table["untested_sets"].sum()) for key, table in by_sigma.items()}},
        "warnings": [f"{type(w).__name__}: {w}" for w in screen.warnings_],
        "null_scores": screen.null_scores_.tolist(),
        "threat": config.threat, "trigger": config.trigger, "seed": config.seed,
        "seconds": round(seconds, 1), "fit_seconds": round(fit_seconds, 1),
    }
