"""The backdoor lab: datasets, triggers, threat models T1-T3, reference nets, training,
a model cache, and the paper's figures (:mod:`wobbledetect.lab.reproduce`).

Kept out of the core estimators' import path: ``import wobbledetect`` does not import it.
"""

from importlib import import_module

#: Public name -> the module of the lab that defines it (loaded on first use, PEP 562,
#: so that registering the ``demo`` and ``reproduce`` subcommands imports no torch).
_EXPORTS = {
    "ModelCache": ".cache",
    "load_cifar10": ".datasets",
    "load_digits_images": ".datasets",
    "load_fashion_mnist": ".datasets",
    "to_onnx": "wobbledetect._export",
    "NETS": ".nets",
    "DigitsCNN": ".nets",
    "FashionCNN": ".nets",
    "SmallFashionCNN": ".nets",
    "resnet18_cifar": ".nets",
    "draw_sets": ".sets",
    "THREAT_MODELS": ".threat",
    "Poisoned": ".threat",
    "backdoor_labels": ".threat",
    "poison": ".threat",
    "backdoor_accuracy": ".train",
    "clean_accuracy": ".train",
    "make_classifier": ".train",
    "predict": ".train",
    "TRIGGER_NUMBERS": ".triggers",
    "TRIGGERS": ".triggers",
    "TRIGGER_SETS": ".triggers",
    "BlendTrigger": ".triggers",
    "PatchTrigger": ".triggers",
    "get_trigger": ".triggers",
    "LabData": ".zoo",
    "NetConfig": ".zoo",
    "get_net": ".zoo",
    "load_lab_data": ".zoo",
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})


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
    "TRIGGER_SETS",
    "BlendTrigger",
    "PatchTrigger",
    "get_trigger",
]
