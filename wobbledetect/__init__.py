"""wobbledetect: backdoor detection through backdoor smoothing.

W_sigma (Grosse et al., "Backdoor Smoothing: Demystifying Backdoor Attacks on Deep Neural
Networks") measures how much a classifier's vote wobbles under Gaussian noise around an
input; inputs carrying a working backdoor trigger tend to sit where it does not. The two
estimators here compose into a scikit-learn Pipeline::

    Pipeline([("wobbliness", WobblinessTransformer(net, input_shape=(1, 28, 28))),
              ("levene", LeveneBackdoorDetector())])

The lab (`wobbledetect.lab`), plotting, the CLI, the gRPC client and the service are
layered on top and are not imported here.
"""

from ._exceptions import (
    InputShapeError,
    ModelNotFittedError,
    ModelOutputError,
    WobbledetectError,
)
from ._export import to_onnx
from ._levene import LeveneBackdoorDetector, outlier_mask
from ._votes import replay_sequential
from ._wobbliness import WobblinessTransformer, vote_entropy

__version__ = "0.1.0"

__all__ = [
    "WobblinessTransformer",
    "LeveneBackdoorDetector",
    "vote_entropy",
    "replay_sequential",
    "outlier_mask",
    "to_onnx",
    "WobbledetectError",
    "ModelNotFittedError",
    "ModelOutputError",
    "InputShapeError",
    "__version__",
]
