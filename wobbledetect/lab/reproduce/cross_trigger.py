"""Cross-trigger matrix: does a net obey triggers it was never trained on?

Fig. 6 labels a candidate set negative when it carries a trigger the net was not trained
on: "the unused trigger behaves like clean data". That only holds if the triggers do not
fire on each other's nets -- ours from the paper's Fig. 3 do (docs/results.md, "A caveat
about our triggers"). Pre-registered (``docs/results.md``, "Pre-registered design: why
Fig. 6 does not reproduce", point 3), full mode:

- The trigger set ``"separated"`` (four shapes in four corners); for T1 and for T3 one
  net per trigger of the set, seed 0, and the clean net of seed 0.
- The attack success of every trigger of the set on every net: the share of the first
  1,000 test images of classes other than the target that the triggered image sends to
  the target.
- The set "does not fire on each other" when every off-diagonal entry (a trigger on a
  net trained on another) is below :data:`SEPARATED_BELOW` (0.1).

Quick mode: T1 only, the quick nets of ``ul-square`` and ``ur-checker`` and the clean
quick net; all four triggers are measured on them.

Cost (full, 2 CPU cores): 9 nets of 4 epochs (~3 min each) and a few seconds of
prediction each.
"""

from __future__ import annotations

import numpy as np

from ...plotting import plot_heatmaps
from ..train import backdoor_accuracy
from ..triggers import TRIGGER_SETS
from ._common import DISPLAY_NAMES, TARGET, Experiment

__all__ = ["run", "SEPARATED_BELOW"]

#: Off-diagonal attack success under which a set counts as not firing on each other.
SEPARATED_BELOW = 0.1
#: Images on which each attack success is measured.
ASR_IMAGES = 1000


def run(
    out_dir, *, quick=False, data_dir=None, cache_dir=None, dataset="fashion-mnist", log=print,
    download=False, epochs=None, trigger_set="separated", threats=None, trained=None, seed=0,
):
    """Measure the cross-trigger matrix; write ``cross_trigger.png`` and ``.json`` to ``out_dir``.

    Parameters
    ----------
    out_dir, quick, data_dir, cache_dir, dataset, log, download
        As for every figure: see :func:`wobbledetect.lab.reproduce.fig4.run`.
    epochs : int, optional
        Training epochs of the nets (default: the pre-registered 4; quick 2).
    trigger_set : {"separated", "fig3"}, default="separated"
        The triggers measured (:data:`~wobbledetect.lab.triggers.TRIGGER_SETS`).
    threats : tuple of str, optional
        Default ("T1", "T3"); quick: ("T1",).
    trained : tuple of str, optional
        The triggers that get a net; default every trigger of the set (quick: the first two).
    seed : int, default=0

    Returns
    -------
    dict
        What ``cross_trigger.json`` holds: ``"matrix"[threat][net trigger][trigger]``
        (the clean net under ``"clean"``), ``"max_off_diagonal"[threat]`` and
        ``"separated"[threat]`` (every off-diagonal entry below :data:`SEPARATED_BELOW`).

    Examples
    --------
    >>> from wobbledetect.lab.reproduce import cross_trigger
    >>> out = cross_trigger.run("out", quick=True, data_dir="../shared/data")  # doctest: +SKIP
    >>> out["matrix"]["T1"]["ul-square"]["ur-checker"]  # doctest: +SKIP
    """
    exp = Experiment("cross_trigger", out_dir, quick=quick, data_dir=data_dir, cache_dir=cache_dir,
                     dataset=dataset, log=log, download=download, epochs=epochs)
    if trigger_set not in TRIGGER_SETS:
        raise ValueError(f"The 'trigger_set' parameter must be one of {sorted(TRIGGER_SETS)}; "
                         f"got {trigger_set!r}.")
    measured = TRIGGER_SETS[trigger_set]
    trained = tuple(trained or (measured[:2] if quick else measured))
    threats = tuple(threats or (("T1",) if quick else ("T1", "T3")))
    configs = {threat: {"clean": exp.net_config(None, None, seed)}
               | {trigger: exp.net_config(threat, trigger, seed) for trigger in trained}
               for threat in threats}
    exp.plan([c for by_trigger in configs.values() for c in by_trigger.values()], 0)

    data = exp.data
    others = np.flatnonzero(data.y_test != TARGET)[:ASR_IMAGES]
    matrix, max_off, separated = {}, {}, {}
    for threat, by_trigger in configs.items():
        for net_trigger, config in by_trigger.items():
            model = exp.net(config)
            row = {trigger: backdoor_accuracy(model, data.X_test[others], data.y_test[others],
                                              trigger, "T1", target=TARGET, n_classes=data.n_classes)
                   for trigger in measured}
            matrix.setdefault(threat, {})[net_trigger] = row
            log(f"[cross_trigger] {config.label}: " + ", ".join(f"{t} {v:.2f}" for t, v in row.items()))
        off = [value for net_trigger, row in matrix[threat].items() if net_trigger != "clean"
               for trigger, value in row.items() if trigger != net_trigger]
        max_off[threat] = float(max(off)) if off else float("nan")
        separated[threat] = bool(off) and max_off[threat] < SEPARATED_BELOW
        log(f"[cross_trigger] {threat}: largest attack success of a trigger on another trigger's "
            f"net {max_off[threat]:.3f} -> {'separated' if separated[threat] else 'NOT separated'} "
            f"(threshold {SEPARATED_BELOW})")

    png = plot_heatmaps(
        [{"panels": {f"{threat} nets (seed {seed})": (
            [[matrix[threat][net][t] for t in measured] for net in matrix[threat]],
            [f"net: {net}" for net in matrix[threat]]) for threat in threats},
          "cmap": "Reds", "vmin": 0.0, "vmax": 1.0, "label": "attack success", "fmt": ".2f"}],
        exp.out_dir / "cross_trigger.png", col_labels=list(measured), xlabel="trigger stamped",
        suptitle=(f"Cross-trigger attack success - {DISPLAY_NAMES[exp.setup.dataset]}, "
                  f"{DISPLAY_NAMES[exp.setup.net]}, {exp.epochs} epochs ({exp.mode} mode)"),
    )
    return exp.finish(
        {
            "parameters": {"trigger_set": trigger_set, "triggers": list(measured),
                           "trained": list(trained), "threats": list(threats), "seed": seed,
                           "target": TARGET, "asr_images": len(others),
                           "separated_below": SEPARATED_BELOW},
            "matrix": matrix,
            "max_off_diagonal": max_off,
            "separated": separated,
        },
        [png],
    )
