"""Fig. 6 with larger sets: the pooled Levene AUC over the whole zoo for sets of 25 to 100.

:mod:`.set_size` found that sets of 100 inputs separate triggered from clean sets within
one net. This asks whether that holds for Fig. 6's AUC, pooled over its 12 nets per
threat model. Pre-registered (``docs/results.md``, "Pre-registered design: why Fig. 6
does not reproduce", the amendment "Fig. 6 with larger sets"), full mode:

- Fig. 6's zoo on the first trigger set: 3 clean nets and, for T1 and T3, nets on
  ``square``, ``checker2`` and ``checker``, seeds 0, 1, 2, at ``epochs`` (the design
  runs 4 and 16: the nets of the two Fig. 6 runs, from the cache).
- 5 repetitions of a clean reference, a clean candidate and, on a backdoored net, a
  candidate carrying its trained trigger, 100 test images each (``random_state``; the
  same reference and clean images for every net, the triggered set the same base images
  stamped with each net's trigger); the sets of 25 and 50 are the first inputs of those
  of 100. Clean nets: reference and clean candidate only. Sigma 0.1, 0.2, 0.3, 0.5;
  n = 250.
- Labels: trained-trigger sets positive, the clean candidates of all nets negative (no
  untrained triggers: the comparison is Fig. 6's clean-only row). AUC of every
  direction pooled over the nets and within each backdoored net (median, min, max).

Quick mode: T1 only, the quick zoo (a clean and a ``square`` net of seed 0), sizes 25
and 50, the quick sigmas, n = 100, 2 repetitions.

Cost (full, per training length, 2 CPU cores): (18 x 3 + 3 x 2) x 5 sets x 100 inputs x
250 copies x 4 sigmas = 30M forwards (~40 min). Each net's W is kept in ``nets/*.npz``
(a later identical run reads it back); ``scheduler`` runs each net as a Dask task.
"""

from __future__ import annotations

import numpy as np

from ...plotting import COLORS, plot_line_panels
from ._common import (
    DIRECTIONS, DISPLAY_NAMES, NOISE_SEED, TARGET, Experiment, NetRecord, auc_or_nan, draw_triplets,
    measure_nets, reference_scores, sigma_key, within_net_summary, zoo_configs, zoo_defaults,
)
from .set_size import SIGMAS

__all__ = ["run", "SIZES"]

#: Set sizes of the full mode (Fig. 6's 25, and the sizes where one net separated).
SIZES = (25, 50, 100)
QUICK_SIZES = (25, 50)


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, threats=None, triggers=None, seeds=None, sizes=None, sigmas=None,
    repetitions=None, random_state=0, scheduler=None,
):
    """Run Fig. 6 with larger sets; write ``set_size_zoo.png`` and ``set_size_zoo.json``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    epochs : int, optional
        Training epochs of the nets (default: the pre-registered 4; quick 2).
    threats : tuple of str, optional
        Default ("T3", "T1"); quick: ("T1",).
    triggers : tuple of str, optional
        The backdoored nets' triggers; default Fig. 6's (quick: ``square``).
    seeds : tuple of int, optional
        Default (0, 1, 2); quick: (0,).
    sizes : tuple of int, optional
        Default :data:`SIZES`; quick: (25, 50).
    sigmas : tuple of float, optional
        Default :data:`~wobbledetect.lab.reproduce.set_size.SIGMAS`; quick: the quick sigmas.
    repetitions : int, optional
        Default 5; quick 2.
    random_state : int, default=0
        Seeds the sets.
    scheduler : str or int, optional
        Run each net as a Dask task (:mod:`wobbledetect.lab.parallel`).

    Returns
    -------
    dict
        What ``set_size_zoo.json`` holds: ``"auc"[threat][direction][sigma][size]`` pooled
        over the nets, ``"within_net"`` (the same, per net and as median / min / max over
        the backdoored nets), ``"best"`` (the pooled "smoother" AUC at the best sigma per
        size), ``"reproduced"`` (pooled "smoother" AUC ≥ 0.95 at some sigma).

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import set_size_zoo
    >>> out = set_size_zoo.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> out["auc"]["T1"]["smoother"]["0.3"]["50"]  # doctest: +SKIP
    """
    exp = Experiment("set_size_zoo", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download, epochs=epochs)
    threats, triggers, seeds = zoo_defaults(quick, threats, triggers, seeds)
    sizes = tuple(sorted({int(s) for s in (sizes or (QUICK_SIZES if quick else SIZES))}))
    if sizes[0] < 3:
        raise ValueError(f"The 'sizes' parameter must hold set sizes of at least 3; got {list(sizes)}.")
    sigmas = tuple(sigmas or (exp.sigmas if quick else SIGMAS))
    repetitions = int(repetitions or (2 if quick else 5))
    largest = sizes[-1]
    nets, distinct = zoo_configs(exp, threats, triggers, seeds)
    n_sets = sum(3 if config.trigger else 2 for config in distinct) * repetitions
    exp.plan(distinct, n_sets * largest * exp.n_samples * len(sigmas))

    signature = {"sigmas": [sigma_key(s) for s in sigmas], "largest": largest,
                 "repetitions": repetitions, "random_state": random_state,
                 "n_samples": exp.n_samples, "noise_seed": NOISE_SEED}
    measure = (sigmas, largest, repetitions, random_state, signature)
    records = measure_nets(exp, distinct, signature, _measure_net, measure, scheduler=scheduler)
    W_of = {label: {key: arrays[f"W_{key}"] for key in signature["sigmas"]}
            for label, (arrays, _) in records.items()}

    auc, within = {}, {}
    for threat in threats:
        for direction in DIRECTIONS:
            for sigma in sigmas:
                key = sigma_key(sigma)
                for size in sizes:
                    pooled, per_net = _cell(nets[threat], W_of, key, size, direction, repetitions)
                    auc.setdefault(threat, {}).setdefault(direction, {}).setdefault(key, {})[str(size)] = pooled
                    within.setdefault(threat, {}).setdefault(direction, {}).setdefault(key, {})[
                        str(size)] = within_net_summary(per_net)
        log(f"[set_size_zoo] {threat}: pooled AUC smoother by sigma and size: " + "; ".join(
            f"{s:g}: " + " / ".join(f"{auc[threat]['smoother'][sigma_key(s)][str(n)]:.2f}" for n in sizes)
            for s in sigmas))

    best = {threat: {str(size): max(auc[threat]["smoother"][sigma_key(s)][str(size)] for s in sigmas)
                     for size in sizes} for threat in threats}
    png = _plot(exp, threats, sizes, sigmas, auc, within)
    return exp.finish(
        {
            "parameters": {"threats": list(threats), "triggers": list(triggers), "seeds": list(seeds),
                           "sizes": list(sizes), "sigmas": list(sigmas), "repetitions": repetitions,
                           "n_samples": exp.n_samples, "target": TARGET, "random_state": random_state,
                           "noise_seed": NOISE_SEED, "negatives": "clean candidates of every net"},
            "auc": auc,
            "within_net": within,
            "best": best,
            "reproduced": {threat: bool(max(best[threat].values()) >= 0.95) for threat in threats},
        },
        [png],
    )


def _measure_net(exp, config, measure):
    """One net's W of its repetitions' reference, clean and (backdoored) triggered sets."""
    sigmas, largest, repetitions, random_state, signature = measure
    # The same images for every net: with one seed, draw_triplets draws the same reference,
    # clean and base images whatever the trigger; only the stamp differs.
    sets, _ = draw_triplets(exp.data, config.trigger or "square", repetitions, largest,
                            np.random.RandomState(random_state))
    if config.trigger is None:  # a clean net: reference and clean candidate only
        sets = sets.reshape(repetitions, 3, *sets.shape[1:])[:, :2].reshape(-1, *sets.shape[1:])
    per_rep = 3 if config.trigger else 2
    wob = exp.wobbliness(exp.net(config))
    NetRecord(exp, config, signature).save({
        f"W_{sigma_key(sigma)}": exp.W(wob, sigma, sets, config.label).reshape(repetitions, per_rep, largest)
        for sigma in sigmas
    })


def _cell(nets, W_of, key, size, direction, repetitions):
    """The AUC pooled over ``nets`` and each backdoored net's, on the first ``size`` inputs:
    trained-trigger sets (label 1) against clean candidates (0), each scored against its
    repetition's reference."""
    labels, scores, per_net = [], [], {}
    for config in nets:
        net_scores = reference_scores(W_of[config.label][key][..., :size], direction)
        net_labels = np.tile([0, 1] if config.trigger else [0], repetitions)
        labels.append(net_labels)
        scores.append(net_scores)
        if config.trigger:
            per_net[config.label] = auc_or_nan(net_labels, net_scores)
    return auc_or_nan(np.concatenate(labels), np.concatenate(scores)), per_net


def _plot(exp, threats, sizes, sigmas, auc, within):
    panels = []
    for threat in threats:
        series, styles = {}, {}
        for j, sigma in enumerate(sigmas):
            key = sigma_key(sigma)
            series[f"pooled, $\\sigma$={sigma:g}"] = [auc[threat]["smoother"][key][str(n)] for n in sizes]
            styles[f"pooled, $\\sigma$={sigma:g}"] = (COLORS[j % len(COLORS)], "-")
            series[f"median net, $\\sigma$={sigma:g}"] = [
                within[threat]["smoother"][key][str(n)]["median"] for n in sizes]
            styles[f"median net, $\\sigma$={sigma:g}"] = (COLORS[j % len(COLORS)], ":")
        panels.append({"title": f"{threat}: AUC 'smoother', triggered vs clean sets",
                       "xlabel": "inputs per set", "ylabel": "ROC AUC", "x": list(sizes),
                       "series": series, "styles": styles, "hline": 0.5})
    return plot_line_panels(
        panels, exp.out_dir / "set_size_zoo.png",
        suptitle=(f"Fig. 6 with larger sets - {DISPLAY_NAMES[exp.setup.dataset]}, "
                  f"{DISPLAY_NAMES[exp.setup.net]}, {exp.epochs} epochs, n={exp.n_samples} "
                  f"({exp.mode} mode)"),
    )
