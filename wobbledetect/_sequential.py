"""Sequential stopping, optional and off by default, and its offline replay.

With ``sequential_tol`` (:class:`~wobbledetect.WobblinessTransformer`) an input stops
drawing noisy copies once every copy so far voted the same class and the 95% upper bound
on its minority vote mass is at most the tolerance. ``benchmarks/sequential.py`` measured
that this rarely pays on the paper's nets: it saved 3x forwards only where it also cost
ROC AUC (docs/performance.md). It stays in the core as an opt-in because the stopping
test is a few lines of the vote loop; what is only needed for studying it -- replaying
any tolerance, or another rule, on the per-block counts of one full run -- lives here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SEQUENTIAL_CONFIDENCE", "minority_bound", "replay_sequential", "counts_until_stop"]

#: Confidence of the sequential stopping bound.
SEQUENTIAL_CONFIDENCE = 0.95


def minority_bound(m):
    """Upper 95% confidence bound on the minority vote mass after ``m`` unanimous copies.

    Examples
    --------
    >>> from wobbledetect._sequential import minority_bound
    >>> minority_bound([64, 128]).round(4)
    array([0.0457, 0.0231])
    """
    return 1.0 - (1.0 - SEQUENTIAL_CONFIDENCE) ** (1.0 / np.asarray(m, dtype=float))


def replay_sequential(block_counts, sequential_tol):
    """The counts sequential stopping would have given, from the per-block counts of a full run.

    Noise is keyed by (input, block), so an input's first blocks are the same draws
    whether or not it stops after them: stopping with ``sequential_tol`` keeps an input's
    blocks up to the first round at which it is unanimous with
    ``minority_bound(copies so far) <= sequential_tol`` (never after the last block), and
    drops the rest. This gives exactly what :func:`count_votes` with ``sequential_tol``
    returns, for any number of tolerances from one full run.

    Parameters
    ----------
    block_counts : ndarray of shape (..., n_blocks, n_classes)
        Per-block votes of a run without sequential stopping (``per_block=True``).
    sequential_tol : float
        The tolerance to replay.

    Returns
    -------
    counts : ndarray of shape (..., n_classes), int64

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect import replay_sequential
    >>> blocks = np.array([[[64, 0], [63, 1], [58, 0]],    # unanimous after block 0: stops
    ...                    [[63, 1], [64, 0], [58, 0]]])   # never unanimous: all 186 copies
    >>> replay_sequential(blocks, 0.05)
    array([[ 64,   0],
           [185,   1]])
    """
    block_counts = np.asarray(block_counts)
    if block_counts.ndim < 2 or not np.issubdtype(block_counts.dtype, np.integer):
        raise ValueError(
            f"block_counts must be integer votes of shape (..., n_blocks, n_classes), got "
            f"{block_counts.dtype} of shape {block_counts.shape}; use "
            "vote_counts(X, per_block=True)."
        )
    if not 0 < sequential_tol < 1:
        raise ValueError(f"sequential_tol must be in (0, 1), got {sequential_tol!r}.")
    per_block = block_counts.sum(axis=-1).reshape(-1, block_counts.shape[-2])
    if len(per_block) and (per_block != per_block[:1]).any():
        raise ValueError(
            "block_counts must come from a run without sequential stopping (every input "
            "with the same copies per block); refit with sequential_tol=None."
        )
    cumulative = np.cumsum(block_counts, axis=-2)
    drawn = cumulative.sum(axis=-1)  # copies after each block
    unanimous = cumulative.max(axis=-1) == drawn
    stops = unanimous & (minority_bound(np.maximum(drawn, 1)) <= sequential_tol)
    return counts_until_stop(cumulative, stops)


def counts_until_stop(cumulative, stops):
    """Each input's cumulative counts at the first block where ``stops`` is true.

    The last block ends every input. The common tail of :func:`replay_sequential` and of
    any other stopping rule replayed on per-block counts.

    Parameters
    ----------
    cumulative : ndarray of shape (..., n_blocks, n_classes)
        Votes summed over the blocks so far (``np.cumsum(block_counts, axis=-2)``).
    stops : ndarray of bool, shape (..., n_blocks)
        Where the rule would stop the input, after each block.

    Returns
    -------
    counts : ndarray of shape (..., n_classes)
    """
    stops = np.array(stops, dtype=bool)
    stops[..., -1] = True
    last = np.argmax(stops, axis=-1)
    return np.take_along_axis(cumulative, last[..., None, None], axis=-2)[..., 0, :]
