"""Universal adversarial perturbations (Moosavi-Dezfooli et al., CVPR 2017), by IBM ART.

One perturbation ``v`` (``|v|_p <= eps``) that changes the model's class on most inputs
it is added to. The paper's §5 (its Fig. 7) adds such perturbations to clean data in
place of triggers and asks whether W sees them as triggers: they fool many inputs, as a
trigger does, but the model was never trained on them and they need not send every
input to the same class.

The algorithm is IBM ART's ``UniversalPerturbation`` (an optional extra:
``pip install 'wobbledetect[uap]'``) over the model as a torch module
(:mod:`wobbledetect._gradients`: torch, skorch and ONNX models). ART orders the inputs
with Python's global ``random`` module; ``fit`` seeds it from ``random_state`` and puts
its state (and NumPy's global one) back afterwards.
"""

from __future__ import annotations

import random
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._gradients import open_module
from ._inputs import check_input_range, check_input_shape, validate_fit_inputs, validate_inputs
from ._models import HoldsModel

__all__ = ["UniversalPerturbation"]

#: ART's inner attacks that UniversalPerturbation accepts (its ``attacks_dict``).
ATTACKERS = ("deepfool", "fgsm", "bim", "pgd", "carlini", "carlini_inf", "ead", "newtonfool",
             "jsma", "vat", "simba")


class UniversalPerturbation(HoldsModel, BaseEstimator):
    """A universal adversarial perturbation of a model, crafted on clean inputs.

    Parameters
    ----------
    model : skorch net, torch.nn.Module, str, bytes or onnx.ModelProto
        The trained classifier (see :class:`NeuralCleanse` for how each kind is opened).
    input_shape : tuple of int or None, default=None
        Shape of one input; None takes ``X.shape[1:]``.
    eps : float, default=0.1
        Largest norm of the perturbation, in input units.
    norm : {"inf", "2"}, default="inf"
        The norm ``eps`` bounds.
    delta : float, default=0.2
        Stop once the fooling rate on ``X`` reaches ``1 - delta`` (the UAP paper's).
    max_iter : int, default=20
        Most passes over ``X``.
    attacker : str, default="deepfool"
        ART's inner attack (the UAP paper's DeepFool); one of :data:`ATTACKERS`.
    attacker_params : dict or None, default=None
        Parameters of the inner attack (ART's names); its progress bar is off unless
        ``{"verbose": True}`` is given here.
    input_range : tuple of (float, float), default=(0.0, 1.0)
        Valid input values; perturbed inputs are clipped to it.
    batch_size : int, default=32
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
    random_state : int, RandomState instance or None, default=None
        Seeds the order in which ART visits the inputs.
    verbose : bool, default=False
        ART's progress bar.

    Attributes
    ----------
    perturbation_ : ndarray of float32, shape input_shape_
        The universal perturbation ``v``.
    fooling_rate_ : float
        Share of ``X`` whose class ``X + v`` (clipped) changes.
    converged_ : bool
        Whether the fooling rate reached ``1 - delta`` within ``max_iter`` passes.
    input_shape_ : tuple of int
    n_classes_ : int
    device_ : torch.device

    See Also
    --------
    NeuralCleanse : Per-class trigger candidates, the other crafted patterns of §5.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from wobbledetect import UniversalPerturbation
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> X = np.random.RandomState(0).rand(50, 1, 4, 4).astype(np.float32)
    >>> uap = UniversalPerturbation(net, eps=0.5, max_iter=2, random_state=0).fit(X)
    >>> uap.perturbation_.shape, bool(np.abs(uap.perturbation_).max() <= 0.5 + 1e-6)
    ((1, 4, 4), True)
    >>> uap.apply(X[:2]).shape
    (2, 1, 4, 4)
    """

    _parameter_constraints: dict = {
        "model": "no_validation",
        "input_shape": [tuple, list, None],
        "eps": [Interval(Real, 0, None, closed="neither")],
        "norm": [StrOptions({"inf", "2"})],
        "delta": [Interval(Real, 0, 1, closed="both")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "attacker": [StrOptions(set(ATTACKERS))],
        "attacker_params": [dict, None],
        "input_range": [tuple, list],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        model,
        *,
        input_shape=None,
        eps=0.1,
        norm="inf",
        delta=0.2,
        max_iter=20,
        attacker="deepfool",
        attacker_params=None,
        input_range=(0.0, 1.0),
        batch_size=32,
        device="auto",
        random_state=None,
        verbose=False,
    ):
        self.model = model
        self.input_shape = input_shape
        self.eps = eps
        self.norm = norm
        self.delta = delta
        self.max_iter = max_iter
        self.attacker = attacker
        self.attacker_params = attacker_params
        self.input_range = input_range
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y=None):
        """Craft the perturbation on the clean inputs ``X`` (their labels are the model's).

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)
        y : None
            Ignored: ART takes the model's own predictions as the classes to change.

        Returns
        -------
        self : UniversalPerturbation
        """
        self._validate_params()
        low, high = check_input_range(self.input_range)
        art = _import_art()
        input_shape = check_input_shape(self.input_shape)
        inputs, input_shape = validate_fit_inputs(self, X, input_shape)
        module, device, _, self.n_classes_ = open_module(self.model, self.device, inputs)
        self.input_shape_ = tuple(input_shape)
        self.device_ = device
        classifier = art.estimators.classification.PyTorchClassifier(
            model=module, loss=torch.nn.CrossEntropyLoss(), input_shape=self.input_shape_,
            nb_classes=self.n_classes_, clip_values=(low, high),
            device_type="gpu" if device.type == "cuda" else "cpu",
        )
        attacker_params = dict(self.attacker_params or {})
        if self.attacker != "fgsm":  # the only one of ATTACKERS without a progress bar
            attacker_params.setdefault("verbose", False)
        attack = art.attacks.evasion.UniversalPerturbation(
            classifier, attacker=self.attacker, attacker_params=attacker_params,
            delta=float(self.delta), max_iter=int(self.max_iter), eps=float(self.eps),
            norm=np.inf if self.norm == "inf" else 2, batch_size=int(self.batch_size),
            verbose=bool(self.verbose),
        )
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            random.seed(seed)
            np.random.seed(seed)
            attack.generate(inputs)
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
        self.perturbation_ = np.asarray(attack.noise, dtype=np.float32).reshape(self.input_shape_)
        self.fooling_rate_ = float(attack.fooling_rate)
        self.converged_ = bool(attack.converged)
        return self

    def apply(self, X):
        """``X + v``, clipped to ``input_range``.

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)

        Returns
        -------
        ndarray of float32, the shape of ``X``
        """
        check_is_fitted(self)
        low, high = check_input_range(self.input_range)
        inputs, lead_shape = validate_inputs(self, X, self.input_shape_)
        stamped = np.clip(inputs + self.perturbation_, low, high).astype(np.float32)
        return stamped.reshape(*lead_shape, *self.input_shape_)


def _import_art():
    try:
        import art.attacks.evasion
        import art.estimators.classification
    except ImportError as exc:
        raise ImportError(
            "UniversalPerturbation needs IBM's Adversarial Robustness Toolbox, an optional "
            "extra: pip install 'wobbledetect[uap]' (or adversarial-robustness-toolbox)."
        ) from exc
    return art
