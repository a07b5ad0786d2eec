"""A model cache keyed by training configuration, so experiments reuse trained nets.

An entry is two files in the cache directory, named by the configuration's key (the
SHA-256 of its canonical JSON):

- ``<key>.safetensors``: the module's ``state_dict`` in the safetensors format, which
  holds tensors only -- loading it never unpickles anything, so a cache shared with
  others cannot run code;
- ``<key>.json``: the configuration, the SHA-256 of the weights file and what training
  measured (clean and backdoor accuracy, seconds, torch version).

Both are written to a temporary file and renamed into place, so a crash or a concurrent
run never leaves a half-written entry under the final name; a net missing from the cache
is trained under an exclusive lock on ``<key>.lock``, so that of several processes that
ask for it at once (Dask workers, two runs sharing the folder) one trains it and the
others load it. An entry that cannot be
read back -- truncated, corrupted, for another configuration, or not matching the
module -- is reported with a :class:`CorruptCacheWarning` naming the file and treated as
a miss: the net is retrained and the entry replaced.

The directory is ``cache_dir`` when given, else ``$WOBBLEDETECT_CACHE``, else
``~/.cache/wobbledetect``; nets live in its ``models/`` folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

__all__ = [
    "ModelCache",
    "CorruptCacheWarning",
    "config_key",
    "default_cache_dir",
    "CACHE_ENV",
]

#: Environment variable naming the cache directory.
CACHE_ENV = "WOBBLEDETECT_CACHE"


class CorruptCacheWarning(UserWarning):
    """A cache entry could not be read back; the net is retrained and the entry replaced."""


def default_cache_dir():
    """``$WOBBLEDETECT_CACHE``, else ``~/.cache/wobbledetect``.

    Examples
    --------
    >>> import os
    >>> from wobbledetect.lab.cache import default_cache_dir
    >>> os.environ["WOBBLEDETECT_CACHE"] = "/tmp/wd-cache"
    >>> default_cache_dir().as_posix()
    '/tmp/wd-cache'
    >>> del os.environ["WOBBLEDETECT_CACHE"]
    """
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "wobbledetect"


def config_key(config):
    """SHA-256 (hex) of the canonical JSON of ``config``: sorted keys, no whitespace.

    Examples
    --------
    >>> from wobbledetect.lab.cache import config_key
    >>> config_key({"seed": 0, "net": "fashion-cnn"}) == config_key({"net": "fashion-cnn", "seed": 0})
    True
    >>> config_key({"seed": 0}) == config_key({"seed": 1})
    False
    """
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


class ModelCache:
    """Trained ``torch.nn.Module`` weights stored by configuration, safely.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        The cache directory; entries go to its ``models/`` folder. Default:
        :func:`default_cache_dir`.

    Examples
    --------
    >>> import tempfile, torch
    >>> from wobbledetect.lab.cache import ModelCache
    >>> cache = ModelCache(tempfile.mkdtemp())
    >>> config = {"net": "linear", "seed": 0}
    >>> def train():
    ...     torch.manual_seed(0)
    ...     return torch.nn.Linear(2, 3), {"clean_accuracy": 0.5}
    >>> module, meta, hit = cache.get_or_train(config, lambda: torch.nn.Linear(2, 3), train)
    >>> hit, meta["clean_accuracy"]
    (False, 0.5)
    >>> again, meta, hit = cache.get_or_train(config, lambda: torch.nn.Linear(2, 3), train)
    >>> hit, bool(torch.equal(module.weight, again.weight))
    (True, True)
    """

    def __init__(self, directory=None):
        base = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.directory = base / "models"

    def paths(self, config):
        """``(weights path, metadata path)`` of the entry for ``config``."""
        key = config_key(config)
        return self.directory / f"{key}.safetensors", self.directory / f"{key}.json"

    def __contains__(self, config):
        return all(path.is_file() for path in self.paths(config))

    def load(self, config, module):
        """Load the cached weights of ``config`` into ``module``.

        Returns
        -------
        dict or None
            The entry's metadata; None on a miss, or on an unreadable entry (then a
            :class:`CorruptCacheWarning` names the file).
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        weights, meta_path = self.paths(config)
        if not (weights.is_file() and meta_path.is_file()):
            return None
        try:
            metadata = json.loads(meta_path.read_text())
            if metadata.get("config") != config:
                raise ValueError("it was written for another configuration")
            if _sha256(weights) != metadata.get("weights_sha256"):
                raise ValueError("the weights do not match the SHA-256 recorded beside them")
            module.load_state_dict(load_file(os.fspath(weights)), strict=True)
        except (OSError, ValueError, KeyError, RuntimeError, AttributeError, SafetensorError) as exc:
            warnings.warn(
                f"The cached model {weights} cannot be used ({exc}); retraining it and "
                "replacing the entry.",
                CorruptCacheWarning,
                stacklevel=2,
            )
            return None
        return metadata

    def save(self, config, module, metadata=None):
        """Store ``module``'s weights for ``config`` with ``metadata``; return the metadata written."""
        import torch
        from safetensors.torch import save_file

        weights, meta_path = self.paths(config)
        self.directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            name: tensor.detach().cpu().contiguous()
            for name, tensor in module.state_dict().items()
        }
        atomic_write(weights, lambda tmp: save_file(tensors, tmp))
        record = {
            **(metadata or {}),
            "config": config,
            "key": config_key(config),
            "weights_file": weights.name,
            "weights_sha256": _sha256(weights),
            "torch_version": torch.__version__,
        }
        text = json.dumps(record, indent=2, sort_keys=True)
        atomic_write(meta_path, lambda tmp: Path(tmp).write_text(text))
        return record

    def get_or_train(self, config, build, train):
        """The cached module for ``config``, else train it and cache it.

        Parameters
        ----------
        config : dict
            JSON-serialisable training configuration (the key).
        build : callable
            ``build()`` returns a fresh module of the right architecture to load into.
        train : callable
            ``train()`` returns ``(trained module, metadata dict)``.

        Returns
        -------
        module : torch.nn.Module
            In eval mode, on the CPU.
        metadata : dict
        hit : bool
            Whether it came from the cache.
        """
        module = build()
        metadata = self.load(config, module)
        if metadata is not None:
            return module.eval(), metadata, True
        # A miss: train under the entry's lock, so that of several processes asking for
        # the same net at once (Dask workers, two runs) one trains and the others wait
        # and load what it cached -- never two trainings, never weights of one beside
        # the metadata of the other.
        with self._lock(config):
            metadata = self.load(config, module)
            if metadata is not None:
                return module.eval(), metadata, True
            module, metadata = train()
            metadata = self.save(config, module, metadata)
        return module.cpu().eval(), metadata, False

    @contextlib.contextmanager
    def _lock(self, config):
        """An exclusive ``flock`` on ``<key>.lock`` in the cache folder, across processes."""
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"{config_key(config)}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path, write):
    """Run ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
