"""The Levene test of §3.2.4 and the detector built on it (eq. (4) is in :mod:`._sets`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Real

import numpy as np
import scipy.stats
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._exceptions import DegenerateWobblinessWarning
from ._sets import MIN_SET_SIZE, candidate_warnings, outlier_mask, reference_warnings, row_warning

__all__ = ["LeveneBackdoorDetector", "ScreenReport", "DIRECTIONS"]

_LN10 = np.log(10.0)

#: Which difference in spread counts as a trigger (the ``direction`` parameter).
DIRECTIONS = ("smoother", "wobblier", "two-sided")


class LeveneBackdoorDetector(ClassifierMixin, BaseEstimator):
    """Flags sets of W values whose spread differs from clean ones (paper §3.2.4).

    ``fit`` pools the W values of the clean rows into the *reference* population. Each row
    of ``W`` passed later is a *candidate* set: outliers are removed from both populations
    with eq. (4), a Levene test (H0: equal variances) compares them, and the row is
    flagged (class 1, "trigger active") when ``p < alpha`` and the candidate differs in the
    expected direction. The paper's direction is ``"smoother"``: triggered inputs sit in
    flat regions, so their W have a smaller spread.

    Parameters
    ----------
    alpha : float, default=0.05
        Significance level of the test.
    center : {"mean", "median", "trimmed"}, default="mean"
        Centre of the absolute deviations in the Levene statistic, as in
        :func:`scipy.stats.levene`; ``"mean"`` is Levene's original test (the paper's),
        ``"median"`` the Brown-Forsythe variant.
    proportiontocut : float, default=0.05
        Proportion cut from each end when ``center="trimmed"``.
    outlier_factor : float or None, default=1.5
        IQR multiple of eq. (4); None keeps every value.
    direction : {"smoother", "wobblier", "two-sided"}, default="smoother"
        Which difference counts as a trigger: a smaller spread than the reference (the
        paper's backdoor smoothing), a larger one (what weak backdoors and universal
        adversarial perturbations show, paper Fig. 7), or either.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        ``[clean label, trigger label]``: ``[0, 1]`` when ``y`` is None or 0/1.
    reference_ : ndarray of shape (n_reference,)
        The pooled clean W values that candidates are tested against, outliers removed.
    n_reference_outliers_ : int
        How many pooled clean values eq. (4) removed.
    reference_warnings_ : list of DegenerateWobblinessWarning
        What ``fit`` found wrong with the reference (issued then, too); empty when
        nothing.
    reference_spread_ : float
        Mean absolute deviation of ``reference_`` from its centre (the quantity the
        Levene statistic compares).
    offset_ : float
        ``-log10(alpha)``: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Set size (columns of ``W``) seen during ``fit``.

    See Also
    --------
    WobblinessTransformer : Computes the W values this detector judges.
    outlier_mask : Eq. (4).

    Notes
    -----
    Rows are sets; ``NaN`` marks a missing value, so sets smaller than ``n_features_in_``
    are padded with NaN. Degenerate cases:

    - a row with fewer than :data:`MIN_SET_SIZE` values after eq. (4) cannot be tested:
      ``p`` is NaN, score 0, class 0, and a :class:`SmallSetWarning` says so; ``fit``
      refuses a reference that small;
    - reference and candidate both constant (zero spread each): the statistic is 0/0,
      ``p`` is NaN, score 0, class 0, with a :class:`DegenerateWobblinessWarning`;
    - a constant candidate against a varying reference is an ordinary, valid test (often
      highly significant, in the "smoother" direction);
    - a zero-variance statistic denominator with different spreads gives ``p = 0`` and a
      score of +-``np.finfo(float).max`` (finite, so ROC curves still work), with a
      :class:`DegenerateWobblinessWarning`;
    - a reference whose W is mostly 0 or has an interquartile range of 0 (sigma too
      small for the model), and a candidate whose IQR is 0 so that eq. (4) discarded its
      other values, give a :class:`DegenerateWobblinessWarning` suggesting a larger sigma.

    Warnings are issued by ``fit``, ``p_values``, ``score_samples``,
    ``decision_function`` and ``predict``; :meth:`screen` returns them instead (the
    service carries them in its response).

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect import LeveneBackdoorDetector
    >>> rng = np.random.RandomState(0)
    >>> clean = rng.uniform(0.0, 1.0, size=(4, 25))     # wobbly: clean inputs
    >>> smooth = rng.uniform(0.0, 0.05, size=(1, 25))   # flat: a working trigger
    >>> det = LeveneBackdoorDetector().fit(clean)
    >>> det.predict(np.vstack([clean[:1], smooth]))
    array([0, 1])
    >>> det.p_values(smooth) < 1e-6
    array([ True])
    """

    _parameter_constraints: dict = {
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "center": [StrOptions({"mean", "median", "trimmed"})],
        "proportiontocut": [Interval(Real, 0, 0.5, closed="left")],
        "outlier_factor": [Interval(Real, 0, None, closed="left"), None],
        "direction": [StrOptions(set(DIRECTIONS))],
    }

    def __init__(
        self,
        *,
        alpha=0.05,
        center="mean",
        proportiontocut=0.05,
        outlier_factor=1.5,
        direction="smoother",
    ):
        self.alpha = alpha
        self.center = center
        self.proportiontocut = proportiontocut
        self.outlier_factor = outlier_factor
        self.direction = direction

    def fit(self, W, y=None, reference=None):
        """Pool the W values of the clean rows into the reference population.

        Parameters
        ----------
        W : array-like of shape (n_sets, set_size)
            W of each input of each set; NaN marks a missing value.
        y : array-like of shape (n_sets,), default=None
            Binary labels, the smaller one meaning clean (0 = clean, 1 = trigger active).
            None: every row is clean.
        reference : array-like of bool of shape (n_sets,), default=None
            Rows pooled into the reference; default: every clean row. Use it when the
            negatives are not all clean -- e.g. sets carrying an unused trigger, which
            count as "no active trigger" for a ROC curve but must not widen the clean
            reference. ``GridSearchCV(...).fit(X, y, levene__reference=mask)`` slices it
            per fold.

        Returns
        -------
        self : LeveneBackdoorDetector
        """
        self._validate_params()
        if y is None:
            W = validate_data(self, W, ensure_all_finite="allow-nan")
            self.classes_ = np.array([0, 1])
            clean = np.ones(len(W), dtype=bool)
        else:
            W, y = validate_data(self, W, y, ensure_all_finite="allow-nan")
            y = column_or_1d(y, warn=True)
            check_classification_targets(y)
            self.classes_, clean = _clean_rows(y)
        if reference is not None:
            reference = column_or_1d(reference)
            if reference.dtype != bool or len(reference) != len(W):
                raise ValueError(
                    f"The 'reference' parameter must be a boolean mask with one entry per "
                    f"row of W ({len(W)}); got dtype {reference.dtype} and length "
                    f"{len(reference)}."
                )
            if (reference & ~clean).any():
                raise ValueError(
                    "The 'reference' mask selects rows labelled as triggered "
                    f"(y == {_plain(self.classes_[1])!r}); the reference must be clean rows."
                )
            clean = reference
        pooled = W[clean].ravel()
        pooled = pooled[np.isfinite(pooled)]
        keep = ~self._outliers(pooled)
        if keep.sum() < MIN_SET_SIZE:
            raise ValueError(
                f"The clean rows of W (y == {_plain(self.classes_[0])!r}) hold {pooled.size} "
                f"finite value(s), {int(keep.sum())} after eq. (4) removed outliers; the "
                f"reference population needs at least {MIN_SET_SIZE}. Pass more clean sets."
            )
        self.reference_ = pooled[keep]
        self.n_reference_outliers_ = int((~keep).sum())
        self.reference_spread_ = self._spread(self.reference_)
        self.offset_ = float(-np.log10(self.alpha))
        self.reference_warnings_ = reference_warnings(pooled)
        for warning in self.reference_warnings_:
            warnings.warn(warning, stacklevel=2)
        return self

    def p_values(self, W):
        """Levene p-value of each row against the reference, outliers removed.

        Parameters
        ----------
        W : array-like of shape (n_sets, n_features_in_)

        Returns
        -------
        p : ndarray of shape (n_sets,)
            NaN for rows with fewer than :data:`MIN_SET_SIZE` values after eq. (4),
            and for a constant row against a constant reference (with a warning).
        """
        return self._tested(W)[0]

    def score_samples(self, W):
        """Signed evidence of a trigger: ``-log10(p)``, positive in the ``direction`` sought.

        Parameters
        ----------
        W : array-like of shape (n_sets, n_features_in_)

        Returns
        -------
        score : ndarray of shape (n_sets,)
            ``-log10(p)`` times +1 when the row's spread differs from the reference in
            the chosen ``direction``, -1 when it differs the other way (0 for equal
            spreads); always non-negative for ``direction="two-sided"``.
        """
        _, minus_log10_p, sign = self._tested(W)
        return self._signed(minus_log10_p, sign)

    def decision_function(self, W):
        """``score_samples(W) - offset_``: positive exactly when a row is flagged.

        Parameters
        ----------
        W : array-like of shape (n_sets, n_features_in_)

        Returns
        -------
        score : ndarray of shape (n_sets,)
            Higher means more trigger-like; use it for ROC curves.
        """
        return self.score_samples(W) - self.offset_

    def predict(self, W):
        """Class of each row: ``classes_[1]`` (trigger active) when ``p < alpha`` in ``direction``.

        Parameters
        ----------
        W : array-like of shape (n_sets, n_features_in_)

        Returns
        -------
        y : ndarray of shape (n_sets,)
        """
        flagged = self.decision_function(W) > 0
        return self.classes_[flagged.astype(int)]

    def screen(self, W, *, names=None):
        """Test every row once: p-values, scores, classes and warnings, none issued.

        What ``p_values``, ``decision_function`` and ``predict`` give, from one test
        per row, with the warnings those would issue *returned* (the reference's from
        ``fit`` first), so that a caller -- the gRPC service, a report -- can carry them.

        Parameters
        ----------
        W : array-like of shape (n_sets, n_features_in_)
        names : list of str or None, default=None
            What to call each row in warning messages; default ``"row i of W"``.

        Returns
        -------
        ScreenReport

        Examples
        --------
        >>> import numpy as np
        >>> from wobbledetect import LeveneBackdoorDetector
        >>> rng = np.random.RandomState(0)
        >>> det = LeveneBackdoorDetector().fit(rng.uniform(0, 1, size=(4, 25)))
        >>> report = det.screen(np.vstack([rng.uniform(0, 0.05, 25), np.r_[0.3, 0.2, np.full(23, np.nan)]]),
        ...                     names=["batch A", "batch B"])
        >>> report.labels
        array([1, 0])
        >>> report.p_values < 1e-6, np.isnan(report.p_values)
        (array([ True, False]), array([False,  True]))
        >>> [(type(w).__name__, w.row) for w in report.warnings]
        [('SmallSetWarning', 1)]
        """
        p, minus_log10_p, sign, found = self._test(W, names)
        scores = self._signed(minus_log10_p, sign) - self.offset_
        labels = self.classes_[(scores > 0).astype(int)]
        return ScreenReport(p, scores, labels, [*self.reference_warnings_, *found])

    # -- internals -------------------------------------------------------------------

    def _signed(self, minus_log10_p, sign):
        if self.direction == "two-sided":
            sign = np.abs(sign)
        elif self.direction == "wobblier":
            sign = -sign
        score = sign * minus_log10_p
        return np.nan_to_num(score, nan=0.0, posinf=np.finfo(float).max, neginf=-np.finfo(float).max)

    def _tested(self, W):
        """:meth:`_test`, issuing its warnings (one per kind, naming the rows)."""
        p, minus_log10_p, sign, found = self._test(W)
        for category in dict.fromkeys(type(w) for w in found):
            same = [w for w in found if type(w) is category]
            if len(same) == 1:
                warnings.warn(same[0], stacklevel=3)
            else:
                rows = sorted({w.row for w in same})
                warnings.warn(category(
                    f"{len(rows)} of {len(p)} rows of W (rows {rows}) -- the first: {same[0]}"
                ), stacklevel=3)
        return p, minus_log10_p, sign

    def _spread(self, values):
        """Mean absolute deviation from the centre: the group mean of Levene's ``z``.

        Computed as :func:`scipy.stats.levene` does, so its sign is the test's direction.
        """
        if self.center == "trimmed":
            values = scipy.stats.trimboth(np.sort(values), self.proportiontocut)
            center = np.mean(values)
        else:
            center = np.mean(values) if self.center == "mean" else np.median(values)
        return float(np.mean(np.abs(values - center)))

    def _outliers(self, values):
        if self.outlier_factor is None:
            return np.zeros(values.shape, dtype=bool)
        return outlier_mask(values, self.outlier_factor)

    def _test(self, W, names=None):
        """p-value, -log10(p), the sign of (reference spread - candidate spread), warnings."""
        check_is_fitted(self)
        W = validate_data(self, W, reset=False, ensure_all_finite="allow-nan")
        n = len(W)
        if names is not None and len(names) != n:
            raise ValueError(f"names has {len(names)} entries; W has {n} rows, one name each.")
        p = np.full(n, np.nan)
        minus_log10_p = np.zeros(n)
        sign = np.zeros(n)
        found = []
        reference = self.reference_
        for i, row in enumerate(W):
            name = f"row {i} of W" if names is None else names[i]
            finite = row[np.isfinite(row)]
            candidate = finite[~self._outliers(finite)]
            found += candidate_warnings(finite, candidate, name, i)
            if candidate.size < MIN_SET_SIZE:
                continue
            p[i], minus_log10_p[i] = self._levene(reference, candidate)
            sign[i] = np.sign(self.reference_spread_ - self._spread(candidate))
            if np.isnan(p[i]):
                # This says more than an IQR-0 warning the row may have got: replace it.
                found = [w for w in found if w.row != i]
                found.append(row_warning(DegenerateWobblinessWarning, i, (
                    f"{name}: the set and the clean reference are both constant after "
                    "eq. (4); the Levene statistic is 0/0, so p is NaN. Use a larger sigma.")))
            elif p[i] == 0.0 and np.isinf(minus_log10_p[i]):
                found.append(row_warning(DegenerateWobblinessWarning, i, (
                    f"{name}: every value of the set and of the reference lies equally far "
                    "from its centre; the Levene statistic is infinite and p = 0 only "
                    "says that the spreads differ. Use larger sets or another sigma.")))
        return p, minus_log10_p, sign, found

    def _levene(self, reference, candidate):
        with warnings.catch_warnings():
            # Both populations constant makes the statistic 0/0, handled below.
            warnings.simplefilter("ignore", RuntimeWarning)
            statistic, p = scipy.stats.levene(
                reference, candidate, center=self.center, proportiontocut=self.proportiontocut
            )
        if np.isnan(statistic):
            return np.nan, 0.0
        if np.isinf(statistic):
            return 0.0, np.inf
        # log survival function: no underflow to p = 0 for very large statistics.
        dfd = reference.size + candidate.size - 2
        return float(p), float(-scipy.stats.f.logsf(statistic, 1, dfd) / _LN10)

    def __sklearn_tags__(self):
        return detector_tags(super().__sklearn_tags__())


@dataclass(frozen=True)
class ScreenReport:
    """What :meth:`LeveneBackdoorDetector.screen` finds for each row of W.

    Attributes
    ----------
    p_values : ndarray of shape (n_sets,)
        As :meth:`~LeveneBackdoorDetector.p_values` (NaN where untestable).
    scores : ndarray of shape (n_sets,)
        As :meth:`~LeveneBackdoorDetector.decision_function`.
    labels : ndarray of shape (n_sets,)
        As :meth:`~LeveneBackdoorDetector.predict`.
    warnings : list of WobbledetectWarning
        The reference's (from ``fit``) first, then the rows'; each has a ``row``
        attribute: the row it concerns, None for the reference.
    """

    p_values: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    warnings: list


def detector_tags(tags):
    """The scikit-learn tags of a binary trigger detector: NaN marks a missing value, two
    classes only, and no promise of accuracy on the common checks' random data."""
    tags.input_tags.allow_nan = True
    tags.classifier_tags.multi_class = False
    tags.classifier_tags.poor_score = True
    return tags


def _plain(label):
    """A NumPy scalar label as the Python value it holds (for messages)."""
    return label.item() if hasattr(label, "item") else label


def _clean_rows(y):
    """``classes_`` and the mask of clean rows from binary labels ``y``."""
    y_type = type_of_target(y, input_name="y", raise_unknown=True)
    if y_type != "binary":
        raise ValueError(
            "Only binary classification is supported. The type of the target is "
            f"{y_type}: y must hold two labels, the smaller meaning clean (0 = clean, "
            "1 = trigger active)."
        )
    labels = np.unique(y)
    if labels.size == 2:
        return labels, y == labels[0]
    label = labels[0].item() if hasattr(labels[0], "item") else labels[0]
    if label == 0:
        return np.array([0, 1]), np.ones(len(y), dtype=bool)
    raise ValueError(
        f"y has one class only, {label!r}, so no row is known to be clean; label clean "
        "rows 0 (trigger rows 1), or pass y=None when every row is clean."
    )
