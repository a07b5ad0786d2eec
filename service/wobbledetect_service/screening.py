"""The computations behind the RPCs: the library's estimators, run in chunks of inputs.

Nothing statistical happens here: W comes from :class:`wobbledetect.WobblinessTransformer`
(its ``vote_counts``, and :func:`wobbledetect.vote_entropy` on them, which is what its
``transform`` does), the verdicts from :class:`wobbledetect.LeveneBackdoorDetector`. What
this module adds is the *chunking*: inputs go through ``vote_counts`` a few at a time,
and the generators yield a :class:`Progress` after each chunk, so the caller can stream
progress and stop computing as soon as its client is gone (closing the generator stops
it). Chunking is exact: the noise of an input is keyed by ``(seed, the input's bytes)``,
so its votes do not depend on which other inputs share its batch.

Seeds: every input of a request is computed with ``random_state=seed``. The library in
process gives the same numbers::

    wob = WobblinessTransformer(onnx_bytes, sigma=sigma, n_samples=n_samples,
                                random_state=seed).fit(clean)
    W_clean, W_candidate = wob.transform(clean).ravel(), wob.transform(candidate).ravel()
    detector = LeveneBackdoorDetector(alpha=alpha, direction=direction).fit(W_clean[None])
    detector.p_values(W_candidate[None])

Candidate sets of different sizes are padded with NaN to a common width, the detector's
convention for smaller sets (the reference pools the clean values whatever the width).

A model screen (:func:`iter_model_screen`) is one call of
:meth:`wobbledetect.ModelScreen.fit`, which reports its progress through a callback
rather than by yielding; it runs in a worker thread whose callback hands each report
over to the generator, and stops the fit (by raising) once the generator is closed or
the client has gone away.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from sklearn.frozen import FrozenEstimator

from wobbledetect import (
    ConformalDetector,
    FitProgress,
    LeveneBackdoorDetector,
    ModelScreen,
    WobblinessTransformer,
    vote_entropy,
)

from .admission import Abandoned

__all__ = [
    "Progress",
    "WobblinessOutcome",
    "CandidateOutcome",
    "ScreenOutcome",
    "iter_wobbliness",
    "iter_screen",
    "iter_model_screen",
    "summarize",
]


@dataclass(frozen=True)
class Progress:
    """``inputs_done`` of ``inputs_total`` inputs have their W."""

    inputs_done: int
    inputs_total: int


@dataclass(frozen=True)
class WobblinessOutcome:
    """W (eq. 3) and vote counts (eq. 2) of a flat batch of inputs."""

    wobbliness: np.ndarray  # (n_inputs,)
    counts: np.ndarray  # (n_inputs, n_classes)
    device: str


@dataclass(frozen=True)
class CandidateOutcome:
    """The detector's judgement of one candidate set."""

    p_value: float
    score: float
    triggered: bool
    wobbliness: np.ndarray
    calibrated_p_value: float | None = None


@dataclass(frozen=True)
class ScreenOutcome:
    """Everything a screen returns."""

    clean_wobbliness: np.ndarray
    candidates: list
    n_reference: int
    n_reference_outliers: int
    device: str
    warnings: list  # the library's warnings (``row``: candidate index, None: the reference)
    n_calibration: int = 0


def iter_wobbliness(
    model, X, *, sigma, n_samples, seed, device, input_shape, chunk_forwards,
) -> Iterator[Progress | WobblinessOutcome]:
    """W of every row of ``X`` (shape ``(n_inputs, *input_shape)``), chunk by chunk.

    Yields a :class:`Progress` after each chunk and finally one :class:`WobblinessOutcome`.
    """
    wob = WobblinessTransformer(
        model, sigma=sigma, n_samples=n_samples, random_state=seed, device=device,
        input_shape=input_shape,
    ).fit(X[:2])
    step = max(1, chunk_forwards // n_samples)
    counts = []
    for start in range(0, len(X), step):
        counts.append(wob.vote_counts(X[start : start + step]))
        yield Progress(min(start + step, len(X)), len(X))
    counts = np.concatenate(counts)
    W = vote_entropy(counts, estimator=wob.entropy)
    yield WobblinessOutcome(W, counts, str(wob.device_))


def iter_screen(
    model, clean, candidates, *, sigma, n_samples, seed, alpha, direction, device,
    input_shape, chunk_forwards, calibration=(),
) -> Iterator[Progress | ScreenOutcome]:
    """Screen each candidate set against the clean set; yields progress, then the outcome.

    Parameters
    ----------
    model : bytes
        The ONNX model.
    clean : ndarray of shape (n_clean, *input_shape)
    candidates : list of ndarray of shape (set_size_i, *input_shape)
    sigma, n_samples, seed
        Passed to :class:`~wobbledetect.WobblinessTransformer` (``seed`` as
        ``random_state``).
    alpha, direction
        Passed to :class:`~wobbledetect.LeveneBackdoorDetector`.
    device : str
        Where the model runs (``"auto"``: CUDA when present).
    input_shape : tuple of int
    chunk_forwards : int
        About how many forward passes between two progress events.
    calibration : list of ndarray of shape (set_size_i, *input_shape)
        Held-out clean sets: the detector's scores of them calibrate a conformal p-value
        of each candidate (:class:`~wobbledetect.ConformalDetector` around the fitted
        detector, frozen), as in process::

            conformal = ConformalDetector(FrozenEstimator(detector), alpha=alpha)
            conformal.fit(W_calibration).p_values(W_candidates)
    """
    sizes = [len(clean), *(len(c) for c in candidates), *(len(c) for c in calibration)]
    X = np.concatenate([clean, *candidates, *calibration])
    outcome = None
    for item in iter_wobbliness(
        model, X, sigma=sigma, n_samples=n_samples, seed=seed, device=device,
        input_shape=input_shape, chunk_forwards=chunk_forwards,
    ):
        if isinstance(item, Progress):
            yield item
        else:
            outcome = item
    W_clean, *W_sets = np.split(outcome.wobbliness, np.cumsum(sizes)[:-1])
    W_candidates, W_calibration = W_sets[:len(candidates)], W_sets[len(candidates):]
    width = max(sizes)
    detector = LeveneBackdoorDetector(alpha=alpha, direction=direction)
    # fit issues its warning about the reference (``serve`` mutes the category: the
    # response carries it); screen() returns it with the candidates' own.
    detector.fit(_pad(W_clean, width)[None])
    rows = np.stack([_pad(w, width) for w in W_candidates])
    report = detector.screen(rows, names=[f"candidates[{i}]" for i in range(len(rows))])
    flagged = report.labels == detector.classes_[1]
    calibrated, found = [None] * len(W_candidates), list(report.warnings)
    if W_calibration:
        conformal = ConformalDetector(FrozenEstimator(detector), alpha=alpha).fit(
            np.stack([_pad(w, width) for w in W_calibration]))
        calibrated = [float(p) for p in conformal.p_values(rows)]
        found += conformal.warnings_
    yield ScreenOutcome(
        clean_wobbliness=W_clean,
        candidates=[
            CandidateOutcome(float(p), float(s), bool(f), w, c)
            for p, s, f, w, c in zip(report.p_values, report.scores, flagged, W_candidates,
                                     calibrated)
        ],
        n_reference=int(detector.reference_.size),
        n_reference_outliers=int(detector.n_reference_outliers_),
        device=outcome.device,
        warnings=found,
        n_calibration=len(W_calibration),
    )


def iter_model_screen(
    model, clean, *, params, is_active: Callable[[], bool],
) -> Iterator[FitProgress | ModelScreen]:
    """Screen a model with :class:`~wobbledetect.ModelScreen`; yield progress, then the fit.

    Parameters
    ----------
    model : bytes
        The ONNX model.
    clean : ndarray of shape (n_inputs, *input_shape)
    params : dict
        :class:`~wobbledetect.ModelScreen`'s parameters (``random_state`` among them).
    is_active : callable
        Whether the client is still there; checked at every report of the fit (each
        Neural Cleanse step, each group of sets), which stops when it turns False.

    Yields
    ------
    FitProgress
        Each change of stage or count (Neural Cleanse's per-step reports that repeat the
        last one are not passed on).
    ModelScreen
        Last: the fitted screen.
    """
    screen = ModelScreen(model, **params)
    reports: queue.Queue = queue.Queue()
    closed = threading.Event()

    def callback(progress):
        if closed.is_set() or not is_active():
            raise Abandoned()
        reports.put(progress)

    def work():
        try:
            screen.fit(clean, callback=callback)
            reports.put(screen)
        except BaseException as exc:  # noqa: BLE001 - handed to the generator, raised there
            reports.put(exc)

    worker = threading.Thread(target=work, name="ScreenModel", daemon=True)
    worker.start()
    try:
        last = None
        while True:
            item = reports.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, ModelScreen):
                yield item
                return
            if item != last:
                last = item
                yield item
    finally:
        closed.set()  # the fit stops at its next report
        worker.join()


def summarize(values) -> dict:
    """Count, mean, population std, min, quartiles (linear interpolation) and max.

    Examples
    --------
    >>> from wobbledetect_service.screening import summarize
    >>> summarize([0.0, 1.0, 2.0, 3.0])["median"]
    1.5
    """
    values = np.asarray(values, dtype=np.float64)
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "q25": float(q25),
        "median": float(median),
        "q75": float(q75),
        "max": float(values.max()),
    }


def _pad(values, width):
    """``values`` followed by NaN up to ``width`` (the detector's marker for a missing value)."""
    out = np.full(width, np.nan)
    out[: len(values)] = values
    return out
