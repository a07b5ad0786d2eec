"""The backdoor lab: datasets, triggers, threat models T1-T3, reference nets, training,
a model cache, and the paper's figures (:mod:`wobbledetect.lab.reproduce`).

Kept out of the core estimators' import path: ``import wobbledetect`` does not import it.
"""

from .cache import ModelCache
from .datasets import load_cifar10, load_digits_images, load_fashion_mnist
from .._export import to_onnx
from .nets import NETS, DigitsCNN, FashionCNN, SmallFashionCNN, resnet18_cifar
from .sets import draw_sets
from .threat import THREAT_MODELS, Poisoned, backdoor_labels, poison
from .train import backdoor_accuracy, clean_accuracy, make_classifier, predict
from .triggers import TRIGGER_NUMBERS, TRIGGERS, BlendTrigger, PatchTrigger, get_trigger
from .zoo import LabData, NetConfig, get_net, load_lab_data

__all__ = [
    "load_digits_images",
    "load_fashion_mnist",
    "load_cifar10",
    "ModelCache",
    "NetConfig",
    "LabData",
    "load_lab_data",
    "get_net",
    "draw_sets",
    "to_onnx",
    "NETS",
    "DigitsCNN",
    "FashionCNN",
    "SmallFashionCNN",
    "resnet18_cifar",
    "THREAT_MODELS",
    "Poisoned",
    "backdoor_labels",
    "poison",
    "backdoor_accuracy",
    "clean_accuracy",
    "make_classifier",
    "predict",
    "TRIGGER_NUMBERS",
    "TRIGGERS",
    "BlendTrigger",
    "PatchTrigger",
    "get_trigger",
]
