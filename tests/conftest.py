"""Tiny toy models shared by the tests, seeds fixed, one trained skorch net per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wobbledetect.lab.nets import DigitsCNN


@pytest.fixture(autouse=True)
def _seeds():
    np.random.seed(0)
    torch.manual_seed(0)


class Thresholds(nn.Module):
    """1-D input; class k when x falls in the k-th interval cut by ``cuts``.

    Scores are ``-|x - centre_k|``-like one-hot margins; what matters is that the argmax
    is exactly the interval index, so under N(0, sigma^2) noise the vote probabilities
    are differences of normal CDFs: a closed form for W.
    """

    def __init__(self, cuts):
        super().__init__()
        self.register_buffer("cuts", torch.as_tensor(cuts, dtype=torch.float32))

    def forward(self, x):
        x = x.reshape(len(x), 1)
        index = (x > self.cuts).sum(dim=1)
        return nn.functional.one_hot(index, len(self.cuts) + 1).float()


class SumModel(nn.Module):
    """Any input shape; scores ``[s, -s, 0.3]`` with ``s`` the mean of the input."""

    def forward(self, x):
        s = x.reshape(len(x), -1).mean(dim=1)
        return torch.stack([s, -s, torch.full_like(s, 0.3)], dim=1)


def exact_w(x, sigma, cuts):
    """Closed-form W of :class:`Thresholds` at ``x``: entropy of normal-CDF differences."""
    from scipy.stats import norm

    edges = np.concatenate([[-np.inf], cuts, [np.inf]])
    p = np.diff(norm.cdf((edges - x) / sigma))
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def make_blobs_images(n, rng, n_classes=3):
    """8x8 single-channel images whose class is a bright quadrant (easy to learn)."""
    y = rng.randint(n_classes, size=n)
    X = rng.uniform(0.0, 0.3, size=(n, 1, 8, 8)).astype(np.float32)
    for k in range(n_classes):
        r, c = divmod(k, 2)
        X[y == k, 0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 0.6
    return X, y


@pytest.fixture(scope="session")
def image_data():
    rng = np.random.RandomState(0)
    return make_blobs_images(400, rng)


@pytest.fixture(scope="session")
def skorch_net(image_data):
    """A fitted skorch NeuralNetClassifier on 8x8 images (3 classes)."""
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    X, y = image_data
    net = NeuralNetClassifier(
        DigitsCNN,
        module__n_classes=3,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=0.01,
        max_epochs=5,
        batch_size=64,
        train_split=None,
        verbose=0,
        device="cpu",
    )
    return net.fit(X, y.astype(np.int64))


@pytest.fixture(scope="session")
def onnx_proto(skorch_net):
    from wobbledetect.lab import to_onnx

    return to_onnx(skorch_net, (1, 8, 8))


@pytest.fixture(scope="session")
def dask_scheduler():
    """The address of a local Dask cluster of two worker *processes*, shared by the
    session's Dask tests (the ``[dask]`` extra; skipped without it)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address
