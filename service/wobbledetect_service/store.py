"""The on-disk model store: content-addressed ONNX files, written atomically.

Layout under the store folder::

    models/<sha256>.onnx    one file per model; its name is the SHA-256 of its bytes
    tmp/<random>.part       uploads in progress
    quarantine/             files found under models/ whose bytes do not match their name

The disk is the only state. An upload streams into ``tmp/`` while it is hashed, is
fsynced, checked (``onnx.checker``, weights inline, one float32 input of a fixed
per-input shape, a trial run through the library), then renamed into ``models/`` and
the folder fsynced -- so after a crash a model is either complete under ``models/`` or
absent, and whatever is left in ``tmp/`` belongs to no one. Each upload holds an
exclusive ``flock`` on its temporary file; opening a store deletes the temporary files
nobody holds (those of a killed process) and leaves those of a live server sharing the
folder alone. Only ONNX is ever read back: nothing is unpickled.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import invalid_argument, not_found, resource_exhausted

__all__ = ["ModelStore", "ModelInfo", "Upload", "check_model_id", "inspect_onnx"]

logger = logging.getLogger(__name__)

_MODEL_ID = re.compile(r"[0-9a-f]{64}")
_SUFFIX = ".onnx"


@dataclass(frozen=True)
class ModelInfo:
    """What the store knows about one model (derived from its bytes, so never stale)."""

    model_id: str
    size_bytes: int
    input_shape: tuple
    n_classes: int
    upload_time_unix: int


def check_model_id(model_id: str, name: str = "model_id") -> str:
    """Return ``model_id`` if it is a lowercase hex SHA-256, else raise INVALID_ARGUMENT."""
    if not isinstance(model_id, str) or not _MODEL_ID.fullmatch(model_id):
        shown = model_id if len(model_id) <= 80 else model_id[:77] + "..."
        raise invalid_argument(
            f"{name} {shown!r} is not a model id; ids are the lowercase hex SHA-256 of "
            "the ONNX bytes (64 characters), as UploadModel and ListModels return them."
        )
    return model_id


class ModelStore:
    """Content-addressed ONNX models in ``root``; safe to share between threads.

    Parameters
    ----------
    root : str or os.PathLike
        The store folder; created (mode 0700) if missing.
    max_model_bytes : int
        Largest model accepted.

    Examples
    --------
    >>> import tempfile
    >>> from wobbledetect_service.store import ModelStore
    >>> store = ModelStore(tempfile.mkdtemp(), max_model_bytes=1 << 20)
    >>> store.list()
    []
    >>> store.get("0" * 64)
    Traceback (most recent call last):
    ...
    wobbledetect_service.errors.ServiceError: No model with id 000... in this store; ...
    """

    def __init__(self, root, *, max_model_bytes: int):
        self.root = Path(root)
        self.max_model_bytes = int(max_model_bytes)
        self.models_dir = self.root / "models"
        self.tmp_dir = self.root / "tmp"
        self.quarantine_dir = self.root / "quarantine"
        for folder in (self.root, self.models_dir, self.tmp_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._info: dict[str, ModelInfo] = {}
        self.removed_partial = self._remove_abandoned_uploads()
        for model_id in self._ids_on_disk():
            try:
                self.get(model_id)
            except Exception as exc:  # noqa: BLE001 - log, keep serving the others
                logger.warning("stored model %s is not usable: %s", model_id, exc)

    # -- reading ---------------------------------------------------------------------

    def get(self, model_id: str) -> ModelInfo:
        """Info of a stored model; INVALID_ARGUMENT for a malformed id, NOT_FOUND if absent."""
        check_model_id(model_id)
        path = self._path(model_id)
        if not path.is_file():
            with self._lock:
                self._info.pop(model_id, None)
            raise not_found(
                f"No model with id {model_id} in this store; upload it with UploadModel "
                "(ListModels shows what is stored)."
            )
        with self._lock:
            info = self._info.get(model_id)
        if info is None:
            info = self._first_sight(model_id, path)
        return info

    def read(self, model_id: str) -> tuple[ModelInfo, bytes]:
        """Info and bytes of a stored model (NOT_FOUND if it was deleted meanwhile)."""
        info = self.get(model_id)
        try:
            return info, self._path(model_id).read_bytes()
        except FileNotFoundError:
            raise not_found(f"The model {model_id} was deleted while this request ran.") from None

    def list(self) -> list[ModelInfo]:
        """Every usable stored model, ordered by id."""
        infos = []
        for model_id in self._ids_on_disk():
            try:
                infos.append(self.get(model_id))
            except Exception as exc:  # noqa: BLE001 - deleted meanwhile, or quarantined
                logger.debug("skipping %s in list: %s", model_id, exc)
        return infos

    # -- writing ---------------------------------------------------------------------

    def upload(self) -> Upload:
        """Start an upload; use as a context manager (see :class:`Upload`)."""
        return Upload(self)

    def delete(self, model_id: str) -> None:
        """Remove a model; NOT_FOUND if it is not stored."""
        check_model_id(model_id)
        with self._lock:
            self._info.pop(model_id, None)
            try:
                self._path(model_id).unlink()
            except FileNotFoundError:
                raise not_found(f"No model with id {model_id} in this store.") from None
            _fsync_dir(self.models_dir)

    # -- internals -------------------------------------------------------------------

    def _path(self, model_id: str) -> Path:
        return self.models_dir / f"{model_id}{_SUFFIX}"

    def _ids_on_disk(self) -> list[str]:
        ids = []
        for path in sorted(self.models_dir.iterdir()):
            model_id = path.name[: -len(_SUFFIX)] if path.name.endswith(_SUFFIX) else None
            if model_id is None or not _MODEL_ID.fullmatch(model_id):
                logger.warning("ignoring %s: not a model file written by this store", path)
                continue
            ids.append(model_id)
        return ids

    def _first_sight(self, model_id: str, path: Path) -> ModelInfo:
        """Check a file the store has not looked at yet (at startup, or copied in later)."""
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != model_id:
            self.quarantine_dir.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, self.quarantine_dir / path.name)
            _fsync_dir(self.models_dir)
            logger.error("%s does not hash to its name; moved to %s", path, self.quarantine_dir)
            raise not_found(f"No model with id {model_id} in this store (its file was corrupt).")
        input_shape, n_classes = inspect_onnx(data)
        info = ModelInfo(
            model_id=model_id,
            size_bytes=len(data),
            input_shape=input_shape,
            n_classes=n_classes,
            upload_time_unix=int(path.stat().st_mtime),
        )
        with self._lock:
            self._info[model_id] = info
        return info

    def _commit(self, temp_path: Path, model_id: str, size: int) -> tuple[ModelInfo, bool]:
        final = self._path(model_id)
        if final.is_file():
            return self.get(model_id), False
        data = temp_path.read_bytes()
        input_shape, n_classes = inspect_onnx(data)
        with self._lock:
            os.replace(temp_path, final)
            _fsync_dir(self.models_dir)
            info = ModelInfo(model_id, size, input_shape, n_classes, int(final.stat().st_mtime))
            self._info[model_id] = info
        logger.info("stored model %s (%d bytes, input %s)", model_id, size, input_shape)
        return info, True

    def _remove_abandoned_uploads(self) -> int:
        removed = 0
        for path in self.tmp_dir.iterdir():
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live upload (another server sharing this store)
            finally:
                os.close(fd)
            path.unlink(missing_ok=True)
            removed += 1
        if removed:
            _fsync_dir(self.tmp_dir)
            logger.info("removed %d unfinished upload(s) from %s", removed, self.tmp_dir)
        return removed


class Upload:
    """One upload into a :class:`ModelStore`: ``write`` chunks, then ``commit``.

    Used as a context manager; leaving the block without a commit (an error, a cancelled
    stream) deletes the temporary file.

    Examples
    --------
    >>> import tempfile
    >>> from wobbledetect_service.store import ModelStore
    >>> store = ModelStore(tempfile.mkdtemp(), max_model_bytes=1 << 20)
    >>> with store.upload() as upload:
    ...     upload.write(b"not onnx")
    ...     upload.commit()
    Traceback (most recent call last):
    ...
    wobbledetect_service.errors.ServiceError: The upload is not an ONNX model ...
    >>> list(store.tmp_dir.iterdir())
    []
    """

    def __init__(self, store: ModelStore):
        self.store = store
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, suffix=".part")
        fcntl.flock(fd, fcntl.LOCK_EX)  # tells a starting server that this upload is alive
        self.path = Path(name)
        self.file = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0
        self.expected_id = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if not self.file.closed:
            self.file.close()  # also releases the flock
        self.path.unlink(missing_ok=True)
        return False

    def write(self, chunk: bytes) -> None:
        """Append a chunk; RESOURCE_EXHAUSTED once the model passes ``max_model_bytes``."""
        self.size += len(chunk)
        if self.size > self.store.max_model_bytes:
            raise resource_exhausted(
                f"The model is larger than this server's limit of "
                f"{self.store.max_model_bytes} bytes (max_model_bytes); "
                f"{self.size} bytes received so far."
            )
        self.hash.update(chunk)
        self.file.write(chunk)

    def commit(self) -> tuple[ModelInfo, bool]:
        """Check the model and store it; return its info and whether it is new."""
        if self.size == 0:
            raise invalid_argument("The upload is empty; send the ONNX file's bytes in chunks.")
        self.file.flush()
        os.fsync(self.file.fileno())
        model_id = self.hash.hexdigest()
        if self.expected_id is not None and self.expected_id != model_id:
            raise invalid_argument(
                f"expected_model_id is {self.expected_id} but the {self.size} bytes received "
                f"hash to {model_id}: the file changed or was damaged in transfer. Upload it again."
            )
        info, created = self.store._commit(self.path, model_id, self.size)
        self.file.close()
        return info, created


def inspect_onnx(data: bytes) -> tuple[tuple, int]:
    """Check that ``data`` is a model the service can screen; return (input_shape, n_classes).

    INVALID_ARGUMENT, saying why, for anything else: bytes that are not an ONNX model,
    a model ``onnx.checker`` rejects, weights in external files (they would be read from
    the server's disk), not exactly one input, a non-float32 input, an input without a
    fixed per-input shape, or a model that fails a trial run through the library.
    """
    import onnx

    def not_onnx(why):
        return invalid_argument(
            f"The upload is not an ONNX model onnx.checker accepts ({why}). Upload the "
            ".onnx file itself, e.g. from wobbledetect.to_onnx."
        )

    try:
        model = onnx.load_model_from_string(data)  # parses only; reads no other file
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and kin
        raise not_onnx(f"{type(exc).__name__}: {_short(exc)}") from None
    # Before the checker, which would probe the paths external data names on this disk
    # (and say whether they exist).
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _all_tensors(model.graph)):
        raise invalid_argument(
            "The model keeps weights in external data files, which the server will not "
            "read; save it with its weights inline (onnx.save(model, path, "
            "save_as_external_data=False))."
        )
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - ValidationError and kin
        raise not_onnx(f"{type(exc).__name__}: {_short(exc)}") from None
    if not model.graph.node or not model.graph.output:
        raise not_onnx("its graph has no nodes or no outputs")
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise invalid_argument(
            f"The model has {len(inputs)} inputs ({[i.name for i in inputs]}); the service "
            "screens models with exactly one input, a batch of float32 tensors."
        )
    tensor_type = inputs[0].type.tensor_type
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise invalid_argument(
            f"The model's input {inputs[0].name!r} has element type "
            f"{onnx.TensorProto.DataType.Name(tensor_type.elem_type)}; the service feeds "
            "float32 (export the model with a float input)."
        )
    dims = tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims[1:])
    if not shape or any(d is None or d < 1 for d in shape):
        raise invalid_argument(
            f"The model's input {inputs[0].name!r} has shape "
            f"{[d.dim_param or d.dim_value for d in dims]}; the service needs a batch "
            "dimension followed by a fixed per-input shape, e.g. ['batch', 1, 28, 28] "
            "(wobbledetect.to_onnx(net, input_shape) exports one)."
        )
    from wobbledetect import WobblinessTransformer

    try:
        trial = WobblinessTransformer(data, device="cpu", input_shape=shape, n_samples=1)
        trial.fit(np.zeros((2, *shape), dtype=np.float32))
    except Exception as exc:  # noqa: BLE001 - onnxruntime errors, ModelOutputError, ...
        raise invalid_argument(
            f"The model failed its trial run on a batch of 2 zero inputs of shape {shape}: "
            f"{type(exc).__name__}: {_short(exc)}"
        ) from None
    return shape, int(trial.n_classes_)


def _all_tensors(graph):
    """Every TensorProto of a graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _all_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _all_tensors(subgraph)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _short(exc, limit=300):
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
