"""Fast inference paths and sequential sampling: never a different result than eager."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wobbledetect import WobblinessTransformer, replay_sequential
from wobbledetect._inference import VOTE_TOLERANCE, _cache

KWARGS = dict(sigma=0.5, n_samples=120, random_state=0, device="cpu")


@pytest.fixture
def images(image_data):
    return image_data[0][:30]


def _counts(model, X, **kwargs):
    wob = WobblinessTransformer(model, **{**KWARGS, **kwargs}).fit(X)
    return wob, wob.vote_counts(X)


@pytest.mark.parametrize("path", ["onnx", "frozen", "channels_last", pytest.param("compile", marks=pytest.mark.slow)])
def test_every_path_votes_like_eager(skorch_net, images, path):
    _, eager = _counts(skorch_net, images, inference="eager")
    wob, fast = _counts(skorch_net, images, inference=path)
    assert wob.inference_path_ == path
    differing = np.abs(fast - eager).sum() / 2
    assert differing <= VOTE_TOLERANCE * eager.sum()
    assert (eager.max(axis=1) < 120).sum() >= 3  # the comparison involves real disagreement


def test_auto_picks_onnxruntime_on_cpu(skorch_net, images):
    wob, counts = _counts(skorch_net, images)
    assert wob.inference_path_ == "onnx"
    np.testing.assert_array_equal(counts, _counts(skorch_net, images, inference="eager")[1])


def test_fast_paths_honour_the_seed(skorch_net, images):
    a = _counts(skorch_net, images, inference="frozen", random_state=1)[1]
    b = _counts(skorch_net, images, inference="frozen", random_state=1)[1]
    c = _counts(skorch_net, images, inference="frozen", random_state=2)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


class Branchy(nn.Module):
    """Python control flow on the data: tracing and export bake in one branch.

    Fast paths are built from an all-zeros example, where ``s >= 0`` holds, so they keep
    the first branch for every batch; eager torch takes the second one as soon as a
    batch holds a negative mean, which noisy batches always do.
    """

    def forward(self, x):
        s = x.flatten(1).mean(dim=1)
        if bool((s >= 0).all()):
            return torch.stack([s, -s], dim=1)
        return torch.stack([-s, s], dim=1)


def test_a_path_that_would_change_results_is_not_used(recwarn):
    X = np.full((4, 6), 0.05, dtype=np.float32)  # mean 0.05: noise of sigma 0.5 crosses 0
    with pytest.warns(UserWarning, match="Inference path 'frozen' changed .* votes on the check batch; using eager"):
        wob = WobblinessTransformer(Branchy(), inference="frozen", **{**KWARGS, "n_samples": 64}).fit(X)
    assert wob.inference_path_ == "eager"
    auto = WobblinessTransformer(Branchy(), **KWARGS).fit(X)
    assert auto.inference_path_ == "eager"  # every candidate fails the check: silently eager
    np.testing.assert_array_equal(auto.transform(X), wob.set_params(n_samples=120).fit(X).transform(X))


def test_built_paths_are_cached_across_refits(skorch_net, images):
    _counts(skorch_net, images, inference="onnx")
    keys = [k for k in _cache if k[1] == "onnx"]
    assert keys
    cached = _cache[keys[-1]]
    wob, _ = _counts(skorch_net, images, inference="onnx", sigma=0.2)
    assert wob.predictor_ is cached


# -- sequential sampling ---------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [50, 1000])
def test_sequential_sampling_only_cuts_unanimous_inputs(skorch_net, image_data, batch_size):
    X = image_data[0][:40].copy()
    X[:10, 0, :4, :4] = 3.0  # pushed deep into class 0: unanimous votes
    full = _counts(skorch_net, X, n_samples=250)[1]
    wob, seq = _counts(skorch_net, X, n_samples=250, sequential_tol=0.05, batch_size=batch_size)
    drawn = seq.sum(axis=1)
    assert set(drawn) <= {64, 250}
    stopped = drawn == 64
    assert stopped[:10].all() and (~stopped).sum() >= 5
    # Inputs that went on drew exactly the copies of the full run (noise keyed by block).
    np.testing.assert_array_equal(seq[~stopped], full[~stopped])
    # Inputs that stopped were unanimous over their first 64 copies; W is then 0.
    assert (seq[stopped].max(axis=1) == 64).all()
    W = wob.transform(X).ravel()
    assert (W[stopped] == 0).all()
    np.testing.assert_allclose(wob.vote_frequencies(X).sum(axis=1), 1.0)


def test_sequential_tolerance_sets_the_stopping_point(skorch_net, image_data):
    X = image_data[0][:10].copy()
    X[:, 0, :4, :4] = 3.0
    drawn = lambda tol: set(_counts(skorch_net, X, n_samples=250, sequential_tol=tol)[1].sum(axis=1))
    assert drawn(0.05) == {64}  # bound after 64 copies: 0.0457
    assert drawn(0.03) == {128}  # after 128: 0.0231
    assert drawn(0.001) == {250}  # never reached within 250 copies


@pytest.mark.parametrize("batch_size", [50, 1000])
def test_per_block_counts_sum_to_the_plain_counts(skorch_net, image_data, batch_size):
    X = image_data[0][:12].reshape(3, 4, *image_data[0].shape[1:])  # sets keep their shape
    wob, plain = _counts(skorch_net, X, n_samples=250, batch_size=batch_size,
                         input_shape=X.shape[2:])
    blocks = wob.vote_counts(X, per_block=True)
    assert blocks.shape == (3, 4, 4, plain.shape[-1])  # 250 copies: blocks of 64, 64, 64, 58
    np.testing.assert_array_equal(blocks.sum(axis=-1)[0, 0], [64, 64, 64, 58])
    np.testing.assert_array_equal(blocks.sum(axis=-2), plain)


@pytest.mark.parametrize("tol", [0.05, 0.03, 0.02, 0.001])
def test_replaying_a_full_run_gives_the_sequential_counts(skorch_net, image_data, tol):
    X = image_data[0][:40].copy()
    X[:10, 0, :4, :4] = 3.0
    X[10:15] *= 0.2  # faint images: some become unanimous only later
    wob, _ = _counts(skorch_net, X, sigma=0.3, n_samples=250)
    blocks = wob.vote_counts(X, per_block=True)
    seq = _counts(skorch_net, X, sigma=0.3, n_samples=250, sequential_tol=tol)[1]
    np.testing.assert_array_equal(replay_sequential(blocks, tol), seq)
    stopped = seq.sum(axis=1) < 250
    if tol >= 0.02:  # some stopped, some went on
        assert 0 < stopped.sum() < len(X)
    else:  # 0.001 is never reached within 250 copies
        assert not stopped.any()


def test_replay_refuses_counts_it_cannot_replay():
    full = np.array([[[64, 0], [64, 0], [58, 0]], [[63, 1], [64, 0], [58, 0]]])
    with pytest.raises(ValueError, match="without sequential stopping"):
        replay_sequential(np.array([[[64, 0], [0, 0], [0, 0]], [[63, 1], [64, 0], [58, 0]]]), 0.05)
    with pytest.raises(ValueError, match=r"integer votes of shape .*vote_counts\(X, per_block=True\)"):
        replay_sequential(full / 250.0, 0.05)
    with pytest.raises(ValueError, match=r"sequential_tol must be in \(0, 1\), got 1.5"):
        replay_sequential(full, 1.5)


def test_per_block_must_be_a_bool(skorch_net, images):
    wob, _ = _counts(skorch_net, images[:2], n_samples=64)
    with pytest.raises(TypeError, match=r"per_block must be True or False, got 'yes'"):
        wob.vote_counts(images[:2], per_block="yes")


def test_sequential_tol_must_be_in_0_1():
    with pytest.raises(ValueError, match=r"'sequential_tol' parameter .* Got 1\.5"):
        WobblinessTransformer(Branchy(), sequential_tol=1.5).fit(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"'inference' parameter .* Got 'tensorrt'"):
        WobblinessTransformer(Branchy(), inference="tensorrt").fit(np.zeros((2, 3)))
