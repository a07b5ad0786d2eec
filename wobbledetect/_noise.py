"""Reproducible Gaussian noise for eq. (2): keyed by the input's content, not its position.

The noise added to input ``x`` depends only on ``(random_state, the bytes of x, copy
index)``. That is what makes W independent of row order, of how rows are grouped into
sets, and of ``batch_size``: the copies of ``x`` are cut into fixed *noise blocks* of at
most :data:`NOISE_BLOCK` copies, each drawn from a generator seeded by
``hash(base_seed, x, block index)``; how blocks are packed into forward passes does not
change a single draw.

The draws themselves are torch's ``normal_`` on the model's device (a Philox stream on
CUDA, Mersenne Twister on the CPU), so the same seed gives the same W on the same kind of
device, not across kinds.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["NOISE_BLOCK", "noise_blocks", "row_digests", "block_seed", "base_seed"]

#: Copies per noise block: the unit of seeding, of sequential stopping, and the most
#: copies of one input that are drawn at once.
NOISE_BLOCK = 64

_SEED_MASK = (1 << 63) - 1


def noise_blocks(n_samples: int) -> list[tuple[int, int]]:
    """``(first copy, number of copies)`` of each noise block for ``n_samples`` copies."""
    return [
        (start, min(NOISE_BLOCK, n_samples - start)) for start in range(0, n_samples, NOISE_BLOCK)
    ]


def row_digests(X: np.ndarray) -> np.ndarray:
    """128-bit BLAKE2b digest of each row of a float32 array, as ``(n, 16)`` uint8."""
    rows = np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), -1)
    # -0.0 and 0.0 are the same input for the model: give them the same noise.
    rows = rows + np.float32(0.0)
    out = np.empty((len(rows), 16), dtype=np.uint8)
    for i, row in enumerate(rows):
        out[i] = np.frombuffer(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), np.uint8)
    return out


def base_seed(random_state) -> int:
    """One 63-bit integer drawn from ``random_state`` (a ``np.random.RandomState``)."""
    return int(random_state.randint(0, np.iinfo(np.int64).max, dtype=np.int64))


def block_seed(base: int, digest: np.ndarray, block: int) -> int:
    """Seed of noise block ``block`` of the input whose digest is ``digest``."""
    key = base.to_bytes(8, "little") + digest.tobytes() + block.to_bytes(4, "little")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & _SEED_MASK
