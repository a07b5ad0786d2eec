"""Trained reference nets by configuration: train once, reuse from the cache everywhere.

A :class:`NetConfig` says everything that determines a trained net -- dataset, net,
threat model, trigger (its pixels, not just its name), target, seed, epochs, learning
rate, batch size, training-subset size, poison fraction / count and the lab's format
version. Its :meth:`~NetConfig.key_dict` is the :class:`~wobbledetect.lab.cache.ModelCache`
key, so two experiments asking for the same net get the same weights (Fig. 4's T1 /
square / seed-0 net is Fig. 6's), and a quick-mode net never stands in for a full one.

Training: :func:`~wobbledetect.lab.train.make_classifier` (skorch, Adam, cross-entropy),
poisons by :func:`~wobbledetect.lab.threat.poison` seeded with the net's seed, the torch
initialisation and shuffling seeded with it too.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from .._export import to_onnx
from .cache import config_key
from .nets import NETS
from .threat import THREAT_MODELS, poison
from .train import backdoor_accuracy, clean_accuracy, make_classifier
from .triggers import BlendTrigger, get_trigger

__all__ = ["NetConfig", "LabData", "load_lab_data", "build_module", "get_net", "check_snapshots", "LAB_FORMAT"]

#: Version of everything that changes a trained net without changing its configuration
#: (poisoning or subset procedure, training loop). Bump it to invalidate old caches.
LAB_FORMAT = 1

#: Seed of the training subset drawn when ``n_train`` is smaller than the training set;
#: fixed, so every net of a given size sees the same images.
SUBSET_SEED = 0


@dataclass(frozen=True)
class LabData:
    """A dataset split into train and test, images channel-first in [0, 1].

    Attributes
    ----------
    name : str
    X_train, y_train, X_test, y_test : ndarray
    """

    name: str
    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)

    @property
    def input_shape(self):
        """Shape of one image, e.g. ``(1, 28, 28)``."""
        return tuple(self.X_train.shape[1:])

    @property
    def n_classes(self):
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


def load_lab_data(dataset, *, data_dir=None, cache_dir=None, download=False):
    """Train and test split of ``"fashion-mnist"``, ``"cifar10"`` or ``"digits"``.

    Examples
    --------
    >>> from wobbledetect.lab.zoo import load_lab_data
    >>> data = load_lab_data("digits")
    >>> data.input_shape, data.n_classes, len(data.X_train) + len(data.X_test)
    ((1, 8, 8), 10, 1797)
    """
    from .datasets import load_cifar10, load_digits_images, load_fashion_mnist

    if dataset == "digits":
        from sklearn.model_selection import train_test_split

        X, y = load_digits_images()
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.4, stratify=y, random_state=0
        )
        return LabData(dataset, X_train, y_train, X_test, y_test)
    loaders = {"fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}
    if dataset not in loaders:
        raise ValueError(
            f"The 'dataset' parameter must be one of {sorted([*loaders, 'digits'])}; got {dataset!r}."
        )
    load = loaders[dataset]
    options = dict(data_dir=data_dir, cache_dir=cache_dir, download=download)
    X_train, y_train = load(train=True, **options)
    X_test, y_test = load(train=False, **options)
    return LabData(dataset, X_train, y_train, X_test, y_test)


@dataclass(frozen=True)
class NetConfig:
    """Everything that determines one trained net; its cache key.

    Parameters
    ----------
    dataset : str
        ``"fashion-mnist"``, ``"cifar10"`` or ``"digits"``.
    net : str
        A name in :data:`~wobbledetect.lab.nets.NETS`.
    threat : {"T1", "T2", "T3"} or None
        None trains a clean net.
    trigger : str or None
        Trigger name (see :func:`~wobbledetect.lab.get_trigger`); None for a clean net.
    target : int, default=0
        Attacker's class (T1, T3).
    seed : int, default=0
        Seeds the poisons, the initialisation and the shuffling.
    epochs : int, default=4
    lr : float, default=1e-3
        Adam's learning rate.
    batch_size : int, default=128
    n_train : int or None, default=None
        Train on a fixed random subset of this size (quick modes); None: all of it.
    fraction : float, default=0.15
        Poisoned share (T1, T2).
    n_poisons : int, default=250
        Number of poisons (T3).
    optimizer : {"adam", "sam"}, default="adam"
        ``"sam"``: Sharpness-Aware Minimization around the same Adam (issue 17's weak
        attacks; :class:`~wobbledetect.lab.train.SAMClassifier`). In the cache key only
        when it is not Adam, so the keys of the nets trained before it existed stay.
    sam_rho : float, default=0.05
        SAM's radius (the SAM paper's default).
    mmd_weight : float, default=0.0
        The SDRM-style penalty's weight: the multi-level MMD between clean and poisoned
        training rows (:class:`~wobbledetect.lab.train.PenalisedClassifier`).
    wobble_weight : float, default=0.0
        The W-aware adaptive attack's weight: noisy copies of poisons trained to vote as
        noisy copies of their clean images.
    wobble_sigma : float, default=0.3
        The noise of those copies.
    wobble_copies : int, default=4
        Copies per poison and batch.

    The four adaptive-attack settings enter the cache key only when a weight is above 0.

    Examples
    --------
    >>> from wobbledetect.lab.zoo import NetConfig
    >>> clean_a = NetConfig(threat=None, trigger=None, n_poisons=250)
    >>> clean_b = NetConfig(threat=None, trigger=None, n_poisons=10)
    >>> clean_a.key_dict() == clean_b.key_dict()  # poison settings do not matter there
    True
    >>> NetConfig(trigger="square").label
    'T1/square/seed0'
    """

    dataset: str = "fashion-mnist"
    net: str = "fashion-cnn"
    threat: str | None = "T1"
    trigger: str | None = "square"
    target: int = 0
    seed: int = 0
    epochs: int = 4
    lr: float = 1e-3
    batch_size: int = 128
    n_train: int | None = None
    fraction: float = 0.15
    n_poisons: int = 250
    optimizer: str = "adam"
    sam_rho: float = 0.05
    mmd_weight: float = 0.0
    wobble_weight: float = 0.0
    wobble_sigma: float = 0.3
    wobble_copies: int = 4

    def __post_init__(self):
        if self.optimizer not in ("adam", "sam"):
            raise ValueError(f"The 'optimizer' parameter must be 'adam' or 'sam'; got {self.optimizer!r}.")
        if not self.sam_rho > 0:
            raise ValueError(f"The 'sam_rho' parameter must be positive; got {self.sam_rho!r}.")
        if (self.mmd_weight or self.wobble_weight) and self.threat is None:
            raise ValueError("The adaptive attacks' weights need a backdoored net (a threat and a trigger).")
        if self.mmd_weight < 0 or self.wobble_weight < 0 or not self.wobble_sigma > 0 or self.wobble_copies < 1:
            raise ValueError(
                "mmd_weight and wobble_weight must be >= 0, wobble_sigma > 0 and wobble_copies >= 1; "
                f"got {self.mmd_weight!r}, {self.wobble_weight!r}, {self.wobble_sigma!r}, "
                f"{self.wobble_copies!r}.")
        if self.threat is not None and self.threat not in THREAT_MODELS:
            raise ValueError(
                f"The 'threat' parameter must be one of {THREAT_MODELS} or None; got {self.threat!r}."
            )
        if (self.threat is None) != (self.trigger is None):
            raise ValueError(
                "A clean net has threat=None and trigger=None; a backdoored one needs both "
                f"(got threat={self.threat!r}, trigger={self.trigger!r})."
            )
        if self.net not in NETS:
            raise ValueError(f"The 'net' parameter must be one of {sorted(NETS)}; got {self.net!r}.")
        if self.trigger is not None:
            get_trigger(self.trigger)  # a clear error for an unknown name

    @property
    def label(self):
        """Short human name: ``clean/seed0``, ``T1/square/seed0``; settings away from their
        defaults (poison count or share, SAM, the adaptive weights) are appended, as in
        ``T3/square/seed0/p10``."""
        suffix = ""  # settings away from the defaults, so that labels stay distinct
        if self.threat == "T3" and self.n_poisons != 250:
            suffix += f"/p{self.n_poisons}"
        if self.threat in ("T1", "T2") and self.fraction != 0.15:
            suffix += f"/f{self.fraction:g}"
        suffix += "" if self.optimizer == "adam" else f"/sam{self.sam_rho:g}"
        suffix += f"/mmd{self.mmd_weight:g}" if self.mmd_weight else ""
        suffix += f"/wobble{self.wobble_weight:g}" if self.wobble_weight else ""
        if self.threat is None:
            return f"clean/seed{self.seed}{suffix}"
        return f"{self.threat}/{self.trigger}/seed{self.seed}{suffix}"

    def key_dict(self):
        """The configuration as the cache keys it: irrelevant fields dropped, trigger spelled out."""
        config = asdict(self)
        config["format"] = LAB_FORMAT
        if self.optimizer == "adam":  # the keys of every net trained before SAM existed
            del config["optimizer"], config["sam_rho"]
        if not self.mmd_weight:
            del config["mmd_weight"]
        if not self.wobble_weight:
            del config["wobble_weight"], config["wobble_sigma"], config["wobble_copies"]
        if self.threat is None:
            for name in ("trigger", "target", "fraction", "n_poisons"):
                config[name] = None
        else:
            config["trigger_spec"] = _trigger_spec(get_trigger(self.trigger))
            if self.threat == "T2":
                config["target"] = None
            if self.threat == "T3":
                config["fraction"] = None
            else:
                config["n_poisons"] = None
        return config

    def clean(self):
        """The clean net of the same dataset, net, seed and training."""
        return replace(self, threat=None, trigger=None)


def build_module(config, input_shape, n_classes):
    """An untrained module of ``config.net`` for inputs of ``input_shape``."""
    return NETS[config.net](**_module_kwargs(config.net, input_shape, n_classes))


def _module_kwargs(net, input_shape, n_classes):
    kwargs = {"n_classes": n_classes, "in_channels": input_shape[0]}
    if net != "resnet18":  # torchvision's ResNet adapts to any image size by itself
        kwargs["image_size"] = input_shape[-1]
    return kwargs


def check_snapshots(snapshots, epochs):
    """``snapshots`` as a sorted list of distinct epoch counts below ``epochs``, or a ValueError.

    Examples
    --------
    >>> from wobbledetect.lab.zoo import check_snapshots
    >>> check_snapshots((8, 4, 4), 16)
    [4, 8]
    """
    snapshots = sorted({int(epoch) for epoch in snapshots})
    if any(not 1 <= epoch < epochs for epoch in snapshots):
        raise ValueError(
            f"The 'snapshots' parameter must hold epoch counts from 1 to {epochs - 1} "
            f"(below the net's epochs, {epochs}); got {snapshots}."
        )
    return snapshots


def get_net(config, data, cache, *, log=print, snapshots=()):
    """The trained module for ``config``: from ``cache``, else trained on ``data`` and cached.

    Parameters
    ----------
    config : NetConfig
    data : LabData
        Must be ``config.dataset``.
    cache : ModelCache
    log : callable, default=print
        Receives progress lines (and skorch's per-epoch table while training).
    snapshots : iterable of int, default=()
        Epoch counts below ``config.epochs``: when the net is trained now, its state after
        each of these epochs is also cached as the net of ``replace(config, epochs=e)``,
        with its own accuracies. Training is deterministic given the seed (the
        initialisation, the shuffling and Adam's state up to epoch ``e`` are those of a
        run of ``e`` epochs), so a snapshot *is* that net, weight for weight (tested): one
        run to 32 epochs gives the nets of 1, 2, 4, 8 and 16 epochs too.

    Returns
    -------
    module : torch.nn.Module
        In eval mode on the CPU.
    metadata : dict
        ``clean_accuracy``, ``backdoor_accuracy`` (None for a clean net),
        ``train_seconds``, ``n_poisoned``, ``train_loss`` and ``train_accuracy`` per
        epoch (the running accuracy over each epoch's batches), and what the cache adds
        (``config``, ``key``, ``torch_version``...).
    hit : bool
        Whether it came from the cache.
    """
    if config.dataset != data.name:
        raise ValueError(f"NetConfig is for {config.dataset!r} but the data are {data.name!r}.")
    snapshots = check_snapshots(snapshots, config.epochs)

    def build():
        return build_module(config, data.input_shape, data.n_classes)

    def train():
        log(f"training {config.label} ({config.net}, {config.epochs} epoch(s) on "
            f"{config.n_train or len(data.X_train)} images)...")
        return _train(config, data, log, snapshots=[
            epoch for epoch in snapshots if replace(config, epochs=epoch).key_dict() not in cache
        ], cache=cache)

    module, metadata, hit = cache.get_or_train(config.key_dict(), build, train)
    if hit:
        log(f"{config.label}: from the cache (clean accuracy {metadata['clean_accuracy']:.3f}"
            + _asr_text(metadata) + ")")
    else:
        log(f"{config.label}: trained in {metadata['train_seconds']:.0f} s, clean accuracy "
            f"{metadata['clean_accuracy']:.3f}" + _asr_text(metadata))
    return module, metadata, hit


def _asr_text(metadata):
    asr = metadata.get("backdoor_accuracy")
    return "" if asr is None else f", backdoor accuracy {asr:.3f}"


def _train(config, data, log, *, snapshots=(), cache=None):
    from skorch.callbacks import Callback, EpochScoring

    started = time.perf_counter()
    X, y = data.X_train, data.y_train
    if config.n_train is not None and config.n_train < len(X):
        subset = np.sort(np.random.RandomState(SUBSET_SEED).choice(len(X), config.n_train, replace=False))
        X, y = X[subset], y[subset]
    n_poisoned, penalties = 0, {}
    if config.threat is not None:
        poisoned = poison(
            X, y, config.trigger, config.threat, target=config.target,
            fraction=config.fraction, n_poisons=config.n_poisons,
            n_classes=data.n_classes, random_state=config.seed,
        )
        X_clean, X, y, n_poisoned = X, poisoned.X, poisoned.y, len(poisoned.indices)
    if config.mmd_weight or config.wobble_weight:
        penalties = {"mmd_weight": config.mmd_weight, "wobble_weight": config.wobble_weight,
                     "wobble_sigma": config.wobble_sigma, "wobble_copies": config.wobble_copies}
        flags = np.zeros(len(X), dtype=np.float32)
        flags[poisoned.indices] = 1.0
        X_fit = {"x": X, "poisoned": flags, "clean_x": X_clean}

    def measured(net):
        """What training measured so far, with the accuracies of the module as it is now."""
        module = net.module_
        was_training = module.training
        metadata = {
            "label": config.label,
            "train_seconds": round(time.perf_counter() - started, 1),
            "n_train": len(X),
            "n_poisoned": n_poisoned,
            "train_loss": [float(v) for v in net.history[:, "train_loss"]],
            "train_accuracy": [float(v) for v in net.history[:, "train_acc"]],
            **_accuracies(module.eval(), config, data),
        }
        module.train(was_training)
        return metadata

    class Snapshots(Callback):
        """Cache the net after each epoch of ``snapshots``, leaving training untouched."""

        def on_epoch_end(self, net, **kwargs):
            epoch = len(net.history)
            if epoch not in snapshots:
                return
            rng = torch.get_rng_state()  # evaluating must not move the shuffling's RNG
            try:
                snapshot = replace(config, epochs=epoch)
                metadata = measured(net) | {"snapshot_of": {
                    "epochs": config.epochs, "key": config_key(config.key_dict())}}
                cache.save(snapshot.key_dict(), net.module_, metadata)
                log(f"{config.label}: snapshot after epoch {epoch} cached (clean accuracy "
                    f"{metadata['clean_accuracy']:.3f}" + _asr_text(metadata) + ")")
            finally:
                torch.set_rng_state(rng)

    net = make_classifier(
        NETS[config.net], max_epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
        seed=config.seed, verbose=1, log=log, optimizer=config.optimizer, sam_rho=config.sam_rho,
        penalties=penalties,
        callbacks=[("train_acc", EpochScoring("accuracy", on_train=True, name="train_acc",
                                              lower_is_better=False)),
                   ("snapshots", Snapshots())],
        **_module_kwargs(config.net, data.input_shape, data.n_classes),
    )
    net.fit(X_fit if penalties else X, y)
    if penalties:
        net.remove_hooks()
    metadata = measured(net)
    return net.module_.cpu().eval(), metadata


def _accuracies(module, config, data):
    """Clean accuracy on the test set and, for a backdoored net, the attack success."""
    # On a CPU onnxruntime predicts several times faster than eager torch: worth one export.
    runnable = module if torch.cuda.is_available() else to_onnx(module, data.input_shape)
    accuracies = {"clean_accuracy": clean_accuracy(runnable, data.X_test, data.y_test),
                  "backdoor_accuracy": None}
    if config.threat is not None:
        accuracies["backdoor_accuracy"] = backdoor_accuracy(
            runnable, data.X_test, data.y_test, config.trigger, config.threat,
            target=config.target, n_classes=data.n_classes,
        )
    return accuracies


def _trigger_spec(trigger):
    """What a trigger writes, for the cache key: a patch's pixels, a blend's parameters."""
    if isinstance(trigger, BlendTrigger):
        return {"kind": "blend", "alpha": trigger.alpha, "seed": trigger.seed}
    spec = {
        "kind": "patch",
        "pattern": np.asarray(trigger.pattern).round(6).tolist(),
        "margin": trigger.margin,
    }
    if trigger.corner != "lower-right":  # the first patches' keys stay as they were
        spec["corner"] = trigger.corner
    return spec
