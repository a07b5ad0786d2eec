"""STRIP (Gao et al., ACSAC 2019): the entropy of a model's outputs on superimposed inputs.

STRIP superimposes an input on ``N`` held-out clean inputs and averages the Shannon
entropy of the model's class probabilities over the ``N`` blends. A working trigger
keeps steering every blend to its target class, so triggered inputs score *low*; a
clean input's class is washed out by the other image, so it scores high. It is the
neighbour of backdoor smoothing that the paper names: superimposition where W adds
Gaussian noise, and the model's probabilities where W counts argmax votes.

:class:`STRIPTransformer` computes it under the same API as
:class:`~wobbledetect.WobblinessTransformer`: ``fit`` takes the held-out clean pool,
``transform`` returns one score per input, ``(n_inputs, 1)`` or ``(n_sets, set_size)``,
so that it drops into the same Pipelines (per input, or per set through
:class:`~wobbledetect.LeveneBackdoorDetector` or a set's mean).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._inputs import check_input_shape, validate_fit_inputs, validate_inputs
from ._models import ScoresInputs, make_predictor, output_kind, trial_forward
from ._noise import base_seed, block_seed, row_digests

__all__ = ["STRIPTransformer", "output_entropy"]


def output_entropy(scores, outputs):
    """Shannon entropy, in nats, of each row of class scores (``0 log 0 = 0``).

    Parameters
    ----------
    scores : torch.Tensor of shape (n, n_classes)
    outputs : {"logits", "probabilities"}
        ``"logits"``: softmax first; ``"probabilities"``: rows are used as given (negative
        values, which no probability has, are clipped to 0 and rows renormalised).

    Returns
    -------
    torch.Tensor of shape (n,), float64

    Examples
    --------
    >>> import torch
    >>> from wobbledetect._strip import output_entropy
    >>> output_entropy(torch.tensor([[0.0, 0.0], [100.0, 0.0]]), "logits").round(decimals=4)
    tensor([0.6931, 0.0000], dtype=torch.float64)
    """
    scores = scores.double()
    if outputs == "logits":
        log_p = torch.log_softmax(scores, dim=1)
        p = log_p.exp()
    else:
        p = scores.clamp_min(0)
        p = p / p.sum(dim=1, keepdim=True)
        log_p = torch.log(p)
    return -torch.where(p > 0, p * log_p, torch.zeros_like(p)).sum(dim=1)


class STRIPTransformer(ScoresInputs, TransformerMixin, BaseEstimator):
    """STRIP entropy of each input: its blends with held-out clean inputs, averaged.

    For an input ``x`` and ``N = n_superimpositions`` clean inputs ``c_j`` drawn without
    replacement from the pool given to ``fit``, the score is

        H(x) = (1/N) sum_j  -sum_k p_k(b_j) log p_k(b_j),   b_j = w_x x + w_c c_j,

    with ``(w_x, w_c) = blend`` and ``p(b)`` the model's class probabilities (a softmax of
    its scores when they are logits). Low H: the model keeps its class whatever is
    blended in -- what a working trigger does.

    Parameters
    ----------
    model : skorch net, torch.nn.Module, str, bytes, onnx.ModelProto or callable
        The trained classifier (as for :class:`WobblinessTransformer`).
    n_superimpositions : int, default=100
        Blends per input, ``N`` (STRIP's paper uses 100). At most the size of the pool.
    blend : tuple of (float, float), default=(0.5, 0.5)
        Weights of the input and of the clean image in each blend. No clipping is
        applied: weights summing to 1 keep inputs in range.
    outputs : {"auto", "logits", "probabilities"}, default="auto"
        What the model's scores are; ``"auto"``: probabilities when every row of a trial
        batch is in [0, 1] and sums to 1, else logits.
    batch_size : int, default=1000
        Blends per forward pass (at least ``N``: one input's blends at a time).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
    random_state : int, RandomState instance or None, default=None
        Seeds which clean inputs each input is blended with. With an int, the pool
        images drawn for an input depend only on the seed and the input's content, so
        scores do not depend on batch size, row order or grouping into sets.
    input_shape : tuple of int or None, default=None
        Shape of one input; None: the shape an ONNX model declares, else the pool's.

    Attributes
    ----------
    pool_ : ndarray of float32, shape (n_pool, *input_shape_)
        The held-out clean inputs.
    outputs_ : {"logits", "probabilities"}
    input_shape_ : tuple of int
    n_classes_ : int
    device_ : torch.device
    n_features_in_ : int

    See Also
    --------
    WobblinessTransformer : W, backdoor smoothing's score (Gaussian noise, argmax votes).

    Notes
    -----
    IBM ART's STRIP (``art.estimators.poison_mitigation.STRIPMixin``, 1.20.1) computes
    ``scipy.stats.entropy(predictions, axis=0)``: for each *class*, the entropy of that
    class's probabilities across the ``N`` blends, summed over classes. That is not the
    paper's quantity: a model whose output is the same for every blend -- confident or
    uniform alike -- gets the same maximum, ``log N`` per class, so it cannot tell a
    trigger that holds the class from an input the model is unsure of. This transformer
    takes the entropy over classes for each blend (``axis=1``) and averages over blends,
    as Gao et al. define it; in nats (the paper's code uses bits: divide by ``log 2``).
    ART also draws the clean images with replacement from NumPy's global generator;
    here they are drawn without replacement, seeded per input.

    Reference: Y. Gao et al., "STRIP: A Defence Against Trojan Attacks on Deep Neural
    Networks", ACSAC 2019.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from wobbledetect import STRIPTransformer
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> pool = np.random.RandomState(0).rand(50, 1, 2, 2).astype(np.float32)
    >>> strip = STRIPTransformer(net, n_superimpositions=20, random_state=0).fit(pool)
    >>> strip.transform(pool[:3]).shape
    (3, 1)
    """

    _parameter_constraints: dict = {
        "model": "no_validation",
        "n_superimpositions": [Interval(Integral, 1, None, closed="left")],
        "blend": [tuple, list],
        "outputs": [StrOptions({"auto", "logits", "probabilities"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "input_shape": [tuple, list, None],
    }

    def __init__(
        self,
        model,
        *,
        n_superimpositions=100,
        blend=(0.5, 0.5),
        outputs="auto",
        batch_size=1000,
        device="auto",
        random_state=None,
        input_shape=None,
    ):
        self.model = model
        self.n_superimpositions = n_superimpositions
        self.blend = blend
        self.outputs = outputs
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.input_shape = input_shape

    def fit(self, X, y=None):
        """Keep the held-out clean pool, open the model and recognise its outputs.

        Parameters
        ----------
        X : array-like of shape (n_pool, *input_shape) or (n_sets, set_size, *input_shape)
            Held-out clean inputs to blend with (not the inputs to score).
        y : None
            Ignored.

        Returns
        -------
        self : STRIPTransformer
        """
        self._validate_params()
        self._blend()
        predictor = make_predictor(self.model, self.device)
        self.pool_, self.input_shape_ = validate_fit_inputs(
            self, X, check_input_shape(self.input_shape), default_shape=predictor.input_shape)
        if int(self.n_superimpositions) > len(self.pool_):
            raise ValueError(
                f"The 'n_superimpositions' parameter is {self.n_superimpositions}, but the "
                f"pool passed to fit holds {len(self.pool_)} clean inputs, and each input is "
                "blended with distinct ones: pass a larger pool or lower n_superimpositions."
            )
        self.n_classes_ = trial_forward(predictor, self.pool_[:2])
        self.device_ = predictor.device
        self.predictor_ = predictor
        self.outputs_ = self.outputs if self.outputs != "auto" else self._recognise_outputs()
        return self

    def transform(self, X):
        """STRIP entropy of every input.

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)

        Returns
        -------
        H : ndarray of shape (n_inputs, 1) or (n_sets, set_size)
            Mean entropy over the blends, in nats, float64.
        """
        check_is_fitted(self)
        inputs, lead_shape = validate_inputs(self, X, self.input_shape_)
        w_input, w_clean = self._blend()
        n = int(self.n_superimpositions)
        base = base_seed(check_random_state(self.random_state))
        digests = row_digests(inputs)
        per_pass = max(1, int(self.batch_size) // n)
        predictor = self._predictor()
        H = np.empty(len(inputs))
        for start in range(0, len(inputs), per_pass):
            chunk = inputs[start:start + per_pass]
            picks = np.stack([
                np.random.Generator(np.random.PCG64(block_seed(base, digest, 0))).choice(
                    len(self.pool_), size=n, replace=False)
                for digest in digests[start:start + per_pass]
            ])
            blends = w_input * chunk[:, None] + w_clean * self.pool_[picks]
            batch = torch.from_numpy(blends.reshape(-1, *self.input_shape_).astype(np.float32))
            scores = predictor.scores(batch.to(predictor.device))
            H[start:start + len(chunk)] = (
                output_entropy(scores, self.outputs_).reshape(len(chunk), n).mean(dim=1).cpu().numpy())
        return H.reshape(lead_shape if len(lead_shape) == 2 else (-1, 1))

    # -- internals -------------------------------------------------------------------

    def _blend(self):
        try:
            weights = tuple(float(w) for w in self.blend)
        except (TypeError, ValueError):
            weights = ()
        if len(weights) != 2 or not all(np.isfinite(w) and w >= 0 for w in weights) or not sum(weights) > 0:
            raise ValueError(
                "The 'blend' parameter must be two finite, non-negative weights, not both 0 "
                f"(the input's and the clean image's, e.g. (0.5, 0.5)); got {self.blend!r}."
            )
        return np.float32(weights[0]), np.float32(weights[1])

    def _recognise_outputs(self):
        with torch.no_grad():
            scores = self.predictor_.scores(
                torch.from_numpy(self.pool_[:64].copy()).to(self.device_)).double()
        return output_kind(scores)

    def _predictor(self):
        if getattr(self, "predictor_", None) is None:  # after unpickling
            self.predictor_ = make_predictor(self.model, self.device)
        return self.predictor_
