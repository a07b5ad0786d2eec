"""The CIFAR-10 + ResNet18 path on synthetic 32x32x3 data (the real data cannot be had here).

Same code as Fashion-MNIST's: poison, train with skorch through the cache, export to
ONNX, compute W, and a figure end to end with ``dataset="cifar10"``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from wobbledetect import WobblinessTransformer, to_onnx
from wobbledetect.lab import LabData, ModelCache, NetConfig, get_net
from wobbledetect.lab.reproduce import _common, fig4


@pytest.fixture(scope="module")
def cifar_like():
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 1, size=(144, 3, 32, 32)).astype(np.float32)
    y = np.arange(144) % 10
    return LabData("cifar10", X[:64], y[:64], X[64:], y[64:])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cifar-cache")


#: The quick CIFAR setup shrunk to seconds on a CPU: batches of 16, 4 noisy copies.
TINY = dataclasses.replace(
    _common.SETUPS["cifar10"], batch_size=16, quick_n_samples=4, quick_sigmas=(0.05,)
)
#: What ``Experiment.net_config("T1", "square", 0)`` gives in quick mode under TINY.
CONFIG = NetConfig(dataset="cifar10", net="resnet18", threat="T1", trigger="square", seed=0,
                   epochs=1, batch_size=16, n_train=TINY.quick_n_train)


@pytest.mark.slow
def test_resnet18_trains_poisoned_exports_to_onnx_and_gives_w(cifar_like, cache_dir):
    cache = ModelCache(cache_dir)
    module, meta, hit = get_net(CONFIG, cifar_like, cache, log=lambda line: None)
    assert not hit and meta["n_train"] == 64 and meta["n_poisoned"] == round(0.15 * 64)
    assert 0.0 <= meta["clean_accuracy"] <= 1.0 and 0.0 <= meta["backdoor_accuracy"] <= 1.0
    assert len(meta["train_loss"]) == 1
    proto = to_onnx(module, (3, 32, 32))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 32, 32]
    sets = cifar_like.X_test[:6].reshape(2, 3, 3, 32, 32)
    wob = WobblinessTransformer(proto, sigma=0.05, n_samples=8, random_state=0)
    W = wob.fit_transform(sets)
    assert W.shape == (2, 3) and wob.inference_path_ == "onnxruntime"
    assert ((W >= 0) & (W <= np.log(8) + 1e-9)).all()
    # The ONNX export votes like the torch module it came from.
    eager = WobblinessTransformer(module, sigma=0.05, n_samples=8, random_state=0,
                                  inference="eager", device="cpu", input_shape=(3, 32, 32)).fit(sets)
    np.testing.assert_allclose(eager.transform(sets), W, atol=1e-6)
    # ResNet18's batch-norm buffers survive the safetensors round trip.
    again, _, hit = get_net(CONFIG, cifar_like, cache, log=lambda line: None)
    assert hit
    assert all(np.array_equal(again.state_dict()[k].numpy(), v.numpy())
               for k, v in module.state_dict().items())


@pytest.mark.slow
def test_a_figure_runs_on_cifar10(cifar_like, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(_common.SETUPS, "cifar10", TINY)
    monkeypatch.setattr(_common, "load_lab_data", lambda dataset, **kwargs: cifar_like)
    results = fig4.run(tmp_path, quick=True, dataset="cifar10", cache_dir=cache_dir,
                       log=lambda line: None)
    assert results["dataset"] == "cifar10" and results["parameters"]["sigmas"] == [0.05]
    assert results["nets"]["T1/square/seed0"]["net"] == "resnet18"
    saved = json.loads((tmp_path / "fig4.json").read_text())
    assert len(saved["per_sigma"]["0.05"]["W"]["active trigger"]) == 25
    assert (tmp_path / "fig4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
