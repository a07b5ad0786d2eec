"""The on-disk model store: content-addressed ONNX files, written atomically.

Layout under the store folder::

    models/<sha256>.onnx    one file per model; its name is the SHA-256 of its bytes
    tmp/<random>.part       uploads in progress
    quarantine/             files found under models/ whose bytes do not match their name

The disk is the only state. An upload streams into ``tmp/`` while it is hashed, is
fsynced, checked from its file (``onnx.checker``, weights inline, one float32 input of
a fixed per-input shape, a trial run through the library; see :mod:`.checks`), then
hard-linked into ``models/`` and the folder fsynced -- so after a crash a model is
either complete under ``models/`` or absent, and whatever is left in ``tmp/`` belongs
to no one. Commits of one id are serialised (a lock per id in the process; across
processes sharing the folder, ``os.link`` fails when the name exists), so of several
uploads of the same bytes exactly one reports ``created``. Each upload holds an
exclusive ``flock`` on its temporary file; opening a store deletes the temporary files
nobody holds (those of a killed process) and leaves those of a live server sharing the
folder alone.

The store never serves bytes that do not hash to their id: every read for a
computation (:meth:`ModelStore.read`) hashes the bytes it returns, and ``get``/``list``
check a file again (hash and checks) whenever its inode, size, mtime or ctime differ
from when it was last checked. A file that fails is moved to ``quarantine/`` (logged)
and its id answers NOT_FOUND, asking for the model to be uploaded again. Only ONNX is
ever read back: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from .checks import inspect_onnx
from .errors import ServiceError, invalid_argument, not_found, resource_exhausted

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
        # id -> (info, the stat key of the file whose bytes were checked)
        self._info: dict[str, tuple[ModelInfo, tuple]] = {}
        self._id_locks: dict[str, list] = {}  # id -> [RLock, holders and waiters]
        self.removed_partial = self._remove_abandoned_uploads()
        for model_id in self._ids_on_disk():
            try:
                self.get(model_id)
            except Exception as exc:  # noqa: BLE001 - log, keep serving the others
                logger.warning("stored model %s is not usable: %s", model_id, exc)

    # -- reading ---------------------------------------------------------------------

    def get(self, model_id: str) -> ModelInfo:
        """Info of a stored model; INVALID_ARGUMENT for a malformed id, NOT_FOUND if absent
        (or if its file no longer hashes to its id: it is then quarantined)."""
        check_model_id(model_id)
        try:
            key = _stat_key(os.stat(self._path(model_id)))
        except FileNotFoundError:
            self._forget(model_id)
            raise self._absent(model_id) from None
        with self._lock:
            cached = self._info.get(model_id)
        if cached is not None and cached[1] == key:
            return cached[0]
        with self._id_lock(model_id):
            return self._check_file(model_id)

    def read(self, model_id: str) -> tuple[ModelInfo, bytes]:
        """Info and bytes of a stored model, the bytes' hash checked against the id.

        NOT_FOUND if it was deleted meanwhile, or if the bytes no longer hash to the id
        (the file is then quarantined).
        """
        info = self.get(model_id)
        try:
            with open(self._path(model_id), "rb") as handle:
                data = handle.read()
                key = _stat_key(os.fstat(handle.fileno()))
        except FileNotFoundError:
            raise not_found(f"The model {model_id} was deleted while this request ran.") from None
        if hashlib.sha256(data).hexdigest() != model_id:
            with self._id_lock(model_id):
                self._quarantine(model_id, key)
            raise _replaced(model_id)
        return info, data

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
        with self._id_lock(model_id):
            self._forget(model_id)
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

    @contextlib.contextmanager
    def _id_lock(self, model_id: str):
        """Serialise checks, commits, quarantines and deletes of one id (re-entrant)."""
        with self._lock:
            entry = self._id_locks.setdefault(model_id, [threading.RLock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if not entry[1]:
                    del self._id_locks[model_id]

    def _absent(self, model_id: str) -> ServiceError:
        if (self.quarantine_dir / self._path(model_id).name).exists():
            return _replaced(model_id)  # say why it is gone, and what to do
        return not_found(
            f"No model with id {model_id} in this store; upload it with UploadModel "
            "(ListModels shows what is stored)."
        )

    def _forget(self, model_id: str) -> None:
        with self._lock:
            self._info.pop(model_id, None)

    def _check_file(self, model_id: str, *, rehash: bool = False) -> ModelInfo:
        """Hash and check the file of ``model_id`` unless the bytes checked last are still
        there (same stat key; ``rehash`` hashes anyway). Hold the id's lock."""
        path = self._path(model_id)
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            self._forget(model_id)
            raise self._absent(model_id) from None
        with handle:
            status = os.fstat(handle.fileno())
            key = _stat_key(status)
            with self._lock:
                cached = self._info.get(model_id)
            if cached is not None and cached[1] == key and not rehash:
                return cached[0]  # another thread checked this file meanwhile
            digest = hashlib.file_digest(handle, "sha256").hexdigest()  # streamed
        if digest != model_id:
            self._quarantine(model_id, key)
            raise _replaced(model_id)
        if cached is not None:
            info = cached[0]  # same bytes as checked before (touched, or copied again)
        else:
            input_shape, n_classes = inspect_onnx(path)
            info = ModelInfo(model_id, status.st_size, input_shape, n_classes,
                             int(status.st_mtime))
        with self._lock:
            self._info[model_id] = (info, key)
        return info

    def _quarantine(self, model_id: str, key: tuple) -> None:
        """Move the file of ``model_id`` to quarantine/ if it is still the one with stat
        ``key`` (a newer file is checked when next read). Hold the id's lock."""
        self._forget(model_id)
        path = self._path(model_id)
        try:
            if _stat_key(os.stat(path)) != key:
                return
        except FileNotFoundError:
            return
        self.quarantine_dir.mkdir(mode=0o700, exist_ok=True)
        target = self.quarantine_dir / path.name
        if target.exists():  # keep what an earlier quarantine set aside
            target = self.quarantine_dir / f"{path.name}.{time.time_ns()}"
        os.replace(path, target)
        _fsync_dir(self.models_dir)
        logger.error("%s does not hash to its name (corrupt, or replaced on disk); moved to %s",
                     path, target)

    def _commit(self, temp_path: Path, model_id: str, size: int,
                admit=contextlib.nullcontext) -> tuple[ModelInfo, bool]:
        final = self._path(model_id)
        with self._id_lock(model_id):
            if os.path.lexists(final):
                try:  # the same bytes were stored before: check they still are
                    return self._check_file(model_id, rehash=True), False
                except ServiceError as exc:
                    if exc.code != grpc.StatusCode.NOT_FOUND:
                        raise
                    # Quarantined (or deleted) meanwhile: these bytes replace it.
            with admit():  # the check runs the model: a computation like a screen
                input_shape, n_classes = inspect_onnx(temp_path)
            try:
                os.link(temp_path, final)  # never replaces: fails if the name exists
            except FileExistsError:
                # Another server sharing this folder stored the same bytes meanwhile.
                return self._check_file(model_id, rehash=True), False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise
                os.replace(temp_path, final)  # no hard links here; the id lock still holds
            temp_path.unlink(missing_ok=True)
            _fsync_dir(self.models_dir)
            status = os.stat(final)  # after the unlink, which changes the ctime
            info = ModelInfo(model_id, size, input_shape, n_classes, int(status.st_mtime))
            with self._lock:
                self._info[model_id] = (info, _stat_key(status))
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

    def commit(self, admit=contextlib.nullcontext) -> tuple[ModelInfo, bool]:
        """Check the model and store it; return its info and whether it is new.

        Parameters
        ----------
        admit : callable returning a context manager, default=contextlib.nullcontext
            Entered around the model's check (which loads and runs it), e.g. a slot of
            the server's :class:`~.admission.Admission`. Not entered when the store
            already holds these bytes.
        """
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
        info, created = self.store._commit(self.path, model_id, self.size, admit)
        self.file.close()
        return info, created


def _stat_key(status: os.stat_result) -> tuple:
    """What tells that a file changed: a replaced file has another inode, and writing in
    place changes the mtime and the ctime (which no one can set back)."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
            status.st_ctime_ns)


def _replaced(model_id: str) -> ServiceError:
    return not_found(
        f"The stored file of model {model_id} no longer hashes to that id: it was "
        "corrupted or replaced on disk, and has been moved to the store's quarantine/ "
        "folder. Upload the model again with UploadModel."
    )


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
