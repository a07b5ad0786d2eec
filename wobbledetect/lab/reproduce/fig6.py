"""Fig. 6: the Levene detector's ROC over clean and backdoored nets, for T3 and T1.

Pre-registered design (full mode):

- For each threat model in (T3, T1): 3 clean FashionCNNs (seeds 0, 1, 2) and 9
  backdoored ones: triggers 1, 3, 4 (``square``, ``checker2``, ``checker``) x seeds
  0, 1, 2, target class 0. The clean nets are the same for both threat models.
- 5 repetitions per net. Repetition r draws, from the test set, a clean *reference* set
  and the candidate sets: one fresh clean set and one set per trigger 1-8 (the eight
  triggered sets share their 25 base images, all of classes other than the target).
  The same sets are used for every net, so nets differ only by their training.
- Each (reference, candidate) pair is scored by
  :class:`~wobbledetect.LeveneBackdoorDetector` fitted on the reference
  (``decision_function``); the label is 1 iff the candidate carries the net's trained
  trigger (clean nets: never). Per threat model: 12 nets x 5 repetitions x 9 candidates =
  540 pairs, 45 positives.
- ROC AUC per sigma of the grid (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0) for each
  ``direction``; n = 250. ``"auc"`` in the JSON is the paper's direction (``smoother``):
  ``{"T3": {"0.05": ..., ...}, "T1": {...}}``; ``"auc_by_direction"`` has all three.
- Also recorded: each net's clean accuracy, backdoor accuracy, and the attack success
  of all eight triggers on it (on 1,000 test images of other classes than the target),
  since a trigger the net was not trained on may still work on it (a negative that
  behaves like a positive); the median W of every (net, candidate) per sigma.

The paper reports AUC 1.0 for T3 on Fashion-MNIST (and 0.99 for T1 on CIFAR-10).

Added by the second design (issue 13; ``docs/results.md``), without changing any set of
the first: 3 *null sets* per repetition, clean sets from a separate random stream
(``random_state + 1``) scored against the repetition's reference, which only serve to
normalise each net's scores (``"null_scores"``; :mod:`.fig6_scoring`, whose breakdown --
pooled, within each net, normalised -- is stored as ``"scoring"``);
``trigger_set="separated"`` (backdoored nets on ``ul-square``, ``ur-checker``,
``ll-cross``; candidates the four separated triggers); and ``epochs``. Each net's W is
also written to ``out_dir/nets/`` as soon as it is measured, and a later run of the same
command with the same parameters takes it from there instead of measuring it again, so
a run too long for one sitting can be finished in several.

Quick mode: T1 only, 1 clean + 3 backdoored quick nets (seed 0), 2 repetitions, sigmas
(0.1, 0.3), n = 100.

Cost (full, Fashion-MNIST): 21 nets (~3 min each on 2 CPU cores, ~1 h; Fig. 4's net is
one of them); (3 + 2 x 9) nets x 5 x 10 sets x 25 x 250 x 7 sigmas = 46M forwards
(~1 h at 13k forwards/s).
"""

from __future__ import annotations

import numpy as np

from ...plotting import plot_roc_panels
from ..train import backdoor_accuracy
from ..triggers import TRIGGER_SETS, get_trigger
from ..zoo import check_snapshots
from ._common import (
    DIRECTIONS, DISPLAY_NAMES, NOISE_SEED, SET_SIZE, TARGET, TRAINED_TRIGGERS, Experiment, NetRecord,
    auc_or_nan, draw_indices, measure_nets, reference_scores, sigma_key, zoo_configs, zoo_defaults,
)
from .fig6_scoring import score_breakdown

__all__ = ["run", "functional_trigger_auc", "FUNCTIONAL_ASR", "TRAINED_TRIGGERS"]

#: The candidate triggers of the first design: the eight patches of the paper's Fig. 3.
CANDIDATE_TRIGGERS = TRIGGER_SETS["fig3"]
#: Clean null sets per repetition (normalisation only; see :mod:`.fig6_scoring`).
NULL_SETS = 3
#: Test images (of other classes than the target) on which each trigger's attack success
#: on each net is measured.
CROSS_ASR_IMAGES = 1000
PAPER_AUC = {"T3": 1.0, "T1 (CIFAR-10)": 0.99}
#: Attack success from which a candidate trigger counts as *working* on a net in the
#: secondary analysis (:func:`functional_trigger_auc`): it flips most inputs.
FUNCTIONAL_ASR = 0.5


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, threats=None, trigger_set="fig3", triggers=None, seeds=None,
    repetitions=None, random_state=0, null_sets=NULL_SETS, snapshots=(), scheduler=None,
):
    """Run Fig. 6; write ``fig6.png`` and ``fig6.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download, epochs
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    threats : tuple of str, optional
        Default ("T3", "T1"); quick: ("T1",).
    trigger_set : {"fig3", "separated"}, default="fig3"
        The candidate triggers (:data:`~wobbledetect.lab.triggers.TRIGGER_SETS`).
    triggers : tuple of str, optional
        The backdoored nets' triggers; default :data:`TRAINED_TRIGGERS` of the set.
    seeds : tuple of int, optional
        Seeds of the clean nets and of each trigger's nets. Default (0, 1, 2); quick: (0,).
    repetitions : int, optional
        Reference/candidate draws per net. Default 5; quick: 2.
    random_state : int, default=0
        Seed of the sets drawn (the null sets: ``random_state + 1``).
    null_sets : int, default=3
        Clean null sets per repetition; 0 draws none (the first design).
    snapshots : tuple of int, default=()
        Epoch counts below ``epochs`` whose nets are cached on the way while a net is
        trained (:func:`~wobbledetect.lab.zoo.get_net`): a 16-epoch run with
        ``snapshots=(4,)`` leaves the 4-epoch run its nets, weight for weight. Only nets
        trained by this run are affected; the scores are the same with or without.
    scheduler : str or int, optional
        Run each net (training or loading it, its W and attack success) as a Dask task:
        the address of a Dask scheduler, or a number of local worker processes
        (:mod:`wobbledetect.lab.parallel`); the results are the serial run's. None: here,
        one net after the other.

    Returns
    -------
    dict
        What ``fig6.json`` holds.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import fig6
    >>> results = fig6.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> results["auc"]["T1"]["0.3"]  # doctest: +SKIP
    """
    exp = Experiment("fig6", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download,
                     epochs=epochs)
    if trigger_set not in TRIGGER_SETS:
        raise ValueError(f"The 'trigger_set' parameter must be one of {sorted(TRIGGER_SETS)}; "
                         f"got {trigger_set!r}.")
    candidate_triggers = TRIGGER_SETS[trigger_set]
    snapshots = check_snapshots(snapshots, exp.epochs)
    threats, triggers, seeds = zoo_defaults(quick, threats, triggers or TRAINED_TRIGGERS[trigger_set], seeds)
    repetitions = int(repetitions or (2 if quick else 5))
    null_sets = int(null_sets)
    n_candidates = 1 + len(candidate_triggers)
    per_rep = 1 + n_candidates + null_sets
    nets, distinct = zoo_configs(exp, threats, triggers, seeds)
    exp.plan(distinct, len(distinct) * repetitions * per_rep * SET_SIZE
             * exp.n_samples * len(exp.sigmas))

    data = exp.data
    sets = _draw_sets(data, repetitions, np.random.RandomState(random_state), candidate_triggers,
                      null_sets, np.random.RandomState(random_state + 1))
    candidates = ["clean", *candidate_triggers]
    others = np.flatnonzero(data.y_test != TARGET)[:CROSS_ASR_IMAGES]
    signature = {
        "candidates": candidates, "repetitions": repetitions, "null_sets": null_sets,
        "random_state": random_state, "n_samples": exp.n_samples, "noise_seed": NOISE_SEED,
        "sigmas": [sigma_key(s) for s in exp.sigmas], "cross_asr_images": len(others),
    }

    measure = (sets, others, candidate_triggers, signature, repetitions, per_rep, snapshots)
    records = measure_nets(exp, distinct, signature, _measure_net, measure, scheduler=scheduler)
    # by net label; clean nets are scored once for all threats
    W_of = {label: {key: arrays[f"W_{key}"] for key in signature["sigmas"]}
            for label, (arrays, _) in records.items()}
    cross_asr = {label: meta["cross_asr"] for label, (_, meta) in records.items()}

    pairs, scores, auc, median_w = {}, {}, {d: {} for d in DIRECTIONS}, {}
    for threat in threats:
        labels, pair_net, pair_rep, pair_candidate = [], [], [], []
        for config in nets[threat]:
            for rep in range(repetitions):
                for name in candidates:
                    labels.append(int(config.trigger is not None and name == config.trigger))
                    pair_net.append(config.label)
                    pair_rep.append(rep)
                    pair_candidate.append(name)
        pairs[threat] = {"net": pair_net, "repetition": pair_rep, "candidate": pair_candidate,
                         "label": labels}
        scores[threat], median_w[threat] = {}, {}
        for sigma in exp.sigmas:
            key = sigma_key(sigma)
            scores[threat][key] = {
                direction: np.concatenate([
                    reference_scores(W_of[config.label][key][:, :1 + n_candidates], direction)
                    for config in nets[threat]
                ])
                for direction in DIRECTIONS
            }
            for direction in DIRECTIONS:
                auc[direction].setdefault(threat, {})[key] = auc_or_nan(
                    labels, scores[threat][key][direction])
            median_w[threat][key] = {
                config.label: {
                    name: float(np.median(W_of[config.label][key][:, 1 + j]))
                    for j, name in enumerate(candidates)
                } | {"reference": float(np.median(W_of[config.label][key][:, 0]))}
                for config in nets[threat]
            }
            log(f"[fig6] {threat} sigma={sigma:g}: AUC smoother "
                f"{auc['smoother'][threat][key]:.3f}, wobblier {auc['wobblier'][threat][key]:.3f}, "
                f"two-sided {auc['two-sided'][threat][key]:.3f} "
                f"({sum(labels)} positives of {len(labels)} pairs)")

    null_scores = {}
    if null_sets:
        for label, by_sigma in W_of.items():
            null_scores[label] = {
                key: {direction: reference_scores(np.delete(W, np.s_[1:1 + n_candidates], axis=1),
                                                  direction)
                      for direction in DIRECTIONS}
                for key, W in by_sigma.items()
            }
    scoring = score_breakdown({"pairs": pairs, "scores": scores, "null_scores": null_scores})
    for threat in threats:
        log(f"[fig6] {threat} 'smoother' AUC normalised per net ({scoring['null']}): " + ", ".join(
            f"{k} {v:.3f}" for k, v in scoring["normalised"]["paper"]["smoother"][threat].items()))

    png = _plot(exp, threats, pairs, scores, auc, nets, repetitions)
    return exp.finish(
        {
            "parameters": {
                "threats": list(threats), "trigger_set": trigger_set, "triggers": list(triggers),
                "seeds": list(seeds), "null_sets": null_sets,
                "repetitions": repetitions, "candidates": candidates, "target": TARGET,
                "set_size": SET_SIZE, "n_samples": exp.n_samples, "sigmas": list(exp.sigmas),
                "random_state": random_state, "cross_asr_images": len(others),
                "nets_per_threat": {t: [c.label for c in nets[t]] for t in threats},
            },
            "auc": auc["smoother"],
            "auc_by_direction": auc,
            "paper_auc": PAPER_AUC,
            "pairs": pairs,
            "scores": scores,
            "median_w": median_w,
            "cross_trigger_backdoor_accuracy": cross_asr,
            "null_scores": null_scores,
            "scoring": scoring,
        } | {"secondary": functional_trigger_auc({
            "pairs": pairs, "scores": scores, "cross_trigger_backdoor_accuracy": cross_asr})},
        [png],
    )


def functional_trigger_auc(results, threshold=FUNCTIONAL_ASR):
    """Secondary analysis: AUC when a candidate is labelled by whether its trigger *works*.

    The pre-registered label of a (reference, candidate) pair is 1 iff the candidate
    carries the trigger the net was trained on. But a net may also obey triggers it was
    never trained on (our corner patches generalise to each other), and such candidates
    then count as negatives while behaving like active triggers. Here a candidate is
    labelled 1 iff its trigger's measured attack success on that net is at least
    ``threshold`` -- whether or not it was trained -- and the same scores are re-scored.
    This analysis was added after the quick runs showed the generalisation; it is
    reported beside, never instead of, the pre-registered AUC.

    Parameters
    ----------
    results : dict
        What :func:`run` returns (or ``fig6.json`` loaded): uses ``"pairs"``,
        ``"scores"`` and ``"cross_trigger_backdoor_accuracy"``.
    threshold : float, default=FUNCTIONAL_ASR

    Returns
    -------
    dict
        ``{"threshold", "positives": {threat: n}, "auc_by_direction": {direction:
        {threat: {sigma: auc}}}}``.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce.fig6 import functional_trigger_auc
    >>> results = {
    ...     "pairs": {"T1": {"net": ["a", "a", "a"], "candidate": ["clean", "square", "plus"],
    ...                      "label": [0, 1, 0]}},
    ...     "scores": {"T1": {"0.1": {"smoother": [0.0, 2.0, 1.0]}}},
    ...     "cross_trigger_backdoor_accuracy": {"a": {"square": 0.99, "plus": 0.8}},
    ... }
    >>> out = functional_trigger_auc(results)
    >>> out["positives"], out["auc_by_direction"]["smoother"]["T1"]["0.1"]
    ({'T1': 2}, 1.0)
    """
    asr = results["cross_trigger_backdoor_accuracy"]
    positives, auc = {}, {}
    for threat, pairs in results["pairs"].items():
        labels = [
            int(candidate != "clean" and asr[net][candidate] >= threshold)
            for net, candidate in zip(pairs["net"], pairs["candidate"])
        ]
        positives[threat] = sum(labels)
        for key, by_direction in results["scores"][threat].items():
            for direction, score in by_direction.items():
                auc.setdefault(direction, {}).setdefault(threat, {})[key] = auc_or_nan(labels, score)
    return {"threshold": threshold, "positives": positives, "auc_by_direction": auc}


def _draw_sets(data, repetitions, rng, candidate_triggers=CANDIDATE_TRIGGERS, null_sets=0,
               null_rng=None):
    """Per repetition: reference, fresh clean, the base images with each trigger, null sets.

    The null sets come from their own stream, so the other sets are the first design's.
    """
    every = np.arange(len(data.y_test))
    others = np.flatnonzero(data.y_test != TARGET)
    sets = []
    for _ in range(repetitions):
        sets.append(data.X_test[draw_indices(rng, every, SET_SIZE)])
        sets.append(data.X_test[draw_indices(rng, every, SET_SIZE)])
        base = data.X_test[draw_indices(rng, others, SET_SIZE)]
        sets.extend(get_trigger(trigger)(base) for trigger in candidate_triggers)
        sets.extend(data.X_test[draw_indices(null_rng, every, SET_SIZE)] for _ in range(null_sets))
    return np.stack(sets)


def _measure_net(exp, config, measure):
    """One net: train or load it, measure its attack success and W, save its NetRecord."""
    sets, others, candidate_triggers, signature, repetitions, per_rep, snapshots = measure
    data = exp.data
    model = exp.net(config, snapshots=snapshots)
    cross_asr = {
        trigger: backdoor_accuracy(model, data.X_test[others], data.y_test[others], trigger,
                                   "T1", target=TARGET, n_classes=data.n_classes)
        for trigger in candidate_triggers
    }
    wob = exp.wobbliness(model)
    W = {
        f"W_{sigma_key(sigma)}": exp.W(wob, sigma, sets, config.label).reshape(repetitions, per_rep, SET_SIZE)
        for sigma in exp.sigmas
    }
    NetRecord(exp, config, signature).save(W, cross_asr=cross_asr)


def _plot(exp, threats, pairs, scores, auc, nets, repetitions):
    panels = {}
    for threat in threats:
        n_pairs = len(pairs[threat]["label"])
        title = (f"{threat}: {len(nets[threat])} nets x {repetitions} repetitions, "
                 f"{sum(pairs[threat]['label'])} of {n_pairs} pairs triggered")
        panels[title] = {
            f"$\\sigma$={sigma:g}": (pairs[threat]["label"], scores[threat][sigma_key(sigma)]["smoother"])
            for sigma in exp.sigmas
        }
    series = {
        f"{threat}, {direction}": [auc[direction][threat][sigma_key(s)] for s in exp.sigmas]
        for threat in threats for direction in ("smoother", "two-sided")
    }
    return plot_roc_panels(
        panels, exp.out_dir / "fig6.png",
        suptitle=(f"Fig. 6 - Levene detector on $W_\\sigma$ ('smoother' direction, the paper's)\n"
                  f"{DISPLAY_NAMES[exp.setup.dataset]}, {DISPLAY_NAMES[exp.setup.net]}, "
                  f"sets of {SET_SIZE}, n={exp.n_samples} ({exp.mode} mode)"),
        summary={
            "title": "ROC AUC by $\\sigma$ (wobblier = 1 - smoother)",
            "xlabel": r"noise scale $\sigma$", "ylabel": "ROC AUC",
            "x": list(exp.sigmas), "series": series, "hline": 0.5,
        },
    )
