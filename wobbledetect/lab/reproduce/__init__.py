"""Reproduce the paper's figures on real data: one ``run(out_dir, ...)`` per figure.

=================  ======================================================================
``fig2``           W over n and over sigma on clean data (:mod:`.fig2`)
``fig4``           clean vs active-trigger and vs unused-trigger batches (:mod:`.fig4`)
``fig5``           mean W of triggered sets vs backdoor accuracy, T2 (:mod:`.fig5`)
``fig6``           Levene detector ROC over 3 clean + 9 backdoored nets, T3 and T1
                   (:mod:`.fig6`)
``fig6-scoring``   a finished Fig. 6 run re-scored: pooled, within each net, normalised
                   per net (:mod:`.fig6_scoring`; reads ``--out``'s ``fig6.json``)
``smoothing-map``  where backdoor smoothing holds: trigger x sigma x threat model
                   (:mod:`.smoothing_map`)
``select-sigma``   sigma chosen by ``GridSearchCV`` over the Pipeline (:mod:`.select_sigma`)
``erasure``        why the direction flips: the votes of triggered inputs under noise
                   (:mod:`.erasure`; a diagnostic, not a figure of the paper)
``training-dynamics``  W of clean and triggered sets over training epochs
                   (:mod:`.training_dynamics`)
``set-size``       the Levene AUC for sets of 25 to 250 inputs (:mod:`.set_size`)
``set-size-zoo``   Fig. 6 with larger sets: the AUC pooled over the zoo for sets of 25
                   to 100 inputs (:mod:`.set_size_zoo`)
``cross-trigger``  which triggers fire on nets trained on another (:mod:`.cross_trigger`)
``fig7``           universal adversarial perturbations in place of triggers (:mod:`.fig7`;
                   needs the ``[uap]`` extra)
``nc-candidates``  Neural Cleanse candidates stamped on clean data: does W flag them all?
                   (:mod:`.nc_candidates`)
``screen-zoo``     is this model backdoored? ModelScreen over clean and backdoored nets
                   (:mod:`.screen_zoo`; ``dataset="digits"`` or ``"fashion-mnist"``)
``detectors``      W beside STRIP per input and per set, false-positive rates before and
                   after conformal calibration (:mod:`.detectors`)
``mixed-batches``  a finished detectors run re-scored on batches that mix k triggered
                   inputs with clean ones (:mod:`.mixed_batches`; reads ``--out``)
``attacks``        detection AUC against fewer poisons, fainter blends and SAM training
                   (:mod:`.attacks`)
=================  ======================================================================

Each ``run`` writes ``<name>.png`` and ``<name>.json`` (every number plotted, the
parameters, every net's clean and backdoor accuracy, wall seconds, and ``"auc"`` where
the figure has one) and returns the JSON's content. ``quick=True`` is the CI-sized run;
the full mode's parameters are the pre-registered ones in each module's docstring.
Trained nets are shared between figures through the model cache
(:mod:`wobbledetect.lab.cache`).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

__all__ = ["FIGURES", "run_figure"]

#: Figure name -> module (in :mod:`wobbledetect.lab.reproduce`).
FIGURES = {
    "fig2": "fig2",
    "fig4": "fig4",
    "fig5": "fig5",
    "fig6": "fig6",
    "fig6-scoring": "fig6_scoring",
    "smoothing-map": "smoothing_map",
    "select-sigma": "select_sigma",
    "erasure": "erasure",
    "training-dynamics": "training_dynamics",
    "set-size": "set_size",
    "set-size-zoo": "set_size_zoo",
    "cross-trigger": "cross_trigger",
    "fig7": "fig7",
    "nc-candidates": "nc_candidates",
    "screen-zoo": "screen_zoo",
    "detectors": "detectors",
    "mixed-batches": "mixed_batches",
    "attacks": "attacks",
}


def run_figure(name, out_dir, **kwargs):
    """Run figure ``name`` (a key of :data:`FIGURES`); see each module's ``run``.

    A figure sweeps sigma over many sets, so the detector's warnings (a reference with W
    mostly 0 at a small sigma, ...) would come by the hundred: they are counted instead,
    logged in one line per kind with the first message, and added to ``<name>.json`` as
    ``"library_warnings"``. Other warnings pass through.
    """
    if name not in FIGURES:
        raise ValueError(f"Unknown figure {name!r}; use one of {sorted(FIGURES)}.")
    from ..warning_counts import counting_library_warnings, summary_lines

    module = importlib.import_module(f"{__name__}.{FIGURES[name]}")
    with counting_library_warnings() as counted:
        results = module.run(out_dir, **kwargs)
    log = kwargs.get("log") or (lambda line: None)
    for line in summary_lines(counted, name):
        log(line)
    if isinstance(results, dict):
        results["library_warnings"] = counted
        path = Path(out_dir) / f"{name.replace('-', '_')}.json"
        if path.is_file():
            stored = json.loads(path.read_text())
            stored["library_warnings"] = counted
            path.write_text(json.dumps(stored, indent=2) + "\n")
    return results
