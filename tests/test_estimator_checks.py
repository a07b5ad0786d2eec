"""scikit-learn's common estimator checks, for every public estimator."""

from __future__ import annotations

from conftest import SumModel
from sklearn.utils.estimator_checks import parametrize_with_checks

from wobbledetect import LeveneBackdoorDetector, NeuralCleanse, UniversalPerturbation, WobblinessTransformer

#: What the two crafting estimators refuse, and why (they take the inputs' scale as given).
_INTEGER_INPUTS = (
    "fits on int32/int64 data: the estimator refuses integer inputs on purpose, because "
    "its perturbations live in the inputs' scale, which it never guesses (InputDtypeError "
    "says how to scale them)"
)


def _expected_failures(estimator):
    # The one place to list a check that cannot pass, with its reason.
    if isinstance(estimator, (WobblinessTransformer, NeuralCleanse, UniversalPerturbation)):
        return {"check_estimators_dtypes": _INTEGER_INPUTS}
    return {}


@parametrize_with_checks(
    [
        LeveneBackdoorDetector(),
        WobblinessTransformer(SumModel(), sigma=0.5, n_samples=20, random_state=0, device="cpu"),
        NeuralCleanse(SumModel(), max_steps=2, batches_per_step=1, random_state=0, device="cpu"),
        UniversalPerturbation(SumModel(), max_iter=1, random_state=0, device="cpu"),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
