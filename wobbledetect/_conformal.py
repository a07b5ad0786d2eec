"""Split-conformal p-values: any trigger score, calibrated on clean data alone.

The Levene test's p-value assumes what W does not give it (W is mostly 0 at small
sigma, and not normal), and on clean sets its false-positive rate is far above
``alpha`` (issue 15). A conformal p-value needs only that the clean calibration scores
and a clean test score are exchangeable: with ``n`` clean calibration scores ``s_i`` and
a test score ``s`` (larger = more trigger-like),

    p(s) = (1 + #{i : s_i >= s}) / (n + 1),

and ``P(p <= alpha) <= alpha`` for a clean test input, for any score and any ``n``
(Vovk et al. 2005; Bates et al., "Testing for outliers with conformal p-values", Ann.
Statist. 2023). The p-values come from crepes (``crepes.ConformalClassifier``, its
non-smoothed p-values, which are this formula).

:class:`ConformalDetector` calibrates a raw score (one column: W per input, STRIP
entropy per input, a set's mean W) or any fitted detector's ``decision_function`` (e.g.
:class:`~wobbledetect.LeveneBackdoorDetector`'s signed Levene score, which then keeps
the paper's p-value in ``estimator_.p_values`` and gains the calibrated one). With
``combine="bonferroni"`` a row of per-input values (a batch) gets the smallest of its
inputs' conformal p-values times their number: a batch with a single trigger-like input
is flagged, and a clean batch at most at rate ``alpha`` (the union bound).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._exceptions import CalibrationWarning
from ._levene import _clean_rows, detector_tags
from ._progress import issue

__all__ = ["ConformalDetector", "conformal_p_values"]

#: What ``tail="auto"`` means.
_AUTO_TAIL = {True: "upper", False: "lower"}


def conformal_p_values(calibration, scores):
    """``(1 + #{calibration >= s}) / (n + 1)`` for each score ``s`` (crepes' formula).

    Parameters
    ----------
    calibration : array-like of shape (n,)
        Finite scores of clean calibration data, larger = more trigger-like.
    scores : array-like of shape (m,)

    Returns
    -------
    p : ndarray of shape (m,)
        NaN where a score is NaN.

    Examples
    --------
    >>> from wobbledetect._conformal import conformal_p_values
    >>> conformal_p_values([1.0, 2.0, 3.0, 4.0], [0.0, 2.5, 9.0])
    array([1. , 0.6, 0.2])
    """
    ConformalClassifier = _crepes_classifier()
    calibration = np.asarray(calibration, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    p = np.full(scores.shape, np.nan)
    finite = ~np.isnan(scores)
    if finite.any():
        conformal = ConformalClassifier().fit(calibration)
        p[finite] = conformal.predict_p(scores[finite], smoothing=False)
    return p


def _crepes_classifier():
    """crepes' ``ConformalClassifier``, imported without its side effect on the caller.

    crepes runs ``warnings.simplefilter("always", UserWarning)`` when first imported: a
    process-wide change that would undo every filter of its caller (a caller silencing
    the library's warnings would see them again). The import runs inside
    ``catch_warnings``, which restores the filters.
    """
    with warnings.catch_warnings():
        from crepes import ConformalClassifier
    return ConformalClassifier


def _row_means(X):
    """The mean of each row, NaN ignored (NaN for a row of NaN only)."""
    X = np.asarray(X, dtype=np.float64)
    finite = ~np.isnan(X)
    counts = finite.sum(axis=1)
    sums = np.where(finite, X, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


class ConformalDetector(ClassifierMixin, BaseEstimator):
    """Flags scores that clean calibration data rarely reaches: p-values with a guarantee.

    ``fit`` takes clean data only. Without an ``estimator``, a row's score is the mean of
    its values (NaN ignored): W per input from ``WobblinessTransformer``'s ``(n, 1)``
    output, or a set's mean W from its ``(n_sets, set_size)`` output; every clean row
    calibrates. With an ``estimator``, the clean rows are split: the estimator is
    fitted on ``1 - calibration_size`` of them and its ``decision_function`` on the rest
    is the calibration. ``p_values`` of new rows are then conformal: on clean data,
    ``P(p <= alpha) <= alpha`` whatever the score's distribution.

    With ``combine="bonferroni"`` (no estimator), every clean *value* calibrates, and a
    row's p-value is ``min(1, m * min_j p_j)`` over its ``m`` values: the batch is flagged
    when any one input is trigger-like enough, and a clean batch still at most at rate
    ``alpha``. This is the detector that sees a few triggered inputs in a batch of clean
    ones (``docs/results.md``, "Batches that mix triggered and clean inputs").

    Parameters
    ----------
    estimator : estimator with ``fit`` and ``decision_function``, or None, default=None
        A detector whose ``decision_function`` is the score (e.g.
        ``LeveneBackdoorDetector()``, cloned and fitted on clean rows); None: the mean
        of each row is the score.
    alpha : float, default=0.05
        Level: rows with ``p < alpha`` are flagged.
    tail : {"auto", "upper", "lower", "two-sided"}, default="auto"
        Which scores count as trigger-like: large (``"upper"``), small (``"lower"``) or
        either (``"two-sided"``: twice the smaller one-sided p, at most 1). ``"auto"``:
        ``"upper"`` with an estimator (its ``decision_function`` grows with trigger
        evidence), ``"lower"`` without (a trigger makes W and STRIP's entropy small).
    combine : {"mean", "bonferroni"}, default="mean"
        Without an estimator, how a row's values become one test: ``"mean"``, the row's
        mean is the score; ``"bonferroni"``, each value is tested against the clean values
        and the row gets the Bonferroni-corrected smallest p. Only ``"mean"`` with an
        estimator (its ``decision_function`` gives one score per row).
    calibration_size : float or int, default=0.5
        With an estimator: the share (float in (0, 1)) or number (int) of clean rows
        held out for calibration. Ignored without one, and for an estimator already
        fitted and wrapped in :class:`sklearn.frozen.FrozenEstimator`, which every clean
        row passed to ``fit`` calibrates.
    random_state : int, RandomState instance or None, default=None
        Seeds the split.

    Attributes
    ----------
    estimator_ : estimator or None
        The fitted estimator (None without one).
    calibration_scores_ : ndarray of shape (n_calibration,)
        The clean calibration scores, as the score (not yet oriented by ``tail``); with
        ``combine="bonferroni"``, every finite value of the clean rows.
    n_calibration_ : int
    tail_ : {"upper", "lower", "two-sided"}
    min_p_value_ : float
        ``1 / (n_calibration_ + 1)``: no p-value is smaller (two-sided: twice that; with
        ``combine="bonferroni"``, a row of ``m`` values: ``m`` times that).
    classes_ : ndarray of shape (2,)
        ``[clean label, trigger label]``.
    offset_ : float
        ``-log10(alpha)``: ``decision_function = score_samples - offset_``.
    warnings_ : list of CalibrationWarning
        What ``fit`` warned of (also issued as Python warnings).
    n_features_in_ : int

    Notes
    -----
    The guarantee holds for a test row exchangeable with the calibration rows: a clean
    input drawn like them, scored by the same fitted model, sigma and seed. It bounds the
    false-positive rate; it says nothing of the power, which depends on the score. With
    ``n`` calibration scores nothing can be flagged below ``alpha = 1 / (n + 1)``: ``fit``
    warns (:class:`CalibrationWarning`) when ``alpha`` is out of reach. NaN scores (a set
    the estimator could not score) get NaN p-values, class 0 and a warning.

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect import ConformalDetector
    >>> rng = np.random.RandomState(0)
    >>> clean_W = rng.uniform(0.1, 1.0, size=(200, 1))   # W per clean input
    >>> det = ConformalDetector(alpha=0.05).fit(clean_W)
    >>> det.p_values([[0.0], [0.5]]).round(3)    # W = 0: lower than any clean one
    array([0.005, 0.438])
    >>> det.predict([[0.0], [0.5]])
    array([1, 0])

    A batch of 25 inputs with one trigger-like W among them:

    >>> batches = rng.uniform(0.1, 1.0, size=(2, 25))
    >>> batches[1, 0] = 0.0
    >>> det = ConformalDetector(combine="bonferroni").fit(rng.uniform(0.1, 1.0, size=(100, 25)))
    >>> det.p_values(batches).round(3)   # the second: 25 / 2501
    array([0.55, 0.01])
    >>> det.predict(batches)
    array([0, 1])
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "decision_function"]), None],
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "tail": [StrOptions({"auto", "upper", "lower", "two-sided"})],
        "combine": [StrOptions({"mean", "bonferroni"})],
        "calibration_size": [Interval(Real, 0, 1, closed="neither"),
                             Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator=None, *, alpha=0.05, tail="auto", combine="mean", calibration_size=0.5,
                 random_state=None):
        self.estimator = estimator
        self.alpha = alpha
        self.tail = tail
        self.combine = combine
        self.calibration_size = calibration_size
        self.random_state = random_state

    def fit(self, X, y=None, **fit_params):
        """Calibrate on the clean rows of ``X`` (fitting the estimator on part of them).

        Parameters
        ----------
        X : array-like of shape (n_rows, n_values) without an estimator, else what it takes
            Clean rows (or labelled rows, of which only the clean ones are used).
        y : array-like of shape (n_rows,), default=None
            Binary labels, the smaller meaning clean; None: every row is clean.
        **fit_params
            Passed to the estimator's ``fit`` (rows sliced with it where they have one
            entry per row).

        Returns
        -------
        self : ConformalDetector
        """
        self._validate_params()
        if self.estimator is not None and self.combine != "mean":
            raise ValueError(
                f"ConformalDetector got combine={self.combine!r} with an estimator; its "
                "decision_function gives one score per row, so there is nothing to combine. "
                "Pass combine='mean', or no estimator and rows of per-input values."
            )
        if self.estimator is None and fit_params:
            raise TypeError(
                f"ConformalDetector.fit got {sorted(fit_params)}, which only an estimator's fit "
                "takes; without one, fit takes X (and y) alone."
            )
        X = self._validated(X, reset=True, y=y)
        if y is None:
            self.classes_ = np.array([0, 1])
            clean = np.ones(len(X), dtype=bool)
        else:
            y = column_or_1d(y, warn=True)
            check_classification_targets(y)
            self.classes_, clean = _clean_rows(y)
        rows = np.flatnonzero(clean)
        self.tail_ = _AUTO_TAIL[self.estimator is not None] if self.tail == "auto" else self.tail
        if self.estimator is None:
            self.estimator_ = None
            clean_rows = X[rows]
            calibration = (_row_means(clean_rows) if self.combine == "mean"
                           else clean_rows[~np.isnan(clean_rows)].astype(np.float64))
        elif isinstance(self.estimator, FrozenEstimator):
            # Already fitted (e.g. on the clean reference): every clean row calibrates.
            self.estimator_ = self.estimator
            calibration = np.asarray(self.estimator_.decision_function(X[rows]), dtype=np.float64)
        else:
            fit_rows, calibration_rows = self._split(rows)
            sliced = {k: (v[fit_rows] if hasattr(v, "__len__") and len(v) == len(X) else v)
                      for k, v in fit_params.items()}
            self.estimator_ = clone(self.estimator).fit(X[fit_rows], **sliced)
            calibration = np.asarray(self.estimator_.decision_function(X[calibration_rows]),
                                     dtype=np.float64)
        if not np.isfinite(calibration).all():
            raise ValueError(
                f"{int((~np.isfinite(calibration)).sum())} of the {len(calibration)} clean "
                "calibration scores are NaN or infinite (a row of NaN only, or one the "
                "estimator could not score); a conformal p-value ranks a score among finite "
                "calibration scores. Remove those rows."
            )
        self.calibration_scores_ = np.asarray(calibration, dtype=np.float64)
        self.n_calibration_ = len(calibration)
        self.min_p_value_ = 1.0 / (self.n_calibration_ + 1)
        self.offset_ = float(-np.log10(self.alpha))
        self.warnings_ = []
        factor = (2 if self.tail_ == "two-sided" else 1) * (X.shape[1] if self.combine == "bonferroni" else 1)
        reachable = self.min_p_value_ * factor
        if reachable >= self.alpha:
            needed = int(np.ceil(factor / self.alpha))
            issue(self.warnings_, CalibrationWarning(
                f"ConformalDetector is calibrated on {self.n_calibration_} clean score(s): its "
                f"smallest p-value is {reachable:.3g}, not below alpha={self.alpha}, so it can "
                f"flag nothing. Calibrate on at least {needed} clean "
                f"{'values' if self.combine == 'bonferroni' else 'rows'}."))
        return self

    def scores(self, X):
        """The raw score of each row: its mean, its most trigger-like value (the one with
        the smallest p, ``combine="bonferroni"``), or the estimator's ``decision_function``.

        Parameters
        ----------
        X : array-like

        Returns
        -------
        ndarray of shape (n_rows,)
        """
        check_is_fitted(self)
        X = self._validated(X, reset=False)
        if self.estimator_ is None and self.combine == "bonferroni":
            p = self._value_p_values(X)
            rows = ~np.isnan(p).all(axis=1)
            out = np.full(len(X), np.nan)
            out[rows] = X[rows, np.nanargmin(p[rows], axis=1)]
            return out
        if self.estimator_ is None:
            return _row_means(X)
        return np.asarray(self.estimator_.decision_function(X), dtype=np.float64)

    def p_values(self, X):
        """Conformal p-value of each row against the clean calibration scores.

        Parameters
        ----------
        X : array-like

        Returns
        -------
        p : ndarray of shape (n_rows,)
            In ``[1 / (n_calibration_ + 1), 1]`` (``combine="bonferroni"``: the smallest
            p of a row's values times their number, at most 1); NaN (with a warning) for
            rows without a score.
        """
        if self.combine == "bonferroni":
            check_is_fitted(self)
            X = self._validated(X, reset=False)
            per_value = self._value_p_values(X)
            counts = (~np.isnan(per_value)).sum(axis=1)
            p = np.full(len(X), np.nan)
            rows = counts > 0
            p[rows] = np.minimum(1.0, counts[rows] * np.nanmin(per_value[rows], axis=1))
        else:
            p = self._tail_p_values(self.scores(X))
        if np.isnan(p).any():
            warnings.warn(CalibrationWarning(
                f"{int(np.isnan(p).sum())} of {len(p)} row(s) have no score (NaN); their "
                "p-values are NaN and they are not flagged."), stacklevel=2)
        return p

    def score_samples(self, X):
        """``-log10(p)``: evidence of a trigger, calibrated (NaN rows score 0)."""
        return np.nan_to_num(-np.log10(self.p_values(X)), nan=0.0)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: positive exactly when a row is flagged."""
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """``classes_[1]`` where ``p < alpha``, else ``classes_[0]``."""
        flagged = self.decision_function(X) > 0
        return self.classes_[flagged.astype(int)]

    # -- internals -------------------------------------------------------------------

    def _tail_p_values(self, s):
        """The conformal p-value of each score in ``s`` in the fitted tail (NaN stays NaN)."""
        upper = lambda: conformal_p_values(self.calibration_scores_, s)  # noqa: E731
        lower = lambda: conformal_p_values(-self.calibration_scores_, -s)  # noqa: E731
        if self.tail_ == "upper":
            return upper()
        if self.tail_ == "lower":
            return lower()
        return np.minimum(1.0, 2 * np.minimum(upper(), lower()))

    def _value_p_values(self, X):
        """``combine="bonferroni"``: the p-value of every value of ``X``, shape of ``X``."""
        X = np.asarray(X, dtype=np.float64)
        return self._tail_p_values(X.ravel()).reshape(X.shape)

    def _validated(self, X, *, reset, y=None):
        # allow_nd: an estimator may take sets of inputs; NaN marks a missing value.
        if y is not None and reset:
            X, _ = validate_data(self, X, y, reset=True, allow_nd=True, ensure_all_finite="allow-nan")
        else:
            X = validate_data(self, X, reset=reset, allow_nd=True, ensure_all_finite="allow-nan")
        if self.estimator is None and X.ndim != 2:
            raise ValueError(
                f"ConformalDetector without an estimator takes rows of scores, X of shape "
                f"(n_rows, n_values); got shape {X.shape}. Pass an estimator that scores "
                "these rows, or their scores."
            )
        return X

    def _split(self, rows):
        n = len(rows)
        size = self.calibration_size
        n_calibration = int(size) if isinstance(size, Integral) else int(round(size * n))
        if not 1 <= n_calibration < n:
            raise ValueError(
                f"calibration_size={size!r} leaves {n_calibration} of the {n} clean rows for "
                "calibration and the rest for fitting the estimator; both need at least one. "
                "Pass more clean rows or another calibration_size."
            )
        order = check_random_state(self.random_state).permutation(rows)
        return np.sort(order[n_calibration:]), np.sort(order[:n_calibration])

    def __sklearn_tags__(self):
        return detector_tags(super().__sklearn_tags__())
