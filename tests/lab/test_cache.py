"""The model cache: hit, miss, corrupted entries; keys of training configurations."""

from __future__ import annotations

import dataclasses

import json
import os
import pickle

import numpy as np
import pytest
import torch

from wobbledetect.lab import ModelCache, NetConfig, get_net, load_lab_data
from wobbledetect.lab.cache import CorruptCacheWarning, config_key
from wobbledetect.lab.nets import DigitsCNN


class Counter:
    """A ``train`` callable that counts its calls and returns a seeded DigitsCNN."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        torch.manual_seed(self.calls)
        return DigitsCNN(), {"clean_accuracy": 0.5 + self.calls / 100}


def _weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_hit_returns_identical_weights_without_training(tmp_path):
    cache, train = ModelCache(tmp_path), Counter()
    first, meta, hit = cache.get_or_train({"seed": 0}, DigitsCNN, train)
    assert (hit, train.calls, meta["clean_accuracy"]) == (False, 1, 0.51)
    again, meta, hit = cache.get_or_train({"seed": 0}, DigitsCNN, train)
    assert (hit, train.calls, meta["clean_accuracy"]) == (True, 1, 0.51)
    for name, tensor in _weights(first).items():
        assert torch.equal(again.state_dict()[name], tensor), name
    assert not again.training
    weights, meta_path = cache.paths({"seed": 0})
    assert weights.suffix == ".safetensors" and weights.parent == tmp_path / "models"
    record = json.loads(meta_path.read_text())
    assert record["config"] == {"seed": 0} and record["key"] == config_key({"seed": 0})
    assert record["torch_version"] == torch.__version__
    assert sorted(p.name for p in weights.parent.iterdir()) == sorted(
        [weights.name, meta_path.name, f"{record['key']}.lock"])  # the lock a miss trains under


def _train_in_another_process(directory, marker, ready):
    """Child of the test below: ask the shared cache for the same net; log every training."""
    import time

    from wobbledetect.lab import ModelCache
    from wobbledetect.lab.nets import DigitsCNN

    def train():
        with open(marker, "a") as handle:
            handle.write("trained\n")
        time.sleep(1.0)  # long enough for the other process to ask meanwhile
        torch.manual_seed(0)
        return DigitsCNN(), {"clean_accuracy": 0.9}

    ready.wait()
    module, _, hit = ModelCache(directory).get_or_train({"seed": 7}, DigitsCNN, train)
    torch.save({"hit": hit, **module.state_dict()}, f"{marker}.{os.getpid()}.pt")


@pytest.mark.slow  # spawns two Python processes
def test_two_processes_asking_for_one_net_train_it_once_and_share_it(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    marker = tmp_path / "trainings"
    workers = [context.Process(target=_train_in_another_process, args=(tmp_path, marker, ready))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    ready.set()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert marker.read_text() == "trained\n"  # once, not twice
    results = [torch.load(path) for path in sorted(tmp_path.glob("trainings.*.pt"))]
    assert sorted(r.pop("hit") for r in results) == [False, True]
    for name, tensor in results[0].items():
        assert torch.equal(results[1][name], tensor), name


def test_miss_on_another_configuration(tmp_path):
    cache, train = ModelCache(tmp_path), Counter()
    a, _, _ = cache.get_or_train({"seed": 0}, DigitsCNN, train)
    b, _, hit = cache.get_or_train({"seed": 1}, DigitsCNN, train)
    assert not hit and train.calls == 2
    assert cache.paths({"seed": 0}) != cache.paths({"seed": 1})
    assert not torch.equal(a.classifier[0].weight, b.classifier[0].weight)


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "garbage json", "pickle"])
def test_corrupted_entry_warns_names_the_file_and_is_replaced(tmp_path, damage):
    cache, train = ModelCache(tmp_path), Counter()
    cache.get_or_train({"seed": 0}, DigitsCNN, train)
    weights, meta_path = cache.paths({"seed": 0})
    marker = tmp_path / "unpickled"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "flip a byte":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "garbage json":
        meta_path.write_text("{not json")
    else:  # a pickle that would create ``marker`` if anything unpickled it
        weights.write_bytes(pickle.dumps(_Touch(str(marker))))
    with pytest.warns(CorruptCacheWarning, match=f"{weights.name}.*retraining it"):
        module, meta, hit = cache.get_or_train({"seed": 0}, DigitsCNN, train)
    assert not hit and train.calls == 2 and meta["clean_accuracy"] == 0.52
    assert not marker.exists()
    # The entry was replaced: the next call is a clean hit of the retrained weights.
    again, _, hit = cache.get_or_train({"seed": 0}, DigitsCNN, train)
    assert hit and train.calls == 2
    assert torch.equal(again.classifier[0].weight, module.classifier[0].weight)


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_entry_for_another_architecture_is_retrained(tmp_path):
    cache = ModelCache(tmp_path)
    cache.save({"seed": 0}, torch.nn.Linear(2, 3), {"clean_accuracy": 0.1})
    train = Counter()
    with pytest.warns(CorruptCacheWarning, match="Missing key"):
        _, _, hit = cache.get_or_train({"seed": 0}, DigitsCNN, train)
    assert not hit and train.calls == 1


def test_default_directory_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WOBBLEDETECT_CACHE", str(tmp_path / "c"))
    assert ModelCache().directory == tmp_path / "c" / "models"


# -- configurations -----------------------------------------------------------------------


def test_config_key_is_canonical_and_covers_every_field():
    base = NetConfig(threat="T1", trigger="square").key_dict()
    assert config_key(base) == config_key(dict(reversed(list(base.items()))))
    for change in [dict(seed=1), dict(epochs=2), dict(lr=1e-2), dict(batch_size=64),
                   dict(n_train=12000), dict(fraction=0.1), dict(trigger="checker"),
                   dict(threat="T3"), dict(target=1), dict(net="small-fashion-cnn"),
                   dict(dataset="cifar10")]:
        other = NetConfig(**{"threat": "T1", "trigger": "square", **change}).key_dict()
        assert config_key(other) != config_key(base), change
    assert base["trigger_spec"]["pattern"] == [[1.0] * 3] * 3 and base["format"] == 1
    # The first patches' keys do not mention a corner (they stay the cached nets' keys);
    # a patch elsewhere has its own.
    assert "corner" not in base["trigger_spec"]
    moved = NetConfig(threat="T1", trigger="ul-square").key_dict()["trigger_spec"]
    assert moved["corner"] == "upper-left" and moved["margin"] == 1


def test_config_ignores_settings_that_do_not_apply():
    assert NetConfig(threat="T1", trigger="square", n_poisons=10).key_dict() == \
        NetConfig(threat="T1", trigger="square").key_dict()
    assert NetConfig(threat="T3", trigger="square", fraction=0.5).key_dict() == \
        NetConfig(threat="T3", trigger="square").key_dict()
    assert NetConfig(threat=None, trigger=None, fraction=0.5).key_dict() == \
        NetConfig(threat="T3", trigger="smiley").clean().key_dict()


def test_config_rejects_inconsistent_settings():
    with pytest.raises(ValueError, match="clean net has threat=None and trigger=None"):
        NetConfig(threat=None, trigger="square")
    with pytest.raises(ValueError, match="'threat' parameter must be one of"):
        NetConfig(threat="T4")
    with pytest.raises(ValueError, match="Unknown trigger 'heart'"):
        NetConfig(trigger="heart")


def test_get_net_trains_once_and_records_accuracies(tmp_path):
    data = load_lab_data("digits")
    config = NetConfig(dataset="digits", net="digits-cnn", threat="T1", trigger="square",
                       epochs=2, lr=2e-3, batch_size=64)
    lines = []
    module, meta, hit = get_net(config, data, ModelCache(tmp_path), log=lines.append)
    assert not hit and meta["n_poisoned"] == round(0.15 * len(data.X_train))
    assert len(meta["train_loss"]) == 2 and meta["train_seconds"] > 0
    assert any(line.split()[:1] == ["2"] for line in lines)  # skorch's epoch table, via log
    assert 0.0 <= meta["clean_accuracy"] <= 1.0 and 0.0 <= meta["backdoor_accuracy"] <= 1.0
    again, meta_again, hit = get_net(config, data, ModelCache(tmp_path), log=lines.append)
    assert hit and meta_again["backdoor_accuracy"] == meta["backdoor_accuracy"]
    X = data.X_test[:50]
    np.testing.assert_array_equal(module(torch.from_numpy(X)).argmax(1), again(torch.from_numpy(X)).argmax(1))


def test_snapshots_are_the_nets_of_fewer_epochs_weight_for_weight(tmp_path):
    data = load_lab_data("digits")
    config = NetConfig(dataset="digits", net="digits-cnn", threat="T1", trigger="square",
                       epochs=3, lr=2e-3, batch_size=64)
    lines = []
    _, meta3, _ = get_net(config, data, ModelCache(tmp_path / "a"), snapshots=(1, 2),
                          log=lines.append)
    assert sum("snapshot after epoch" in line for line in lines) == 2
    assert len(meta3["train_accuracy"]) == 3 and all(0 <= a <= 1 for a in meta3["train_accuracy"])
    two = dataclasses.replace(config, epochs=2)
    snapshot, meta_snap, hit = get_net(two, data, ModelCache(tmp_path / "a"), log=lines.append)
    assert hit and meta_snap["snapshot_of"]["epochs"] == 3
    assert meta_snap["train_loss"] == meta3["train_loss"][:2]
    trained, meta2, hit = get_net(two, data, ModelCache(tmp_path / "b"), log=lines.append)
    assert not hit
    for name, tensor in trained.state_dict().items():
        assert torch.equal(tensor, snapshot.state_dict()[name]), name
    assert meta2["train_loss"] == meta_snap["train_loss"]
    assert meta2["clean_accuracy"] == meta_snap["clean_accuracy"]
    assert meta2["backdoor_accuracy"] == meta_snap["backdoor_accuracy"]


def test_snapshots_outside_the_training_are_refused(tmp_path):
    data = load_lab_data("digits")
    config = NetConfig(dataset="digits", net="digits-cnn", epochs=2)
    for bad in [(2,), (0,), (5,)]:
        with pytest.raises(ValueError, match=r"'snapshots' parameter must hold epoch counts from 1 to 1"):
            get_net(config, data, ModelCache(tmp_path), snapshots=bad)
