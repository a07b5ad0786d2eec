"""ConformalDetector: split-conformal p-values with a false-positive rate at most alpha."""

import warnings

import numpy as np
import pytest

from wobbledetect import CalibrationWarning, ConformalDetector, LeveneBackdoorDetector
from wobbledetect._conformal import conformal_p_values


def test_the_p_value_is_the_conformal_formula():
    rng = np.random.RandomState(0)
    calibration, scores = rng.normal(size=50), rng.normal(size=20)
    expected = [(1 + np.sum(calibration >= s)) / 51 for s in scores]
    np.testing.assert_allclose(conformal_p_values(calibration, scores), expected)
    assert np.isnan(conformal_p_values(calibration, [np.nan, 0.0])[0])


@pytest.mark.parametrize("distribution", ["normal", "zero_inflated"])
def test_the_false_positive_rate_on_clean_data_is_at_most_alpha(distribution):
    # W is mostly exactly 0 at small sigma: ties must not break the guarantee.
    rng = np.random.RandomState(1)

    def draw(n):
        if distribution == "normal":
            return rng.normal(size=(n, 1))
        return np.where(rng.rand(n, 1) < 0.6, 0.0, rng.exponential(size=(n, 1)))

    alpha, draws, n_test = 0.05, 400, 50
    rates = []
    for _ in range(draws):
        det = ConformalDetector(alpha=alpha).fit(draw(99))
        rates.append(det.predict(draw(n_test)).mean())
    # The marginal rate is at most alpha (exactly alpha - its share of ties for the
    # continuous case, 1/(n+1) granularity); 3 standard errors of 400 x 50 draws.
    se = np.sqrt(alpha * (1 - alpha) / (draws * n_test))
    assert np.mean(rates) <= alpha + 3 * se
    if distribution == "normal":
        assert np.mean(rates) >= alpha - 3 * se - 1 / 100  # not vacuously conservative


def test_the_levene_detector_gains_a_calibrated_p_value_and_keeps_the_papers():
    rng = np.random.RandomState(2)
    # Zero-inflated W: the regime where the Levene test flags clean sets far too often.
    clean = np.where(rng.rand(400, 25) < 0.7, 0.0, rng.exponential(0.3, size=(400, 25)))
    det = ConformalDetector(LeveneBackdoorDetector(), calibration_size=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det.fit(clean[:300])
        test = clean[300:]
        paper = det.estimator_.predict(test).mean()
        calibrated = det.predict(test).mean()
        # the paper's p-value stays the estimator's; the calibrated one ranks its score
        score = det.estimator_.decision_function(test)
        np.testing.assert_allclose(det.p_values(test), conformal_p_values(det.calibration_scores_, score))
    assert det.n_calibration_ == 200 and det.tail_ == "upper"
    assert calibrated <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 100) < paper, (calibrated, paper)


def test_a_frozen_detector_is_calibrated_on_every_row_and_left_as_fitted():
    from sklearn.frozen import FrozenEstimator

    rng = np.random.RandomState(3)
    reference, calibration, test = (rng.exponential(size=(n, 25)) for n in (10, 40, 5))
    levene = LeveneBackdoorDetector().fit(reference)
    det = ConformalDetector(FrozenEstimator(levene)).fit(calibration)
    assert det.n_calibration_ == 40 and det.estimator_.estimator is levene
    np.testing.assert_array_equal(levene.reference_, LeveneBackdoorDetector().fit(reference).reference_)
    np.testing.assert_allclose(det.p_values(test), conformal_p_values(
        levene.decision_function(calibration), levene.decision_function(test)))


def test_without_an_estimator_a_rows_score_is_its_mean():
    sets = np.array([[0.0, 1.0, np.nan], [2.0, 2.0, 2.0]] * 20)
    det = ConformalDetector(tail="upper").fit(sets)
    np.testing.assert_array_equal(det.scores(sets[:2]), [0.5, 2.0])
    np.testing.assert_array_equal(det.calibration_scores_, [0.5, 2.0] * 20)


def test_two_sided_and_the_tails():
    det = ConformalDetector(tail="upper").fit(np.arange(99.0)[:, None])
    assert det.p_values([[200.0], [-5.0]]).tolist() == [0.01, 1.0]
    det = ConformalDetector(tail="two-sided").fit(np.arange(99.0)[:, None])
    assert det.p_values([[200.0], [-5.0], [49.0]]).tolist() == [0.02, 0.02, 1.0]


def test_too_little_calibration_and_nan_scores_are_said():
    with pytest.warns(CalibrationWarning, match="calibrated on 10 clean score.*smallest p-value is "
                      "0.0909.*at least 20 clean rows"):
        det = ConformalDetector().fit(np.arange(10.0)[:, None])
    assert not det.predict([[-100.0]]).any()
    with pytest.warns(CalibrationWarning, match="1 of 2 row.*no score"):
        p = ConformalDetector().fit(np.arange(30.0)[:, None]).p_values([[np.nan], [0.0]])
    assert np.isnan(p[0]) and p[1] == pytest.approx(2 / 31)  # lower tail: 0 is the smallest


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="takes rows of scores.*got shape"):
        ConformalDetector().fit(np.zeros((10, 3, 2)))
    with pytest.raises(ValueError, match="1 of the 10 clean calibration scores are NaN"):
        ConformalDetector().fit(np.r_[np.zeros(9), np.nan][:, None])
    with pytest.raises(ValueError, match="calibration_size=0.01 leaves 0 of the 10 clean rows"):
        ConformalDetector(LeveneBackdoorDetector(), calibration_size=0.01).fit(np.ones((10, 5)))
    with pytest.raises(ValueError, match="'alpha' parameter of ConformalDetector"):
        ConformalDetector(alpha=1.5).fit(np.zeros((10, 1)))


def test_bonferroni_rows_get_the_smallest_value_p_times_their_count():
    rng = np.random.RandomState(5)
    calibration = rng.exponential(size=(40, 10))
    batches = rng.exponential(size=(3, 10))
    batches[1, 3] = 0.0      # one trigger-like (small) value
    batches[2, :4] = np.nan  # a batch of 6 values
    det = ConformalDetector(tail="lower", combine="bonferroni").fit(calibration)
    assert det.n_calibration_ == 400 and det.min_p_value_ == 1 / 401
    per_value = conformal_p_values(-calibration.ravel(), -batches.ravel()).reshape(3, 10)
    expected = [min(1, 10 * np.nanmin(per_value[0])), 10 / 401, min(1, 6 * np.nanmin(per_value[2]))]
    np.testing.assert_allclose(det.p_values(batches), expected)
    assert det.scores(batches)[1] == 0.0  # the row's most trigger-like value
    assert det.scores(batches)[0] == np.nanmin(batches[0])
    # The mean of the batch hides that one input; the Bonferroni row does not.
    assert det.predict(batches)[1] == 1
    assert ConformalDetector(tail="lower").fit(calibration).predict(batches[1:2])[0] == 0
    with pytest.warns(CalibrationWarning, match="1 of 1 row"):
        assert np.isnan(det.p_values(np.full((1, 10), np.nan))[0])


def test_bonferroni_keeps_the_false_positive_rate_of_clean_batches_at_most_alpha():
    # Zero-inflated per-input W, batches of 25: the union bound holds whatever the ties.
    rng = np.random.RandomState(6)

    def draw(n):
        return np.where(rng.rand(n, 25) < 0.5, 0.0, rng.exponential(size=(n, 25)))

    alpha, draws, n_test = 0.05, 200, 40
    rates = [ConformalDetector(alpha=alpha, tail="upper", combine="bonferroni").fit(draw(40))
             .predict(draw(n_test)).mean() for _ in range(draws)]
    se = np.sqrt(alpha * (1 - alpha) / (draws * n_test))
    assert np.mean(rates) <= alpha + 3 * se
    assert np.mean(rates) > 0.02  # flags clean batches at all: not vacuously conservative


def test_bonferroni_refuses_an_estimator_and_warns_when_alpha_is_out_of_reach():
    with pytest.raises(ValueError, match="combine='bonferroni' with an estimator"):
        ConformalDetector(LeveneBackdoorDetector(), combine="bonferroni").fit(np.zeros((10, 25)))
    with pytest.raises(ValueError, match="'combine' parameter"):
        ConformalDetector(combine="max").fit(np.zeros((10, 25)))
    # 8 x 25 = 200 values: the smallest row p is 25 / 201 > 0.05.
    with pytest.warns(CalibrationWarning, match="at least 500 clean values"):
        ConformalDetector(combine="bonferroni").fit(np.random.RandomState(0).rand(8, 25))


def test_the_first_conformal_p_values_leave_the_callers_warning_filters_alone():
    # crepes sets simplefilter("always", UserWarning) when first imported; in a fresh
    # interpreter (crepes not yet imported) a caller's filters must survive the first call.
    import subprocess
    import sys

    code = (
        "import warnings, sys\n"
        "from wobbledetect._conformal import conformal_p_values\n"
        "assert 'crepes' not in sys.modules\n"
        "warnings.simplefilter('ignore', UserWarning)\n"
        "before = list(warnings.filters)\n"
        "print(conformal_p_values([1.0, 2.0, 3.0], [2.5]))\n"
        "assert 'crepes' in sys.modules\n"
        "assert warnings.filters == before, warnings.filters[:2]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0.5]"
