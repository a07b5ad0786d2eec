"""Training the reference nets with skorch, and the two numbers every backdoor is judged by."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._models import make_predictor
from .threat import backdoor_labels
from .triggers import get_trigger

__all__ = ["make_classifier", "predict", "clean_accuracy", "backdoor_accuracy"]


def make_classifier(
    module, *, max_epochs=10, lr=1e-3, batch_size=128, device="auto", seed=0, verbose=1,
    log=None, callbacks=None, **module_params,
):
    """An Adam-trained skorch ``NeuralNetClassifier`` for a logits-returning ``module``.

    ``verbose=1`` prints skorch's per-epoch table (the training progress) -- to ``log``
    when it is given (a callable taking one line, e.g. a logger's ``info``), else to
    stdout. No validation split is held out (evaluate on the test set instead).
    ``callbacks`` are skorch's (a list of callbacks or ``(name, callback)`` pairs).

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect.lab import DigitsCNN, make_classifier
    >>> X = np.random.RandomState(0).uniform(size=(64, 1, 8, 8)).astype(np.float32)
    >>> net = make_classifier(DigitsCNN, max_epochs=1, verbose=0).fit(X, np.arange(64) % 10)
    >>> net.predict(X[:3]).shape
    (3,)
    """
    from skorch import NeuralNetClassifier

    from .._models import resolve_device

    # skorch's PrintLog writes to a sink other than print even at verbose=0: only set it
    # when the table is wanted.
    sink = {"callbacks__print_log__sink": log} if log is not None and verbose else {}
    torch.manual_seed(seed)
    return NeuralNetClassifier(
        module,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=lr,
        max_epochs=max_epochs,
        batch_size=batch_size,
        iterator_train__shuffle=True,
        train_split=None,
        device=str(resolve_device(device)),
        verbose=verbose,
        callbacks=callbacks,
        **sink,
        **{f"module__{k}": v for k, v in module_params.items()},
    )


def predict(model, X, *, batch_size=1024, device="auto"):
    """Predicted class of each input (any model :class:`WobblinessTransformer` takes)."""
    predictor = make_predictor(model, device)
    X = np.asarray(X, dtype=np.float32)
    out = []
    for start in range(0, len(X), batch_size):
        batch = torch.from_numpy(X[start : start + batch_size]).to(predictor.device)
        out.append(predictor.predict_classes(batch).cpu().numpy())
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def clean_accuracy(model, X, y, **kwargs):
    """Accuracy on clean inputs."""
    return float(np.mean(predict(model, X, **kwargs) == np.asarray(y)))


def backdoor_accuracy(model, X, y, trigger, threat="T1", *, target=0, n_classes=None, **kwargs):
    """Attack success rate: share of triggered inputs classified as the attacker wants.

    For T1/T3 only inputs whose true class is not ``target`` count; for T2 every input,
    with the wanted label ``(y + 1) mod C``.
    """
    y = np.asarray(y)
    keep = np.ones(len(y), bool) if threat == "T2" else y != target
    wanted = backdoor_labels(y[keep], threat, target=target, n_classes=n_classes or int(y.max() + 1))
    triggered = get_trigger(trigger)(np.asarray(X)[keep])
    return float(np.mean(predict(model, triggered, **kwargs) == wanted))
