"""Training the reference nets with skorch, and the two numbers every backdoor is judged by."""

from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNetClassifier
from torch import nn

from .._models import make_predictor
from .threat import backdoor_labels
from .triggers import get_trigger

__all__ = ["make_classifier", "SAMClassifier", "PenalisedClassifier", "mmd2", "predict", "clean_accuracy",
           "backdoor_accuracy"]


def make_classifier(
    module, *, max_epochs=10, lr=1e-3, batch_size=128, device="auto", seed=0, verbose=1,
    log=None, callbacks=None, optimizer="adam", sam_rho=0.05, penalties=None, **module_params,
):
    """An Adam-trained skorch ``NeuralNetClassifier`` for a logits-returning ``module``.

    ``optimizer="sam"`` trains with Sharpness-Aware Minimization (Foret et al., ICLR 2021;
    ``pytorch_optimizer.SAM``, the ``[attacks]`` extra) around the same Adam, with radius
    ``sam_rho``: each step takes the gradient at the weights moved by ``sam_rho`` along
    the normalised gradient (:class:`SAMClassifier`). ``penalties`` (a dict of
    :class:`PenalisedClassifier`'s ``mmd_weight``, ``wobble_weight``, ``wobble_sigma``,
    ``wobble_copies``) adds the adaptive attacks' loss terms; ``X`` is then the dict that
    class takes.

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
    if penalties:
        if optimizer != "adam":
            raise ValueError("The adaptive attacks' penalties are trained with Adam only; "
                             f"got optimizer={optimizer!r}.")
        classifier = PenalisedClassifier
        optimizer_params |= dict(penalties)
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


def mmd2(a, b, *, scales=(0.5, 1.0, 2.0)):
    """Squared Maximum Mean Discrepancy between two samples, Gaussian kernels (biased, >= 0).

    ``k(u, v) = sum_s exp(-|u - v|^2 / (2 (s h)^2))`` over the ``scales`` s, with ``h`` the
    median distance between all pooled rows (the median heuristic, not differentiated):
    ``MMD^2 = mean k(a, a') + mean k(b, b') - 2 mean k(a, b)``.

    Parameters
    ----------
    a, b : torch.Tensor of shape (n_a, ...) and (n_b, ...)
        Rows are flattened.

    Returns
    -------
    torch.Tensor, a scalar

    Examples
    --------
    >>> import torch
    >>> from wobbledetect.lab.train import mmd2
    >>> x = torch.randn(20, 5, generator=torch.Generator().manual_seed(0))
    >>> float(mmd2(x, x)), bool(mmd2(x, x + 3) > 0.5)
    (0.0, True)
    """
    a, b = a.flatten(1), b.flatten(1)
    pooled = torch.cat([a, b])
    distances = torch.cdist(pooled, pooled).pow(2)
    h2 = distances.detach()[~torch.eye(len(pooled), dtype=torch.bool, device=pooled.device)].median()
    h2 = torch.clamp(h2, min=1e-12)
    kernel = sum(torch.exp(-distances / (2 * scale ** 2 * h2)) for scale in scales)
    n = len(a)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


class PenalisedClassifier(NeuralNetClassifier):
    """skorch's classifier with the adaptive attacks' loss terms (issue 17).

    ``X`` is a dict: ``"x"`` the training images (poisons included), ``"poisoned"`` 1.0 for
    a poison, ``"clean_x"`` each image before its trigger (the image itself for a clean
    one). The training loss of a batch is

        CE(f(x), y)
        + mmd_weight * sum_l MMD^2(h_l(clean rows), h_l(poisoned rows))
        + wobble_weight * mean CE(f(x_p + d), argmax f(c_p + d))

    - the SDRM-style term (:func:`mmd2` over the outputs ``h_l`` of every ReLU of the
      module, "multi-level"): poisons' representations pulled onto clean ones at every
      layer;
    - the W-aware term: for each poison ``x_p`` with clean image ``c_p``,
      ``wobble_copies`` Gaussian copies ``d ~ N(0, wobble_sigma^2)`` of ``x_p`` are trained
      towards the classes the model itself gives the same noisy copies of ``c_p``
      (no gradient through those labels): under noise a triggered input votes as its
      clean image does, so its W is clean W, while the noiseless trigger still sends it
      to the target. Both weights 0: plain cross-entropy.
    """

    def __init__(self, *args, mmd_weight=0.0, wobble_weight=0.0, wobble_sigma=0.3, wobble_copies=4,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.mmd_weight = mmd_weight
        self.wobble_weight = wobble_weight
        self.wobble_sigma = wobble_sigma
        self.wobble_copies = wobble_copies

    def initialize_module(self):
        super().initialize_module()
        self._activations = []
        self._hooks = [module.register_forward_hook(self._record)
                       for module in self.module_.modules() if isinstance(module, nn.ReLU)]
        return self

    def _record(self, module, inputs, output):
        if module.training:  # only the training forwards; evaluation and export leave no trace
            self._activations.append(output)

    def remove_hooks(self):
        """Detach the recording hooks from the module (before it is exported or pickled)."""
        for hook in getattr(self, "_hooks", []):
            hook.remove()
        self._hooks, self._activations = [], []

    def infer(self, x, **fit_params):
        if isinstance(x, dict):
            x = x["x"]
        self._activations = []
        return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        if not training or not isinstance(X, dict):
            return loss
        poisoned = X["poisoned"].bool()
        if self.mmd_weight > 0 and poisoned.any() and (~poisoned).any():
            loss = loss + self.mmd_weight * sum(mmd2(h[~poisoned], h[poisoned]) for h in self._activations)
        if self.wobble_weight > 0 and poisoned.any():
            x_p, c_p = X["x"][poisoned], X["clean_x"][poisoned]
            copies = self.wobble_copies
            noise = torch.randn((copies, *x_p.shape), device=x_p.device) * self.wobble_sigma
            with torch.no_grad():
                labels = self.module_(
                    (c_p[None] + noise).flatten(0, 1)).argmax(1)  # how the clean image wobbles
            scores = self.module_((x_p[None] + noise).flatten(0, 1))
            loss = loss + self.wobble_weight * nn.functional.cross_entropy(scores, labels)
        return loss


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
