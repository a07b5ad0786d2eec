"""W_sigma, eq. (1)-(3) of the paper, and the scikit-learn transformer that computes it."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.stats
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._inference import INFERENCE_PATHS, accelerate
from ._inputs import check_bool, check_input_shape, validate_fit_inputs, validate_inputs
from ._models import ScoresInputs, make_predictor, resolve_device, trial_forward
from ._noise import base_seed
from ._votes import count_votes

__all__ = ["WobblinessTransformer", "vote_entropy"]


def vote_entropy(counts, *, estimator="plugin"):
    """Eq. (3): entropy, in nats, of the vote frequencies of each row of ``counts``.

    ``W = -sum_k p_k log p_k`` with ``p_k = counts[k] / sum(counts)`` (eq. 2), and
    ``0 log 0 = 0``. W is 0 when every noisy copy gets the same class and at most
    ``log(n_classes)``.

    Parameters
    ----------
    counts : array-like of shape (n_inputs, n_classes)
        Vote counts, non-negative, each row with a positive sum.
    estimator : {"plugin", "miller-madow"}, default="plugin"
        ``"plugin"`` is the paper's estimator. It is biased low by about
        ``(m - 1) / (2 n)`` for ``m`` classes with votes and ``n`` votes, which is why
        the paper's mean W rises with n (Fig. 2); ``"miller-madow"`` adds that term back.

    Returns
    -------
    W : ndarray of shape (n_inputs,)

    Examples
    --------
    >>> from wobbledetect import vote_entropy
    >>> vote_entropy([[250, 0, 0], [125, 125, 0]]).round(4)
    array([0.    , 0.6931])
    >>> vote_entropy([[125, 125, 0]], estimator="miller-madow").round(4)
    array([0.6951])
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or (counts < 0).any() or (counts.sum(axis=1) <= 0).any():
        raise ValueError(
            "counts must be a 2-D array of non-negative vote counts whose rows have a "
            f"positive sum; got shape {counts.shape}."
        )
    W = scipy.stats.entropy(counts, axis=1)
    if estimator == "miller-madow":
        occupied = (counts > 0).sum(axis=1)
        W = W + (occupied - 1) / (2.0 * counts.sum(axis=1))
    elif estimator != "plugin":
        raise ValueError(
            f"The 'estimator' parameter must be 'plugin' or 'miller-madow'; got {estimator!r}."
        )
    return W


class WobblinessTransformer(ScoresInputs, TransformerMixin, BaseEstimator):
    """Wobbliness W_sigma of a trained classifier around each input (paper eq. 1-3).

    For every input ``x`` the model classifies ``n_samples`` noisy copies ``x + delta``,
    ``delta ~ N(0, sigma^2 I)``; ``p_k`` is the fraction of copies voted into class ``k``
    (argmax votes, not averaged softmax) and ``W = -sum_k p_k log p_k`` in nats. W is 0
    where the decision function is flat around ``x`` (a working backdoor trigger, per the
    paper) and grows where copies disagree.

    Noise is added in the model's input space exactly as given (normalisation belongs
    inside the model) and is not clipped.

    Parameters
    ----------
    model : skorch net, torch.nn.Module, str, bytes, onnx.ModelProto or callable
        The trained classifier: a fitted skorch ``NeuralNet``/``NeuralNetClassifier``, a
        ``torch.nn.Module`` returning class scores, an ONNX model (path, bytes or
        ``ModelProto``, run with onnxruntime) or a callable mapping a float32 NumPy batch
        to scores of shape ``(batch, n_classes)``. It is *held, not trained*: ``clone``
        keeps the same object (like :class:`sklearn.frozen.FrozenEstimator`), so a fitted
        net survives ``GridSearchCV``; ``fit`` never modifies it.
    sigma : float, default=0.1
        Standard deviation of the Gaussian noise, in input units.
    n_samples : int, default=250
        Noisy copies per input (the paper's ``n``; 250 suffices, its Fig. 2).
    batch_size : int, default=1000
        Rows per forward pass; bounds memory whatever the number of inputs.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        Where the model runs and noise is drawn; ``"auto"`` is CUDA when available.
        Plain callables always run on the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the noise. With an int, W is identical across calls, ``batch_size`` values,
        row orders and groupings into sets (noise is keyed by each input's content), on
        the same kind of device.
    input_shape : tuple of int or None, default=None
        Shape of one input as the model takes it, e.g. ``(1, 28, 28)``. When None, the
        shape an ONNX model declares, else ``X.shape[1:]`` at ``fit``. Required when
        ``fit`` sees sets (as inside a Pipeline over sets).
    entropy : {"plugin", "miller-madow"}, default="plugin"
        Entropy estimator, see :func:`vote_entropy`. The paper uses ``"plugin"``.
    inference : {"auto", "eager", "onnx", "frozen", "channels_last", "compile"}, default="auto"
        How a torch model (or skorch net) runs. ``"auto"``: the fastest path for the
        device (on a CPU: onnxruntime, then frozen TorchScript, then ``channels_last``)
        that votes like eager torch on a check batch of noisy copies
        (:mod:`wobbledetect._inference`). Ignored for ONNX models and callables.
    sequential_tol : float or None, default=None
        Optional, off by default: stop drawing copies of an input once all so far voted
        alike and the 95% bound on its minority vote mass is at most ``sequential_tol``
        (see :mod:`wobbledetect._votes`). It rarely pays: on the Fig. 6 nets it saved
        3x only where it also cost AUC (docs/performance.md). None, the paper's
        procedure, always draws ``n_samples``.
    verbose : bool, default=False
        Show a progress bar while computing W.

    Attributes
    ----------
    input_shape_ : tuple of int
        Shape of one input.
    n_classes_ : int
        Number of classes the model scores.
    device_ : torch.device
        Device the model runs on.
    inference_path_ : str
        The inference path in use (see ``inference``; ``"onnxruntime"`` for ONNX models,
        ``"callable"`` for callables).
    n_features_in_ : int
        Number of scalar features in one input, ``prod(input_shape_)``.
    feature_names_in_ : ndarray of str
        Defined only when ``X`` had string column names at ``fit`` (2-D inputs).

    See Also
    --------
    LeveneBackdoorDetector : Tests whether a set of W values is smoother than clean ones.
    vote_entropy : Eq. (3) on vote counts.

    Notes
    -----
    ``transform`` accepts ``X`` of shape ``(n_inputs, *input_shape)``, giving W of shape
    ``(n_inputs, 1)``, or ``(n_sets, set_size, *input_shape)``, giving ``(n_sets,
    set_size)`` -- a *set* is the batch of inputs the detector judges at once.

    ``fit`` opens the model, checks it and builds its inference path; the parameters only
    ``transform`` reads -- ``sigma``, ``n_samples``, ``batch_size``, ``random_state``,
    ``entropy``, ``sequential_tol``, ``verbose`` -- may be changed with ``set_params`` on a
    fitted transformer and take effect at the next call, without refitting (a sweep over
    sigma need not rebuild the model). ``model``, ``device``, ``input_shape`` and
    ``inference`` take effect at the next ``fit``.

    Cost: exactly ``n_samples`` forward passes per distinct input (identical inputs are
    computed once). Pickling drops device-bound state (the model copy on the GPU, the
    onnxruntime session) and rebuilds it on first use, so an object pickled on a GPU
    host loads on a CPU one.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from wobbledetect import WobblinessTransformer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 2))
    >>> clf = LogisticRegression().fit(X, X[:, 0] > 0)
    >>> wob = WobblinessTransformer(clf.predict_proba, sigma=0.5, random_state=0)
    >>> wob.fit_transform([[0.0, 0.0], [3.0, 0.0]]).round(2)  # on the boundary / far away
    array([[0.69],
           [0.  ]])
    """

    _parameter_constraints: dict = {
        "model": "no_validation",
        "sigma": [Interval(Real, 0, None, closed="neither")],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "input_shape": [tuple, list, None],
        "entropy": [StrOptions({"plugin", "miller-madow"})],
        "inference": [StrOptions(set(INFERENCE_PATHS))],
        "sequential_tol": [Interval(Real, 0, 1, closed="neither"), None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        model,
        *,
        sigma=0.1,
        n_samples=250,
        batch_size=1000,
        device="auto",
        random_state=None,
        input_shape=None,
        entropy="plugin",
        inference="auto",
        sequential_tol=None,
        verbose=False,
    ):
        self.model = model
        self.sigma = sigma
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.input_shape = input_shape
        self.entropy = entropy
        self.inference = inference
        self.sequential_tol = sequential_tol
        self.verbose = verbose

    def fit(self, X, y=None):
        """Open the model on the device, fix the input shape and count the classes.

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)
            Inputs; used only for their shape and one trial forward pass.
        y : None
            Ignored.

        Returns
        -------
        self : WobblinessTransformer
        """
        self._validate_params()
        input_shape = check_input_shape(self.input_shape)
        predictor = make_predictor(self.model, self.device)
        inputs, self.input_shape_ = validate_fit_inputs(
            self, X, input_shape, default_shape=predictor.input_shape)
        self.n_classes_ = trial_forward(predictor, inputs[:2])
        # A few real inputs to check fast paths against eager votes, now and after unpickling.
        self._check_inputs = torch.from_numpy(inputs[:4].copy())
        predictor = self._accelerated(predictor)
        self.device_ = predictor.device
        self.inference_path_ = predictor.path
        self.predictor_ = predictor
        return self

    def transform(self, X):
        """W_sigma of every input.

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)
            Inputs in the model's input space.

        Returns
        -------
        W : ndarray of shape (n_inputs, 1) or (n_sets, set_size)
            Wobbliness in nats, float64.
        """
        counts, lead_shape = self._votes(X)
        W = vote_entropy(counts, estimator=self.entropy)
        return W.reshape(lead_shape if len(lead_shape) == 2 else (-1, 1))

    def vote_counts(self, X, *, per_block=False):
        """How many noisy copies of each input the model put in each class (eq. 2).

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)
        per_block : bool, default=False
            Count each noise block of 64 copies apart: an extra axis before the classes.
            Summed over it, the counts are the plain ones; with ``sequential_tol=None``,
            :func:`wobbledetect.replay_sequential` turns them into what any sequential
            tolerance would have given, without drawing again.

        Returns
        -------
        counts : ndarray of int64, shape (n_inputs, n_classes_) or (n_sets, set_size, n_classes_)
            Rows sum to ``n_samples``, or to fewer copies where ``sequential_tol``
            stopped an input early -- so ``counts.sum()`` is the number of forwards.
            With ``per_block``, shape (..., n_blocks, n_classes_), ``n_blocks =
            ceil(n_samples / 64)``.
        """
        per_block = check_bool(per_block, "per_block")
        counts, lead_shape = self._votes(X, per_block=per_block)
        return counts.reshape(*lead_shape, *counts.shape[1:])

    def vote_frequencies(self, X):
        """The class frequencies ``p_k`` of eq. (2) that W is the entropy of.

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)

        Returns
        -------
        p : ndarray of shape (n_inputs, n_classes_) or (n_sets, set_size, n_classes_)
            Fraction of the noisy copies voted into each class.
        """
        counts, lead_shape = self._votes(X)
        p = counts / counts.sum(axis=1, keepdims=True)
        return p.reshape(*lead_shape, self.n_classes_)

    # -- internals -------------------------------------------------------------------

    def _votes(self, X, per_block=False):
        check_is_fitted(self)
        inputs, lead_shape = validate_inputs(self, X, self.input_shape_)
        seed = base_seed(check_random_state(self.random_state))
        counts = count_votes(
            self._predictor(),
            inputs,
            sigma=float(self.sigma),
            n_samples=int(self.n_samples),
            batch_size=int(self.batch_size),
            base=seed,
            n_classes=self.n_classes_,
            sequential_tol=self.sequential_tol,
            per_block=per_block,
            progress=bool(self.verbose),
        )
        return counts, lead_shape

    def _predictor(self):
        if getattr(self, "predictor_", None) is None:  # after unpickling
            device = self.device
            if device != "auto" and resolve_device("auto").type == "cpu":
                if torch.device(device).type == "cuda":
                    warnings.warn(
                        f"This WobblinessTransformer was saved with device={device!r}, "
                        "which is not available here; running on the CPU.",
                        stacklevel=3,
                    )
                    device = "cpu"
            self.predictor_ = self._accelerated(make_predictor(self.model, device))
        return self.predictor_

    def _accelerated(self, predictor):
        return accelerate(
            predictor, self.inference, input_shape=self.input_shape_,
            check_inputs=self._check_inputs, sigma=float(self.sigma),
        )

    # -- scikit-learn protocol -------------------------------------------------------

    # __sklearn_tags__ and __getstate__: ScoresInputs.

    def __setstate__(self, state):
        super().__setstate__(state)
        if "input_shape_" in state:
            self.predictor_ = None
