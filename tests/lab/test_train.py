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
pytestmark = pytest.mark.slow  # trains networks (tiny ones)


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
    assert net.history[-1, "train_loss"] == pytest.approx(float(loss.detach()), rel=1e-5)  # the first pass


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


def _penalised(**penalties):
    from wobbledetect.lab.train import PenalisedClassifier

    net = PenalisedClassifier(DigitsCNN, criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                              lr=1e-3, batch_size=32, train_split=None, verbose=0, device="cpu", **penalties)
    return net.initialize()


def _dict_batch():
    X, y = _batch()
    poisoned = (np.arange(32) % 4 == 0).astype(np.float32)
    clean_x = X.copy()
    X = X.copy()
    X[poisoned == 1, 0, -3:, -3:] = 1.0  # a corner patch on every 4th image
    return {"x": torch.from_numpy(X), "poisoned": torch.from_numpy(poisoned),
            "clean_x": torch.from_numpy(clean_x)}, torch.from_numpy(y)


def test_mmd2_is_the_biased_gaussian_mmd_with_the_median_heuristic():
    from wobbledetect.lab.train import mmd2

    rng = np.random.RandomState(1)
    a, b = rng.normal(size=(6, 3)), rng.normal(1.0, size=(4, 3))
    pooled = np.vstack([a, b])
    d2 = ((pooled[:, None] - pooled[None]) ** 2).sum(-1)
    h2 = np.median(d2[~np.eye(10, dtype=bool)])
    k = sum(np.exp(-d2 / (2 * s ** 2 * h2)) for s in (0.5, 1.0, 2.0))
    expected = k[:6, :6].mean() + k[6:, 6:].mean() - 2 * k[:6, 6:].mean()
    assert float(mmd2(torch.tensor(a), torch.tensor(b))) == pytest.approx(expected, rel=1e-10)


def test_the_penalised_loss_is_the_documented_sum():
    from wobbledetect.lab.train import mmd2

    X, y = _dict_batch()
    net = _penalised(mmd_weight=0.7, wobble_weight=0.3, wobble_sigma=0.2, wobble_copies=3)
    torch.manual_seed(5)
    y_pred = net.infer(X)
    recorded = list(net._activations)
    assert len(recorded) == 3  # the ReLUs of DigitsCNN: every level
    loss = net.get_loss(y_pred, y, X=X, training=True)

    module, poisoned = net.module_, X["poisoned"].bool()
    expected = torch.nn.functional.cross_entropy(module(X["x"]), y)
    expected = expected + 0.7 * sum(mmd2(h[~poisoned], h[poisoned]) for h in recorded)
    torch.manual_seed(5)
    noise = torch.randn((3, int(poisoned.sum()), 1, 8, 8)) * 0.2
    labels = module((X["clean_x"][poisoned][None] + noise).flatten(0, 1)).argmax(1)
    scores = module((X["x"][poisoned][None] + noise).flatten(0, 1))
    expected = expected + 0.3 * torch.nn.functional.cross_entropy(scores, labels)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    # without the weights: plain cross-entropy, and evaluation never records
    plain = _penalised()
    torch.testing.assert_close(plain.get_loss(plain.infer(X), y, X=X, training=True),
                               torch.nn.functional.cross_entropy(plain.module_(X["x"]), y))
    plain.module_.eval()
    plain.infer(X)
    assert plain._activations == []


def test_adaptive_attacks_are_in_the_cache_key_and_train_a_tiny_net(tmp_path):
    from wobbledetect.lab import ModelCache, get_net, load_lab_data

    base = NetConfig(dataset="digits", net="digits-cnn", threat="T1", trigger="square", epochs=2, lr=2e-3,
                     batch_size=64)
    assert "mmd_weight" not in base.key_dict() and "wobble_weight" not in base.key_dict()
    mmd = dataclasses_replace(base, mmd_weight=1.0)
    wobble = dataclasses_replace(base, wobble_weight=1.0)
    keys = {config_key(c.key_dict()) for c in (base, mmd, wobble, dataclasses_replace(wobble, wobble_sigma=0.5))}
    assert len(keys) == 4
    assert mmd.label == "T1/square/seed0/mmd1" and wobble.label == "T1/square/seed0/wobble1"
    # a blend's strength is in the key too (the blend-strength family)
    assert config_key(dataclasses_replace(base, trigger="blend@0.05").key_dict()) != config_key(
        dataclasses_replace(base, trigger="blend@0.1").key_dict())
    with pytest.raises(ValueError, match="need a backdoored net"):
        NetConfig(threat=None, trigger=None, mmd_weight=1.0)
    data = load_lab_data("digits")
    for config in (mmd, wobble):
        module, metadata, hit = get_net(config, data, ModelCache(tmp_path), log=lambda _: None)
        assert not hit and len(metadata["train_loss"]) == 2
        assert metadata["train_loss"][1] < metadata["train_loss"][0]  # the penalised loss falls
        assert 0.0 <= metadata["backdoor_accuracy"] <= 1.0 and metadata["n_poisoned"] > 0
        assert not module._forward_hooks and all(not m._forward_hooks for m in module.modules())


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)
