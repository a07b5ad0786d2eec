"""Datasets as channel-first float32 images in [0, 1] with int64 labels."""

from __future__ import annotations

import numpy as np

__all__ = ["load_digits_images"]


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
