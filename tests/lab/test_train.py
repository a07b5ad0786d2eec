"""Training options of the lab: SAM (issue 17's weak attacks), in the cache key only when used."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from wobbledetect.lab.cache import config_key
from wobbledetect.lab.nets import DigitsCNN
from wobbledetect.lab.train import SAMClassifier, make_classifier
from wobbledetect.lab.zoo import NetConfig

pytest.importorskip("pytorch_optimizer")


def _batch():
    rng = np.random.RandomState(0)
    return rng.uniform(size=(32, 1, 8, 8)).astype(np.float32), rng.randint(0, 10, 32)


def test_one_sam_step_is_the_published_update():
    # SGD as the base optimizer here: Adam's first step is lr * sign(g), which float noise in
    # near-zero gradients flips; SGD's is linear in g, so the two computations must agree.
    from pytorch_optimizer import SAM

    X, y = _batch()
    assert isinstance(make_classifier(DigitsCNN, optimizer="sam", verbose=0), SAMClassifier)
    net = SAMClassifier(DigitsCNN, criterion=torch.nn.CrossEntropyLoss, optimizer=SAM,
                        optimizer__base_optimizer=torch.optim.SGD, optimizer__rho=0.05, lr=0.5,
                        batch_size=32, train_split=None, verbose=0, device="cpu")
    net.initialize()
    start = copy.deepcopy(net.module_.state_dict())

    # By hand (Foret et al., Alg. 1): g at w; e = rho g / ||g||; g' at w + e; w <- w - lr g'.
    module = DigitsCNN()
    module.load_state_dict(start)
    params = [p for p in module.parameters()]
    loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(X)), torch.from_numpy(y))
    grads = torch.autograd.grad(loss, params)
    norm = torch.norm(torch.stack([g.norm(2) for g in grads]), 2)
    with torch.no_grad():
        moved = [p + 0.05 * g / (norm + 1e-12) for p, g in zip(params, grads)]
    perturbed = DigitsCNN()
    names = [name for name, _ in module.named_parameters()]
    perturbed.load_state_dict(start | dict(zip(names, moved)))
    loss2 = torch.nn.functional.cross_entropy(perturbed(torch.from_numpy(X)), torch.from_numpy(y))
    grads2 = torch.autograd.grad(loss2, list(perturbed.parameters()))
    with torch.no_grad():
        for p, g in zip(params, grads2):
            p -= 0.5 * g

    net.partial_fit(X, y, epochs=1)  # one batch of 32: one step
    for (name, value), expected in zip(net.module_.named_parameters(), params):
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=name)
    assert net.history[-1, "train_loss"] == pytest.approx(float(loss), rel=1e-5)  # the first pass's


def test_sam_is_in_the_cache_key_only_when_used_and_trains():
    adam, sam = NetConfig(), NetConfig(optimizer="sam")
    assert "optimizer" not in adam.key_dict() and "sam_rho" not in adam.key_dict()
    # the key of every net trained before SAM existed (the Fig. 6 T1 square net of seed 0)
    assert config_key(adam.key_dict()) == "011337760aa967271aa5d67175afc1723de11eec4e655b8567698f0afb293fec"
    assert sam.key_dict()["optimizer"] == "sam" and sam.key_dict()["sam_rho"] == 0.05
    assert config_key(sam.key_dict()) != config_key(NetConfig(optimizer="sam", sam_rho=0.1).key_dict())
    assert sam.label == "T1/square/seed0/sam0.05" and adam.label == "T1/square/seed0"
    with pytest.raises(ValueError, match="'optimizer' parameter must be 'adam' or 'sam'"):
        NetConfig(optimizer="sgd")
    X, y = _batch()
    net = make_classifier(DigitsCNN, max_epochs=3, lr=1e-2, batch_size=16, optimizer="sam",
                          verbose=0, device="cpu").fit(X, y)
    losses = net.history[:, "train_loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
