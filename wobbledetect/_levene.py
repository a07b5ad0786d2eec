"""The outlier rule of eq. (4), the Levene test of §3.2.4, and the detector built on them."""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np
import scipy.stats
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

__all__ = ["LeveneBackdoorDetector", "outlier_mask"]

_LN10 = np.log(10.0)


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

    - reference and candidate both constant (zero spread each): the statistic is 0/0; no
      evidence of a difference, so ``p = 1``, score 0, class 0;
    - a constant candidate against a varying reference is an ordinary, valid test (often
      highly significant, in the "smoother" direction);
    - a zero-variance statistic denominator with different spreads gives ``p = 0`` and a
      score of +-``np.finfo(float).max`` (finite, so ROC curves still work);
    - a row with fewer than 2 finite values cannot be tested: ``p`` is NaN, score 0,
      class 0.

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
        "direction": [StrOptions({"smoother", "wobblier", "two-sided"})],
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
                    f"(y == {self.classes_[1]!r}); the reference must be clean rows."
                )
            clean = reference
        pooled = W[clean].ravel()
        pooled = pooled[np.isfinite(pooled)]
        if pooled.size < 2:
            raise ValueError(
                f"The clean rows of W (y == {self.classes_[0]!r}) hold {pooled.size} "
                "finite value(s); the reference population needs at least 2. Pass more "
                "clean sets."
            )
        keep = ~self._outliers(pooled)
        self.reference_ = pooled[keep]
        self.n_reference_outliers_ = int((~keep).sum())
        self.reference_spread_ = self._spread(self.reference_)
        self.offset_ = float(-np.log10(self.alpha))
        return self

    def p_values(self, W):
        """Levene p-value of each row against the reference, outliers removed.

        Parameters
        ----------
        W : array-like of shape (n_sets, n_features_in_)

        Returns
        -------
        p : ndarray of shape (n_sets,)
            NaN for rows with fewer than 2 finite values.
        """
        return self._test(W)[0]

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
        _, minus_log10_p, sign = self._test(W)
        if self.direction == "two-sided":
            sign = np.abs(sign)
        elif self.direction == "wobblier":
            sign = -sign
        score = sign * minus_log10_p
        return np.nan_to_num(score, nan=0.0, posinf=np.finfo(float).max, neginf=-np.finfo(float).max)

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

    # -- internals -------------------------------------------------------------------

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

    def _test(self, W):
        """p-value, -log10(p) and the sign of (reference spread - candidate spread)."""
        check_is_fitted(self)
        W = validate_data(self, W, reset=False, ensure_all_finite="allow-nan")
        n = len(W)
        p = np.full(n, np.nan)
        minus_log10_p = np.zeros(n)
        sign = np.zeros(n)
        reference = self.reference_
        for i, row in enumerate(W):
            candidate = row[np.isfinite(row)]
            candidate = candidate[~self._outliers(candidate)]
            if candidate.size < 2:
                continue
            p[i], minus_log10_p[i] = self._levene(reference, candidate)
            sign[i] = np.sign(self.reference_spread_ - self._spread(candidate))
        return p, minus_log10_p, sign

    def _levene(self, reference, candidate):
        with warnings.catch_warnings():
            # Both populations constant makes the statistic 0/0, handled below.
            warnings.simplefilter("ignore", RuntimeWarning)
            statistic, p = scipy.stats.levene(
                reference, candidate, center=self.center, proportiontocut=self.proportiontocut
            )
        if np.isnan(statistic):
            return 1.0, 0.0
        if np.isinf(statistic):
            return 0.0, np.inf
        # log survival function: no underflow to p = 0 for very large statistics.
        dfd = reference.size + candidate.size - 2
        return float(p), float(-scipy.stats.f.logsf(statistic, 1, dfd) / _LN10)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        tags.classifier_tags.poor_score = True
        return tags


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
