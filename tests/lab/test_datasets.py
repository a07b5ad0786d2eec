"""Datasets: the real Fashion-MNIST files through torchvision, CIFAR-10's path, clear errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from wobbledetect.lab import load_cifar10, load_fashion_mnist
from wobbledetect.lab.datasets import FASHION_MNIST_FILES


def _snapshot(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*"))


def test_fashion_mnist_from_the_original_files(data_dir, lab_cache):
    before = _snapshot(data_dir)
    X_test, y_test = load_fashion_mnist(data_dir, train=False, cache_dir=lab_cache)
    X_train, y_train = load_fashion_mnist(data_dir, train=True, cache_dir=lab_cache)
    assert X_train.shape == (60000, 1, 28, 28) and X_test.shape == (10000, 1, 28, 28)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 1000))
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    # The checks of docs/lab.md: pixel mean and std over the training set.
    assert X_train.mean() == pytest.approx(0.2860, abs=5e-5)
    assert X_train.std() == pytest.approx(0.3530, abs=5e-5)
    assert y_test[:5].tolist() == [9, 2, 1, 1, 6]
    # Decompressed into the cache's torchvision root; nothing written into the data dir.
    raw = lab_cache / "torchvision" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(n[:-3] for n in FASHION_MNIST_FILES)
    assert _snapshot(data_dir) == before


def test_fashion_mnist_data_dir_from_the_environment(data_dir, lab_cache, monkeypatch):
    monkeypatch.setenv("WOBBLEDETECT_DATA", os.fspath(data_dir))
    X, y = load_fashion_mnist(train=False, cache_dir=lab_cache)
    assert X.shape == (10000, 1, 28, 28) and np.bincount(y).tolist() == [1000] * 10


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("WOBBLEDETECT_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="WOBBLEDETECT_DATA is not set.*--data-dir DATA"):
        load_fashion_mnist(cache_dir=tmp_path / "cache")
    empty = tmp_path / "data"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"no Fashion-MNIST files in {empty}.*download=True"):
        load_fashion_mnist(empty, cache_dir=tmp_path / "cache")
    (empty / "fashion-mnist").mkdir()
    (empty / "fashion-mnist" / FASHION_MNIST_FILES[0]).write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="holds only part of Fashion-MNIST: train-labels"):
        load_fashion_mnist(empty, cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="CIFAR-10: found no CIFAR-10 files"):
        load_cifar10(empty, cache_dir=tmp_path / "cache")


class FakeCIFAR10:
    """Stands in for ``torchvision.datasets.CIFAR10``: HWC uint8 images, list labels."""

    calls = []

    def __init__(self, root, train=True, download=False):
        FakeCIFAR10.calls.append((root, train, download))
        n = 50 if train else 20
        self.data = np.arange(n * 32 * 32 * 3, dtype=np.int64).reshape(n, 32, 32, 3) % 256
        self.data = self.data.astype(np.uint8)
        self.targets = [i % 10 for i in range(n)]


@pytest.fixture
def fake_cifar(monkeypatch):
    import torchvision.datasets

    FakeCIFAR10.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    return FakeCIFAR10


def test_cifar10_is_channel_first_in_unit_range(tmp_path, fake_cifar):
    extracted = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    extracted.mkdir(parents=True)
    X, y = load_cifar10(tmp_path / "data", train=False, cache_dir=tmp_path / "cache")
    assert X.shape == (20, 3, 32, 32) and X.dtype == np.float32 and y.dtype == np.int64
    # channel-first: pixel (0, 0) of image 0 holds values 0, 1, 2 in its three channels.
    np.testing.assert_allclose(X[0, :, 0, 0], np.array([0, 1, 2]) / 255.0)
    assert 0.0 <= X.min() and X.max() <= 1.0 and y.tolist()[:3] == [0, 1, 2]
    # An extracted folder is read where it is (read-only), never downloaded.
    assert fake_cifar.calls == [(os.fspath(tmp_path / "data" / "cifar10"), False, False)]


def test_cifar10_download_goes_to_the_cache(tmp_path, fake_cifar, monkeypatch):
    monkeypatch.delenv("WOBBLEDETECT_DATA", raising=False)
    X, _ = load_cifar10(download=True, cache_dir=tmp_path / "cache")
    assert X.shape == (50, 3, 32, 32)
    assert fake_cifar.calls == [(os.fspath(tmp_path / "cache" / "torchvision"), True, True)]
