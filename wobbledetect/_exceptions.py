"""The exceptions wobbledetect raises.

A small tree, as in skorch: every member is a :class:`WobbledetectError` and also the
builtin or scikit-learn type a caller would catch anyway, so ``except ValueError`` and
``except NotFittedError`` keep working.
"""

from sklearn.exceptions import NotFittedError

__all__ = [
    "WobbledetectError",
    "ModelNotFittedError",
    "ModelOutputError",
    "InputShapeError",
]


class WobbledetectError(Exception):
    """Base class of every error raised by wobbledetect."""


class ModelNotFittedError(WobbledetectError, NotFittedError):
    """The model handed to an estimator has not been trained (e.g. an unfitted skorch net)."""


class ModelOutputError(WobbledetectError, ValueError):
    """The model did not return class scores of shape ``(batch, n_classes)``."""


class InputShapeError(WobbledetectError, ValueError):
    """``X`` does not have the shape of a batch of inputs or of a batch of sets."""
