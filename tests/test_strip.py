"""STRIPTransformer: the entropy of superimposed inputs, against a direct NumPy computation."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from wobbledetect import STRIPTransformer


class Linear(torch.nn.Module):
    """``x.flatten() @ W``: a toy model whose logits NumPy can recompute."""

    def __init__(self, weights):
        super().__init__()
        self.weights = torch.nn.Parameter(torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, x):
        return x.flatten(1) @ self.weights


@pytest.fixture(scope="module")
def toy():
    rng = np.random.RandomState(0)
    weights = rng.normal(size=(4, 3)).astype(np.float32)
    pool = rng.rand(40, 1, 2, 2).astype(np.float32)
    X = rng.rand(6, 1, 2, 2).astype(np.float32)
    return Linear(weights), weights, pool, X


def _numpy_strip(weights, pool, x, picks, blend=(0.5, 0.5)):
    blends = blend[0] * x[None] + blend[1] * pool[picks]
    logits = blends.reshape(len(picks), -1).astype(np.float64) @ weights.astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return float(np.mean(-(p * np.log(p)).sum(1)))


def test_agrees_with_a_direct_numpy_computation(toy):
    from wobbledetect._noise import base_seed, block_seed, row_digests
    from sklearn.utils import check_random_state

    model, weights, pool, X = toy
    strip = STRIPTransformer(model, n_superimpositions=10, random_state=3, batch_size=25).fit(pool)
    H = strip.transform(X)
    assert H.shape == (6, 1) and strip.outputs_ == "logits"
    base = base_seed(check_random_state(3))
    for i, digest in enumerate(row_digests(X)):
        picks = np.random.Generator(np.random.PCG64(block_seed(base, digest, 0))).choice(
            40, size=10, replace=False)
        assert H[i, 0] == pytest.approx(_numpy_strip(weights, pool, X[i], picks), rel=1e-5)


def test_a_constant_output_model_scores_zero_and_a_held_class_scores_lower(toy):
    _, _, pool, X = toy
    constant = lambda batch: np.tile([1.0, 0.0, 0.0], (len(batch), 1))  # noqa: E731
    strip = STRIPTransformer(constant, n_superimpositions=10, random_state=0).fit(pool)
    assert strip.outputs_ == "probabilities"
    np.testing.assert_array_equal(strip.transform(X), 0.0)

    # A "trigger": pixel (0, 0) at 1 makes the model certain of class 0 whatever is
    # blended in; without it, the class follows the other pixels and the blend moves it.
    weights = np.array([[40.0, 0, 0], [0, 3, -3], [0, -3, 3], [0, 3, 3]], dtype=np.float32)
    strip = STRIPTransformer(Linear(weights), n_superimpositions=20, random_state=0).fit(pool)
    triggered, clean = X.copy(), X.copy()
    triggered[:, 0, 0, 0] = 1.0
    clean[:, 0, 0, 0] = 0.0
    assert (strip.transform(triggered) < strip.transform(clean)).all()


def test_seeded_and_independent_of_batching_and_grouping(toy):
    model, _, pool, X = toy
    strip = STRIPTransformer(model, n_superimpositions=10, random_state=5).fit(pool)
    H = strip.transform(X)
    np.testing.assert_array_equal(strip.set_params(batch_size=10).transform(X), H)
    np.testing.assert_array_equal(strip.transform(X[::-1]), H[::-1])
    np.testing.assert_array_equal(strip.transform(X.reshape(2, 3, 1, 2, 2)), H.reshape(2, 3))
    other = STRIPTransformer(model, n_superimpositions=10, random_state=6).fit(pool)
    assert not np.array_equal(other.transform(X), H)
    again = pickle.loads(pickle.dumps(strip))
    np.testing.assert_array_equal(again.transform(X), H)
    assert clone(strip).model is model


def test_skorch_torch_and_onnx_give_the_same_entropy(skorch_net, onnx_proto, image_data):
    X = image_data[0]
    scores = [STRIPTransformer(m, n_superimpositions=15, random_state=0, device="cpu")
              .fit(X[:100]).transform(X[100:110])
              for m in (skorch_net, skorch_net.module_, onnx_proto.SerializeToString())]
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)
    np.testing.assert_allclose(scores[0], scores[2], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("params, message", [
    (dict(blend=(0.5,)), "'blend' parameter must be two finite, non-negative weights"),
    (dict(blend=(0.0, 0.0)), "'blend' parameter must be two finite, non-negative weights"),
    (dict(blend=(-1.0, 0.5)), "'blend' parameter must be two finite, non-negative weights"),
    (dict(n_superimpositions=41), "'n_superimpositions' parameter is 41, but the pool passed to fit holds 40"),
    (dict(n_superimpositions=0), "'n_superimpositions' parameter of STRIPTransformer must be an int"),
    (dict(outputs="soft"), "'outputs' parameter of STRIPTransformer must be a str among"),
])
def test_bad_parameters_are_refused_by_name(toy, params, message):
    model, _, pool, _ = toy
    with pytest.raises(ValueError, match=message):
        STRIPTransformer(model, **params).fit(pool)
