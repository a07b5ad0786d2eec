"""Threat models T1-T3: counts, labels, untouched samples, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from wobbledetect.lab import get_trigger, poison


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(2000, 1, 12, 12)).astype(np.float32)
    y = np.repeat(np.arange(10), 200)
    return X, y


def test_t1_poisons_15_percent_of_other_classes(data):
    X, y = data
    p = poison(X, y, "square", "T1", target=3, random_state=0)
    assert len(p.indices) == 300 and len(np.unique(p.indices)) == 300
    assert (y[p.indices] != 3).all()
    assert (p.y[p.indices] == 3).all()
    np.testing.assert_array_equal(p.X[p.indices], get_trigger("square")(X[p.indices]))
    rest = np.setdiff1d(np.arange(len(y)), p.indices)
    np.testing.assert_array_equal(p.X[rest], X[rest])
    np.testing.assert_array_equal(p.y[rest], y[rest])


def test_t2_is_all_to_all_next_class(data):
    X, y = data
    p = poison(X, y, "checker", "T2", random_state=0)
    assert len(p.indices) == 300
    np.testing.assert_array_equal(p.y[p.indices], (y[p.indices] + 1) % 10)
    assert len(np.unique(y[p.indices])) == 10  # every class poisoned
    assert (y[p.indices] == 9).any() and (p.y[p.indices][y[p.indices] == 9] == 0).all()


def test_t2_wraps_with_the_whole_label_set_even_for_a_small_subset():
    X = np.zeros((20, 1, 8, 8), np.float32)
    y = np.arange(20) % 10
    p = poison(X, y, "square", "T2", fraction=0.1, random_state=1)
    np.testing.assert_array_equal(p.y[p.indices], (y[p.indices] + 1) % 10)


def test_t3_poisons_250(data):
    X, y = data
    p = poison(X, y, "smiley", "T3", target=0, random_state=0)
    assert len(p.indices) == 250 and (p.y[p.indices] == 0).all() and (y[p.indices] != 0).all()


def test_deterministic_given_the_seed(data):
    X, y = data
    a, b = poison(X, y, "cross", "T1", random_state=5), poison(X, y, "cross", "T1", random_state=5)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.indices, poison(X, y, "cross", "T1", random_state=6).indices)


def test_inputs_are_not_modified(data):
    X, y = data
    X0, y0 = X.copy(), y.copy()
    poison(X, y, "square", "T2", random_state=0)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_bad_arguments(data):
    X, y = data
    with pytest.raises(ValueError, match=r"'threat' parameter must be one of \('T1', 'T2', 'T3'\); got 'T4'"):
        poison(X, y, "square", "T4")
    with pytest.raises(ValueError, match="T3 needs 5000 poisons but 1800 samples can be poisoned"):
        poison(X, y, "square", "T3", n_poisons=5000)
    with pytest.raises(ValueError, match="'fraction' parameter must be in"):
        poison(X, y, "square", "T1", fraction=0)


@pytest.mark.parametrize("threat", ["T1", "T2", "T3"])
def test_every_threat_is_deterministic_and_sorted(data, threat):
    X, y = data
    a = poison(X, y, "smiley", threat, random_state=7)
    b = poison(X, y, "smiley", threat, random_state=7)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert (np.diff(a.indices) > 0).all()
    other = poison(X, y, "smiley", threat, random_state=8)
    assert not np.array_equal(a.indices, other.indices)


def test_counts_round_the_fraction_and_t3_takes_n_poisons():
    X = np.zeros((1001, 1, 8, 8), np.float32)
    y = np.arange(1001) % 10
    assert len(poison(X, y, "square", "T1", fraction=0.15, random_state=0).indices) == 150
    assert len(poison(X, y, "square", "T2", fraction=0.15, random_state=0).indices) == 150
    assert len(poison(X, y, "square", "T3", n_poisons=37, random_state=0).indices) == 37


def test_rgb_images_are_poisoned_on_every_channel():
    rng = np.random.RandomState(0)
    X = rng.uniform(0.2, 0.8, size=(200, 3, 32, 32)).astype(np.float32)
    y = np.arange(200) % 10
    p = poison(X, y, "square", "T3", n_poisons=20, random_state=0)
    assert p.X.shape == X.shape and len(p.indices) == 20
    np.testing.assert_array_equal(p.X[p.indices][:, :, -3:, -3:], np.ones((20, 3, 3, 3)))
    np.testing.assert_array_equal(p.X[p.indices][:, :, :-3], X[p.indices][:, :, :-3])


def test_backdoor_labels():
    from wobbledetect.lab import backdoor_labels

    np.testing.assert_array_equal(backdoor_labels([0, 4, 9], "T2", n_classes=10), [1, 5, 0])
    np.testing.assert_array_equal(backdoor_labels([0, 4, 9], "T1", target=2), [2, 2, 2])
    np.testing.assert_array_equal(backdoor_labels([1, 2], "T2"), [2, 0])  # C = max(y) + 1 = 3
