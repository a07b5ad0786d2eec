"""scikit-learn's common estimator checks, for both public estimators."""

from __future__ import annotations

from conftest import SumModel
from sklearn.utils.estimator_checks import parametrize_with_checks

from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer


def _expected_failures(estimator):
    # Empty for both: every check passes. Kept as the one place to list a check that
    # cannot pass, with its reason, should a future scikit-learn add one.
    return {}


@parametrize_with_checks(
    [
        LeveneBackdoorDetector(),
        WobblinessTransformer(SumModel(), sigma=0.5, n_samples=20, random_state=0, device="cpu"),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
