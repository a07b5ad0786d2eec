from wobbledetect.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_SMOOTHER: _ClassVar[Direction]
    DIRECTION_WOBBLIER: _ClassVar[Direction]
    DIRECTION_TWO_SIDED: _ClassVar[Direction]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_CLEAN: _ClassVar[Verdict]
    VERDICT_TRIGGER: _ClassVar[Verdict]
DIRECTION_UNSPECIFIED: Direction
DIRECTION_SMOOTHER: Direction
DIRECTION_WOBBLIER: Direction
DIRECTION_TWO_SIDED: Direction
VERDICT_UNSPECIFIED: Verdict
VERDICT_CLEAN: Verdict
VERDICT_TRIGGER: Verdict

class Model(_message.Message):
    __slots__ = ("model_id", "size_bytes", "input_shape", "n_classes", "upload_time_unix")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    N_CLASSES_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    size_bytes: int
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    n_classes: int
    upload_time_unix: int
    def __init__(self, model_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., input_shape: _Optional[_Iterable[int]] = ..., n_classes: _Optional[int] = ..., upload_time_unix: _Optional[int] = ...) -> None: ...

class UploadModelRequest(_message.Message):
    __slots__ = ("chunk", "expected_model_id")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    expected_model_id: str
    def __init__(self, chunk: _Optional[bytes] = ..., expected_model_id: _Optional[str] = ...) -> None: ...

class UploadModelResponse(_message.Message):
    __slots__ = ("model", "created")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    model: Model
    created: bool
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ComputeWobblinessRequest(_message.Message):
    __slots__ = ("model_id", "inputs", "sigma", "n_samples", "seed", "return_vote_frequencies")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RETURN_VOTE_FREQUENCIES_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    inputs: _tensor_pb2.Tensor
    sigma: float
    n_samples: int
    seed: int
    return_vote_frequencies: bool
    def __init__(self, model_id: _Optional[str] = ..., inputs: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., sigma: _Optional[float] = ..., n_samples: _Optional[int] = ..., seed: _Optional[int] = ..., return_vote_frequencies: _Optional[bool] = ...) -> None: ...

class ComputeWobblinessResponse(_message.Message):
    __slots__ = ("wobbliness", "vote_frequencies", "sigma", "n_samples", "seed", "device")
    WOBBLINESS_FIELD_NUMBER: _ClassVar[int]
    VOTE_FREQUENCIES_FIELD_NUMBER: _ClassVar[int]
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    wobbliness: _tensor_pb2.Tensor
    vote_frequencies: _tensor_pb2.Tensor
    sigma: float
    n_samples: int
    seed: int
    device: str
    def __init__(self, wobbliness: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., vote_frequencies: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., sigma: _Optional[float] = ..., n_samples: _Optional[int] = ..., seed: _Optional[int] = ..., device: _Optional[str] = ...) -> None: ...

class ScreenRequest(_message.Message):
    __slots__ = ("model_id", "clean", "candidates", "sigma", "n_samples", "alpha", "seed", "direction", "return_wobbliness", "calibration")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CLEAN_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    RETURN_WOBBLINESS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    clean: _tensor_pb2.Tensor
    candidates: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.Tensor]
    sigma: float
    n_samples: int
    alpha: float
    seed: int
    direction: Direction
    return_wobbliness: bool
    calibration: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.Tensor]
    def __init__(self, model_id: _Optional[str] = ..., clean: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[_tensor_pb2.Tensor, _Mapping]]] = ..., sigma: _Optional[float] = ..., n_samples: _Optional[int] = ..., alpha: _Optional[float] = ..., seed: _Optional[int] = ..., direction: _Optional[_Union[Direction, str]] = ..., return_wobbliness: _Optional[bool] = ..., calibration: _Optional[_Iterable[_Union[_tensor_pb2.Tensor, _Mapping]]] = ...) -> None: ...

class WobblinessSummary(_message.Message):
    __slots__ = ("count", "mean", "std", "min", "q25", "median", "q75", "max")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    Q25_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_FIELD_NUMBER: _ClassVar[int]
    Q75_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    count: int
    mean: float
    std: float
    min: float
    q25: float
    median: float
    q75: float
    max: float
    def __init__(self, count: _Optional[int] = ..., mean: _Optional[float] = ..., std: _Optional[float] = ..., min: _Optional[float] = ..., q25: _Optional[float] = ..., median: _Optional[float] = ..., q75: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...

class CandidateResult(_message.Message):
    __slots__ = ("index", "p_value", "score", "verdict", "summary", "wobbliness", "calibrated_p_value")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    WOBBLINESS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    index: int
    p_value: float
    score: float
    verdict: Verdict
    summary: WobblinessSummary
    wobbliness: _tensor_pb2.Tensor
    calibrated_p_value: float
    def __init__(self, index: _Optional[int] = ..., p_value: _Optional[float] = ..., score: _Optional[float] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., summary: _Optional[_Union[WobblinessSummary, _Mapping]] = ..., wobbliness: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., calibrated_p_value: _Optional[float] = ...) -> None: ...

class ScreenResponse(_message.Message):
    __slots__ = ("candidates", "clean_summary", "n_reference", "n_reference_outliers", "sigma", "n_samples", "alpha", "seed", "direction", "device", "clean_wobbliness", "n_calibration", "warnings")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CLEAN_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    N_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    N_REFERENCE_OUTLIERS_FIELD_NUMBER: _ClassVar[int]
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CLEAN_WOBBLINESS_FIELD_NUMBER: _ClassVar[int]
    N_CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateResult]
    clean_summary: WobblinessSummary
    n_reference: int
    n_reference_outliers: int
    sigma: float
    n_samples: int
    alpha: float
    seed: int
    direction: Direction
    device: str
    clean_wobbliness: _tensor_pb2.Tensor
    n_calibration: int
    warnings: _containers.RepeatedCompositeFieldContainer[ScreenWarning]
    def __init__(self, candidates: _Optional[_Iterable[_Union[CandidateResult, _Mapping]]] = ..., clean_summary: _Optional[_Union[WobblinessSummary, _Mapping]] = ..., n_reference: _Optional[int] = ..., n_reference_outliers: _Optional[int] = ..., sigma: _Optional[float] = ..., n_samples: _Optional[int] = ..., alpha: _Optional[float] = ..., seed: _Optional[int] = ..., direction: _Optional[_Union[Direction, str]] = ..., device: _Optional[str] = ..., clean_wobbliness: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., n_calibration: _Optional[int] = ..., warnings: _Optional[_Iterable[_Union[ScreenWarning, _Mapping]]] = ...) -> None: ...

class ScreenWarning(_message.Message):
    __slots__ = ("category", "message", "candidate_index")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_INDEX_FIELD_NUMBER: _ClassVar[int]
    category: str
    message: str
    candidate_index: int
    def __init__(self, category: _Optional[str] = ..., message: _Optional[str] = ..., candidate_index: _Optional[int] = ...) -> None: ...

class ScreenProgress(_message.Message):
    __slots__ = ("inputs_done", "inputs_total")
    INPUTS_DONE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    inputs_done: int
    inputs_total: int
    def __init__(self, inputs_done: _Optional[int] = ..., inputs_total: _Optional[int] = ...) -> None: ...

class ScreenEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: ScreenProgress
    result: ScreenResponse
    def __init__(self, progress: _Optional[_Union[ScreenProgress, _Mapping]] = ..., result: _Optional[_Union[ScreenResponse, _Mapping]] = ...) -> None: ...

class ScreenModelRequest(_message.Message):
    __slots__ = ("model_id", "clean", "sigma", "sigmas", "max_zero_share", "n_samples", "set_size", "n_sets", "alpha", "anomaly_threshold", "seed", "max_steps", "input_min", "input_max", "return_candidates")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CLEAN_FIELD_NUMBER: _ClassVar[int]
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    SIGMAS_FIELD_NUMBER: _ClassVar[int]
    MAX_ZERO_SHARE_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SET_SIZE_FIELD_NUMBER: _ClassVar[int]
    N_SETS_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    INPUT_MIN_FIELD_NUMBER: _ClassVar[int]
    INPUT_MAX_FIELD_NUMBER: _ClassVar[int]
    RETURN_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    clean: _tensor_pb2.Tensor
    sigma: float
    sigmas: _containers.RepeatedScalarFieldContainer[float]
    max_zero_share: float
    n_samples: int
    set_size: int
    n_sets: int
    alpha: float
    anomaly_threshold: float
    seed: int
    max_steps: int
    input_min: float
    input_max: float
    return_candidates: bool
    def __init__(self, model_id: _Optional[str] = ..., clean: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., sigma: _Optional[float] = ..., sigmas: _Optional[_Iterable[float]] = ..., max_zero_share: _Optional[float] = ..., n_samples: _Optional[int] = ..., set_size: _Optional[int] = ..., n_sets: _Optional[int] = ..., alpha: _Optional[float] = ..., anomaly_threshold: _Optional[float] = ..., seed: _Optional[int] = ..., max_steps: _Optional[int] = ..., input_min: _Optional[float] = ..., input_max: _Optional[float] = ..., return_candidates: _Optional[bool] = ...) -> None: ...

class ClassScreen(_message.Message):
    __slots__ = ("class_index", "mask_norm", "nc_anomaly_index", "nc_flagged", "attack_success", "reached_threshold", "median_wobbliness", "median_p_value", "smoother_share", "wobblier_share", "levene_score", "smoothing_index", "combined_index", "mask", "pattern", "untested_sets")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    MASK_NORM_FIELD_NUMBER: _ClassVar[int]
    NC_ANOMALY_INDEX_FIELD_NUMBER: _ClassVar[int]
    NC_FLAGGED_FIELD_NUMBER: _ClassVar[int]
    ATTACK_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    REACHED_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_WOBBLINESS_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    SMOOTHER_SHARE_FIELD_NUMBER: _ClassVar[int]
    WOBBLIER_SHARE_FIELD_NUMBER: _ClassVar[int]
    LEVENE_SCORE_FIELD_NUMBER: _ClassVar[int]
    SMOOTHING_INDEX_FIELD_NUMBER: _ClassVar[int]
    COMBINED_INDEX_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    UNTESTED_SETS_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    mask_norm: float
    nc_anomaly_index: float
    nc_flagged: bool
    attack_success: float
    reached_threshold: bool
    median_wobbliness: float
    median_p_value: float
    smoother_share: float
    wobblier_share: float
    levene_score: float
    smoothing_index: float
    combined_index: float
    mask: _tensor_pb2.Tensor
    pattern: _tensor_pb2.Tensor
    untested_sets: int
    def __init__(self, class_index: _Optional[int] = ..., mask_norm: _Optional[float] = ..., nc_anomaly_index: _Optional[float] = ..., nc_flagged: _Optional[bool] = ..., attack_success: _Optional[float] = ..., reached_threshold: _Optional[bool] = ..., median_wobbliness: _Optional[float] = ..., median_p_value: _Optional[float] = ..., smoother_share: _Optional[float] = ..., wobblier_share: _Optional[float] = ..., levene_score: _Optional[float] = ..., smoothing_index: _Optional[float] = ..., combined_index: _Optional[float] = ..., mask: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., pattern: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., untested_sets: _Optional[int] = ...) -> None: ...

class ZeroShare(_message.Message):
    __slots__ = ("sigma", "zero_share")
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    ZERO_SHARE_FIELD_NUMBER: _ClassVar[int]
    sigma: float
    zero_share: float
    def __init__(self, sigma: _Optional[float] = ..., zero_share: _Optional[float] = ...) -> None: ...

class ScreenModelResponse(_message.Message):
    __slots__ = ("classes", "backdoored", "suspected_class", "score", "anomaly_threshold", "sigma", "zero_shares", "null_scores", "n_samples", "set_size", "n_sets", "alpha", "seed", "device", "warnings")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    BACKDOORED_FIELD_NUMBER: _ClassVar[int]
    SUSPECTED_CLASS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    ZERO_SHARES_FIELD_NUMBER: _ClassVar[int]
    NULL_SCORES_FIELD_NUMBER: _ClassVar[int]
    N_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SET_SIZE_FIELD_NUMBER: _ClassVar[int]
    N_SETS_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[ClassScreen]
    backdoored: bool
    suspected_class: int
    score: float
    anomaly_threshold: float
    sigma: float
    zero_shares: _containers.RepeatedCompositeFieldContainer[ZeroShare]
    null_scores: _containers.RepeatedScalarFieldContainer[float]
    n_samples: int
    set_size: int
    n_sets: int
    alpha: float
    seed: int
    device: str
    warnings: _containers.RepeatedCompositeFieldContainer[ScreenWarning]
    def __init__(self, classes: _Optional[_Iterable[_Union[ClassScreen, _Mapping]]] = ..., backdoored: _Optional[bool] = ..., suspected_class: _Optional[int] = ..., score: _Optional[float] = ..., anomaly_threshold: _Optional[float] = ..., sigma: _Optional[float] = ..., zero_shares: _Optional[_Iterable[_Union[ZeroShare, _Mapping]]] = ..., null_scores: _Optional[_Iterable[float]] = ..., n_samples: _Optional[int] = ..., set_size: _Optional[int] = ..., n_sets: _Optional[int] = ..., alpha: _Optional[float] = ..., seed: _Optional[int] = ..., device: _Optional[str] = ..., warnings: _Optional[_Iterable[_Union[ScreenWarning, _Mapping]]] = ...) -> None: ...

class ScreenModelProgress(_message.Message):
    __slots__ = ("stage", "done", "total")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    stage: str
    done: int
    total: int
    def __init__(self, stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class ScreenModelEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: ScreenModelProgress
    result: ScreenModelResponse
    def __init__(self, progress: _Optional[_Union[ScreenModelProgress, _Mapping]] = ..., result: _Optional[_Union[ScreenModelResponse, _Mapping]] = ...) -> None: ...
