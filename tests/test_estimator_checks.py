"""scikit-learn's common estimator checks, for both public estimators."""

from __future__ import annotations

from conftest import SumModel
from sklearn.utils.estimator_checks import parametrize_with_checks

from wobbledetect import LeveneBackdoorDetector, WobblinessTransformer


def _expected_failures(estimator):
    # The one place to list a check that cannot pass, with its reason.
    if isinstance(estimator, WobblinessTransformer):
        return {
            "check_estimators_dtypes": (
                "fits on int32/int64 data: the transformer refuses integer inputs on "
                "purpose, because adding noise of scale sigma needs the inputs' scale, "
                "which it never guesses (InputDtypeError says how to scale them)"
            ),
        }
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
