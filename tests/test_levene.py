"""Outlier rule (eq. 4), Levene p-values against scipy, direction, degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from sklearn.exceptions import NotFittedError

from wobbledetect import (
    MIN_SET_SIZE,
    DegenerateWobblinessWarning,
    LeveneBackdoorDetector,
    SmallSetWarning,
    outlier_mask,
)

# -- eq. (4) ---------------------------------------------------------------------------


def test_outlier_mask_hand_computed():
    # values 1..8 and 30: Q25 = 3, Q75 = 7 (linear), IQR 4 -> fences -3 and 13.
    values = np.array([1, 2, 3, 4, 5, 6, 7, 8, 30.0])
    assert np.percentile(values, [25, 75]).tolist() == [3.0, 7.0]
    np.testing.assert_array_equal(outlier_mask(values), values == 30)
    # A factor of 5 moves the upper fence to 27: 30 still out; factor 6 -> 31: kept.
    assert outlier_mask(values, 5.0)[-1] and not outlier_mask(values, 6.0)[-1]
    # Low side: -10 is below Q25 - 1.5 IQR.
    low = np.array([-10, 1, 2, 3, 4, 5, 6, 7, 8.0])
    np.testing.assert_array_equal(outlier_mask(low), low == -10)


def test_outlier_mask_fence_is_exclusive():
    # Q25 = 1.5, Q75 = 3.5 for 0..5 -> IQR 2, upper fence 6.5: a value equal to it stays.
    values = np.array([0, 1, 2, 3, 4, 5, 6.5])
    q25, q75 = np.percentile(values, [25, 75])
    fence = q75 + 1.5 * (q75 - q25)
    assert not outlier_mask(np.append(values[:-1], fence))[-1]
    assert outlier_mask(np.append(values[:-1], fence + 1e-9))[-1]


def test_outlier_mask_all_equal_removes_nothing():
    np.testing.assert_array_equal(outlier_mask(np.full(7, 0.4)), np.zeros(7, bool))
    assert outlier_mask(np.array([])).shape == (0,)


def test_outlier_mask_zero_iqr_keeps_only_the_mode():
    values = np.array([0.0] * 8 + [0.01, 0.5])
    np.testing.assert_array_equal(outlier_mask(values), values > 0)


# -- p-values against scipy on the filtered populations --------------------------------


@pytest.mark.parametrize("center", ["mean", "median", "trimmed"])
def test_p_values_equal_scipy_on_filtered_populations(center):
    rng = np.random.RandomState(0)
    clean = rng.gamma(2.0, 0.3, size=(6, 25))
    clean[0, 0] = 9.0  # an outlier in the reference
    candidates = np.vstack([rng.gamma(2.0, 0.3, size=(3, 25)), rng.uniform(0, 0.1, (2, 25))])
    candidates[3, 4] = 7.0  # an outlier in a candidate
    det = LeveneBackdoorDetector(center=center).fit(clean)

    pooled = clean.ravel()
    reference = pooled[~outlier_mask(pooled)]
    assert det.n_reference_outliers_ == outlier_mask(pooled).sum() >= 1
    np.testing.assert_array_equal(det.reference_, reference)
    expected = [
        scipy.stats.levene(reference, row[~outlier_mask(row)], center=center).pvalue
        for row in candidates
    ]
    np.testing.assert_allclose(det.p_values(candidates), expected, rtol=1e-12)
    # -log10 p from the log survival function agrees with the p-value where p > 0.
    score = det.score_samples(candidates)
    np.testing.assert_allclose(np.abs(score), -np.log10(expected), rtol=1e-9)


def test_outlier_factor_none_keeps_everything():
    rng = np.random.RandomState(1)
    clean, cand = rng.normal(size=(4, 20)), rng.normal(size=(1, 20))
    clean[0, 0] = cand[0, 0] = 50.0
    det = LeveneBackdoorDetector(outlier_factor=None).fit(clean)
    assert det.n_reference_outliers_ == 0
    expected = scipy.stats.levene(clean.ravel(), cand[0], center="mean").pvalue
    assert det.p_values(cand)[0] == pytest.approx(expected, rel=1e-12)


# -- direction -------------------------------------------------------------------------


@pytest.fixture
def populations():
    rng = np.random.RandomState(2)
    clean = rng.uniform(0.0, 1.0, size=(8, 25))
    smooth = rng.uniform(0.45, 0.55, size=(1, 25))  # spread far smaller
    wobbly = np.concatenate([rng.uniform(0.0, 0.05, 13), rng.uniform(1.9, 2.0, 12)])[None]
    similar = rng.uniform(0.0, 1.0, size=(1, 25))
    return clean, smooth, wobbly, similar


def test_direction_smoother_is_the_default(populations):
    clean, smooth, wobbly, similar = populations
    det = LeveneBackdoorDetector().fit(clean)
    W = np.vstack([smooth, wobbly, similar])
    p = det.p_values(W)
    assert p[0] < 1e-6 and p[1] < 1e-6 and p[2] > 0.05
    score = det.decision_function(W)
    assert score[0] > 0 > score[2] > score[1]  # wobblier ranks *below* similar
    np.testing.assert_array_equal(det.predict(W), [1, 0, 0])
    np.testing.assert_array_equal(det.predict(W), (score > 0).astype(int))


def test_direction_wobblier_and_two_sided(populations):
    clean, smooth, wobbly, similar = populations
    W = np.vstack([smooth, wobbly, similar])
    wob = LeveneBackdoorDetector(direction="wobblier").fit(clean)
    np.testing.assert_array_equal(wob.predict(W), [0, 1, 0])
    both = LeveneBackdoorDetector(direction="two-sided").fit(clean)
    np.testing.assert_array_equal(both.predict(W), [1, 1, 0])
    assert (both.score_samples(W) >= 0).all()
    smoother = LeveneBackdoorDetector().fit(clean)
    np.testing.assert_allclose(
        np.abs(smoother.score_samples(W)), both.score_samples(W)
    )
    np.testing.assert_allclose(wob.score_samples(W), -smoother.score_samples(W))


def test_alpha_is_the_threshold(populations):
    clean, _, _, similar = populations
    det = LeveneBackdoorDetector().fit(clean)
    p = det.p_values(similar)[0]
    assert LeveneBackdoorDetector(alpha=min(0.999, p * 1.01), direction="two-sided").fit(
        clean
    ).predict(similar)[0] == 1
    assert LeveneBackdoorDetector(alpha=p * 0.99, direction="two-sided").fit(clean).predict(
        similar
    )[0] == 0
    assert det.offset_ == pytest.approx(-np.log10(0.05))


# -- degenerate cases ------------------------------------------------------------------


def test_both_populations_constant_is_untestable_and_says_so():
    # The statistic is 0/0: p is NaN (it was a quiet 1), with a warning at fit about the
    # reference and one at each test about the row.
    with pytest.warns(DegenerateWobblinessWarning, match=r"30 of 30 W values are 0.*larger sigma"):
        det = LeveneBackdoorDetector().fit(np.zeros((3, 10)))
    cand = np.zeros((1, 10))
    with pytest.warns(DegenerateWobblinessWarning, match=r"row 0 of W: .*both constant.*p is NaN"):
        assert np.isnan(det.p_values(cand)[0])
    with pytest.warns(DegenerateWobblinessWarning):
        assert det.score_samples(cand)[0] == 0.0
    with pytest.warns(DegenerateWobblinessWarning):
        assert det.predict(cand)[0] == 0
    # Constant at another level: Levene compares spreads, not locations.
    with pytest.warns(DegenerateWobblinessWarning):
        assert np.isnan(det.p_values(np.full((1, 10), 0.7))[0])


def test_constant_candidate_against_varying_reference():
    rng = np.random.RandomState(3)
    det = LeveneBackdoorDetector().fit(rng.uniform(0, 1, size=(4, 25)))
    cand = np.zeros((1, 25))
    expected = scipy.stats.levene(det.reference_, cand[0], center="mean").pvalue
    assert det.p_values(cand)[0] == pytest.approx(expected, rel=1e-12)
    assert expected < 1e-10
    assert det.predict(cand)[0] == 1


def test_mostly_zero_clean_set_is_flagged():
    # A known weakness of the paper's procedure at small sigma: a clean set whose W are
    # mostly 0 has IQR 0, eq. (4) removes every non-zero value, and the remaining
    # constant set is "smoother" than a pooled reference that keeps its spread.
    reference = np.tile(np.r_[np.zeros(5), np.linspace(0.1, 1.0, 5)], (4, 1))
    clean_like = np.r_[np.zeros(8), 0.4, 0.9][None]  # Q25 = Q75 = 0
    det = LeveneBackdoorDetector().fit(reference)
    assert outlier_mask(clean_like[0]).sum() == 2
    with pytest.warns(DegenerateWobblinessWarning, match=r"interquartile range of 0 \(8 of 10 values.*removed the other 2"):
        assert det.predict(clean_like)[0] == 1
    # Without outlier removal the same set is not flagged.
    assert LeveneBackdoorDetector(outlier_factor=None).fit(reference).predict(clean_like)[0] == 0


def test_varying_candidate_against_constant_reference_is_wobblier():
    with pytest.warns(DegenerateWobblinessWarning):
        det = LeveneBackdoorDetector().fit(np.zeros((4, 25)))
    cand = np.random.RandomState(4).uniform(0, 1, size=(1, 25))
    assert det.predict(cand)[0] == 0
    assert det.score_samples(cand)[0] < -5
    with pytest.warns(DegenerateWobblinessWarning):
        wobblier = LeveneBackdoorDetector(direction="wobblier").fit(np.zeros((4, 25)))
    assert wobblier.predict(cand)[0] == 1


def test_infinite_statistic_gives_a_finite_extreme_score():
    # Reference values +-1 around 0 (|z| = 1 for all) and a constant candidate (z = 0):
    # no within-group variance of z, different spreads -> statistic inf, p = 0.
    det = LeveneBackdoorDetector(outlier_factor=None).fit(np.array([[-1.0, 1.0] * 10]))
    cand = np.zeros((1, 20))
    with pytest.warns(DegenerateWobblinessWarning, match="statistic is infinite"):
        assert det.p_values(cand)[0] == 0.0
    with pytest.warns(DegenerateWobblinessWarning):
        score = det.score_samples(cand)[0]
    assert np.isfinite(score) and score == np.finfo(float).max


def test_nan_marks_missing_values():
    rng = np.random.RandomState(5)
    clean = rng.uniform(0, 1, size=(4, 25))
    row = rng.uniform(0, 0.05, size=25)
    padded = row.copy()
    padded[20:] = np.nan
    det = LeveneBackdoorDetector().fit(clean)
    expected = scipy.stats.levene(det.reference_, row[:20][~outlier_mask(row[:20])], center="mean")
    assert det.p_values(padded[None])[0] == pytest.approx(expected.pvalue, rel=1e-12)
    # Fewer than MIN_SET_SIZE finite values: untestable -> NaN p, score 0, class 0.
    lonely = np.full((1, 25), np.nan)
    lonely[0, 0] = 0.0
    with pytest.warns(SmallSetWarning):
        assert np.isnan(det.p_values(lonely)[0])
    with pytest.warns(SmallSetWarning):
        assert det.decision_function(lonely)[0] == -det.offset_
    with pytest.warns(SmallSetWarning):
        assert det.predict(lonely)[0] == 0
    # NaN in the reference is dropped too.
    clean[0, :5] = np.nan
    assert LeveneBackdoorDetector().fit(clean).reference_.size == 95


def test_inf_is_rejected():
    with pytest.raises(ValueError, match="infinity"):
        LeveneBackdoorDetector().fit(np.array([[0.1, np.inf, 0.3]]))


# -- labels ----------------------------------------------------------------------------


def test_reference_is_the_clean_rows():
    rng = np.random.RandomState(6)
    W = rng.uniform(0, 1, size=(6, 10))
    y = np.array([0, 1, 0, 1, 1, 0])
    det = LeveneBackdoorDetector().fit(W, y)
    np.testing.assert_array_equal(np.sort(det.reference_), np.sort(W[y == 0].ravel()))
    np.testing.assert_array_equal(det.classes_, [0, 1])
    assert det.n_features_in_ == 10


def test_reference_mask_keeps_other_negatives_out_of_the_reference(populations):
    clean, smooth, wobbly, _ = populations
    W = np.vstack([clean, wobbly, smooth])
    y = np.r_[np.zeros(len(clean) + 1, int), 1]
    mask = np.r_[np.ones(len(clean), bool), False, False]
    det = LeveneBackdoorDetector().fit(W, y, reference=mask)
    np.testing.assert_array_equal(det.reference_, LeveneBackdoorDetector().fit(clean).reference_)
    # Without the mask the wobbly negative widens the reference.
    assert LeveneBackdoorDetector().fit(W, y).reference_spread_ > det.reference_spread_
    with pytest.raises(ValueError, match="'reference' mask selects rows labelled as triggered"):
        LeveneBackdoorDetector().fit(W, y, reference=np.ones(len(W), bool))
    with pytest.raises(ValueError, match="'reference' parameter must be a boolean mask"):
        LeveneBackdoorDetector().fit(W, y, reference=np.ones(3, bool))


def test_string_labels_use_the_smaller_label_as_clean(populations):
    clean, smooth, _, _ = populations
    W = np.vstack([clean, smooth])
    y = np.array(["clean"] * len(clean) + ["trojan"])
    det = LeveneBackdoorDetector().fit(W, y)
    np.testing.assert_array_equal(det.classes_, ["clean", "trojan"])
    assert det.predict(smooth)[0] == "trojan"


def test_no_clean_row_is_a_clear_error():
    with pytest.raises(ValueError, match=r"one class only, 1, so no row is known to be clean"):
        LeveneBackdoorDetector().fit(np.ones((3, 4)), [1, 1, 1])
    with pytest.raises(ValueError, match=r"y == 0\) hold 1 finite value.*reference population needs at least 3"):
        LeveneBackdoorDetector().fit(np.array([[0.2, np.nan], [np.nan, np.nan]]))
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        LeveneBackdoorDetector().fit(np.ones((3, 4)), [0, 1, 2])


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("alpha", 0.0, r"'alpha' parameter .* range \(0.0, 1.0\)\. Got 0\.0"),
        ("alpha", 1.5, r"'alpha' parameter .* Got 1\.5"),
        ("center", "mode", r"'center' parameter .* Got 'mode'"),
        ("outlier_factor", -1, r"'outlier_factor' parameter .* Got -1"),
        ("direction", "up", r"'direction' parameter .* Got 'up'"),
    ],
)
def test_bad_parameters(param, value, match):
    with pytest.raises(ValueError, match=match):
        LeveneBackdoorDetector(**{param: value}).fit(np.ones((3, 4)))


def test_unfitted_and_wrong_set_size():
    with pytest.raises(NotFittedError):
        LeveneBackdoorDetector().p_values(np.ones((2, 3)))
    det = LeveneBackdoorDetector().fit(np.random.RandomState(0).uniform(size=(3, 5)))
    with pytest.raises(ValueError, match="X has 4 features, but LeveneBackdoorDetector is expecting 5"):
        det.predict(np.ones((2, 4)))


# -- sets too small to test (issue 12, item 1) ------------------------------------------


def test_two_against_two_values_is_refused_not_p_1e31():
    # Two clean values against two others: |x - mean| is the same for both values of a
    # group, the statistic has no within-group spread and scipy gives p ~ 1e-31.
    pair = np.array([[0.1, 0.5]])
    assert scipy.stats.levene([0.1, 0.5], [0.2, 0.9]).pvalue < 1e-20
    with pytest.raises(ValueError, match=rf"2 finite value.*at least {MIN_SET_SIZE}"):
        LeveneBackdoorDetector().fit(pair)
    det = LeveneBackdoorDetector().fit(np.random.RandomState(0).uniform(size=(4, 25)))
    with pytest.warns(SmallSetWarning, match=rf"row 0 of W: 2 value\(s\) left.*at least {MIN_SET_SIZE}.*p is NaN"):
        p = det.p_values(np.r_[0.2, 0.9, np.full(23, np.nan)][None])
    assert np.isnan(p[0])


def test_min_set_size_is_the_first_size_tested():
    rng = np.random.RandomState(1)
    det = LeveneBackdoorDetector(outlier_factor=None).fit(rng.uniform(size=(4, 25)))
    rows = np.full((2, 25), np.nan)
    rows[0, :MIN_SET_SIZE] = rng.uniform(size=MIN_SET_SIZE)
    rows[1, : MIN_SET_SIZE - 1] = rng.uniform(size=MIN_SET_SIZE - 1)
    with pytest.warns(SmallSetWarning, match="row 1 of W"):
        p = det.p_values(rows)
    expected = scipy.stats.levene(det.reference_, rows[0, :MIN_SET_SIZE], center="mean").pvalue
    assert p[0] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(p[1])


def test_many_small_rows_give_one_warning_naming_them(recwarn):
    det = LeveneBackdoorDetector().fit(np.random.RandomState(2).uniform(size=(4, 25)))
    rows = np.full((4, 25), 0.5)
    rows[[1, 3], 2:] = np.nan
    det.p_values(rows)
    small = [w for w in recwarn if w.category is SmallSetWarning]
    assert len(small) == 1
    assert "2 of 4 rows of W (rows [1, 3])" in str(small[0].message)


# -- a reference with nothing to work with (item 2) ----------------------------------


def test_mostly_zero_reference_warns_and_names_the_counts():
    # 42 of 50 clean W exactly 0, as the default sigma gave on the digits net.
    reference = np.r_[np.zeros(42), np.linspace(0.1, 0.7, 8)][None]
    with pytest.warns(DegenerateWobblinessWarning, match=r"42 of 50 W values are 0 .*interquartile range is 0.*larger sigma"):
        det = LeveneBackdoorDetector().fit(reference)
    assert det.reference_warnings_[0].row is None
    # Half zeros with a real spread is not degenerate: nothing to say.
    healthy = np.r_[np.zeros(20), np.linspace(0.1, 0.9, 30)][None]
    fitted = LeveneBackdoorDetector().fit(healthy)
    assert fitted.reference_warnings_ == []


def test_screen_returns_what_the_methods_give_and_the_warnings_without_issuing(recwarn):
    rng = np.random.RandomState(3)
    with pytest.warns(DegenerateWobblinessWarning):
        det = LeveneBackdoorDetector(direction="two-sided").fit(
            np.r_[np.zeros(40), rng.uniform(0.1, 1, 10)][None])
    rows = np.vstack([rng.uniform(0, 1, 50), np.r_[0.3, 0.1, np.full(48, np.nan)]])
    recwarn.clear()
    report = det.screen(rows, names=["candidates[0]", "candidates[1]"])
    assert len(recwarn) == 0
    with pytest.warns(SmallSetWarning):
        np.testing.assert_array_equal(report.p_values, det.p_values(rows))
    with pytest.warns(SmallSetWarning):
        np.testing.assert_array_equal(report.scores, det.decision_function(rows))
    with pytest.warns(SmallSetWarning):
        np.testing.assert_array_equal(report.labels, det.predict(rows))
    kinds = [(type(w).__name__, w.row) for w in report.warnings]
    assert kinds == [("DegenerateWobblinessWarning", None), ("SmallSetWarning", 1)]
    assert str(report.warnings[1]).startswith("candidates[1]: 2 value(s) left")
    with pytest.raises(ValueError, match="names has 1 entries; W has 2 rows"):
        det.screen(rows, names=["a"])
