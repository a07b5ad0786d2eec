"""Vote counting, eq. (2): how many of ``n_samples`` noisy copies land in each class.

Copies are drawn in noise blocks (:mod:`._noise`), round by round: round ``b`` draws block
``b`` of every input still being sampled. Blocks of many inputs are packed into one
preallocated buffer on the model's device; noise is drawn straight into it, the model
runs on exactly ``batch_size`` rows at a time (a block that does not fit is carried over
to the next forward), and votes accumulate on the device with one ``index_add_``. Every
forward but the last has the same shape, so inference engines allocate once. Memory is
``batch_size + NOISE_BLOCK`` inputs plus one counter per (input, class) -- per (input,
block, class) when asked for per-block counts -- whatever the number of inputs or copies.

With ``sequential_tol`` an input stops after a round in which every copy drawn so far
voted the same class and the 95% upper confidence bound on its minority vote mass,
``1 - 0.05 ** (1 / m)`` after ``m`` unanimous copies (exact binomial), is at most
``sequential_tol``. Smooth inputs -- triggered ones, where the paper's premise holds --
then cost a fraction of the forwards. Because noise is keyed by (input, block), stopping
never changes the draws of any input that goes on -- and the counts of any tolerance can
be replayed from the per-block counts of one full run (:mod:`._sequential`). Sequential
stopping is optional and off by default: the benchmarks found that it rarely pays.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ._exceptions import ModelOutputError
from ._noise import NOISE_BLOCK, block_seed, noise_blocks, row_digests
from ._sequential import minority_bound

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
    sequential_tol: float | None = None,
    per_block: bool = False,
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
        Noisy copies per input (``n`` in eq. 2), at most.
    batch_size : int
        Rows per forward pass.
    base : int
        Base seed (see :func:`wobbledetect._noise.base_seed`).
    n_classes : int
        Number of score columns of the model.
    sequential_tol : float or None, default=None
        Stop an input early once unanimous with a minority bound at most this; None
        draws all ``n_samples`` copies of every input.
    per_block : bool, default=False
        Count the votes of each noise block apart (one counter per input, block and
        class instead of per input and class).
    progress : bool, default=False
        Show a tqdm progress bar over noise blocks.

    Returns
    -------
    counts : ndarray of shape (n_inputs, n_classes) or (n_inputs, n_blocks, n_classes), int64
        ``counts[i, k]`` copies of input ``i`` classified as ``k``; a row sums to
        ``n_samples``, or fewer when sequential stopping ended that input early. With
        ``per_block``, ``counts[i, b, k]`` counts the copies of noise block ``b`` only
        (zero for the blocks an input did not draw).
    """
    device = predictor.device
    n_counted = n_classes + 1  # the last column counts copies whose scores were not finite
    digests = row_digests(X)
    # Identical rows get identical noise, hence identical votes: compute each once.
    unique, first, inverse = np.unique(digests, axis=0, return_index=True, return_inverse=True)
    inputs = torch.from_numpy(np.ascontiguousarray(X[first], dtype=np.float32)).to(device)
    input_shape = tuple(X.shape[1:])
    n_unique = len(unique)

    blocks = noise_blocks(n_samples)
    # A counter slot per input, or per (input, block) with per_block.
    n_slot_blocks = len(blocks) if per_block else 1
    counts = torch.zeros(n_unique * n_slot_blocks * n_counted, dtype=torch.int64, device=device)
    # Room for one forward batch plus the block that overflows it.
    buffer = torch.empty((batch_size + NOISE_BLOCK, *input_shape), dtype=torch.float32, device=device)
    owner = torch.empty(batch_size + NOISE_BLOCK, dtype=torch.int64, device=device)
    ones = torch.ones(batch_size, dtype=torch.int64, device=device)
    draw = _NoiseDrawer(device, sigma)
    pending = []  # (region, input index, seed) not drawn yet
    fill = 0

    def forward(n):
        """Draw what is pending, classify the first ``n`` rows, keep the rest for later."""
        nonlocal fill
        draw(pending, inputs)
        pending.clear()
        classes = predictor.predict_classes(buffer[:n]).to(device=device, dtype=torch.int64)
        counts.index_add_(0, owner[:n] * n_counted + classes, ones[:n])
        rest = fill - n
        if rest:  # drawn rows of a block that overflowed this forward
            buffer[:rest] = buffer[n:fill].clone()
            owner[:rest] = owner[n:fill].clone()
        fill = rest

    active = np.arange(n_unique)
    drawn = 0
    bar = tqdm(total=n_unique * len(blocks), disable=not progress, unit="block", desc="W")
    try:
        for b, (_, length) in enumerate(blocks):
            for i in active:
                pending.append((buffer[fill : fill + length], i, block_seed(base, unique[i], b)))
                owner[fill : fill + length] = int(i) * n_slot_blocks + (b if per_block else 0)
                fill += length
                while fill >= batch_size:
                    forward(batch_size)
            bar.update(len(active))
            drawn += length
            if sequential_tol is not None and b + 1 < len(blocks):
                if fill:  # votes of this round must be in before deciding who stops
                    forward(fill)
                if minority_bound(drawn) <= sequential_tol:
                    per_input = counts.view(n_unique, n_slot_blocks, n_counted)
                    per_input = per_input[torch.from_numpy(active).to(device)].sum(dim=1)
                    unanimous = (per_input.max(dim=1).values == drawn).cpu().numpy()
                    bar.update(int(unanimous.sum()) * (len(blocks) - b - 1))
                    active = active[~unanimous]
        if fill:
            forward(fill)
    finally:
        draw.close()
        bar.close()
    counts = counts.view(n_unique, n_slot_blocks, n_counted).cpu().numpy()
    _check_finite_votes(counts[..., -1], counts.sum(axis=(1, 2)), sigma)
    counts = counts[..., :n_classes]
    if not per_block:
        counts = counts[:, 0]
    return counts[inverse.reshape(-1)]


def _check_finite_votes(invalid, drawn, sigma):
    """Refuse votes taken on NaN or infinite scores: W would silently count them as class 0."""
    per_input = invalid.sum(axis=-1)
    if per_input.any():
        raise ModelOutputError(
            f"The model returned NaN or infinite scores for {int(per_input.sum())} of "
            f"{int(drawn.sum())} noisy copies ({int((per_input > 0).sum())} of "
            f"{len(per_input)} distinct inputs) at sigma={sigma:g}; their votes, and so W, "
            "are undefined. Check the model for operations that are undefined off the "
            "data (e.g. Sqrt or Log of negative values), or use a smaller sigma."
        )


class _NoiseDrawer:
    """Draws ``x + N(0, sigma^2 I)`` into buffer regions, each from its own seeded generator.

    On a CPU, torch's ``normal_`` is serial (one Mersenne Twister per generator), so the
    regions of one forward batch are split across as many threads as torch uses: each
    region has its own seed, so the draws are the same whichever thread makes them. The
    threads add ``x`` with NumPy, which is serial too: a torch ``add_`` there would start
    OpenMP teams whose spinning threads then steal the cores from the next forward pass
    (measured: -10% forward throughput with onnxruntime on 2 cores). On CUDA the kernels
    are asynchronous already and run from the calling thread.
    """

    def __init__(self, device, sigma):
        self.sigma = sigma
        self.cpu = device.type == "cpu"
        threads = torch.get_num_threads() if self.cpu else 1
        self.generators = [torch.Generator(device=device) for _ in range(max(1, threads))]
        self.pool = None
        if len(self.generators) > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(len(self.generators), thread_name_prefix="wobble-noise")

    def _draw(self, generator, jobs, inputs):
        for region, i, seed in jobs:
            generator.manual_seed(seed)
            region.normal_(0.0, self.sigma, generator=generator)
            if self.cpu:
                out = region.numpy()
                np.add(out, inputs[i].numpy(), out=out)
            else:
                region.add_(inputs[i])

    def __call__(self, jobs, inputs):
        if self.pool is None or len(jobs) < 2:
            self._draw(self.generators[0], jobs, inputs)
            return
        k = len(self.generators)
        futures = [
            self.pool.submit(self._draw, generator, jobs[j::k], inputs)
            for j, generator in enumerate(self.generators) if jobs[j::k]
        ]
        for future in futures:
            future.result()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()
