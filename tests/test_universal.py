"""Universal perturbations through IBM ART, on torch, skorch and ONNX models."""

import builtins
import random

import numpy as np
import pytest
from sklearn.base import clone

from wobbledetect import UniversalPerturbation

pytest.importorskip("art", reason="UniversalPerturbation needs the [uap] extra (installed by make test)")


@pytest.fixture(scope="module")
def fitted(skorch_net, image_data):
    return UniversalPerturbation(skorch_net, eps=0.3, max_iter=5, random_state=0).fit(image_data[0][:100])


def test_the_perturbation_fools_the_model_within_its_norm(fitted, skorch_net, image_data):
    X = image_data[0][:100]
    v = fitted.perturbation_
    assert v.shape == (1, 8, 8) and v.dtype == np.float32
    assert np.abs(v).max() <= 0.3 + 1e-6
    before, after = skorch_net.predict(X), skorch_net.predict(fitted.apply(X))
    assert fitted.fooling_rate_ == pytest.approx(np.mean(before != after))
    # random signs of the same largest size fool far fewer inputs
    signs = np.sign(np.random.RandomState(0).randn(*v.shape)).astype(np.float32) * np.abs(v).max()
    random_rate = np.mean(before != skorch_net.predict(np.clip(X + signs, 0, 1)))
    assert fitted.fooling_rate_ >= 0.2 and fitted.fooling_rate_ >= random_rate + 0.15  # measured 0.27, 0.0
    assert fitted.converged_ == (fitted.fooling_rate_ >= 0.8)


def test_apply_adds_and_clips_in_any_set_shape(fitted, image_data):
    X = image_data[0][:6]
    np.testing.assert_allclose(fitted.apply(X), np.clip(X + fitted.perturbation_, 0, 1))
    assert fitted.apply(X.reshape(2, 3, 1, 8, 8)).shape == (2, 3, 1, 8, 8)
    with pytest.raises(ValueError, match="X has dtype uint8"):
        fitted.apply(X.astype(np.uint8))


def test_seeded_runs_repeat_onnx_agrees_and_global_random_state_is_restored(skorch_net, onnx_proto, image_data):
    X = image_data[0][:30]
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    runs = [UniversalPerturbation(model, eps=0.6, max_iter=2, random_state=0).fit(X)
            for model in (skorch_net, skorch_net, onnx_proto)]
    assert (random.random(), np.random.rand()) == expected
    assert np.abs(runs[0].perturbation_).max() > 0.1  # a real perturbation, not zeros
    np.testing.assert_array_equal(runs[0].perturbation_, runs[1].perturbation_)
    np.testing.assert_allclose(runs[0].perturbation_, runs[2].perturbation_, atol=1e-4)


def test_bad_parameters_and_a_missing_extra_are_refused_clearly(skorch_net, image_data, monkeypatch):
    with pytest.raises(ValueError, match="'norm' parameter of UniversalPerturbation must be a str among"):
        UniversalPerturbation(skorch_net, norm="1").fit(image_data[0][:8])
    with pytest.raises(ValueError, match="'attacker' parameter of UniversalPerturbation must be a str among"):
        UniversalPerturbation(skorch_net, attacker="nope").fit(image_data[0][:8])
    with pytest.raises(ValueError, match="'input_range' parameter must be two finite numbers"):
        UniversalPerturbation(skorch_net, input_range=(0, 0)).fit(image_data[0][:8])
    real_import = builtins.__import__

    def no_art(name, *args, **kwargs):
        if name.startswith("art"):
            raise ImportError("No module named 'art'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_art)
    with pytest.raises(ImportError, match=r"pip install 'wobbledetect\[uap\]'"):
        UniversalPerturbation(skorch_net).fit(image_data[0][:8])


def test_clone_keeps_the_model(fitted, skorch_net):
    twin = clone(fitted)
    assert twin.model is skorch_net and twin.eps == 0.3 and not hasattr(twin, "perturbation_")
