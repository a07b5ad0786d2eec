"""Sets of W values: eq. (4)'s outlier rule, and what a set must hold to be tested.

The warnings here are built, not issued: :class:`~wobbledetect.LeveneBackdoorDetector`
issues them (or returns them from ``screen``), and the gRPC service carries the same
messages in its responses.
"""

from __future__ import annotations

import numpy as np

from ._exceptions import DegenerateWobblinessWarning, InputShapeError, SmallSetWarning

__all__ = [
    "MIN_SET_SIZE", "check_set_size", "outlier_mask", "reference_warnings",
    "candidate_warnings", "row_warning",
]

#: Fewest values a set (candidate or reference) must keep after eq. (4) to be tested.
#: With 2 values per group the deviations from the centre are equal within each group, so
#: the statistic has no within-group spread: pairs of 2 equal-variance normal values gave
#: p < 1e-6 every time (p came out near 1e-31). From 3 values on, Levene's mean-centred
#: test held its level (3 against 3: 4.7% of 4000 equal-variance pairs rejected at alpha
#: 0.05; 4 to 25 against as many: 5.6-8.4%; ``benchmarks/min_set_size.py``); the
#: median-centred variant never rejects 3 against 3. Power at such sizes is another
#: matter: the paper's sets hold 25.
MIN_SET_SIZE = 3


def check_set_size(inputs, name="the set"):
    """Refuse, before any W is computed, a set of fewer than :data:`MIN_SET_SIZE` inputs.

    Used where sets arrive whole -- the service, the ``screen`` command -- so that a user
    hears at once what :class:`~wobbledetect.LeveneBackdoorDetector` would only answer
    with ``p = NaN`` and a :class:`~wobbledetect.SmallSetWarning`.

    Parameters
    ----------
    inputs : sized
        The set's inputs (or its W values).
    name : str, default="the set"
        What to call it in the message.

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect import check_set_size
    >>> check_set_size(np.zeros((25, 1, 8, 8)))
    >>> check_set_size(np.zeros((2, 1, 8, 8)), "candidates[0]")
    Traceback (most recent call last):
    ...
    wobbledetect._exceptions.InputShapeError: candidates[0] holds 2 input(s); the Levene test needs at least 3 ...
    """
    if len(inputs) < MIN_SET_SIZE:
        raise InputShapeError(
            f"{name} holds {len(inputs)} input(s); the Levene test needs at least "
            f"{MIN_SET_SIZE} per set (wobbledetect.MIN_SET_SIZE: with 2, the statistic has "
            "no within-set spread and p is meaningless). Send larger sets; the paper uses 25."
        )


def outlier_mask(values, outlier_factor=1.5):
    """Eq. (4): which values lie more than ``outlier_factor`` IQRs beyond the quartiles.

    ``v`` is an outlier iff ``v > Q75 + f (Q75 - Q25)`` or ``v < Q25 - f (Q75 - Q25)``
    (Frigge et al., 1989), quartiles by linear interpolation (NumPy's default). As in the
    paper, nothing is removed when all values are equal. Note that when more than half
    the values are equal the IQR is 0 and every other value is an outlier -- the paper's
    rule, kept as is.

    Parameters
    ----------
    values : array-like of shape (n,)
        Finite values.
    outlier_factor : float, default=1.5
        The ``f`` above.

    Returns
    -------
    mask : ndarray of bool, shape (n,)
        True where the value is an outlier.

    Examples
    --------
    >>> from wobbledetect import outlier_mask
    >>> outlier_mask([1.0, 2.0, 3.0, 4.0, 100.0])
    array([False, False, False, False,  True])
    >>> outlier_mask([0.0, 0.0, 0.0, 0.0, 0.7])  # IQR 0: everything off the quartiles
    array([False, False, False, False,  True])
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.all(values == values.flat[0]):
        return np.zeros(values.shape, dtype=bool)
    q25, q75 = np.percentile(values, [25, 75])
    spread = outlier_factor * (q75 - q25)
    return (values > q75 + spread) | (values < q25 - spread)


def row_warning(category, row, message):
    """A warning of ``category`` that knows the row of W it concerns (None: the reference)."""
    warning = category(message)
    warning.row = row
    return warning


def reference_warnings(pooled):
    """A :class:`DegenerateWobblinessWarning` when the clean W are mostly 0 or have IQR 0."""
    zeros = int((pooled == 0).sum())
    q25, q75 = np.percentile(pooled, [25, 75])
    iqr = float(q75 - q25)
    if zeros * 2 <= pooled.size and iqr > 0:
        return []
    quartiles = ", and eq. (4) keeps only the values at the quartiles" if iqr == 0 else ""
    return [row_warning(DegenerateWobblinessWarning, None, (
        f"The clean reference: {zeros} of {pooled.size} W values are 0 and their "
        f"interquartile range is {iqr:.3g}. At this sigma few noisy copies change class, "
        f"so the reference has almost no spread for the Levene test to compare{quartiles}. "
        "Use a larger sigma (e.g. twice this one)."))]


def candidate_warnings(finite, kept, name, row):
    """Warnings about one candidate set: too few values left, or an IQR of 0."""
    removed = finite.size - kept.size
    if kept.size < MIN_SET_SIZE:
        return [row_warning(SmallSetWarning, row, (
            f"{name}: {kept.size} value(s) left to test ({finite.size} finite, {removed} "
            f"removed by eq. (4)); the Levene test needs at least {MIN_SET_SIZE} per set, "
            f"so p is NaN. Send sets of at least {MIN_SET_SIZE} inputs (the paper uses 25)."))]
    if removed and kept.min() == kept.max():
        return [row_warning(DegenerateWobblinessWarning, row, (
            f"{name}: W has an interquartile range of 0 ({kept.size} of {finite.size} values "
            f"are {kept[0]:.3g}), so eq. (4) removed the other {removed} as outliers and the "
            "test compares a constant set with the reference. An active trigger makes W "
            "constant, but so does a sigma too small for the model: if the clean "
            "reference's W is mostly 0 as well, use a larger sigma."))]
    return []
