"""Vote counting, eq. (2): how many of ``n_samples`` noisy copies land in each class.

Copies of many inputs are packed into one preallocated buffer of ``batch_size`` rows on the
model's device; noise is drawn straight into it (see :mod:`._noise`), the model runs once
per full buffer, and votes are accumulated on the device with one ``index_add_``. Memory
is ``batch_size`` inputs plus one vote counter per (input, class), whatever the number of
inputs or copies.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ._noise import block_seed, noise_blocks, row_digests

__all__ = ["count_votes"]


def count_votes(
    predictor,
    X: np.ndarray,
    *,
    sigma: float,
    n_samples: int,
    batch_size: int,
    base: int,
    n_classes: int,
    progress: bool = False,
) -> np.ndarray:
    """Vote counts of each input of ``X`` under Gaussian noise of scale ``sigma``.

    Parameters
    ----------
    predictor : ClassPredictor
        The model, see :func:`wobbledetect._models.make_predictor`.
    X : ndarray of shape (n_inputs, *input_shape), float32
        The inputs, in the model's input space.
    sigma : float
        Standard deviation of the isotropic Gaussian noise.
    n_samples : int
        Noisy copies per input (``n`` in eq. 2).
    batch_size : int
        Rows per forward pass.
    base : int
        Base seed (see :func:`wobbledetect._noise.base_seed`).
    n_classes : int
        Number of score columns of the model.
    progress : bool, default=False
        Show a tqdm progress bar over inputs.

    Returns
    -------
    counts : ndarray of shape (n_inputs, n_classes), int64
        ``counts[i, k]`` copies of input ``i`` classified as ``k``; rows sum to
        ``n_samples``.
    """
    device = predictor.device
    digests = row_digests(X)
    # Identical rows get identical noise, hence identical votes: compute each once.
    unique, first, inverse = np.unique(digests, axis=0, return_index=True, return_inverse=True)
    inputs = torch.from_numpy(np.ascontiguousarray(X[first], dtype=np.float32))
    input_shape = tuple(X.shape[1:])

    counts = torch.zeros(len(unique) * n_classes, dtype=torch.int64, device=device)
    buffer = torch.empty((batch_size, *input_shape), dtype=torch.float32, device=device)
    owner = torch.empty(batch_size, dtype=torch.int64, device=device)
    ones = torch.ones(batch_size, dtype=torch.int64, device=device)
    generator = torch.Generator(device=device)
    blocks = noise_blocks(n_samples)
    fill = 0

    def flush(rows: torch.Tensor, who: torch.Tensor) -> None:
        classes = predictor.predict_classes(rows).to(device=device, dtype=torch.int64)
        counts.index_add_(0, who * n_classes + classes, ones[: len(rows)])

    def draw(region: torch.Tensor, x: torch.Tensor, seed: int) -> None:
        generator.manual_seed(seed)
        region.normal_(0.0, sigma, generator=generator)
        region.add_(x)

    for i in tqdm(range(len(unique)), disable=not progress, unit="input", desc="W"):
        x = inputs[i].to(device, non_blocking=True)
        for b, (_, length) in enumerate(blocks):
            seed = block_seed(base, unique[i], b)
            if length > batch_size - fill and fill:
                flush(buffer[:fill], owner[:fill])
                fill = 0
            if length <= batch_size:
                draw(buffer[fill : fill + length], x, seed)
                owner[fill : fill + length] = i
                fill += length
                if fill == batch_size:
                    flush(buffer, owner)
                    fill = 0
            else:  # a block larger than a forward pass: draw it whole, feed it in slices
                scratch = torch.empty((length, *input_shape), dtype=torch.float32, device=device)
                draw(scratch, x, seed)
                for start in range(0, length, batch_size):
                    part = scratch[start : start + batch_size]
                    flush(part, owner[: len(part)].fill_(i))
    if fill:
        flush(buffer[:fill], owner[:fill])
    return counts.view(len(unique), n_classes).cpu().numpy()[inverse.reshape(-1)]
