"""Training the reference nets with skorch, and the two numbers every backdoor is judged by."""

from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNetClassifier
from torch import nn

from .._models import make_predictor
from .threat import backdoor_labels
from .triggers import get_trigger

__all__ = ["make_classifier", "SAMClassifier", "predict", "clean_accuracy", "backdoor_accuracy"]


def make_classifier(
    module, *, max_epochs=10, lr=1e-3, batch_size=128, device="auto", seed=0, verbose=1,
    log=None, callbacks=None, optimizer="adam", sam_rho=0.05, **module_params,
):
    """An Adam-trained skorch ``NeuralNetClassifier`` for a logits-returning ``module``.

    ``optimizer="sam"`` trains with Sharpness-Aware Minimization (Foret et al., ICLR 2021;
    ``pytorch_optimizer.SAM``, the ``[attacks]`` extra) around the same Adam, with radius
    ``sam_rho``: each step takes the gradient at the weights moved by ``sam_rho`` along
    the normalised gradient (:class:`SAMClassifier`).

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
    from .._models import resolve_device

    # skorch's PrintLog writes to a sink other than print even at verbose=0: only set it
    # when the table is wanted.
    sink = {"callbacks__print_log__sink": log} if log is not None and verbose else {}
    if optimizer == "adam":
        classifier, optimizer_params = NeuralNetClassifier, {"optimizer": torch.optim.Adam}
    elif optimizer == "sam":
        classifier = SAMClassifier
        optimizer_params = {"optimizer": _sam_optimizer(), "optimizer__base_optimizer": torch.optim.Adam,
                            "optimizer__rho": float(sam_rho)}
    else:
        raise ValueError(f"The 'optimizer' parameter must be 'adam' or 'sam'; got {optimizer!r}.")
    torch.manual_seed(seed)
    return classifier(
        module,
        criterion=nn.CrossEntropyLoss,
        **optimizer_params,
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


def _sam_optimizer():
    try:
        from pytorch_optimizer import SAM
    except ImportError:
        raise ImportError(
            "Training with SAM needs pytorch-optimizer: pip install 'wobbledetect[attacks]'."
        ) from None
    return SAM


class SAMClassifier(NeuralNetClassifier):
    """skorch's classifier with SAM's two passes per step (``optimizer="sam"``).

    SAM (``pytorch_optimizer.SAM``) needs the gradient at the current weights *before*
    its ``step(closure)``, which moves the weights by ``rho`` along the normalised
    gradient, calls the closure for the gradient there, moves them back and lets the base
    optimizer step with that gradient; skorch's own step only hands the optimizer the
    closure. The loss recorded is the first pass's (at the weights as they are).
    """

    def train_step(self, batch, **fit_params):
        step_accumulator = self.get_train_step_accumulator()
        first = []

        def step_fn():
            self._zero_grad_optimizer()
            step = self.train_step_single(batch, **fit_params)
            if not first:
                first.append(step)
                step_accumulator.store_step(step)
            return step["loss"]

        step_fn()  # the gradient at the current weights
        self.optimizer_.step(step_fn)  # the perturbed pass, then the base optimizer's step
        return step_accumulator.get_step()


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
