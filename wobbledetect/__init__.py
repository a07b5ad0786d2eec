"""wobbledetect: backdoor detection through backdoor smoothing.

W_sigma (Grosse et al., "Backdoor Smoothing: Demystifying Backdoor Attacks on Deep Neural
Networks") measures how much a classifier's vote wobbles under Gaussian noise around an
input; inputs carrying a working backdoor trigger tend to sit where it does not. The two
estimators here compose into a scikit-learn Pipeline::

    Pipeline([("wobbliness", WobblinessTransformer(net, input_shape=(1, 28, 28))),
              ("levene", LeveneBackdoorDetector())])

The lab (`wobbledetect.lab`), plotting, the CLI, the gRPC client and the service are
layered on top and are not imported here. The names below load on first use (PEP 562),
so that ``wobbledetect --help`` does not pay for importing torch.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wobbledetect")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"

#: Public name -> the private module that defines it.
_EXPORTS = {
    "WobblinessTransformer": "._wobbliness",
    "vote_entropy": "._wobbliness",
    "LeveneBackdoorDetector": "._levene",
    "ScreenReport": "._levene",
    "DIRECTIONS": "._levene",
    "outlier_mask": "._sets",
    "MIN_SET_SIZE": "._sets",
    "check_set_size": "._sets",
    "check_inputs": "._inputs",
    "check_floating": "._inputs",
    "replay_sequential": "._sequential",
    "to_onnx": "._export",
    "NeuralCleanse": "._cleanse",
    "UniversalPerturbation": "._universal",
    "ModelScreen": "._screening",
    "screen_models": "._screening",
    "FitProgress": "._progress",
    "STRIPTransformer": "._strip",
    "ConformalDetector": "._conformal",
    "CalibrationWarning": "._exceptions",
    "WobbledetectError": "._exceptions",
    "ModelNotFittedError": "._exceptions",
    "ModelOutputError": "._exceptions",
    "InputShapeError": "._exceptions",
    "InputDtypeError": "._exceptions",
    "InputValueError": "._exceptions",
    "ModelConversionError": "._exceptions",
    "WobbledetectWarning": "._exceptions",
    "SmallSetWarning": "._exceptions",
    "DegenerateWobblinessWarning": "._exceptions",
    "NeuralCleanseWarning": "._exceptions",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted({*globals(), *__all__})
