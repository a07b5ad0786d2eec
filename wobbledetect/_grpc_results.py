"""What :class:`wobbledetect.client.ScreeningClient` returns: small dataclasses of NumPy
arrays and numbers, converted from the ``wobbledetect.v1`` messages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _exceptions
from ._grpc_codec import from_tensor
from ._levene import DIRECTIONS as _LIBRARY_DIRECTIONS
from ._levene import LeveneBackdoorDetector
from ._screen_report import TABLE_COLUMNS, format_report
from .v1 import screening_pb2 as pb

__all__ = [
    "ModelInfo", "WobblinessResult", "CandidateResult", "ScreenResult", "ScreenWarning",
    "ModelScreenResult", "DIRECTIONS", "direction_name", "model_screen_result", "class_screen_fields",
]

#: ``ModelScreen.table_`` column -> ``ClassScreen`` field, where the names differ.
_TABLE_FIELDS = {"class": "class_index", "median_W": "median_wobbliness", "median_p": "median_p_value"}


def class_screen_fields(table, i):
    """Row ``i`` of a ``ModelScreen.table_`` as ``ClassScreen`` fields (the server's side of
    :func:`model_screen_result`)."""
    return {_TABLE_FIELDS.get(column, column): table[column][i].item() for column in TABLE_COLUMNS}


#: The detector's ``direction`` values (the library's ``DIRECTIONS``) and their wire
#: codes, ``"two-sided"`` <-> ``DIRECTION_TWO_SIDED``.
DIRECTIONS = {
    name: pb.Direction.Value("DIRECTION_" + name.upper().replace("-", "_"))
    for name in _LIBRARY_DIRECTIONS
}
_DIRECTION_NAMES = {code: name for name, code in DIRECTIONS.items()}
#: What ``DIRECTION_UNSPECIFIED`` means: the detector's default.
DEFAULT_DIRECTION = LeveneBackdoorDetector().direction


def direction_name(code, field="direction"):
    """The library's name of a wire ``Direction``; unspecified is the detector's default.

    Examples
    --------
    >>> from wobbledetect._grpc_results import direction_name
    >>> direction_name(0), direction_name(3)
    ('smoother', 'two-sided')
    >>> direction_name(7)
    Traceback (most recent call last):
    ...
    ValueError: direction is 7, not a Direction; use DIRECTION_SMOOTHER (the default), ...
    """
    if code == pb.DIRECTION_UNSPECIFIED:
        return DEFAULT_DIRECTION
    try:
        return _DIRECTION_NAMES[code]
    except KeyError:
        valid = ", ".join(pb.Direction.Name(c) for c in _DIRECTION_NAMES)
        raise ValueError(
            f"{field} is {code}, not a Direction; use DIRECTION_SMOOTHER (the default), "
            f"or one of {valid}."
        ) from None


@dataclass(frozen=True)
class ModelInfo:
    """A model stored on the server.

    Attributes
    ----------
    model_id : str
        Lowercase hex SHA-256 of the ONNX bytes.
    size_bytes : int
    input_shape : tuple of int
        Shape of one input.
    n_classes : int
    upload_time_unix : int
        When it was stored, in seconds since the Unix epoch.
    created : bool or None
        From :meth:`ScreeningClient.upload_model` only: whether this upload stored it
        (False: the server already had these bytes).
    """

    model_id: str
    size_bytes: int
    input_shape: tuple
    n_classes: int
    upload_time_unix: int
    created: bool | None = None


@dataclass(frozen=True)
class WobblinessResult:
    """W_sigma of a batch, as :meth:`ScreeningClient.compute_wobbliness` returns it.

    Attributes
    ----------
    wobbliness : ndarray of shape (n_inputs,) or (n_sets, set_size)
        W in nats.
    vote_frequencies : ndarray of shape (*wobbliness.shape, n_classes) or None
        Only when asked for.
    sigma, n_samples, seed, device
        What the server used.
    """

    wobbliness: np.ndarray
    vote_frequencies: np.ndarray | None
    sigma: float
    n_samples: int
    seed: int
    device: str


@dataclass(frozen=True)
class CandidateResult:
    """The detector's judgement of one candidate set.

    Attributes
    ----------
    index : int
        Position in the ``candidates`` passed.
    p_value : float
        Levene p-value against the clean reference.
    score : float
        ``decision_function``: positive exactly when ``triggered``.
    triggered : bool
        True when a trigger is likely active (``p < alpha`` in the chosen direction).
    summary : dict
        count, mean, std, min, q25, median, q75, max of the set's W values.
    wobbliness : ndarray or None
        W of each input, when ``return_wobbliness=True``.
    calibrated_p_value : float or None
        The conformal p-value against the calibration sets, when some were sent.
    """

    index: int
    p_value: float
    score: float
    triggered: bool
    summary: dict
    wobbliness: np.ndarray | None = None
    calibrated_p_value: float | None = None


@dataclass(frozen=True)
class ScreenWarning:
    """A warning the server's detector raised, in the library's words.

    Attributes
    ----------
    category : str
        The library's warning class, e.g. ``"DegenerateWobblinessWarning"``.
    message : str
    candidate_index : int or None
        The candidate set concerned; None for the clean reference.
    """

    category: str
    message: str
    candidate_index: int | None = None

    def as_warning(self):
        """The library's warning instance (:class:`~wobbledetect.WobbledetectWarning` if unknown)."""
        category = getattr(_exceptions, self.category, None)
        if not (isinstance(category, type) and issubclass(category, _exceptions.WobbledetectWarning)):
            category = _exceptions.WobbledetectWarning
        return category(self.message)


@dataclass(frozen=True)
class ScreenResult:
    """The outcome of :meth:`ScreeningClient.screen`.

    Attributes
    ----------
    candidates : list of CandidateResult
        In the order passed.
    clean_summary : dict
        Statistics of the clean set's W values.
    n_reference, n_reference_outliers : int
        Clean W values kept in the reference, and removed by eq. (4).
    sigma, n_samples, alpha, seed, direction, device
        What the server used (``seed``: the one passed, or the one it drew).
    clean_wobbliness : ndarray or None
        W of each clean input, when ``return_wobbliness=True``.
    warnings : list of ScreenWarning
        What the statistics had little or nothing to work with (also issued as Python
        warnings by :meth:`ScreeningClient.screen`).
    n_calibration : int
        Calibration sets the calibrated p-values rank against (0: none sent).
    """

    candidates: list
    clean_summary: dict
    n_reference: int
    n_reference_outliers: int
    sigma: float
    n_samples: int
    alpha: float
    seed: int
    direction: str
    device: str
    clean_wobbliness: np.ndarray | None = field(default=None, repr=False)
    warnings: list = field(default_factory=list)
    n_calibration: int = 0


@dataclass(frozen=True)
class ModelScreenResult:
    """The outcome of :meth:`ScreeningClient.screen_model`: a server's :class:`~wobbledetect.ModelScreen`.

    Attributes
    ----------
    table : dict of str to ndarray
        One row per class, the columns of ``ModelScreen.table_`` under the same names.
    reached_threshold : ndarray of bool
        Per class, whether Neural Cleanse's search reached its attack-success threshold.
    backdoored : bool
    suspected_class : int or None
        None when the combined index is undefined for every class.
    score : float
        The largest combined index.
    anomaly_threshold, sigma : float
    zero_share : dict of str to float
        As ``ModelScreen.zero_share_``: ``repr(sigma)`` -> share of zero clean W.
    null_scores : ndarray
    n_samples, set_size, n_sets : int
    alpha : float
    seed : int
    device : str
    masks, patterns : ndarray or None
        Each class's candidate, when ``return_candidates=True``.
    warnings : list of ScreenWarning
        ``ModelScreen.warnings_`` (also issued as Python warnings by the client).
    """

    table: dict
    reached_threshold: np.ndarray
    backdoored: bool
    suspected_class: int | None
    score: float
    anomaly_threshold: float
    sigma: float
    zero_share: dict
    null_scores: np.ndarray
    n_samples: int
    set_size: int
    n_sets: int
    alpha: float
    seed: int
    device: str
    masks: np.ndarray | None = field(default=None, repr=False)
    patterns: np.ndarray | None = field(default=None, repr=False)
    warnings: list = field(default_factory=list)

    def report(self):
        """The table as text, most suspicious class first, and the verdict (as
        :meth:`ModelScreen.report <wobbledetect.ModelScreen.report>` prints it)."""
        return format_report(
            self.table, self.null_scores, sigma=self.sigma, score=self.score,
            suspected_class=-1 if self.suspected_class is None else self.suspected_class,
            backdoored=self.backdoored, anomaly_threshold=self.anomaly_threshold)


def model_screen_result(response):
    """A ``wobbledetect.v1.ScreenModelResponse`` as a :class:`ModelScreenResult`."""
    rows = response.classes
    table = {}
    for column in TABLE_COLUMNS:
        values = [getattr(row, _TABLE_FIELDS.get(column, column)) for row in rows]
        dtype = {"class": np.int64, "untested_sets": np.int64, "nc_flagged": bool}.get(column, np.float64)
        table[column] = np.array(values, dtype=dtype)
    with_candidates = bool(rows) and rows[0].HasField("mask")
    return ModelScreenResult(
        table=table, reached_threshold=np.array([r.reached_threshold for r in rows], dtype=bool),
        backdoored=response.backdoored,
        suspected_class=response.suspected_class if response.HasField("suspected_class") else None,
        score=response.score, anomaly_threshold=response.anomaly_threshold, sigma=response.sigma,
        zero_share={repr(z.sigma): z.zero_share for z in response.zero_shares},
        null_scores=np.array(response.null_scores, dtype=np.float64),
        n_samples=response.n_samples, set_size=response.set_size, n_sets=response.n_sets,
        alpha=response.alpha, seed=response.seed, device=response.device,
        masks=np.stack([from_tensor(r.mask) for r in rows]) if with_candidates else None,
        patterns=np.stack([from_tensor(r.pattern) for r in rows]) if with_candidates else None,
        warnings=[ScreenWarning(w.category, w.message) for w in response.warnings],
    )


def model_info(message, created=None):
    """A ``wobbledetect.v1.Model`` as a :class:`ModelInfo`."""
    return ModelInfo(
        model_id=message.model_id, size_bytes=message.size_bytes,
        input_shape=tuple(message.input_shape), n_classes=message.n_classes,
        upload_time_unix=message.upload_time_unix, created=created,
    )


def _summary(message):
    return {name: getattr(message, name) for name in
            ("count", "mean", "std", "min", "q25", "median", "q75", "max")}


def screen_result(response):
    """A ``wobbledetect.v1.ScreenResponse`` as a :class:`ScreenResult`."""
    return ScreenResult(
        candidates=[
            CandidateResult(
                index=c.index, p_value=c.p_value, score=c.score,
                triggered=c.verdict == pb.VERDICT_TRIGGER, summary=_summary(c.summary),
                wobbliness=from_tensor(c.wobbliness) if c.HasField("wobbliness") else None,
                calibrated_p_value=(c.calibrated_p_value if c.HasField("calibrated_p_value")
                                    else None),
            )
            for c in response.candidates
        ],
        clean_summary=_summary(response.clean_summary),
        n_reference=response.n_reference,
        n_reference_outliers=response.n_reference_outliers,
        sigma=response.sigma, n_samples=response.n_samples, alpha=response.alpha,
        seed=response.seed,
        direction=_DIRECTION_NAMES.get(response.direction, f"unknown ({response.direction})"),
        device=response.device,
        clean_wobbliness=(
            from_tensor(response.clean_wobbliness) if response.HasField("clean_wobbliness")
            else None
        ),
        warnings=[
            ScreenWarning(
                w.category, w.message,
                w.candidate_index if w.HasField("candidate_index") else None,
            )
            for w in response.warnings
        ],
        n_calibration=response.n_calibration,
    )
