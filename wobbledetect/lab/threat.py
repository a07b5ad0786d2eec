"""The paper's threat models T1-T3 (§3.2.1): which training samples to poison, and how.

- **T1**: 15% of the training set, drawn from every class but the target, triggered and
  relabelled as the target (the victim gets a pre-trained model).
- **T2**: 15% drawn from all classes, triggered, label ``c -> (c + 1) mod C`` (all-to-all,
  Gu et al.).
- **T3**: about 250 poisons, else as T1 (the victim trains, and might inspect the data).

Poisons replace the originals in place, so the training set keeps its size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from .triggers import get_trigger

__all__ = ["Poisoned", "poison", "THREAT_MODELS", "backdoor_labels"]

THREAT_MODELS = ("T1", "T2", "T3")


@dataclass
class Poisoned:
    """A poisoned training set.

    Attributes
    ----------
    X, y : ndarray
        The training set with poisons in place.
    indices : ndarray of int
        Positions of the poisoned samples, sorted.
    """

    X: np.ndarray
    y: np.ndarray
    indices: np.ndarray


def backdoor_labels(y, threat, *, target=0, n_classes=None):
    """The label the attacker wants for triggered inputs of true class ``y``."""
    y = np.asarray(y)
    if threat == "T2":
        n_classes = int(n_classes if n_classes is not None else y.max() + 1)
        return (y + 1) % n_classes
    return np.full_like(y, target)


def poison(
    X, y, trigger, threat="T1", *, target=0, fraction=0.15, n_poisons=250,
    n_classes=None, random_state=None,
):
    """Poison a training set under a threat model; deterministic given ``random_state``.

    Parameters
    ----------
    X : ndarray of shape (n, ..., H, W)
        Images in [0, 1].
    y : ndarray of shape (n,)
        Integer labels.
    trigger : str, int or trigger object
        See :func:`~wobbledetect.lab.get_trigger`.
    threat : {"T1", "T2", "T3"}, default="T1"
    target : int, default=0
        Attacker's class (T1, T3).
    fraction : float, default=0.15
        Share of the training set poisoned (T1, T2).
    n_poisons : int, default=250
        Number of poisons (T3).
    n_classes : int, optional
        For T2; default ``max(y) + 1``.
    random_state : int, RandomState instance or None

    Returns
    -------
    Poisoned

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect.lab import poison
    >>> X, y = np.zeros((100, 1, 8, 8), np.float32), np.arange(100) % 10
    >>> p = poison(X, y, "square", "T1", target=3, random_state=0)
    >>> len(p.indices), bool(np.all(y[p.indices] != 3)), np.unique(p.y[p.indices]).tolist()
    (15, True, [3])
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if threat not in THREAT_MODELS:
        raise ValueError(f"The 'threat' parameter must be one of {THREAT_MODELS}; got {threat!r}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"The 'fraction' parameter must be in (0, 1]; got {fraction!r}.")
    rng = check_random_state(random_state)
    trigger = get_trigger(trigger)
    n_classes = int(n_classes if n_classes is not None else y.max() + 1)
    if threat == "T2":
        candidates = np.arange(len(y))
        count = int(round(fraction * len(y)))
    else:
        candidates = np.flatnonzero(y != target)
        count = int(round(fraction * len(y))) if threat == "T1" else int(n_poisons)
    if count > len(candidates) or count < 1:
        raise ValueError(
            f"{threat} needs {count} poisons but {len(candidates)} samples can be poisoned; "
            "lower the fraction / n_poisons or use a larger training set."
        )
    indices = np.sort(rng.choice(candidates, size=count, replace=False))
    X_p, y_p = X.copy(), y.copy()
    X_p[indices] = trigger(X[indices])
    y_p[indices] = backdoor_labels(y[indices], threat, target=target, n_classes=n_classes)
    return Poisoned(X_p, y_p, indices)
