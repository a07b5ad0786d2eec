"""Is this model backdoored, and towards which class? Screening without any trigger (§5).

A defender who receives a model has clean data and nothing else: no trigger, no
triggered inputs, no labels of what is poisoned. :class:`ModelScreen` combines the two
trigger-free signals of the paper's §5:

1. **Neural Cleanse** (:class:`~wobbledetect.NeuralCleanse`) crafts one trigger
   candidate per class on half of the clean data; a backdoor's target needs a much
   smaller mask than the other classes (NC's anomaly index).
2. **Backdoor smoothing** of the candidates: each class's candidate is stamped onto
   clean sets drawn from the other half, W of those sets is compared with clean
   reference sets by the Levene test (:class:`~wobbledetect.LeveneBackdoorDetector`,
   both directions), and the classes are compared with each other: the paper finds
   that *every* NC candidate gives a low p-value (smoothing is not unique to
   backdoors), so what can single out a target is a candidate *smoother than the other
   classes'* candidates.

Per class the screen reports the mask norm, NC's anomaly index, the candidate's attack
success, the Levene p-values and signed scores of its stamped sets, and a *smoothing
index* -- the same MAD rule as NC's, on the classes' median Levene scores (positive:
smoother than the other classes). The *combined index* is the mean of the two signed
indices (the one that is defined, where the other has no spread to measure); the model is flagged when its largest combined index exceeds
``anomaly_threshold``, and that class is the suspected target. Whether W adds to NC is
what ``docs/results.md`` measures over a zoo of clean and backdoored nets: NC's smallest
mask names a working backdoor's target on every net there, but at the threshold 2 NC's
index flagged 6 of 10 clean Fashion-MNIST nets and the combined index 3 of 10 (1 of 10
each on digits), so read ``backdoored_`` as a reason to look closer, not as a verdict.

Sigma without triggered examples (``sigma="auto"``): the smallest sigma of the grid at
which at most ``max_zero_share`` of the clean reference's W are exactly 0. Below it the
reference has too little spread for the Levene test -- W mostly 0 is the regime in which
the test flags about half of all clean sets (issue 15) -- and above it the noise erases
more and more of what the model does. The rule looks at clean W only.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._cleanse import MAD_CONSISTENCY, NeuralCleanse
from ._exceptions import DegenerateWobblinessWarning, WobbledetectWarning
from ._inputs import check_input_shape, validate_fit_inputs
from ._levene import LeveneBackdoorDetector
from ._models import HoldsModel, make_predictor
from ._progress import check_callback, issue, report
from ._screen_report import TABLE_COLUMNS, format_report
from ._wobbliness import WobblinessTransformer

__all__ = ["ModelScreen", "screen_models", "signed_anomaly_index", "SIGMAS", "TABLE_COLUMNS"]

#: The default sigma grid (the lab's, for inputs in [0, 1]).
SIGMAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def signed_anomaly_index(values):
    """``(values - median) / (1.4826 MAD)``: NC's anomaly index with its sign kept.

    Parameters
    ----------
    values : array-like of shape (n_classes,)

    Returns
    -------
    index : ndarray of shape (n_classes,)
        NaN everywhere when there are fewer than 3 values or no spread (MAD 0).

    Examples
    --------
    >>> from wobbledetect._screening import signed_anomaly_index
    >>> signed_anomaly_index([1.0, 2.0, 3.0, 10.0]).round(2)
    array([-1.01, -0.34,  0.34,  5.06])
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 3:
        return np.full(len(values), np.nan)
    median = np.median(values)
    mad = MAD_CONSISTENCY * np.median(np.abs(values - median))
    if not mad > 0:
        return np.full(len(values), np.nan)
    return (values - median) / mad


class ModelScreen(HoldsModel, BaseEstimator):
    """Screen a model for a backdoor from clean inputs alone: NC candidates and their W.

    Parameters
    ----------
    model : skorch net, torch.nn.Module, str, bytes or onnx.ModelProto
        The trained classifier (gradients are needed: see :class:`NeuralCleanse`).
    sigma : float or "auto", default="auto"
        The noise scale of W; ``"auto"``: the clean-W rule of the module docstring.
    sigmas : tuple of float, default=SIGMAS
        The grid ``"auto"`` searches, smallest first.
    max_zero_share : float, default=0.5
        ``"auto"`` takes the smallest sigma whose clean reference has at most this share
        of W exactly 0.
    n_samples : int, default=250
        Noisy copies per input (the paper's n).
    set_size : int, default=25
        Inputs per set (the paper's batch).
    n_sets : int, default=10
        Sets per class candidate, and clean reference and clean null sets.
    alpha : float, default=0.05
        Level at which a stamped set counts as smoother or wobblier (``*_share``).
    anomaly_threshold : float, default=2.0
        The combined index above which the model is flagged (NC's threshold). Clean
        nets can exceed it: 3 of 10 clean Fashion-MNIST nets did in ``docs/results.md``.
    cleanse : NeuralCleanse or None, default=None
        Neural Cleanse's settings (its ``model``, ``input_shape``, ``device`` and
        ``random_state`` are set from this screen's); None: the defaults.
    input_shape : tuple of int or None, default=None
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
    random_state : int, RandomState instance or None, default=None
        Seeds the split of ``X``, the sets, Neural Cleanse and the noise.
    verbose : bool, default=False

    Attributes
    ----------
    cleanse_ : NeuralCleanse
        The fitted Neural Cleanse.
    sigma_ : float
        The sigma used.
    zero_share_ : dict of str to float
        Share of the clean reference's W exactly 0, per sigma looked at by ``"auto"``.
    table_ : dict of str to ndarray
        One row per class, the columns of :data:`TABLE_COLUMNS`.
    null_scores_ : ndarray of shape (n_sets,)
        Signed Levene scores of the clean null sets (what a clean set scores).
    score_ : float
        The largest combined index: the model's score (higher: more suspicious).
    suspected_class_ : int
        The class with the largest combined index.
    backdoored_ : bool
        ``score_ > anomaly_threshold``.
    n_classes_ : int
    input_shape_ : tuple of int
    warnings_ : list of WobbledetectWarning
        Every warning this fit issued, Neural Cleanse's included (also issued as Python
        warnings): what a server sends on to its client.

    Notes
    -----
    The columns of ``table_``: ``mask_norm`` (NC's ``|m|_1``); ``nc_anomaly_index``, NC's
    index *signed*, positive for a mask smaller than the median (NC's ``anomaly_index_``
    is its absolute value); ``nc_flagged`` (NC's own rule); ``attack_success`` of the
    candidate on the crafting half; ``median_W`` of the stamped sets; their median
    Levene ``median_p`` against the clean reference; ``untested_sets``, how many of the
    class's ``n_sets`` stamped sets the test could not judge (W without spread, p NaN,
    score 0; a warning names them); ``smoother_share`` and
    ``wobblier_share``, the share of stamped sets flagged in each direction at
    ``alpha``; ``levene_score``, the median signed ``-log10 p`` (positive: smoother
    than clean; compare ``null_scores_``); ``smoothing_index``, the signed MAD index of
    ``levene_score`` over the classes; ``combined_index``, the mean of the two indices
    (either alone where the other is NaN).

    Cost: Neural Cleanse (see :class:`NeuralCleanse`) plus ``n_samples`` forwards for
    each input of ``(n_classes + 2) * n_sets`` sets, and of the reference once per sigma
    that ``"auto"`` looks at.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from wobbledetect import ModelScreen, NeuralCleanse
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> X = np.random.RandomState(0).rand(120, 1, 4, 4).astype(np.float32)
    >>> screen = ModelScreen(net, n_samples=20, set_size=5, n_sets=3, random_state=0,
    ...                      cleanse=NeuralCleanse(net, max_steps=5, batches_per_step=2))
    >>> import warnings
    >>> with warnings.catch_warnings():  # a tiny run: NC's candidates fall short
    ...     warnings.simplefilter("ignore")
    ...     screen = screen.fit(X)
    >>> screen.table_["class"], screen.sigma_ in screen.sigmas
    (array([0, 1, 2]), True)
    """

    _parameter_constraints: dict = {
        "model": "no_validation",
        "sigma": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "sigmas": [tuple, list],
        "max_zero_share": [Interval(Real, 0, 1, closed="both")],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "set_size": [Interval(Integral, 3, None, closed="left")],
        "n_sets": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, 1, closed="neither")],
        "anomaly_threshold": [Interval(Real, 0, None, closed="left")],
        "cleanse": [NeuralCleanse, None],
        "input_shape": [tuple, list, None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        model,
        *,
        sigma="auto",
        sigmas=SIGMAS,
        max_zero_share=0.5,
        n_samples=250,
        set_size=25,
        n_sets=10,
        alpha=0.05,
        anomaly_threshold=2.0,
        cleanse=None,
        input_shape=None,
        device="auto",
        random_state=None,
        verbose=False,
    ):
        self.model = model
        self.sigma = sigma
        self.sigmas = sigmas
        self.max_zero_share = max_zero_share
        self.n_samples = n_samples
        self.set_size = set_size
        self.n_sets = n_sets
        self.alpha = alpha
        self.anomaly_threshold = anomaly_threshold
        self.cleanse = cleanse
        self.input_shape = input_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y=None, *, callback=None):
        """Craft the candidates on half of ``X``, test their W on sets from the other half.

        Parameters
        ----------
        X : array-like of shape (n_inputs, *input_shape)
            Clean inputs (no labels needed). Half go to Neural Cleanse; the other half
            must hold at least ``3 * n_sets * set_size`` inputs for disjoint reference,
            null and candidate sets (candidate sets avoid inputs the model already puts
            in the candidate's class).
        y : None
            Ignored.
        callback : callable or None, default=None
            Called with a :class:`~wobbledetect.FitProgress` as the work goes on: the
            ``"cleanse"`` stage (see :meth:`NeuralCleanse.fit`), then ``"sigma"`` once
            per sigma whose clean reference W is measured, then ``"wobbliness"`` once per
            group of sets measured (the clean null sets, then each class's stamped
            sets). An exception it raises stops the fit.

        Returns
        -------
        self : ModelScreen
        """
        self._validate_params()
        check_callback(callback)
        sigmas = self._sigmas()
        inputs, self.input_shape_ = validate_fit_inputs(self, X, check_input_shape(self.input_shape))
        rng = check_random_state(self.random_state)
        order = rng.permutation(len(inputs))
        half = len(inputs) // 2
        crafting, pool = inputs[order[:half]], inputs[order[half:]]
        needed = 3 * int(self.n_sets) * int(self.set_size)
        if len(pool) < needed:
            raise ValueError(
                f"X holds {len(inputs)} inputs; ModelScreen uses half of them for sets and "
                f"needs {needed} there (3 x n_sets={self.n_sets} x set_size={self.set_size}): "
                f"pass at least {2 * needed} clean inputs, or lower n_sets or set_size."
            )
        seed = int(rng.randint(np.iinfo(np.int32).max))

        cleanse = clone(self.cleanse) if self.cleanse is not None else NeuralCleanse(self.model)
        cleanse.set_params(model=self.model, input_shape=self.input_shape_, device=self.device,
                           random_state=seed, verbose=self.verbose)
        self.cleanse_ = cleanse.fit(crafting, callback=callback)
        self.warnings_ = list(self.cleanse_.warnings_)
        self.n_classes_ = self.cleanse_.n_classes_

        predictor = make_predictor(self.model, self.device)
        with torch.no_grad():
            predicted = np.concatenate([
                predictor.predict_classes(torch.from_numpy(pool[i:i + 1024]).to(predictor.device)).cpu().numpy()
                for i in range(0, len(pool), 1024)
            ])
        size, n_sets = int(self.set_size), int(self.n_sets)
        shuffled = rng.permutation(len(pool))
        reference = pool[shuffled[:n_sets * size]].reshape(n_sets, size, *self.input_shape_)
        null = pool[shuffled[n_sets * size:2 * n_sets * size]].reshape(n_sets, size, *self.input_shape_)
        rest = shuffled[2 * n_sets * size:]
        stamped = []
        for k in self.cleanse_.classes_:
            others = rest[predicted[rest] != k]
            if len(others) < size:
                others = rest  # the model puts (almost) everything in k: take what there is
            chosen = rng.choice(others, size=n_sets * size, replace=len(others) < n_sets * size)
            stamped.append(self.cleanse_.apply(pool[chosen].reshape(n_sets, size, *self.input_shape_), int(k)))

        self._wobbliness = WobblinessTransformer(
            self.model, sigma=float(sigmas[0]), n_samples=int(self.n_samples),
            input_shape=self.input_shape_, device=self.device, random_state=seed,
            verbose=bool(self.verbose)).fit(reference[:1])
        self._sets = (reference, null, stamped)
        self.sigma_, self.zero_share_, W_reference = self._choose_sigma(
            self._wobbliness, reference, sigmas, callback)
        self.table_, self.null_scores_, untested_null = self._tables(self.sigma_, W_reference, callback)
        untested = self.table_["untested_sets"]
        classes = self.table_["class"]
        if (untested == n_sets).any():
            issue(self.warnings_, DegenerateWobblinessWarning(
                f"ModelScreen: at sigma {self.sigma_:g}, none of the stamped sets of class(es) "
                f"{classes[untested == n_sets].tolist()} could be tested (their W, or the "
                "reference's, has no spread: p is NaN, and their levene_score counts as 0, no "
                "evidence). A larger sigma gives W spread."))
        some = (untested > 0) & (untested < n_sets)
        if some.any() or untested_null:
            parts = [f"{n} of the {n_sets} stamped sets of class {k}"
                     for k, n in zip(classes[some].tolist(), untested[some].tolist())]
            parts += [f"{untested_null} of the {n_sets} clean null sets"] if untested_null else []
            issue(self.warnings_, DegenerateWobblinessWarning(
                f"ModelScreen: at sigma {self.sigma_:g}, the Levene test could not judge "
                + "; ".join(parts) + " (W without spread: p is NaN, and such a set's score "
                "counts as 0, no evidence, in the medians). table_['untested_sets'] counts the "
                "stamped ones per class. A larger sigma gives W spread."))
        if np.isnan(self.table_["smoothing_index"]).all() and not np.isnan(
                self.table_["nc_anomaly_index"]).all():
            issue(self.warnings_, WobbledetectWarning(
                "ModelScreen's smoothing index is undefined (the classes' Levene scores have "
                "no spread, or fewer than 3 classes were searched): the combined index is "
                "Neural Cleanse's alone."))
        combined = self.table_["combined_index"]
        if np.isnan(combined).all():
            issue(self.warnings_, WobbledetectWarning(
                "ModelScreen's combined index is undefined (neither the classes' mask norms nor "
                "their Levene scores have spread, or fewer than 3 classes were searched); "
                "the model is not flagged."))
            self.score_, self.suspected_class_, self.backdoored_ = np.nan, -1, False
        else:
            best = int(np.nanargmax(combined))
            self.score_ = float(combined[best])
            self.suspected_class_ = int(self.table_["class"][best])
            self.backdoored_ = bool(self.score_ > self.anomaly_threshold)
        return self

    def rescore(self, sigma):
        """The per-class table at another sigma: same candidates and sets, W measured again.

        Neural Cleanse is not run again, so a sweep over sigma costs W alone.

        Parameters
        ----------
        sigma : float

        Returns
        -------
        table : dict of str to ndarray
            As :attr:`table_`.
        null_scores : ndarray of shape (n_sets,)
            As :attr:`null_scores_`.
        """
        check_is_fitted(self)
        if isinstance(sigma, bool) or not isinstance(sigma, Real) or not sigma > 0:
            raise ValueError(f"The 'sigma' parameter must be a positive float; got {sigma!r}.")
        table, null_scores, _ = self._tables(float(sigma))
        return table, null_scores

    def report(self):
        """The per-class table as text, most suspicious class first, and the verdict.

        Returns
        -------
        str
        """
        check_is_fitted(self)
        return format_report(self.table_, self.null_scores_, sigma=self.sigma_,
                             score=self.score_, suspected_class=self.suspected_class_,
                             backdoored=self.backdoored_, anomaly_threshold=self.anomaly_threshold)

    # -- internals -------------------------------------------------------------------

    def _sigmas(self):
        sigmas = self.sigmas
        try:
            sigmas = tuple(float(s) for s in sigmas)
        except (TypeError, ValueError):
            sigmas = ()
        if not sigmas or not all(np.isfinite(s) and s > 0 for s in sigmas) or list(sigmas) != sorted(sigmas):
            raise ValueError(
                "The 'sigmas' parameter must be a non-empty, increasing sequence of positive "
                f"noise scales, e.g. (0.05, 0.1, 0.2); got {self.sigmas!r}."
            )
        return sigmas if self.sigma == "auto" else (float(self.sigma),)

    def _tables(self, sigma, W_reference=None, callback=None):
        reference, null, stamped = self._sets
        wob = self._wobbliness.set_params(sigma=sigma)
        if W_reference is None:
            W_reference = wob.transform(reference)
        W_groups = []
        for group in (null, *stamped):
            W_groups.append(wob.transform(group))
            report(callback, "wobbliness", len(W_groups), 1 + len(stamped))
        W_null, *W_stamped = W_groups
        with warnings.catch_warnings():
            # A candidate whose stamped sets have W all 0 is reported in the table
            # (median_W 0, p NaN); the per-set warnings would come by the hundred.
            warnings.simplefilter("ignore", WobbledetectWarning)
            smoother = LeveneBackdoorDetector(alpha=self.alpha, direction="smoother").fit(W_reference)
            wobblier = LeveneBackdoorDetector(alpha=self.alpha, direction="wobblier").fit(W_reference)
            null_scores = smoother.score_samples(W_null)
            untested_null = int(np.count_nonzero(np.isnan(smoother.p_values(W_null))))
            rows = [self._row(smoother, wobblier, W) for W in W_stamped]
        return self._table(rows), null_scores, untested_null

    def _choose_sigma(self, wob, reference, sigmas, callback):
        zero_share = {}
        for done, sigma in enumerate(sigmas, start=1):
            wob.set_params(sigma=sigma)
            W = wob.transform(reference)
            report(callback, "sigma", done, len(sigmas))
            zero_share[repr(sigma)] = float(np.mean(W == 0))
            if self.sigma != "auto" or zero_share[repr(sigma)] <= self.max_zero_share:
                return sigma, zero_share, W
        issue(self.warnings_, WobbledetectWarning(
            f"sigma='auto' found no sigma in {list(sigmas)} at which at most "
            f"{self.max_zero_share} of the clean W are 0 (at {sigmas[-1]}: "
            f"{zero_share[repr(sigmas[-1])]:.2f}); using {sigmas[-1]}. Extend 'sigmas' upwards."),
            stacklevel=3)
        return sigmas[-1], zero_share, W

    def _row(self, smoother, wobblier, W):
        p = smoother.p_values(W)
        score = smoother.score_samples(W)
        return {
            "median_W": float(np.median(W)),
            "median_p": float(np.nanmedian(p)) if np.isfinite(p).any() else np.nan,
            "untested_sets": int(np.count_nonzero(np.isnan(p))),
            "smoother_share": float(np.mean(smoother.predict(W) == 1)),
            "wobblier_share": float(np.mean(wobblier.predict(W) == 1)),
            "levene_score": float(np.median(score)),
        }

    def _table(self, rows):
        nc = self.cleanse_
        table = {"class": nc.classes_.copy(), "mask_norm": nc.mask_norms_.copy(),
                 # signed: positive for a mask smaller than the other classes'
                 "nc_anomaly_index": -signed_anomaly_index(nc.mask_norms_),
                 "nc_flagged": np.isin(nc.classes_, nc.flagged_classes_),
                 "attack_success": nc.attack_success_.copy()}
        for column in ("median_W", "median_p", "untested_sets", "smoother_share", "wobblier_share",
                       "levene_score"):
            table[column] = np.array([row[column] for row in rows])
        table["smoothing_index"] = signed_anomaly_index(table["levene_score"])
        both = np.vstack([table["nc_anomaly_index"], table["smoothing_index"]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # both NaN: NaN, said in fit
            table["combined_index"] = np.nanmean(both, axis=0)
        return table


def screen_models(models, X, *, screen=None, scheduler=None, log=print):
    """Screen many models with one :class:`ModelScreen` each: here, or as Dask tasks.

    Parameters
    ----------
    models : list of models
        Anything :class:`ModelScreen` takes (ONNX paths or bytes travel best to remote
        workers; torch modules and skorch nets are pickled).
    X : array-like of shape (n_inputs, *input_shape)
        The clean inputs every model is screened on.
    screen : ModelScreen or None, default=None
        The settings (its ``model`` is replaced by each model); None: the defaults with
        ``random_state=0``. Give ``random_state`` an int for results that do not depend on
        where a screen runs.
    scheduler : str, int or None, default=None
        None: one model after the other, here. A Dask scheduler's address or a number of
        local worker processes: one task per model (the ``[dask]`` extra); torch in each
        task runs on this process's number of threads, so that every screen is the one
        the serial call gives.
    log : callable, default=print
        Progress lines of the Dask run.

    Returns
    -------
    list of ModelScreen
        Fitted, in the order of ``models``.

    Examples
    --------
    >>> import numpy as np, torch, warnings
    >>> from wobbledetect import ModelScreen, NeuralCleanse, screen_models
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> nets = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)) for _ in range(2)]
    >>> X = np.random.RandomState(0).rand(120, 1, 4, 4).astype(np.float32)
    >>> settings = ModelScreen(None, n_samples=20, set_size=5, n_sets=3, random_state=0,
    ...                        cleanse=NeuralCleanse(None, max_steps=5, batches_per_step=2))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     screens = screen_models(nets, X, screen=settings)
    >>> [s.table_["class"].tolist() for s in screens]
    [[0, 1, 2], [0, 1, 2]]
    """
    from ._dask import check_scheduler, run_tasks

    template = clone(screen) if screen is not None else ModelScreen(None, random_state=0)
    if not isinstance(template, ModelScreen):
        raise TypeError(f"The 'screen' parameter must be a ModelScreen or None; got {type(screen).__name__}.")
    models = list(models)
    if check_scheduler(scheduler) is None:
        return [_screen_one(template, model, X, None) for model in models]
    threads = torch.get_num_threads()
    return run_tasks(scheduler, _screen_one, [(template, model, X, threads) for model in models],
                     log=log, what="model screen")


def _screen_one(template, model, X, threads):
    """One model's screen (a Dask task when ``threads`` is set: torch as the client's)."""
    if threads is not None:
        from ._dask import torch_threads

        torch_threads(threads)
    return clone(template).set_params(model=model).fit(X)
