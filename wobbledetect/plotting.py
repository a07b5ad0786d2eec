"""Figures: W box plots (paper Fig. 2/4), ROC curves (Fig. 6), scatter plots (Fig. 5) and
heat maps (where backdoor smoothing holds).

Matplotlib is imported lazily with the non-interactive Agg backend, so importing this
module on a server without a display is safe. Each function writes a PNG and returns its
path.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = [
    "plot_w_boxes",
    "plot_w_box_panels",
    "plot_roc",
    "plot_roc_panels",
    "plot_scatter_panels",
    "plot_heatmaps",
    "plot_line_panels",
]

#: Colours of the paper: clean blue, triggered yellow-orange; then others.
COLORS = ["#1f77b4", "#ff9f1c", "#7f7f7f", "#2ca02c", "#d62728", "#9467bd"]

#: Colours of groups that are not "clean" (no grey: that marks excluded points).
GROUP_COLORS = ["#ff9f1c", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]

W_LABEL = r"$W_\sigma$ (nats)"
BOX_NOTE = "boxes: quartiles; black line: median; whiskers: 1.5 IQR (eq. 4); dots: outliers"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    plt = _pyplot()
    fig.savefig(path)
    plt.close(fig)
    return os.fspath(path)


def _draw_boxes(ax, groups, *, title, xlabel="", positions_label=None, lines=None):
    """Box plots of W on ``ax`` (see :func:`plot_w_boxes`); ``lines`` adds one value per tick."""
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
    for k, (label, values) in enumerate((lines or {}).items()):
        ax.plot(range(len(ticks)), values, marker="o", markersize=4, lw=1.5,
                color=COLORS[(len(names) + 2 + k) % len(COLORS)], label=label)
    if nested:
        ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
    else:
        ax.set_xticks([])
    ax.set_xlim(-0.6, len(ticks) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(W_LABEL)
    ax.set_title(title)
    # Boxes and whiskers may fill the whole height at every tick: make room above them
    # for the legend instead of letting it cover a box.
    entries = len(names) + len(lines or {}) + (positions_label is not None)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.09 * entries * (high - low))
    ax.legend(title=positions_label, loc="upper left", frameon=False, fontsize="small",
              ncols=2 if entries > 3 else 1)
    ax.grid(axis="y", alpha=0.3)


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
    _draw_boxes(ax, groups, title=title, xlabel=xlabel, positions_label=positions_label)
    fig.tight_layout()
    return _save(fig, path)


def plot_w_box_panels(panels, path, *, suptitle, xlabel="", lines=None, sharey=True):
    """Several box-plot panels side by side (paper Fig. 2 and Fig. 4).

    Parameters
    ----------
    panels : dict of str -> nested groups
        Panel title -> ``{tick: {group: W}}`` as in :func:`plot_w_boxes`.
    path : str or os.PathLike
    suptitle : str
    xlabel : str or dict of str -> str
        One label for all panels, or one per panel title.
    lines : dict of str -> dict of str -> list of float, optional
        Per panel title, extra curves (one value per tick), e.g. the mean W.
    sharey : bool, default=True

    Returns
    -------
    str
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), dpi=120,
                             sharey=sharey, squeeze=False)
    for ax, (title, groups) in zip(axes[0], panels.items()):
        label = xlabel.get(title, "") if isinstance(xlabel, dict) else xlabel
        _draw_boxes(ax, groups, title=title, xlabel=label, lines=(lines or {}).get(title))
    fig.suptitle(suptitle)
    fig.text(0.995, 0.005, BOX_NOTE, ha="right", va="bottom", fontsize="x-small", color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, path)


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    _draw_roc(ax, curves, title=title)
    fig.tight_layout()
    return _save(fig, path)


def _draw_roc(ax, curves, *, title, cmap=None):
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    colors = (
        [plt.get_cmap(cmap)(x) for x in np.linspace(0.1, 0.9, max(len(curves), 1))]
        if cmap else [COLORS[(j + 1) % len(COLORS)] for j in range(len(curves))]
    )
    for color, (name, (y_true, score)) in zip(colors, curves.items()):
        if len(np.unique(y_true)) < 2:
            continue  # no ROC curve without both classes
        fpr, tpr, _ = roc_curve(y_true, score)
        auc = roc_auc_score(y_true, score)
        ax.plot(fpr, tpr, color=color, lw=2, label=f"{name} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], ":", color="gray", label="random guess")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="lower right", frameon=False, fontsize="small")
    ax.grid(alpha=0.3)


def plot_roc_panels(panels, path, *, suptitle, summary=None):
    """ROC panels side by side (paper Fig. 6), and optionally a summary line panel.

    Parameters
    ----------
    panels : dict of str -> dict of str -> (y_true, score)
        Panel title -> curves, coloured along a sequential colour map (e.g. by sigma).
    path : str or os.PathLike
    suptitle : str
    summary : dict, optional
        A last panel of lines: ``{"title", "xlabel", "ylabel", "x": [...],
        "series": {label: [y per x]}, "hline": float or None}``; x is plotted on a log
        scale with its values as tick labels.

    Returns
    -------
    str
    """
    plt = _pyplot()
    n = len(panels) + (summary is not None)
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 5.2), dpi=120, squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        _draw_roc(ax, curves, title=title, cmap="viridis")
    if summary is not None:
        _draw_lines(axes[0, -1], summary)
    fig.suptitle(suptitle)
    fig.tight_layout()
    return _save(fig, path)


def _draw_lines(ax, panel):
    """Lines over a log-scaled x with its values as tick labels (see :func:`plot_line_panels`)."""
    x = np.asarray(panel["x"], dtype=float)
    styles = ["-", "--", ":", "-."]
    for j, (label, values) in enumerate(panel["series"].items()):
        style = panel.get("styles", {}).get(label)
        color, ls = style if style is not None else (
            COLORS[j % len(COLORS)], styles[(j // len(COLORS)) % len(styles)])
        values = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(x, values, ls, marker="o", markersize=4, color=color, label=label)
    if panel.get("hline") is not None:
        ax.axhline(panel["hline"], color="gray", ls=":", label=panel.get("hline_label", "random guess"))
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.minorticks_off()
    ax.set_ylim(*panel.get("ylim", (-0.02, 1.02)))
    ax.set_xlabel(panel.get("xlabel", ""))
    ax.set_ylabel(panel.get("ylabel", ""))
    ax.set_title(panel.get("title", ""))
    ax.legend(frameon=False, fontsize="small")
    ax.grid(alpha=0.3)


def plot_line_panels(panels, path, *, suptitle):
    """Panels of lines side by side, x on a log scale (e.g. a quantity over sigma).

    Parameters
    ----------
    panels : list of dict
        One per panel: ``{"title", "xlabel", "ylabel", "x": [...], "series": {label:
        [y per x]}}``, optionally ``"styles": {label: (color, linestyle)}``, ``"ylim"``,
        ``"hline"`` and ``"hline_label"``. None in a series is a gap.
    path : str or os.PathLike
    suptitle : str

    Returns
    -------
    str
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 5.0), dpi=120,
                             squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _draw_lines(ax, panel)
    fig.suptitle(suptitle)
    fig.tight_layout()
    return _save(fig, path)


def plot_scatter_panels(panels, path, *, suptitle, xlabel, ylabel, excluded=None, hline=None,
                        ncols=4):
    """Small multiples of scatter plots, one colour per group (paper Fig. 5).

    Parameters
    ----------
    panels : dict of str -> dict of str -> (x, y)
        Panel title -> group -> points.
    path : str or os.PathLike
    suptitle, xlabel, ylabel : str
    excluded : dict of str -> (x, y), optional
        Per panel, points left out of the statistics, drawn as grey crosses.
    hline : float, optional
        A dotted horizontal line, e.g. the exclusion threshold.
    ncols : int, default=4

    Returns
    -------
    str
    """
    plt = _pyplot()
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.8 * nrows), dpi=110,
                             sharey=True, squeeze=False)
    for ax, (title, groups) in zip(axes.flat, panels.items()):
        for j, (name, (x, y)) in enumerate(groups.items()):
            ax.scatter(x, y, s=18, alpha=0.75, color=GROUP_COLORS[j % len(GROUP_COLORS)], label=name)
        if excluded and len(excluded.get(title, ([], []))[0]):
            ex, ey = excluded[title]
            ax.scatter(ex, ey, s=18, marker="x", color="#999999", label="excluded")
        if hline is not None:
            ax.axhline(hline, color="gray", ls=":", lw=1)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=len(labels), frameon=False)
    fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, path)


def plot_heatmaps(rows, path, *, col_labels, xlabel, suptitle):
    """Annotated heat maps: one row of panels per quantity, one panel per condition.

    Parameters
    ----------
    rows : list of dict
        Each row: ``{"panels": {title: (matrix, row_labels)}, "cmap": str, "vmin": float,
        "vmax": float, "label": colour-bar label, "fmt": format of the annotations}``.
        ``matrix`` has one column per ``col_labels`` entry; NaN cells are left blank.
    path : str or os.PathLike
    col_labels : list of str
    xlabel, suptitle : str

    Returns
    -------
    str
    """
    plt = _pyplot()
    nrows = len(rows)
    ncols = max(len(row["panels"]) for row in rows)
    n_rows_max = max(len(m) for row in rows for m, _ in row["panels"].values())
    fig, axes = plt.subplots(
        nrows, ncols,
        figsize=(max(9.0, (0.9 * len(col_labels) + 3.0) * ncols + 1.2), (0.42 * n_rows_max + 1.6) * nrows + 0.6),
        dpi=110, squeeze=False, layout="constrained",
    )
    for r, row in enumerate(rows):
        image = None
        for c, (title, (matrix, row_labels)) in enumerate(row["panels"].items()):
            ax = axes[r, c]
            matrix = np.array(matrix, dtype=float)
            image = ax.imshow(np.ma.masked_invalid(matrix), cmap=row["cmap"], vmin=row["vmin"],
                              vmax=row["vmax"], aspect="auto")
            span = row["vmax"] - row["vmin"]
            for (i, j), value in np.ndenumerate(matrix):
                if np.isfinite(value):
                    dark = abs((value - row["vmin"]) / span - 0.5) > 0.3
                    ax.text(j, i, format(value, row.get("fmt", ".2f")), ha="center", va="center",
                            fontsize="small", color="white" if dark else "black")
            ax.set_xticks(range(len(col_labels)), col_labels)
            ax.set_yticks(range(len(row_labels)), row_labels)
            ax.set_xlabel(xlabel)
            ax.set_title(title, fontsize="medium")
        for c in range(len(row["panels"]), ncols):
            axes[r, c].axis("off")
        fig.colorbar(image, ax=list(axes[r]), label=row["label"], fraction=0.03, pad=0.02)
    fig.suptitle(suptitle, fontsize="medium")
    return _save(fig, path)
