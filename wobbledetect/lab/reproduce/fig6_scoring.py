"""Fig. 6 scored three ways: pooled over nets, within each net, and normalised per net.

Fig. 6's AUC pools the (reference, candidate) scores of 12 nets. Nets differ in how
wobbly they are, so one net's clean sets can outscore another's triggered ones although
each net alone separates them. Pre-registered (``docs/results.md``, "Pre-registered
design: why Fig. 6 does not reproduce", point 1), per threat model, sigma and direction:

- ``pooled``: the AUC over every pair of every net (the paper's, and Fig. 6's);
- ``within_net``: each backdoored net's AUC over its own pairs -- what a user who
  screens one model sees; median, minimum and maximum over the nets, and each net's;
- ``normalised``: the pooled AUC after standardising every score by its net's own
  clean-vs-clean null, ``z = (s - mean(null)) / sd(null)`` (only centred where the null
  has no spread). The null is the net's ``"null_scores"`` when the run drew null sets;
  else (the first Fig. 6 run) the scores of the net's clean candidates in the *other*
  repetitions (leave one repetition out).

Each with the paper's negatives (clean and untrained-trigger candidates) and with clean
candidates as the only negatives (``"paper"`` and ``"clean-only"``).

``unused_trigger``: the paper's "an unused trigger behaves like clean data", scored as
pre-registered (``docs/results.md``, amendment "how an unused trigger ... is scored"):
on the backdoored nets, the AUC of candidates carrying a trigger that is not the net's
own against the net's clean candidates, with an interval from a bootstrap over nets.

``wobbledetect reproduce fig6-scoring --out DIR`` re-scores ``DIR/fig6.json`` (no
training, no W) and writes ``fig6_scoring.json`` and ``fig6_scoring.png`` beside it; a
Fig. 6 run also stores this breakdown in its own JSON (``"scoring"``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ...plotting import COLORS, plot_line_panels
from ._common import auc_or_nan, finished_run, jsonable, within_net_summary

__all__ = ["run", "score_breakdown", "normalise_per_net", "unused_trigger_auc", "NEGATIVES"]

#: Which candidates count as negatives: the paper's labelling, or clean sets only.
NEGATIVES = ("paper", "clean-only")


def normalise_per_net(pairs, scores, null_scores=None):
    """Every pair's score standardised by its own net's clean-vs-clean null.

    Parameters
    ----------
    pairs : dict
        ``{"net": [...], "repetition": [...], "candidate": [...]}`` of one threat model.
    scores : array-like of shape (n_pairs,)
        One sigma's and direction's scores of those pairs.
    null_scores : dict of str -> array-like, optional
        Per net, scores of clean sets drawn for the null only. Default: leave one
        repetition out -- a pair's null is its net's clean-candidate scores in the other
        repetitions.

    Returns
    -------
    ndarray of shape (n_pairs,)

    Examples
    --------
    >>> from wobbledetect.lab.reproduce.fig6_scoring import normalise_per_net
    >>> pairs = {"net": ["a"] * 4 + ["b"] * 4, "repetition": [0, 0, 1, 1] * 2,
    ...          "candidate": ["clean", "square"] * 4}
    >>> scores = [1.0, 5.0, 3.0, 5.0, 11.0, 15.0, 13.0, 15.0]
    >>> normalise_per_net(pairs, scores).tolist()  # null of one value: only centred
    [-2.0, 2.0, 2.0, 4.0, -2.0, 2.0, 2.0, 4.0]
    """
    nets = np.asarray(pairs["net"])
    reps = np.asarray(pairs["repetition"])
    clean = np.asarray(pairs["candidate"]) == "clean"
    scores = np.asarray(scores, dtype=float)
    z = np.empty_like(scores)
    for i, (net, rep) in enumerate(zip(nets, reps)):
        if null_scores is not None:
            null = np.asarray(null_scores[net], dtype=float)
        else:
            null = scores[(nets == net) & clean & (reps != rep)]
        if null.size == 0:
            raise ValueError(f"Net {str(net)!r} has no null scores to normalise by.")
        sd = null.std(ddof=1) if null.size > 1 else 0.0
        z[i] = (scores[i] - null.mean()) / (sd if sd > 0 else 1.0)
    return z


def score_breakdown(results):
    """Pooled, within-net and normalised AUC of a Fig. 6 result, both negative sets.

    Parameters
    ----------
    results : dict
        What :func:`wobbledetect.lab.reproduce.fig6.run` returns (or ``fig6.json``):
        uses ``"pairs"``, ``"scores"`` and, when present, ``"null_scores"``.

    Returns
    -------
    dict
        ``{"pooled" | "normalised": {negatives: {direction: {threat: {sigma: auc}}}},
        "within_net": {negatives: {direction: {threat: {sigma: {"median", "min",
        "max", "per_net": {net: auc}}}}}}, "null": how the null was formed}``. Where a
        net has no null to normalise by (one repetition and no null sets), the
        normalised AUC is NaN and a ``UserWarning`` says why.
    """
    null_scores = results.get("null_scores")
    missing = None
    out = {"pooled": {}, "normalised": {}, "within_net": {},
           "null": "null sets" if null_scores else "leave one repetition out"}
    for threat, pairs in results["pairs"].items():
        labels = np.asarray(pairs["label"])
        nets = np.asarray(pairs["net"])
        clean = np.asarray(pairs["candidate"]) == "clean"
        backdoored = sorted({net for net, label in zip(nets, labels) if label})
        masks = {"paper": np.ones(len(labels), bool), "clean-only": (labels == 1) | clean}
        for key, by_direction in results["scores"][threat].items():
            for direction, score in by_direction.items():
                score = np.asarray(score, dtype=float)
                per_net_null = (None if not null_scores else
                                {net: null_scores[net][key][direction] for net in set(nets)})
                try:
                    z = normalise_per_net(pairs, score, per_net_null)
                except ValueError as exc:
                    z = None
                    missing = str(exc)
                for negatives, mask in masks.items():
                    def put(kind, value):
                        out[kind].setdefault(negatives, {}).setdefault(direction, {}).setdefault(
                            threat, {})[key] = value
                    put("pooled", auc_or_nan(labels[mask], score[mask]))
                    put("normalised", float("nan") if z is None else auc_or_nan(labels[mask], z[mask]))
                    per_net = {net: auc_or_nan(labels[mask & (nets == net)],
                                               score[mask & (nets == net)]) for net in backdoored}
                    put("within_net", within_net_summary(per_net))
    out["unused_trigger"] = unused_trigger_auc(results)
    if missing:
        warnings.warn(f"Fig. 6 scoring cannot normalise per net: {missing} Draw null sets "
                      "(null_sets > 0) or use at least 2 repetitions; the normalised AUC is NaN.",
                      UserWarning, stacklevel=2)
    return out


def unused_trigger_auc(results, *, n_boot=2000, random_state=0, alpha=0.05):
    """Do sets carrying a trigger the net was not trained on score like clean sets?

    On each backdoored net of a threat model, its candidates are scored against their
    repetition's reference (Fig. 6's "smoother" score). Three views of the triggered
    candidates, each against the same nets' clean candidates: ``"never trained"`` (a
    trigger that is no net's own in the run), ``"other"`` (every trigger but the net's
    own) and, for comparison, ``"own"``. The AUC pools the pairs of the backdoored nets;
    its interval comes from a bootstrap that resamples whole nets (their pairs are not
    independent), at level ``1 - alpha / n_sigmas``.

    Parameters
    ----------
    results : dict
        A Fig. 6 result: uses ``"pairs"`` and ``"scores"`` (direction ``"smoother"``).
    n_boot : int, default=2000
        Bootstrap draws of the backdoored nets, the same draws for every view and sigma.
    random_state : int, default=0
    alpha : float, default=0.05
        Split over the sigmas (Bonferroni) for the interval.

    Returns
    -------
    dict
        ``{"level": float, "never_trained": [names], "auc": {view: {threat: {sigma:
        {"auc", "low", "high", "n_triggered", "n_clean"}}}}, "behaves_like_clean":
        {view: {threat: bool}}}``, the last True iff every sigma's interval contains
        0.5 (not given for ``"own"``). A view with no candidates is left out.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce.fig6_scoring import unused_trigger_auc
    >>> pairs = {"net": ["a"] * 3 + ["b"] * 3, "repetition": [0] * 6,
    ...          "candidate": ["clean", "square", "plus"] * 2, "label": [0, 1, 0] * 2}
    >>> scores = {"T1": {"0.3": {"smoother": [0.0, 5.0, 1.0, 0.0, 5.0, -1.0]}}}
    >>> out = unused_trigger_auc({"pairs": {"T1": pairs}, "scores": scores})
    >>> out["never_trained"], out["auc"]["never trained"]["T1"]["0.3"]["auc"]
    (['plus'], 0.5)
    >>> out["auc"]["own"]["T1"]["0.3"]["auc"]
    1.0
    """
    all_pairs = results["pairs"]
    own_triggers = {c for p in all_pairs.values() for c, y in zip(p["candidate"], p["label"]) if y}
    never = sorted({c for p in all_pairs.values() for c in p["candidate"]}
                   - own_triggers - {"clean"})
    rng = np.random.default_rng(random_state)
    level = 1 - alpha / max(len(by_sigma) for by_sigma in results["scores"].values())
    out = {"level": level, "never_trained": never, "auc": {}, "behaves_like_clean": {}}
    for threat, pairs in all_pairs.items():
        nets, candidates = np.asarray(pairs["net"]), np.asarray(pairs["candidate"])
        labels = np.asarray(pairs["label"])
        backdoored = sorted(set(nets[labels == 1]))
        if not backdoored:
            continue
        in_zoo = np.isin(nets, backdoored)
        views = {"never trained": in_zoo & np.isin(candidates, never),
                 "other": in_zoo & (labels == 0) & (candidates != "clean"),
                 "own": labels == 1}
        clean = in_zoo & (candidates == "clean")
        draws = rng.integers(0, len(backdoored), size=(n_boot, len(backdoored)))
        counts = np.stack([np.bincount(d, minlength=len(backdoored)) for d in draws])
        for key, by_direction in results["scores"][threat].items():
            score = np.asarray(by_direction["smoother"], dtype=float)
            for view, triggered in views.items():
                if not triggered.any():
                    continue
                wins, n_t, n_c = _wins_by_net(score, nets, backdoored, triggered, clean)
                boot = (np.einsum("bi,ij,bj->b", counts, wins, counts)
                        / ((counts @ n_t) * (counts @ n_c)))
                low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
                out["auc"].setdefault(view, {}).setdefault(threat, {})[key] = {
                    "auc": float(wins.sum() / (n_t.sum() * n_c.sum())),
                    "low": float(low), "high": float(high),
                    "n_triggered": int(n_t.sum()), "n_clean": int(n_c.sum())}
    for view, by_threat in out["auc"].items():
        if view != "own":
            out["behaves_like_clean"][view] = {
                threat: all(c["low"] <= 0.5 <= c["high"] for c in cells.values())
                for threat, cells in by_threat.items()}
    return out


def _wins_by_net(score, nets, order, triggered, clean):
    """``wins[i, j]``: how often net i's triggered pairs outscore net j's clean ones (ties
    half), with the pair counts -- so that any multiset of nets has AUC m'Wm / (m'n_t m'n_c)."""
    t = [score[triggered & (nets == net)] for net in order]
    c = [score[clean & (nets == net)] for net in order]
    wins = np.array([[(a[:, None] > b).sum() + 0.5 * (a[:, None] == b).sum() for b in c] for a in t])
    return wins, np.array([len(a) for a in t]), np.array([len(b) for b in c])


def run(out_dir, *, log=print, epochs=None, **ignored):
    """Re-score ``out_dir/fig6.json``; write ``fig6_scoring.json`` and ``.png`` beside it.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The folder of a finished Fig. 6 run.
    log : callable, default=print
    epochs : None
        Refused: a finished run's nets have the epochs its JSON records.
    **ignored
        The options every figure takes (``quick``, ``data_dir``...); a re-scoring reads
        no data and trains nothing.

    Returns
    -------
    dict
        What ``fig6_scoring.json`` holds: :func:`score_breakdown` of the run, with its
        mode, epochs and sigmas.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import fig6_scoring
    >>> out = fig6_scoring.run("examples/results/fig6")  # doctest: +SKIP
    >>> out["normalised"]["paper"]["smoother"]["T3"]["0.3"]  # doctest: +SKIP
    """
    out_dir, source, results = finished_run(out_dir, "fig6", "fig6-scoring", epochs)
    breakdown = {
        "figure": "fig6_scoring", "source": source.name, "mode": results["mode"],
        "epochs": results.get("epochs", 4), "sigmas": results["parameters"]["sigmas"],
        **score_breakdown(results),
    }
    for threat in results["pairs"]:
        for kind in ("pooled", "normalised"):
            values = breakdown[kind]["paper"]["smoother"][threat]
            log(f"[fig6-scoring] {threat} {kind}: " + ", ".join(
                f"{k} {v:.2f}" for k, v in values.items()))
    unused = breakdown["unused_trigger"]
    for view, by_threat in unused["behaves_like_clean"].items():
        log(f"[fig6-scoring] unused trigger ({view}) behaves like clean: " + ", ".join(
            f"{threat} {'yes' if ok else 'no'}" for threat, ok in by_threat.items()))
    breakdown["files"] = [_plot(breakdown, out_dir / "fig6_scoring.png"), "fig6_scoring.json"]
    (out_dir / "fig6_scoring.json").write_text(
        json.dumps(jsonable(breakdown), indent=2, allow_nan=False) + "\n")
    log(f"[fig6-scoring] wrote fig6_scoring.png, fig6_scoring.json to {out_dir}")
    return breakdown


def _plot(breakdown, path):
    sigmas = breakdown["sigmas"]
    keys = [repr(float(s)) for s in sigmas]
    panels = []
    for threat in breakdown["pooled"]["paper"]["smoother"]:
        series, styles = {}, {}
        for j, kind in enumerate(("pooled", "normalised", "within_net")):
            for negatives, ls in (("paper", "-"), ("clean-only", "--")):
                cells = breakdown[kind][negatives]["smoother"][threat]
                values = [cells[k]["median"] if kind == "within_net" else cells[k] for k in keys]
                label = {"pooled": "pooled (the paper's)", "normalised": "pooled, normalised per net",
                         "within_net": "within each net (median)"}[kind]
                label = label if negatives == "paper" else f"{label}, clean-only negatives"
                series[label], styles[label] = values, (COLORS[j], ls)
        panels.append({"title": f"{threat}: 'smoother' AUC", "xlabel": r"noise scale $\sigma$",
                       "ylabel": "ROC AUC", "x": sigmas, "series": series, "styles": styles,
                       "hline": 0.5})
    return Path(plot_line_panels(
        panels, path,
        suptitle=f"Fig. 6 scored three ways ({breakdown['mode']} mode, {breakdown['epochs']} epochs)",
    )).name
