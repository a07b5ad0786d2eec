"""Figures: W box plots (paper Fig. 2/4 style) and ROC curves (Fig. 6 style).

Matplotlib is imported lazily with the non-interactive Agg backend, so importing this
module on a server without a display is safe. Each function writes a PNG and returns its
path.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_w_boxes", "plot_roc"]

#: Colours of the paper: clean blue, triggered yellow-orange; then others.
COLORS = ["#1f77b4", "#ff9f1c", "#7f7f7f", "#2ca02c", "#d62728", "#9467bd"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_w_boxes(groups, path, *, title, xlabel="", positions_label=None):
    """Box plots of W, one box per group, with the paper's 1.5 IQR whiskers.

    Parameters
    ----------
    groups : dict of str -> array-like, or dict of str -> dict of str -> array-like
        Flat: one box per name. Nested (``{tick: {group: W}}``): boxes side by side at
        each tick, e.g. clean vs triggered for each sigma.
    path : str or os.PathLike
        Where to write the PNG.
    title, xlabel : str
    positions_label : str, optional
        Legend title for nested groups.

    Returns
    -------
    str
        The path written.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    nested = all(isinstance(v, dict) for v in groups.values())
    if not nested:
        groups = {"": groups}
    ticks = list(groups)
    names = list(dict.fromkeys(name for per_tick in groups.values() for name in per_tick))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        data, pos = [], []
        for i, tick in enumerate(ticks):
            if name in groups[tick]:
                data.append(np.ravel(groups[tick][name]))
                pos.append(i + (j - (len(names) - 1) / 2) * width)
        color = COLORS[j % len(COLORS)]
        ax.boxplot(
            data, positions=pos, widths=width * 0.9, whis=1.5, patch_artist=True,
            boxprops=dict(facecolor=color, alpha=0.55, edgecolor=color),
            medianprops=dict(color="black"), flierprops=dict(markersize=3, markeredgecolor=color),
            whiskerprops=dict(color=color), capprops=dict(color=color),
        )
        ax.plot([], [], color=color, linewidth=8, alpha=0.55, label=name)
    if nested:
        ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
    else:
        ax.set_xticks([])
    ax.set_xlim(-0.6, len(ticks) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$W_\sigma$ (nats)")
    ax.set_title(title)
    ax.legend(title=positions_label, loc="best", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return os.fspath(path)


def plot_roc(curves, path, *, title):
    """ROC curves with their AUC in the legend and the random-guess diagonal.

    Parameters
    ----------
    curves : dict of str -> (y_true, score)
        One curve per name; ``score`` higher means "trigger".
    path : str or os.PathLike
    title : str

    Returns
    -------
    str
        The path written.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    for j, (name, (y_true, score)) in enumerate(curves.items()):
        fpr, tpr, _ = roc_curve(y_true, score)
        auc = roc_auc_score(y_true, score)
        ax.plot(fpr, tpr, color=COLORS[(j + 1) % len(COLORS)], lw=2, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="gray", label="random guess")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_title(title)
    ax.legend(loc="lower right", frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return os.fspath(path)
