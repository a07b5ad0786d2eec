"""Neural Cleanse (Wang et al., S&P 2019): per class, the smallest trigger that flips inputs to it.

For each target class ``t`` Neural Cleanse searches a *mask* ``m`` (one value in [0, 1]
per pixel, shared by the channels) and a *pattern* ``p`` (an input) such that stamping

    x' = (1 - m) * x + m * p

sends clean inputs to ``t``, while keeping the mask small:

    min_{m, p}  CE(f(x'), t) + cost * |m|_1

``m`` and ``p`` are optimised in tanh space (so they stay in range) with Adam, and
``cost`` follows the paper's reference code (github.com/bolunwang/backdoor,
``visualizer.py``): it starts at 0 (a plain targeted attack) and is set to ``init_cost``
once ``patience`` steps reached the attack-success threshold; from then on, after
``patience`` steps above the threshold it is multiplied by ``cost_multiplier``, after
``patience`` steps below it divided by ``cost_multiplier ** 1.5``. The candidate kept is
the one with the smallest ``|m|_1`` among the steps that reached the threshold, and the
search stops early once the cost has moved both ways and that norm has not improved for
``early_stop_patience`` steps. A backdoor's target class needs a much smaller mask than
the others; the *anomaly index* of a class is ``|norm - median| / MAD`` over the
classes' mask norms (MAD with the consistency constant 1.4826), and a class is flagged
when its norm is below the median and its index exceeds ``anomaly_threshold`` (2 in the
paper).

Backdoor smoothing (the paper's §5) uses the candidates another way: stamped onto clean
sets, does W see them as triggers? :meth:`NeuralCleanse.apply` stamps them.
"""

from __future__ import annotations

import functools
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._exceptions import NeuralCleanseWarning
from ._gradients import first_output, open_module
from ._inputs import check_input_range, check_input_shape, validate_fit_inputs, validate_inputs
from ._models import HoldsModel, output_kind
from ._progress import check_callback, issue, report

__all__ = ["NeuralCleanse", "anomaly_index"]

#: MAD's consistency constant for a normal distribution (the paper's 1.4826).
MAD_CONSISTENCY = 1.4826
_TANH_EPS = 1e-7


def anomaly_index(norms):
    """Neural Cleanse's anomaly index of each class: ``|norm - median| / (1.4826 MAD)``.

    Parameters
    ----------
    norms : array-like of shape (n_classes,)
        L1 norms of the classes' reverse-engineered masks.

    Returns
    -------
    index : ndarray of shape (n_classes,)
        NaN for every class when there are fewer than 3 norms or they have no spread
        (MAD 0): there is nothing to call anomalous then.

    Examples
    --------
    >>> from wobbledetect._cleanse import anomaly_index
    >>> anomaly_index([2.0, 30.0, 31.0, 29.0, 33.0, 30.0]).round(2)
    array([18.89,  0.  ,  0.67,  0.67,  2.02,  0.  ])
    """
    norms = np.asarray(norms, dtype=np.float64)
    median = np.median(norms) if len(norms) else np.nan
    mad = MAD_CONSISTENCY * np.median(np.abs(norms - median)) if len(norms) else np.nan
    if len(norms) < 3 or not mad > 0:
        return np.full(len(norms), np.nan)
    return np.abs(norms - median) / mad


class NeuralCleanse(HoldsModel, BaseEstimator):
    """Reverse-engineer, per class, the smallest trigger that sends clean inputs to it.

    Parameters
    ----------
    model : skorch net, torch.nn.Module, str, bytes or onnx.ModelProto
        The trained classifier, returning class scores (logits or probabilities). ONNX
        models are converted to torch with ``onnx2torch`` and checked against onnxruntime
        (:mod:`wobbledetect._gradients`); plain callables have no gradients and are
        refused. Held, not trained: ``fit`` never modifies it.
    input_shape : tuple of int or None, default=None
        Shape of one input; None takes ``X.shape[1:]``. For images ``(C, H, W)`` the mask
        is ``(H, W)``, shared by the channels (as in the paper); otherwise it has the
        input's shape.
    classes : array-like of int or None, default=None
        The target classes to reverse-engineer; None: all of them. The anomaly index
        compares the classes searched, so it needs at least 3.
    input_range : tuple of (float, float), default=(0.0, 1.0)
        The range of valid input values; the pattern stays inside it.
    init_cost : float, default=1e-3
        Weight of the mask's L1 norm in the loss once the attack first succeeds.
    learning_rate : float, default=0.1
        Adam's step size (betas 0.5, 0.9, as in the paper's code).
    max_steps : int, default=1000
        Most optimisation steps per class. The cost schedule and early stop count steps.
    batches_per_step : int, default=31
        Mini-batches per step, drawn in passes over ``X`` in a new order each pass (the
        reference code: 1,000 inputs / 32 = 31, whatever the size of ``X``).
    batch_size : int, default=32
    attack_success_threshold : float, default=0.99
        Share of stamped inputs that must go to the target for a candidate to count.
    patience : int, default=5
        Steps above (below) the threshold before the cost is raised (lowered).
    cost_multiplier : float, default=2.0
        Raise factor; the lowering factor is ``cost_multiplier ** 1.5``.
    early_stop_threshold : float, default=1.0
        The best norm must fall below this fraction of its last value to count as
        progress (1.0: any decrease).
    early_stop_patience : int, default=25
        Steps without progress (after the cost moved both ways) before stopping.
    anomaly_threshold : float, default=2.0
        Anomaly index above which a class with a below-median norm is flagged.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
    random_state : int, RandomState instance or None, default=None
        Seeds the initial masks and patterns and the order of the mini-batches.
    verbose : bool, default=False
        A progress bar over the classes.

    Attributes
    ----------
    classes_ : ndarray of int
        The classes searched, in order; rows of the arrays below.
    masks_ : ndarray of shape (n_searched, *mask_shape)
        The best mask per class, in [0, 1].
    patterns_ : ndarray of shape (n_searched, *input_shape_)
        The best pattern per class, inside ``input_range``.
    mask_norms_ : ndarray of shape (n_searched,)
        ``|m|_1`` of each mask: the size of the smallest trigger found for the class.
    attack_success_ : ndarray of shape (n_searched,)
        Share of ``X`` the final candidate sends to its class.
    reached_threshold_ : ndarray of bool, shape (n_searched,)
        Whether any step reached ``attack_success_threshold`` (else the last mask is kept).
    n_steps_ : ndarray of int, shape (n_searched,)
        Steps run per class.
    anomaly_index_ : ndarray of shape (n_searched,)
        :func:`anomaly_index` of the mask norms.
    flagged_classes_ : ndarray of int
        Classes whose norm is below the median and whose index exceeds
        ``anomaly_threshold``: the suspected backdoor targets.
    model_anomaly_index_ : float
        The anomaly index of the smallest mask norm, 0 if it is not below the median:
        Neural Cleanse's model-level score (the model is flagged above ``anomaly_threshold``).
    input_shape_ : tuple of int
    n_classes_ : int
        Classes the model scores.
    device_ : torch.device
    warnings_ : list of NeuralCleanseWarning
        The warnings this fit issued (also issued as Python warnings).

    See Also
    --------
    WobblinessTransformer : W of the stamped inputs, the paper's §5 use of the candidates.

    Notes
    -----
    Cost: ``n_steps * batches_per_step`` forward and backward passes of ``batch_size``
    inputs per class; early
    stopping usually ends a class well before ``max_steps``. The defaults are those of
    the reference code's GTSRB example (IBM ART's port uses ``cost_multiplier`` 1.5 and
    stops earlier, and resets the cost to ``init_cost`` whenever the attack succeeds;
    its Neural Cleanse is Keras-only, hence this one).

    Reference: B. Wang et al., "Neural Cleanse: Identifying and Mitigating Backdoor
    Attacks in Neural Networks", IEEE S&P 2019.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from wobbledetect import NeuralCleanse
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> X = np.random.RandomState(0).rand(64, 1, 4, 4).astype(np.float32)
    >>> nc = NeuralCleanse(net, max_steps=5, batches_per_step=2, random_state=0).fit(X)
    >>> nc.masks_.shape, nc.patterns_.shape, nc.classes_
    ((3, 4, 4), (3, 1, 4, 4), array([0, 1, 2]))
    >>> nc.apply(X[:2], target=1).shape
    (2, 1, 4, 4)
    """

    _parameter_constraints: dict = {
        "model": "no_validation",
        "input_shape": [tuple, list, None],
        "classes": ["array-like", None],
        "input_range": [tuple, list],
        "init_cost": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_steps": [Interval(Integral, 1, None, closed="left")],
        "batches_per_step": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "attack_success_threshold": [Interval(Real, 0, 1, closed="right")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "cost_multiplier": [Interval(Real, 1, None, closed="neither")],
        "early_stop_threshold": [Interval(Real, 0, 1, closed="right")],
        "early_stop_patience": [Interval(Integral, 1, None, closed="left")],
        "anomaly_threshold": [Interval(Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        model,
        *,
        input_shape=None,
        classes=None,
        input_range=(0.0, 1.0),
        init_cost=1e-3,
        learning_rate=0.1,
        max_steps=1000,
        batches_per_step=31,
        batch_size=32,
        attack_success_threshold=0.99,
        patience=5,
        cost_multiplier=2.0,
        early_stop_threshold=1.0,
        early_stop_patience=25,
        anomaly_threshold=2.0,
        device="auto",
        random_state=None,
        verbose=False,
    ):
        self.model = model
        self.input_shape = input_shape
        self.classes = classes
        self.input_range = input_range
        self.init_cost = init_cost
        self.learning_rate = learning_rate
        self.max_steps = max_steps
        self.batches_per_step = batches_per_step
        self.batch_size = batch_size
        self.attack_success_threshold = attack_success_threshold
        self.patience = patience
        self.cost_multiplier = cost_multiplier
        self.early_stop_threshold = early_stop_threshold
        self.early_stop_patience = early_stop_patience
        self.anomaly_threshold = anomaly_threshold
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y=None, *, callback=None):
        """Reverse-engineer a trigger candidate for each class on the clean inputs ``X``.

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)
            Clean inputs in the model's input space (a few hundred suffice; their labels
            are not needed).
        y : None
            Ignored.
        callback : callable or None, default=None
            Called as ``callback(FitProgress("cleanse", done, total))`` after every
            optimisation step (``done``: classes finished) and once per finished class;
            an exception it raises stops the fit.

        Returns
        -------
        self : NeuralCleanse
        """
        self._validate_params()
        check_callback(callback)
        low, high = check_input_range(self.input_range)
        input_shape = check_input_shape(self.input_shape)
        inputs, input_shape = validate_fit_inputs(self, X, input_shape)
        module, device, scores, self.n_classes_ = open_module(self.model, self.device, inputs)
        batch = torch.from_numpy(inputs).to(device)
        self.outputs_ = output_kind(scores)
        self.classes_ = self._classes()
        self.input_shape_ = tuple(input_shape)
        self.device_ = device
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=len(self.classes_))

        masks, patterns, steps, reached = [], [], [], []
        targets = self.classes_
        if self.verbose:
            from tqdm.auto import tqdm

            targets = tqdm(targets, desc="Neural Cleanse", unit="class")
        self.warnings_ = []
        total = len(self.classes_)
        for done, (target, seed) in enumerate(zip(targets, seeds)):
            step_done = functools.partial(report, callback, "cleanse", done, total)
            mask, pattern, n_steps, ok = self._search(module, batch, int(target), int(seed), low, high,
                                                      step_done)
            report(callback, "cleanse", done + 1, total)
            masks.append(mask)
            patterns.append(pattern)
            steps.append(n_steps)
            reached.append(ok)
        self.masks_ = np.stack(masks)
        self.patterns_ = np.stack(patterns)
        self.n_steps_ = np.asarray(steps)
        self.reached_threshold_ = np.asarray(reached)
        self.mask_norms_ = np.abs(self.masks_).reshape(len(masks), -1).sum(axis=1).astype(np.float64)
        self.attack_success_ = np.array([
            self._success(module, batch, k) for k in range(len(self.classes_))
        ])
        self._rank()
        return self

    def apply(self, X, target):
        """Stamp class ``target``'s candidate onto ``X``: ``(1 - m) * x + m * p``.

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)
        target : int
            One of :attr:`classes_`.

        Returns
        -------
        ndarray of float32, the shape of ``X``
        """
        check_is_fitted(self)
        matches = np.flatnonzero(self.classes_ == target)
        if isinstance(target, bool) or not isinstance(target, (Integral, np.integer)) or not len(matches):
            raise ValueError(
                f"The 'target' parameter must be one of the classes searched, {self.classes_.tolist()}; "
                f"got {target!r}."
            )
        inputs, lead_shape = validate_inputs(self, X, self.input_shape_)
        k = matches[0]
        mask = self._broadcast_mask(self.masks_[k])
        stamped = (1 - mask) * inputs + mask * self.patterns_[k]
        return stamped.astype(np.float32).reshape(*lead_shape, *self.input_shape_)

    # -- internals -------------------------------------------------------------------

    def _classes(self):
        if self.classes is None:
            return np.arange(self.n_classes_)
        classes = np.asarray(self.classes)
        if (classes.ndim != 1 or not len(classes) or classes.dtype.kind not in "iu"
                or (classes < 0).any() or (classes >= self.n_classes_).any()
                or len(np.unique(classes)) != len(classes)):
            raise ValueError(
                f"The 'classes' parameter must list distinct class indices from 0 to "
                f"{self.n_classes_ - 1} (the model scores {self.n_classes_} classes); got {self.classes!r}."
            )
        return classes.astype(np.int64)

    def _mask_shape(self):
        return self.input_shape_[1:] if len(self.input_shape_) == 3 else self.input_shape_

    def _broadcast_mask(self, mask):
        return mask[None] if len(self.input_shape_) == 3 else mask

    def _search(self, module, X, target, seed, low, high, step_done):
        """One class: the paper's optimisation with its cost schedule and early stop."""
        generator = torch.Generator().manual_seed(seed)
        device = X.device
        mask_shape = self._mask_shape()

        def to_tanh(unit):  # [0, 1] -> tanh space
            return torch.atanh((unit - 0.5) * (2 - _TANH_EPS))

        mask_tanh = to_tanh(torch.rand(mask_shape, generator=generator)).to(device).requires_grad_(True)
        pattern_tanh = to_tanh(torch.rand(self.input_shape_, generator=generator)).to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([mask_tanh, pattern_tanh], lr=self.learning_rate, betas=(0.5, 0.9))
        labels = torch.full((len(X),), target, device=device)

        def candidate():
            mask = torch.tanh(mask_tanh) / (2 - _TANH_EPS) + 0.5
            pattern = low + (high - low) * (torch.tanh(pattern_tanh) / (2 - _TANH_EPS) + 0.5)
            return mask, pattern

        cost = 0.0  # the reference code's reset_cost_to_zero
        up, down = float(self.cost_multiplier), float(self.cost_multiplier) ** 1.5
        best_norm, best = np.inf, None
        set_counter = up_counter = down_counter = stop_counter = 0
        up_flag = down_flag = False
        stop_best = np.inf
        step = 0
        batches = _batches(len(X), int(self.batch_size), generator, device)
        for step in range(1, int(self.max_steps) + 1):
            hits, norms, seen = 0, [], 0
            for _ in range(int(self.batches_per_step)):
                index = next(batches)
                seen += len(index)
                mask, pattern = candidate()
                m = self._broadcast_mask(mask)
                scores = first_output(module((1 - m) * X[index] + m * pattern))
                log_p = torch.log(scores.clamp_min(1e-12)) if self.outputs_ == "probabilities" else torch.log_softmax(scores, 1)
                norm = mask.abs().sum()
                loss = torch.nn.functional.nll_loss(log_p, labels[index]) + cost * norm
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                hits += int((scores.argmax(1) == target).sum())
                norms.append(norm.detach().item())
            success, norm = hits / seen, float(np.mean(norms))
            step_done()

            if success >= self.attack_success_threshold and norm < best_norm:
                mask, pattern = candidate()
                best = (mask.detach().cpu().numpy(), pattern.detach().cpu().numpy())
                best_norm = norm
            if best_norm < np.inf:  # early stop, as in the paper's code
                stop_counter = stop_counter + 1 if best_norm >= self.early_stop_threshold * stop_best else 0
            stop_best = min(best_norm, stop_best)
            if up_flag and down_flag and stop_counter >= self.early_stop_patience:
                break

            if cost == 0 and success >= self.attack_success_threshold:
                set_counter += 1
                if set_counter >= self.patience:  # the attack works: start shrinking the mask
                    cost = float(self.init_cost)
                    up_counter = down_counter = 0
                    up_flag = down_flag = False
            else:
                set_counter = 0
            if success >= self.attack_success_threshold:
                up_counter, down_counter = up_counter + 1, 0
            else:
                up_counter, down_counter = 0, down_counter + 1
            if up_counter >= self.patience:
                up_counter, cost, up_flag = 0, cost * up, True
            elif down_counter >= self.patience:
                down_counter, cost, down_flag = 0, cost / down, True

        reached = best is not None
        if not reached:
            mask, pattern = candidate()
            best = (mask.detach().cpu().numpy(), pattern.detach().cpu().numpy())
        return best[0], best[1], step, reached

    def _success(self, module, X, k):
        mask = torch.from_numpy(self._broadcast_mask(self.masks_[k])).to(X.device)
        pattern = torch.from_numpy(self.patterns_[k]).to(X.device)
        hits = 0
        with torch.no_grad():
            for start in range(0, len(X), 1024):
                scores = first_output(module((1 - mask) * X[start:start + 1024] + mask * pattern))
                hits += int((scores.argmax(1) == int(self.classes_[k])).sum())
        return hits / len(X)

    def _rank(self):
        missed = self.classes_[~self.reached_threshold_]
        if len(missed):
            issue(self.warnings_, NeuralCleanseWarning(
                f"Neural Cleanse found no candidate reaching attack success "
                f"{self.attack_success_threshold} for class(es) {missed.tolist()} in "
                f"{self.max_steps} steps; their last mask is kept (its success is in "
                "attack_success_). Raise max_steps, or lower attack_success_threshold."),
                stacklevel=3,
            )
        self.anomaly_index_ = anomaly_index(self.mask_norms_)
        median = np.median(self.mask_norms_)
        if np.isnan(self.anomaly_index_).all():
            issue(self.warnings_, NeuralCleanseWarning(
                f"Neural Cleanse's anomaly index is undefined: {len(self.classes_)} class(es) "
                "searched, whose mask norms have no spread or are fewer than 3; it is NaN and "
                "no class is flagged. Search at least 3 classes (classes=None searches all)."),
                stacklevel=3,
            )
            self.flagged_classes_ = np.array([], dtype=np.int64)
            self.model_anomaly_index_ = np.nan
            return
        below = self.mask_norms_ < median
        self.flagged_classes_ = self.classes_[below & (self.anomaly_index_ > self.anomaly_threshold)]
        smallest = int(np.argmin(self.mask_norms_))
        self.model_anomaly_index_ = float(self.anomaly_index_[smallest]) if below[smallest] else 0.0


def _batches(n, batch_size, generator, device):
    """Mini-batches of indices, endlessly: each pass over ``range(n)`` in a new order."""
    while True:
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]
