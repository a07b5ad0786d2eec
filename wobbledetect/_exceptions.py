"""The exceptions and warnings wobbledetect raises.

A small tree, as in skorch: every error is a :class:`WobbledetectError` and also the
builtin or scikit-learn type a caller would catch anyway, so ``except ValueError`` and
``except NotFittedError`` keep working. Every warning is a :class:`WobbledetectWarning`,
so ``warnings.filterwarnings("error", category=WobbledetectWarning)`` turns a statistic
that had nothing to work with into an exception.
"""

from sklearn.exceptions import NotFittedError

__all__ = [
    "WobbledetectError",
    "ModelNotFittedError",
    "ModelOutputError",
    "InputShapeError",
    "InputDtypeError",
    "InputValueError",
    "ModelConversionError",
    "WobbledetectWarning",
    "SmallSetWarning",
    "DegenerateWobblinessWarning",
    "NeuralCleanseWarning",
    "CalibrationWarning",
]


class WobbledetectError(Exception):
    """Base class of every error raised by wobbledetect."""


class ModelNotFittedError(WobbledetectError, NotFittedError):
    """The model handed to an estimator has not been trained (e.g. an unfitted skorch net)."""


class ModelOutputError(WobbledetectError, ValueError):
    """The model did not return finite class scores of shape ``(batch, n_classes)``."""


class InputShapeError(WobbledetectError, ValueError):
    """``X`` does not have the shape of a batch of inputs or of a batch of sets."""


class InputDtypeError(WobbledetectError, ValueError):
    """``X`` holds integers or booleans: their scale would have to be guessed, and never is."""


class InputValueError(WobbledetectError, ValueError):
    """``X`` holds NaN, inf, or values the model's float32 cannot represent."""


class ModelConversionError(WobbledetectError, ValueError):
    """An ONNX model that cannot be turned into a torch module with gradients (or not faithfully)."""


class WobbledetectWarning(UserWarning):
    """Base class of every warning issued by wobbledetect."""


class SmallSetWarning(WobbledetectWarning):
    """A set holds fewer values than the Levene test needs (:data:`MIN_SET_SIZE`); its p is NaN."""


class DegenerateWobblinessWarning(WobbledetectWarning):
    """W values with (almost) no spread to test: mostly 0 or an interquartile range of 0.

    Usually sigma is too small for the model: few noisy copies change class.
    """


class NeuralCleanseWarning(WobbledetectWarning):
    """Neural Cleanse had too little to work with: a class whose candidate never reached the
    attack-success threshold, or too few classes (or no spread of mask norms) for the
    anomaly index, which is then NaN.
    """


class CalibrationWarning(WobbledetectWarning):
    """A conformal calibration with too little clean data: with ``n`` calibration scores
    the smallest p-value is ``1 / (n + 1)``, so nothing can be flagged at a level below
    it; or scores that are NaN, whose p-values are NaN.
    """
