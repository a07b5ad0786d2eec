"""W_sigma: exact values, shapes, reproducibility, errors, clone and pickle."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
import torch
from conftest import SumModel, Thresholds, exact_w
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from wobbledetect import (
    InputDtypeError,
    ModelNotFittedError,
    InputShapeError,
    ModelOutputError,
    WobblinessTransformer,
    check_inputs,
    vote_entropy,
)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_w_matches_closed_form(sigma):
    # Three classes cut at -1 and 1: p_k are differences of normal CDFs (eq. 2), W their
    # entropy (eq. 3). n is large so the Monte-Carlo error is small.
    cuts = np.array([-1.0, 1.0])
    xs = np.array([-1.5, -0.4, 0.0, 0.9, 2.0], dtype=np.float32)
    n = 20_000
    wob = WobblinessTransformer(
        Thresholds(cuts), sigma=sigma, n_samples=n, random_state=0, device="cpu"
    )
    W = wob.fit_transform(xs[:, None]).ravel()
    p = wob.vote_frequencies(xs[:, None])
    for x, w, p_hat in zip(xs, W, p):
        expected = exact_w(float(x), sigma, cuts)
        # Delta method: sd(W_hat) = sqrt(sum_k p_k (log p_k + W)^2 / n); plug-in bias is
        # at most (classes - 1) / (2 n).
        q = p_hat[p_hat > 0]
        sd = np.sqrt(np.sum(q * (np.log(q) + w) ** 2) / n)
        assert abs(w - expected) <= 5 * sd + 2 / n + 1e-4, (x, sigma, w, expected)


def test_w_is_zero_far_from_the_boundary_and_log2_on_it():
    wob = WobblinessTransformer(Thresholds([0.0]), sigma=0.1, n_samples=4000, random_state=1)
    W = wob.fit_transform(np.array([[0.0], [5.0]], dtype=np.float32)).ravel()
    assert W[1] == 0.0
    assert abs(W[0] - np.log(2)) < 2e-3


def test_votes_not_averaged_softmax():
    # Scores [s, -s, 0.3]: at x = 0 every copy has s ~ N(0, sigma^2 / d) -- with d = 64 and
    # sigma = 0.1, |s| < 0.3 always, so class 2 wins every vote: W = 0 exactly, while an
    # averaged softmax would spread mass over all three classes.
    wob = WobblinessTransformer(SumModel(), sigma=0.1, n_samples=500, random_state=0)
    W = wob.fit_transform(np.zeros((3, 64), dtype=np.float32))
    np.testing.assert_array_equal(W, np.zeros((3, 1)))
    np.testing.assert_array_equal(wob.vote_frequencies(np.zeros((1, 64))), [[0.0, 0.0, 1.0]])


def test_vote_entropy_estimators():
    np.testing.assert_allclose(vote_entropy([[10, 0], [5, 5], [1, 1]]), [0, np.log(2), np.log(2)])
    # Miller-Madow adds (occupied classes - 1) / (2 n).
    np.testing.assert_allclose(
        vote_entropy([[10, 0, 0], [5, 5, 0], [2, 1, 1]], estimator="miller-madow"),
        [0.0, np.log(2) + 1 / 20, vote_entropy([[2, 1, 1]])[0] + 2 / 8],
    )
    with pytest.raises(ValueError, match="'estimator'.*'plugin' or 'miller-madow'"):
        vote_entropy([[1, 1]], estimator="shannon")
    with pytest.raises(ValueError, match="non-negative"):
        vote_entropy([[-1, 2]])


def test_miller_madow_transformer_option():
    X = np.array([[0.1], [3.0]], dtype=np.float32)
    kwargs = dict(sigma=0.5, n_samples=100, random_state=0)
    plug = WobblinessTransformer(Thresholds([0.0]), **kwargs).fit_transform(X)
    mm = WobblinessTransformer(Thresholds([0.0]), entropy="miller-madow", **kwargs).fit_transform(X)
    assert mm[0, 0] == pytest.approx(plug[0, 0] + 1 / 200)
    assert mm[1, 0] == plug[1, 0] == 0.0  # one class only: no correction


@pytest.fixture
def image_wob(skorch_net):
    return WobblinessTransformer(
        skorch_net, sigma=0.4, n_samples=100, random_state=7, device="cpu"
    )


def test_shapes_inputs_and_sets(image_wob, image_data):
    X = image_data[0][:12]
    W_inputs = image_wob.fit(X).transform(X)
    assert W_inputs.shape == (12, 1)
    W_sets = image_wob.transform(X.reshape(3, 4, 1, 8, 8))
    assert W_sets.shape == (3, 4)
    # Content-keyed noise: grouping into sets does not change a value.
    np.testing.assert_array_equal(W_sets.ravel(), W_inputs.ravel())
    p = image_wob.vote_frequencies(X.reshape(3, 4, 1, 8, 8))
    assert p.shape == (3, 4, 3)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    np.testing.assert_allclose(vote_entropy(p.reshape(12, 3) * 100), W_inputs.ravel())
    assert image_wob.input_shape_ == (1, 8, 8)
    assert image_wob.n_classes_ == 3
    assert image_wob.n_features_in_ == 64


def test_some_inputs_are_wobbly(image_wob, image_data):
    # Guards against a test suite that would pass with W == 0 everywhere.
    W = image_wob.fit(image_data[0][:40]).transform(image_data[0][:40])
    assert (W > 0.1).sum() >= 5


@pytest.mark.parametrize("batch_size", [1, 7, 64, 100, 333, 5000])
def test_same_w_whatever_the_batch_size(skorch_net, image_data, batch_size):
    X = image_data[0][:10]
    kwargs = dict(sigma=0.5, n_samples=150, random_state=3, device="cpu")
    reference = WobblinessTransformer(skorch_net, batch_size=1000, **kwargs).fit_transform(X)
    other = WobblinessTransformer(skorch_net, batch_size=batch_size, **kwargs).fit_transform(X)
    np.testing.assert_array_equal(other, reference)
    assert (reference > 0).any()


def test_same_w_whatever_the_row_order(image_wob, image_data):
    X = image_data[0][:30]
    W = image_wob.fit(X).transform(X).ravel()
    order = np.random.RandomState(1).permutation(30)
    np.testing.assert_array_equal(image_wob.transform(X[order]).ravel(), W[order])


def test_random_state_controls_the_noise(skorch_net, image_data):
    X = image_data[0][:30]
    def w(seed):
        return WobblinessTransformer(
            skorch_net, sigma=0.5, n_samples=60, random_state=seed, device="cpu"
        ).fit_transform(X)
    np.testing.assert_array_equal(w(1), w(1))
    assert not np.array_equal(w(1), w(2))
    # RandomState instances advance: two calls draw different noise.
    wob = WobblinessTransformer(
        skorch_net, sigma=0.5, n_samples=60, device="cpu",
        random_state=np.random.RandomState(0),
    ).fit(X)
    assert not np.array_equal(wob.transform(X), wob.transform(X))


def test_duplicate_inputs_get_identical_w(image_wob, image_data):
    X = np.concatenate([image_data[0][:5], image_data[0][:5]])
    W = image_wob.fit(X).transform(X).ravel()
    np.testing.assert_array_equal(W[:5], W[5:])


def test_float64_input_is_cast(image_wob, image_data):
    X = image_data[0][:6]
    np.testing.assert_array_equal(
        image_wob.fit(X).transform(X.astype(np.float64)), image_wob.transform(X)
    )


def test_noise_is_not_clipped():
    # Inputs at 0 with sigma 1: a clipped implementation would never see negative values.
    seen = []
    def model(batch):
        seen.append(batch.min())
        return np.stack([batch[:, 0], -batch[:, 0]], axis=1)
    WobblinessTransformer(model, sigma=1.0, n_samples=50, random_state=0).fit_transform(
        np.zeros((2, 1), dtype=np.float32)
    )
    assert min(seen) < -1.0


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("sigma", 0.0, r"'sigma' parameter .* range \(0.0, inf\)\. Got 0\.0"),
        ("sigma", -1, r"'sigma' parameter .* Got -1"),
        ("n_samples", 0, r"'n_samples' parameter .* range \[1, inf\)\. Got 0"),
        ("batch_size", 0, r"'batch_size' parameter .* Got 0"),
        ("entropy", "shannon", r"'entropy' parameter .* Got 'shannon'"),
        ("input_shape", (0, 3), r"'input_shape' parameter must be a non-empty tuple of positive"),
        ("device", "tpu", r"'device' parameter must be 'auto', 'cpu', 'cuda'"),
    ],
)
def test_bad_parameters_name_parameter_value_and_fix(param, value, match):
    wob = WobblinessTransformer(SumModel(), **{param: value})
    with pytest.raises(ValueError, match=match):
        wob.fit(np.zeros((2, 4)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a host without CUDA")
def test_cuda_device_on_cpu_host_is_a_clear_error():
    with pytest.raises(ValueError, match="'device' parameter is 'cuda' but CUDA is not available"):
        WobblinessTransformer(SumModel(), device="cuda").fit(np.zeros((2, 4)))


def test_nan_input_is_rejected():
    X = np.zeros((3, 4), dtype=np.float32)
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN or inf value\(s\), the first at index \(1, 2\)"):
        WobblinessTransformer(SumModel()).fit(X)
    wob = WobblinessTransformer(SumModel()).fit(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        wob.transform(np.full((2, 4), np.inf))


def test_float64_beyond_float32_range_is_rejected_not_turned_into_inf():
    # 1e300 is finite in float64 but inf once cast to the model's float32: it must not
    # silently get W = 0, the most trigger-like value.
    wob = WobblinessTransformer(SumModel()).fit(np.zeros((3, 4)))
    X = np.zeros((2, 4))
    X[1, 3] = -1e300
    with pytest.raises(ValueError, match=r"1 value\(s\) beyond float32's range, the first -1e\+300 at index \(1, 3\)"):
        wob.transform(X)


def test_read_only_input_is_accepted_without_warnings(recwarn):
    X = np.frombuffer(np.zeros(8, dtype=np.float32).tobytes(), dtype=np.float32).reshape(2, 4)
    assert not X.flags.writeable
    W = WobblinessTransformer(SumModel(), n_samples=10, random_state=0).fit(X).transform(X)
    assert W.shape == (2, 1)
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_wrong_input_shape_names_the_shapes(skorch_net, image_data):
    wob = WobblinessTransformer(skorch_net, n_samples=5).fit(image_data[0][:4])
    with pytest.raises(InputShapeError, match=r"X has shape \(4, 8, 8\), but the model takes inputs of shape \(1, 8, 8\)"):
        wob.transform(np.zeros((4, 8, 8)))
    # One input without its batch axis is named as such (it said "has shape [1, 8, 8],
    # but the model takes inputs of shape [1, 8, 8]").
    with pytest.raises(InputShapeError, match=r"\(1, 8, 8\), the shape of one input.*X\[None\]"):
        wob.transform(np.zeros((1, 8, 8)))
    with pytest.raises(InputShapeError, match=r"X has shape \(2, 2, 2, 1, 8, 8\).*Reshape it"):
        wob.transform(np.zeros((2, 2, 2, 1, 8, 8)))
    tab = WobblinessTransformer(SumModel(), n_samples=5).fit(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="X has 5 features, but WobblinessTransformer is expecting 4"):
        tab.transform(np.zeros((3, 5)))


def test_model_rejecting_the_shape_suggests_input_shape(skorch_net, image_data):
    sets = image_data[0][:8].reshape(2, 4, 1, 8, 8)
    with pytest.raises(InputShapeError, match=r"failed on a float32 batch of shape \(2, 4, 1, 8, 8\).*input_shape="):
        WobblinessTransformer(skorch_net).fit(sets)
    wob = WobblinessTransformer(skorch_net, input_shape=(1, 8, 8), n_samples=5).fit(sets)
    assert wob.transform(sets).shape == (2, 4)


@pytest.mark.parametrize(
    "model, match",
    [
        (lambda b: b[:, 0], r"output of shape \(2,\) for a batch of 2 inputs"),
        (lambda b: b[:, :1], r"1 score column\(s\); W needs scores for at least 2"),
        (lambda b: np.full((2, 3), np.nan), "NaN or infinite scores"),
    ],
)
def test_bad_model_outputs(model, match):
    with pytest.raises(ModelOutputError, match=match):
        WobblinessTransformer(model).fit(np.zeros((2, 4)))


class SqrtModel(torch.nn.Module):
    """Finite on clean inputs in [0, 1]; NaN wherever noise makes the first pixel negative."""

    def forward(self, x):
        s = torch.sqrt(x.reshape(len(x), -1)[:, :1])
        return torch.cat([s, 1 - s], dim=1)


def test_nan_scores_under_noise_raise_and_count_the_copies():
    # It gave W = 0 and p = 1, silently: NaN rows voted for class 0.
    X = np.full((3, 4), 0.5, dtype=np.float32)
    X[:, 1:] = np.arange(3)[:, None]  # three distinct inputs
    wob = WobblinessTransformer(SqrtModel(), sigma=0.3, n_samples=100, random_state=0,
                                device="cpu", inference="eager").fit(X)
    with pytest.raises(ModelOutputError, match=r"NaN or infinite scores for \d+ of 300 noisy copies \(3 of 3 distinct inputs\) at sigma=0.3"):
        wob.transform(X)
    # Where the noise never reaches below 0, W is computed as usual.
    assert wob.set_params(sigma=0.01).transform(X).shape == (3, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, bool])
def test_integer_inputs_are_refused_with_how_to_scale_them(dtype):
    # uint8 images were cast to 0-255 floats and screened as if in the model's range.
    X = np.ones((2, 4), dtype=dtype)
    message = rf"X has dtype {np.dtype(dtype)}, not floating point.*X.astype\(np.float32\) / 255"
    with pytest.raises(InputDtypeError, match=message):
        WobblinessTransformer(SumModel()).fit(X)
    wob = WobblinessTransformer(SumModel(), n_samples=5).fit(X.astype(np.float32))
    with pytest.raises(InputDtypeError, match=message):
        wob.transform(X)
    with pytest.raises(InputDtypeError, match=r"candidates\[0\] has dtype"):
        check_inputs(X, (4,), name="candidates[0]")


class _NotLoaded(ModelNotFittedError):
    """A subclass, as a model wrapper may define: still "not fitted", whatever its name."""


class _UnloadedModule(torch.nn.Module):
    def forward(self, x):
        raise _NotLoaded("weights not loaded")


def test_a_model_not_fitted_error_is_recognised_by_type_not_by_name():
    # It was recognised by its class *name*: a subclass became an InputShapeError.
    with pytest.raises(ModelNotFittedError, match="weights not loaded"):
        WobblinessTransformer(_UnloadedModule(), device="cpu", inference="eager").fit(np.zeros((2, 4)))


def test_unfitted_transformer():
    with pytest.raises(NotFittedError):
        WobblinessTransformer(SumModel()).transform(np.zeros((2, 4)))


# -- clone, pickle, joblib -------------------------------------------------------------


def test_clone_keeps_the_trained_model(skorch_net, image_data):
    wob = WobblinessTransformer(skorch_net, sigma=0.3, n_samples=50, random_state=0)
    cloned = clone(wob)
    assert cloned.model is skorch_net  # a plain sklearn clone would give an untrained net
    assert cloned.get_params()["sigma"] == 0.3
    X = image_data[0][:8]
    np.testing.assert_array_equal(cloned.fit_transform(X), wob.fit_transform(X))


@pytest.mark.parametrize("dumps, loads", [(pickle.dumps, pickle.loads), ("joblib", "joblib")])
def test_pickle_round_trip(skorch_net, onnx_proto, image_data, tmp_path, dumps, loads):
    X = image_data[0][:8]
    for model in (skorch_net, skorch_net.module_, onnx_proto, onnx_proto.SerializeToString()):
        wob = WobblinessTransformer(model, sigma=0.5, n_samples=40, random_state=0).fit(X)
        if dumps == "joblib":
            joblib.dump(wob, tmp_path / "w.joblib")
            loaded = joblib.load(tmp_path / "w.joblib")
        else:
            loaded = loads(dumps(wob))
        np.testing.assert_array_equal(loaded.transform(X), wob.transform(X))


def test_fit_leaves_the_users_module_untouched(skorch_net, image_data):
    module = skorch_net.module_
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    WobblinessTransformer(module, n_samples=5).fit(image_data[0][:3]).transform(image_data[0][:3])
    assert module.training
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    module.eval()


def test_set_params_after_fit_acts_like_a_refit(skorch_net, image_data):
    # transform-time parameters need no refit: a sweep over sigma reuses the fitted model.
    X = image_data[0][:12]
    kwargs = dict(n_samples=80, random_state=5, device="cpu")
    swept = WobblinessTransformer(skorch_net, sigma=0.1, **kwargs).fit(X)
    for sigma in (0.3, 0.8):
        fresh = WobblinessTransformer(skorch_net, sigma=sigma, **kwargs).fit(X)
        np.testing.assert_array_equal(swept.set_params(sigma=sigma).transform(X), fresh.transform(X))
    assert (swept.transform(X) > 0).sum() >= 3  # the noise moved votes: a real comparison
