"""The per-class table of a model screen, as text: shared by :class:`~wobbledetect.ModelScreen`
and the service's client, which must not need torch to print a server's answer."""

from __future__ import annotations

import numpy as np

__all__ = ["TABLE_COLUMNS", "format_report"]

#: The columns of ``ModelScreen.table_``.
TABLE_COLUMNS = ("class", "mask_norm", "nc_anomaly_index", "nc_flagged", "attack_success",
                 "median_W", "median_p", "untested_sets", "smoother_share", "wobblier_share",
                 "levene_score", "smoothing_index", "combined_index")


def format_report(table, null_scores, *, sigma, score, suspected_class, backdoored, anomaly_threshold):
    """A screen's per-class table as text, most suspicious class first, then the verdict.

    What :meth:`ModelScreen.report` prints, from the screen's numbers alone (the
    ``screen-model`` client prints a server's answer with it).

    Parameters
    ----------
    table : dict of str to ndarray
        The columns of :data:`TABLE_COLUMNS`.
    null_scores : array-like
    sigma, score : float
    suspected_class : int
    backdoored : bool
    anomaly_threshold : float

    Returns
    -------
    str
    """
    order = np.argsort(-np.nan_to_num(table["combined_index"], nan=-np.inf), kind="stable")
    header = ("class  mask_norm  NC_index  attack  median_W  median_p  untested  smoother  "
              "wobblier  smoothing_index  combined")
    lines = [f"sigma {sigma:g}; clean null sets score {np.median(null_scores):+.2f} "
             "(median signed -log10 p)", header]
    t = table
    for i in order:
        lines.append(
            f"{t['class'][i]:>5}  {t['mask_norm'][i]:9.2f}  {t['nc_anomaly_index'][i]:+8.2f}  "
            f"{t['attack_success'][i]:6.2f}  {t['median_W'][i]:8.3f}  {t['median_p'][i]:8.2g}  "
            f"{t['untested_sets'][i]:8d}  "
            f"{t['smoother_share'][i]:8.2f}  {t['wobblier_share'][i]:8.2f}  "
            f"{t['smoothing_index'][i]:+15.2f}  {t['combined_index'][i]:+8.2f}")
    verdict = (f"backdoored: class {suspected_class} (combined index {score:.2f} > "
               f"{anomaly_threshold:g})" if backdoored else
               f"not flagged (largest combined index {score:.2f} <= {anomaly_threshold:g})")
    return "\n".join([*lines, verdict])
