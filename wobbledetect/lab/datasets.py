"""Datasets as channel-first float32 images in [0, 1] with int64 labels.

- scikit-learn's digits, embedded (:func:`load_digits_images`);
- Fashion-MNIST (:func:`load_fashion_mnist`) and CIFAR-10 (:func:`load_cifar10`), read
  by torchvision from a local *data directory*, or downloaded by torchvision.

The data directory (argument ``data_dir``, else the ``WOBBLEDETECT_DATA`` environment
variable) is only ever read. It holds one folder per dataset::

    DATA/fashion-mnist/train-images-idx3-ubyte.gz   (and the three other original
                                                     .gz files of Fashion-MNIST)
    DATA/cifar10/cifar-10-python.tar.gz             (or its extracted
                                                     cifar-10-batches-py/ folder)

torchvision wants the files decompressed in a folder of its own, so they are unpacked
once into a writable torchvision root under the cache directory (``cache_dir``, else
``WOBBLEDETECT_CACHE``, else ``~/.cache/wobbledetect``): ``CACHE/torchvision``. That is
also where ``download=True`` lets torchvision download when there are no local files.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np

from .cache import atomic_write, default_cache_dir

__all__ = [
    "load_digits_images",
    "load_fashion_mnist",
    "load_cifar10",
    "resolve_data_dir",
    "DATA_ENV",
    "FASHION_MNIST_FILES",
]

#: Environment variable naming the data directory.
DATA_ENV = "WOBBLEDETECT_DATA"

#: The four original Fashion-MNIST files (the names torchvision's resources use).
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_FOLDER = "cifar-10-batches-py"


def load_digits_images():
    """scikit-learn's embedded 8x8 digits: ``X`` of shape (1797, 1, 8, 8), ``y`` (1797,).

    Examples
    --------
    >>> from wobbledetect.lab import load_digits_images
    >>> X, y = load_digits_images()
    >>> X.shape, float(X.min()), float(X.max()), y[:3].tolist()
    ((1797, 1, 8, 8), 0.0, 1.0, [0, 1, 2])
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]
    return X, digits.target.astype(np.int64)


def resolve_data_dir(data_dir=None):
    """``data_dir``, else ``$WOBBLEDETECT_DATA``, as a :class:`~pathlib.Path`; None if neither.

    Examples
    --------
    >>> from wobbledetect.lab.datasets import resolve_data_dir
    >>> resolve_data_dir("/srv/data").as_posix()
    '/srv/data'
    """
    value = data_dir if data_dir is not None else os.environ.get(DATA_ENV) or None
    return None if value is None else Path(value).expanduser()


def load_fashion_mnist(data_dir=None, *, train=True, download=False, cache_dir=None):
    """Fashion-MNIST (Xiao et al., 2017) through ``torchvision.datasets.FashionMNIST``.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Folder holding ``fashion-mnist/`` with the four original ``.gz`` files (a folder
        holding the files themselves works too). Default: ``$WOBBLEDETECT_DATA``. Never
        written to.
    train : bool, default=True
        The 60,000 training images, else the 10,000 test images.
    download : bool, default=False
        With no local files, let torchvision download them into the cache's torchvision
        root (needs network access).
    cache_dir : str or os.PathLike, optional
        Where the decompressed files go (``<cache_dir>/torchvision/FashionMNIST/raw``).
        Default: :func:`~wobbledetect.lab.cache.default_cache_dir`.

    Returns
    -------
    X : ndarray of float32, shape (n, 1, 28, 28)
        Pixels in [0, 1].
    y : ndarray of int64, shape (n,)
        Classes 0-9 (0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
        6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot).

    Raises
    ------
    FileNotFoundError
        No local files and ``download=False``; the message names the folder looked in,
        the environment variable and the fix.

    Examples
    --------
    >>> from wobbledetect.lab import load_fashion_mnist
    >>> X, y = load_fashion_mnist("../shared/data", train=False)  # doctest: +SKIP
    >>> X.shape, X.dtype, y[:5].tolist()  # doctest: +SKIP
    ((10000, 1, 28, 28), dtype('float32'), [9, 2, 1, 1, 6])
    """
    from torchvision.datasets import FashionMNIST

    root = _torchvision_root(cache_dir)
    source = _fashion_mnist_source(data_dir)
    if source is not None:
        _decompress_into(source, root / "FashionMNIST" / "raw")
    elif download:
        root.mkdir(parents=True, exist_ok=True)
    elif not _fashion_mnist_ready(root):
        raise FileNotFoundError(_missing_message(
            "Fashion-MNIST", data_dir, "fashion-mnist", "the four original .gz files "
            f"({', '.join(FASHION_MNIST_FILES)})",
        ))
    dataset = FashionMNIST(os.fspath(root), train=train, download=source is None and download)
    X = dataset.data.numpy()[:, None].astype(np.float32) / np.float32(255.0)
    return X, dataset.targets.numpy().astype(np.int64)


def load_cifar10(data_dir=None, *, train=True, download=False, cache_dir=None):
    """CIFAR-10 (Krizhevsky and Hinton, 2009) through ``torchvision.datasets.CIFAR10``.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Folder holding ``cifar10/`` with ``cifar-10-python.tar.gz`` or its extracted
        ``cifar-10-batches-py/`` (a folder holding either itself works too). Default:
        ``$WOBBLEDETECT_DATA``. Never written to: an archive is extracted into the
        cache's torchvision root.
    train : bool, default=True
        The 50,000 training images, else the 10,000 test images.
    download : bool, default=False
        With no local files, let torchvision download into the cache's torchvision root.
    cache_dir : str or os.PathLike, optional
        Default: :func:`~wobbledetect.lab.cache.default_cache_dir`.

    Returns
    -------
    X : ndarray of float32, shape (n, 3, 32, 32)
        Pixels in [0, 1], channel-first.
    y : ndarray of int64, shape (n,)

    Raises
    ------
    FileNotFoundError
        No local files and ``download=False``.

    Examples
    --------
    >>> from wobbledetect.lab import load_cifar10
    >>> X, y = load_cifar10(download=True, train=False)  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (10000, 3, 32, 32)
    """
    from torchvision.datasets import CIFAR10

    root = _torchvision_root(cache_dir)
    folder = _dataset_folder(data_dir, "cifar10", (_CIFAR_ARCHIVE, _CIFAR_FOLDER))
    if folder is not None and (folder / _CIFAR_FOLDER).is_dir():
        root = folder  # torchvision only reads an extracted folder
    elif folder is not None:
        if not (root / _CIFAR_FOLDER).is_dir():
            from torchvision.datasets.utils import extract_archive

            root.mkdir(parents=True, exist_ok=True)
            extract_archive(os.fspath(folder / _CIFAR_ARCHIVE), os.fspath(root))
    elif not download and not (root / _CIFAR_FOLDER).is_dir():
        raise FileNotFoundError(_missing_message(
            "CIFAR-10", data_dir, "cifar10", f"{_CIFAR_ARCHIVE} or its extracted {_CIFAR_FOLDER}/",
        ))
    else:
        root.mkdir(parents=True, exist_ok=True)
    dataset = CIFAR10(os.fspath(root), train=train, download=folder is None and download)
    X = np.ascontiguousarray(np.asarray(dataset.data).transpose(0, 3, 1, 2))
    return X.astype(np.float32) / np.float32(255.0), np.asarray(dataset.targets, dtype=np.int64)


# -- internals ---------------------------------------------------------------------------


def _torchvision_root(cache_dir):
    return Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / "torchvision"


def _dataset_folder(data_dir, name, markers):
    """``DATA/name`` (or ``DATA`` itself) when it holds any of ``markers``; else None."""
    base = resolve_data_dir(data_dir)
    if base is None:
        return None
    for folder in (base / name, base):
        if any((folder / marker).exists() for marker in markers):
            return folder
    return None


def _fashion_mnist_source(data_dir):
    folder = _dataset_folder(data_dir, "fashion-mnist", FASHION_MNIST_FILES)
    if folder is None:
        return None
    missing = [name for name in FASHION_MNIST_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} holds only part of Fashion-MNIST: {', '.join(missing)} missing. "
            "Put the four original .gz files there (see docs/lab.md, 'Data')."
        )
    return folder


def _fashion_mnist_ready(root):
    raw = root / "FashionMNIST" / "raw"
    return all((raw / name[: -len(".gz")]).is_file() for name in FASHION_MNIST_FILES)


def _decompress_into(source, raw):
    """Decompress the ``.gz`` files of ``source`` into ``raw``, atomically, once."""
    raw.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_FILES:
        target = raw / name[: -len(".gz")]
        if target.is_file() and target.stat().st_size == _gzip_size(source / name):
            continue
        atomic_write(target, lambda tmp, packed=source / name: _gunzip(packed, tmp))


def _gunzip(packed, out):
    with gzip.open(packed) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)


def _gzip_size(path):
    """Decompressed size a gzip file records in its trailer (ISIZE, modulo 2**32)."""
    with open(path, "rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return int.from_bytes(handle.read(4), "little")


def _missing_message(title, data_dir, folder, contents):
    looked = resolve_data_dir(data_dir)
    where = (
        f"found no {title} files in {looked} (looked in {looked / folder} and {looked})"
        if looked is not None
        else f"no data directory was given (argument data_dir / --data-dir) and {DATA_ENV} is not set"
    )
    return (
        f"{title}: {where}. Put {contents} in DATA/{folder}/ and pass data_dir=DATA "
        f"(--data-dir DATA, or export {DATA_ENV}=DATA), or pass download=True (--download) to let "
        "torchvision download it into the cache directory."
    )
