"""Sets: the batches of test inputs the detector judges at once (paper: 25 test points)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["draw_sets"]


def draw_sets(X, n_sets, set_size=25, *, transform=None, random_state=None):
    """``n_sets`` sets of ``set_size`` distinct inputs from ``X``, optionally transformed.

    Parameters
    ----------
    X : ndarray of shape (n, *input_shape)
        The pool (e.g. clean test images).
    n_sets, set_size : int
    transform : callable, optional
        Applied to each set's inputs, e.g. a trigger.
    random_state : int, RandomState instance or None

    Returns
    -------
    sets : ndarray of shape (n_sets, set_size, *input_shape)

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect.lab import draw_sets
    >>> draw_sets(np.arange(10.0)[:, None], 3, 4, random_state=0).shape
    (3, 4, 1)
    """
    rng = check_random_state(random_state)
    if set_size > len(X):
        raise ValueError(f"set_size={set_size} is larger than the pool of {len(X)} inputs.")
    picks = np.stack([rng.choice(len(X), size=set_size, replace=False) for _ in range(n_sets)])
    sets = np.asarray(X)[picks]
    if transform is not None:
        sets = transform(sets.reshape(-1, *sets.shape[2:])).reshape(sets.shape)
    return sets.astype(np.float32)
