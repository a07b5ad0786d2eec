"""Neural Cleanse candidates and W: is backdoor smoothing unique to backdoors? (paper §5)

The paper crafts one Neural Cleanse candidate per class on clean and backdoored nets,
stamps them onto clean test data and finds that "the test detects all of the inputs with
the crafted perturbation as backdoors with the same, very low p-value"; stamped onto
training data the candidates send "100%" to their class. So smoothing is not unique to
backdoors.

Pre-registered design (``docs/results.md``, "Pre-registered design: is this model
backdoored?", point 2), full mode:

- The 21 nets of Fig. 6's first design at 4 epochs (T3 and T1; 3 clean, 9 backdoored each).
- :class:`~wobbledetect.NeuralCleanse` with its defaults on 1,000 clean training images
  (the first 1,000 of ``RandomState(0).permutation(n_train)``, as Fig. 7), all 10 classes,
  ``random_state=0``: mask norms, anomaly index, flagged classes.
- The paper's sanity check: each candidate's success on the next 1,000 training images.
- 5 repetitions of (clean reference, clean candidate, and per class 25 test images of the
  other classes stamped with that class's candidate); the same base images for every net.
- Per (net, class, sigma): the median over repetitions of the signed Levene score (the
  "smoother" direction's ``score_samples``; positive: smoother than clean) and the share
  of repetitions flagged smoother at alpha 0.05. The claim counts as reproduced at a sigma
  if at least 90% of the (net, class) candidates have a median score above
  ``-log10(0.05)`` while the clean candidates do so at most at their own rate.

Quick mode: T1 only, the clean and ``square`` quick nets, 200 crafting images, a short
Neural Cleanse (10 steps of 2 batches), 2 repetitions, sigmas (0.1, 0.3), n = 100.

Cost (full, 2 CPU cores): Neural Cleanse on 10 classes per net (several minutes for a
FashionCNN) and 21 x 5 x 12 x 25 x 250 x 7 = 55M forwards for W (~70 min).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from ... import LeveneBackdoorDetector, NeuralCleanse
from ...plotting import plot_heatmaps
from ..train import predict
from ._common import (
    DISPLAY_NAMES, NOISE_SEED, SET_SIZE, TARGET, Experiment, NetRecord, draw_indices, measure_nets,
    sigma_key, zoo_configs, zoo_defaults,
)

__all__ = ["run", "collect", "summarize", "DETECTED_SHARE"]

#: Share of candidates that must be flagged for the paper's claim to count as reproduced.
DETECTED_SHARE = 0.9
#: A candidate set is flagged where its signed Levene score exceeds this: p < 0.05, smoother.
FLAGGED_ABOVE = float(-np.log10(0.05))
#: The sigma shown in the figure (every sigma is in the JSON).
PLOTTED_SIGMA = 0.3


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, threats=None, repetitions=None, random_state=0, scheduler=None,
):
    """Craft and score NC candidates; write ``nc_candidates.png`` and ``.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    epochs : int, optional
        Training epochs of the nets (default: the pre-registered 4; quick 2).
    threats : tuple of str, optional
        Default ("T3", "T1"); quick: ("T1",).
    repetitions : int, optional
        Default 5; quick 2.
    random_state : int, default=0
        Seeds the crafting images, the sets and Neural Cleanse.
    scheduler : str or int, optional
        Run each net as a Dask task (see :mod:`wobbledetect.lab.parallel`).

    Returns
    -------
    dict
        What ``nc_candidates.json`` holds: ``"candidates"[net]`` (NC's numbers and, per
        sigma, each class's median score and flagged share), ``"clean_scores"[net]``,
        ``"summary"[threat][sigma]`` (shares of candidates flagged, and how many sets the
        Levene test could not judge: W without spread, score exactly 0) and ``"reproduced"``.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import nc_candidates
    >>> out = nc_candidates.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> out["summary"]["T1"]["0.3"]["candidates_flagged"]  # doctest: +SKIP
    """
    exp = Experiment("nc_candidates", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download, epochs=epochs)
    threats, triggers, seeds = zoo_defaults(quick, threats)
    repetitions = int(repetitions or (2 if quick else 5))
    cleanse = NeuralCleanse(None, max_steps=10, batches_per_step=2) if quick else NeuralCleanse(None)
    nets, distinct = zoo_configs(exp, threats, triggers, seeds)
    data = exp.data
    n_classes = data.n_classes
    exp.plan(distinct, len(distinct) * repetitions * (2 + n_classes) * SET_SIZE * exp.n_samples
             * len(exp.sigmas))

    rng = np.random.RandomState(random_state)
    order = rng.permutation(len(data.X_train))
    n_craft = 200 if quick else 1000
    crafting, checking = order[:n_craft], order[n_craft:2 * n_craft]  # training indices
    every = np.arange(len(data.y_test))
    clean_sets = np.stack([draw_indices(rng, every, SET_SIZE) for _ in range(2 * repetitions)])
    clean_sets = clean_sets.reshape(repetitions, 2, SET_SIZE)  # test indices: reference, candidate
    bases = np.stack([np.stack([draw_indices(rng, np.flatnonzero(data.y_test != k), SET_SIZE)
                                for k in range(n_classes)]) for _ in range(repetitions)])
    threshold = FLAGGED_ABOVE

    signature = {"sigmas": [sigma_key(s) for s in exp.sigmas], "repetitions": repetitions,
                 "random_state": random_state, "crafting_images": n_craft,
                 "cleanse": _cleanse_parameters(cleanse), "n_samples": exp.n_samples,
                 "noise_seed": NOISE_SEED}
    measure = (cleanse, crafting, checking, clean_sets, bases, random_state, signature)
    records = measure_nets(exp, distinct, signature, _measure_net, measure, scheduler=scheduler)
    candidates, clean_scores = collect(records, signature["sigmas"])
    summary, reproduced = summarize(candidates, clean_scores,
                                    {t: [(c.label, c.threat is not None) for c in nets[t]] for t in threats},
                                    signature["sigmas"])
    for threat in threats:
        for key, s in summary[threat].items():
            log(f"[nc_candidates] {threat} sigma={key}: {s['candidates_flagged']:.0%} of the candidates "
                f"flagged smoother (clean sets {s['clean_flagged']:.0%})"
                + (f"; untestable: {s['untestable_candidate_sets']} of {s['scored_candidate_sets']} "
                   f"candidate sets, {s['untestable_clean_sets']} of {s['scored_clean_sets']} clean ones"
                   if s["untestable_candidate_sets"] or s["untestable_clean_sets"] else ""))

    plotted = sigma_key(PLOTTED_SIGMA if PLOTTED_SIGMA in exp.sigmas else exp.sigmas[-1])
    png = plot_heatmaps(
        [{"panels": {f"{threat}: mask norm": ([candidates[c.label]["mask_norms"] for c in nets[threat]],
                                              [c.label for c in nets[threat]]) for threat in threats},
          "cmap": "viridis", "vmin": 0.0,
          "vmax": float(max(np.max(r["mask_norms"]) for r in candidates.values())),
          "label": "|m|_1", "fmt": ".0f"},
         {"panels": {f"{threat}: Levene score, sigma {plotted}": (
             [candidates[c.label]["median_score"][plotted] for c in nets[threat]],
             [c.label for c in nets[threat]]) for threat in threats},
          "cmap": "RdBu", "vmin": -5.0, "vmax": 5.0, "label": "signed -log10 p (+: smoother)", "fmt": ".1f"}],
        exp.out_dir / "nc_candidates.png", col_labels=[str(k) for k in range(n_classes)],
        xlabel="candidate class",
        suptitle=(f"Neural Cleanse candidates and W - {DISPLAY_NAMES[exp.setup.dataset]}, "
                  f"{DISPLAY_NAMES[exp.setup.net]}, {exp.epochs} epochs ({exp.mode} mode)"),
    )
    return exp.finish(
        {
            "parameters": {"threats": list(threats), "triggers": list(triggers), "seeds": list(seeds),
                           "repetitions": repetitions, "set_size": SET_SIZE, "n_samples": exp.n_samples,
                           "sigmas": list(exp.sigmas), "random_state": random_state,
                           "crafting_images": len(crafting), "checking_images": len(checking),
                           "cleanse": _cleanse_parameters(cleanse),
                           "flagged_above": threshold, "detected_share": DETECTED_SHARE,
                           "nets_per_threat": {t: [c.label for c in nets[t]] for t in threats}},
            "candidates": candidates,
            "clean_scores": clean_scores,
            "summary": summary,
            "reproduced": reproduced,
        },
        [png],
    )


def collect(records, sigmas):
    """``(candidates, clean_scores)`` as the JSON holds them, from the nets' records.

    Parameters
    ----------
    records : dict of str to (dict, dict)
        Per net label, the ``(arrays, meta)`` of its :class:`NetRecord`.
    sigmas : list of str
        The sigma keys of the run.
    """
    candidates, clean_scores = {}, {}
    for label, (arrays, _) in records.items():
        candidates[label] = {name: arrays[name] for name in _PER_CLASS} | {
            "model_anomaly_index": float(arrays["model_anomaly_index"]),
            "median_score": {key: arrays[f"median_score_{key}"] for key in sigmas},
            "flagged_share": {key: arrays[f"flagged_share_{key}"] for key in sigmas},
            # Sets the Levene test could not judge (W without spread: p NaN, score exactly 0,
            # the detector's DegenerateWobblinessWarning): clean candidate, then each class.
            # The records keep scores, not p, so this is "score exactly 0", which also counts
            # the rare tested set whose spread equals the reference's (p = 1): an upper bound.
            "untestable_sets": {key: np.count_nonzero(arrays[f"scores_{key}"] == 0, axis=0)
                                for key in sigmas},
        }
        clean_scores[label] = {key: arrays[f"clean_scores_{key}"] for key in sigmas}
    return candidates, clean_scores


def summarize(candidates, clean_scores, nets, sigmas):
    """Per threat model and sigma, the shares of candidates and clean sets flagged smoother.

    Parameters
    ----------
    candidates, clean_scores : dict
        As :func:`collect` returns them.
    nets : dict of str to list of (str, bool)
        Per threat model, its nets' labels and whether each is backdoored.
    sigmas : list of str

    Returns
    -------
    summary : dict
        ``summary[threat][sigma]``: ``candidates_flagged`` (share of the (net, class)
        candidates whose median score is above ``-log10(0.05)``), ``target_candidates_flagged``
        (the same for the backdoored nets' target class; None without one),
        ``clean_flagged`` (share of clean candidate sets), ``median_candidate_score``; the
        same three shares in the other direction (``..._wobblier``: the score below
        ``-log10(0.05)``, the "wobblier" detector's score being the negated one); and
        the sets the test could not judge (``untestable_candidate_sets`` of
        ``scored_candidate_sets``, ``untestable_clean_sets`` of ``scored_clean_sets``).
    reproduced : dict
        ``reproduced[threat][sigma]``: the design's rule, at least :data:`DETECTED_SHARE`
        of the candidates flagged and clean sets flagged at most as often.
    """
    summary, reproduced = {}, {}
    for threat, members in nets.items():
        labels = [label for label, _ in members]
        for key in sigmas:
            every_candidate = np.concatenate([candidates[n]["median_score"][key] for n in labels])
            targets = [candidates[n]["median_score"][key][TARGET] for n, backdoored in members if backdoored]
            clean = np.concatenate([clean_scores[n][key] for n in labels])
            summary.setdefault(threat, {})[key] = {
                "candidates_flagged": float(np.mean(every_candidate > FLAGGED_ABOVE)),
                "target_candidates_flagged": float(np.mean(np.array(targets) > FLAGGED_ABOVE)) if targets else None,
                "clean_flagged": float(np.mean(clean > FLAGGED_ABOVE)),
                "median_candidate_score": float(np.median(every_candidate)),
                # the other direction: the "wobblier" score is the "smoother" one negated
                "candidates_flagged_wobblier": float(np.mean(every_candidate < -FLAGGED_ABOVE)),
                "target_candidates_flagged_wobblier": (float(np.mean(np.array(targets) < -FLAGGED_ABOVE))
                                                       if targets else None),
                "clean_flagged_wobblier": float(np.mean(clean < -FLAGGED_ABOVE)),
                "untestable_candidate_sets": int(sum(candidates[n]["untestable_sets"][key][1:].sum()
                                                     for n in labels)),
                "untestable_clean_sets": int(sum(candidates[n]["untestable_sets"][key][0] for n in labels)),
                "scored_candidate_sets": len(every_candidate) * len(clean_scores[labels[0]][key]),
                "scored_clean_sets": len(clean),
            }
            s = summary[threat][key]
            reproduced.setdefault(threat, {})[key] = bool(
                s["candidates_flagged"] >= DETECTED_SHARE and s["clean_flagged"] <= s["candidates_flagged"])
    return summary, reproduced


#: Per-class arrays of a net's record, as ``"candidates"[net]`` of the JSON names them.
_PER_CLASS = ("mask_norms", "anomaly_index", "flagged", "reached_threshold", "steps",
              "success_crafting", "success_other_training")


def _cleanse_parameters(cleanse):
    """The Neural Cleanse settings (all but the model): recorded in the JSON and the signature."""
    return {k: v for k, v in cleanse.get_params().items() if k != "model"}


def _measure_net(exp, config, measure):
    """One net: craft its candidates, measure W of its sets and score them, save a NetRecord."""
    cleanse, crafting, checking, clean_sets, bases, random_state, signature = measure
    data = exp.data
    n_classes = data.n_classes
    repetitions = len(clean_sets)
    model = exp.net(config)
    nc = clone(cleanse).set_params(model=model, input_shape=data.input_shape,
                                   random_state=random_state).fit(data.X_train[crafting])
    stamped = np.stack([nc.apply(data.X_test[bases[:, k]], int(k)) for k in range(n_classes)], axis=1)
    sets = np.concatenate([data.X_test[clean_sets], stamped], axis=1)  # per repetition: ref, clean, classes
    flat = sets.reshape(-1, *sets.shape[2:])
    checking_images = data.X_train[checking]
    arrays = {
        "mask_norms": nc.mask_norms_, "anomaly_index": nc.anomaly_index_, "flagged": nc.flagged_classes_,
        "model_anomaly_index": np.float64(nc.model_anomaly_index_),
        "reached_threshold": nc.reached_threshold_, "steps": nc.n_steps_,
        "success_crafting": nc.attack_success_,
        "success_other_training": np.array([float(np.mean(predict(model, nc.apply(checking_images, k)) == k))
                                            for k in range(n_classes)]),
    }
    wob = exp.wobbliness(model)
    threshold = FLAGGED_ABOVE
    for sigma in exp.sigmas:
        key = sigma_key(sigma)
        W = exp.W(wob, sigma, flat, config.label).reshape(repetitions, 2 + n_classes, SET_SIZE)
        scores = np.stack([
            LeveneBackdoorDetector(direction="smoother").fit(W[r, :1]).score_samples(W[r, 1:])
            for r in range(repetitions)])  # (repetitions, 1 + n_classes)
        arrays[f"scores_{key}"] = scores  # every set's score: the untestable ones are exactly 0
        arrays[f"clean_scores_{key}"] = scores[:, 0]
        arrays[f"median_score_{key}"] = np.median(scores[:, 1:], axis=0)
        arrays[f"flagged_share_{key}"] = np.mean(scores[:, 1:] > threshold, axis=0)
    NetRecord(exp, config, signature).save(arrays)
    exp.log(f"[nc_candidates] {config.label}: norms " + " ".join(f"{v:.0f}" for v in nc.mask_norms_)
            + f", flagged {nc.flagged_classes_.tolist()}; candidates flagged smoother at sigma "
            + ", ".join(f"{sigma_key(s)} {np.mean(arrays[f'median_score_{sigma_key(s)}'] > threshold):.0%}"
                        for s in exp.sigmas))
