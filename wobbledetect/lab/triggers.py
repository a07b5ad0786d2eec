"""Backdoor triggers: eight corner patches in the spirit of the paper's Fig. 3, a blend, and
a *separated* set of four patches in four corners.

The paper writes one of eight small patterns over the lower-right corner of an image but
does not give their pixels. These eight are ours, drawn as pixel art (``#`` = 1, ``.`` =
0), from tiny to a larger smiley, numbered 1-8 like the figure's panels. A patch
*overwrites* its whole bounding box (``.`` pixels become 0), on every channel, so the
triggered image does not depend on what was under it.

Our Fig. 3 patches share the lower-right corner, and a net trained on one accepts most of
the others (docs/results.md, "A caveat about our triggers"). The separated set
(:data:`TRIGGER_SETS` ``["separated"]``) puts four different shapes in four different
corners, one pixel from the border, so that an unused trigger can be tested as the paper
meant it: one the net does not obey.

Images are channel-first floats in [0, 1]: ``(..., C, H, W)`` or ``(..., H, W)``; any
size that fits the patch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PatchTrigger", "BlendTrigger", "TRIGGERS", "TRIGGER_SETS", "CORNERS", "get_trigger"]

#: Where a patch goes.
CORNERS = ("lower-right", "lower-left", "upper-right", "upper-left")

_ART = {
    # 1: solid 3x3 square -- the paper's Fig. 4 "active" trigger slot.
    "square": ["###", "###", "###"],
    # 2: 3x3 diagonal.
    "diagonal": ["#..", ".#.", "..#"],
    # 3: the smallest, 2x2 checker -- few pixels, hard to learn (the paper's "small" one).
    "checker2": ["#.", ".#"],
    # 4: 4x4 checkerboard -- the paper's Fig. 4 "unused" trigger slot.
    "checker": ["#.#.", ".#.#", "#.#.", ".#.#"],
    # 5: 7x7 smiley -- the paper's "larger smiley".
    "smiley": [
        ".#####.",
        "#.....#",
        "#.#.#.#",
        "#.....#",
        "#.#.#.#",
        "#..#..#",
        ".#####.",
    ],
    # 6: 5x5 X.
    "cross": ["#...#", ".#.#.", "..#..", ".#.#.", "#...#"],
    # 7: 5x5 plus.
    "plus": ["..#..", "..#..", "#####", "..#..", "..#.."],
    # 8: 4x4 hollow frame.
    "frame": ["####", "#..#", "#..#", "####"],
}


def _pattern(rows):
    return np.array([[ch == "#" for ch in row] for row in rows], dtype=np.float32)


@dataclass(frozen=True)
class PatchTrigger:
    """A pixel-art patch written over a corner of the image (the lower right by default).

    Parameters
    ----------
    name : str
        Its name in :data:`TRIGGERS`.
    pattern : ndarray of shape (h, w)
        Values in [0, 1] written on every channel.
    margin : int, default=0
        Pixels left between the patch and the image border.
    corner : {"lower-right", "lower-left", "upper-right", "upper-left"}, default="lower-right"

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect.lab import get_trigger
    >>> img = np.full((1, 5, 5), 0.5, dtype=np.float32)
    >>> get_trigger("diagonal")(img)[0]
    array([[0.5, 0.5, 0.5, 0.5, 0.5],
           [0.5, 0.5, 0.5, 0.5, 0.5],
           [0.5, 0.5, 1. , 0. , 0. ],
           [0.5, 0.5, 0. , 1. , 0. ],
           [0.5, 0.5, 0. , 0. , 1. ]], dtype=float32)
    """

    name: str
    pattern: np.ndarray = field(repr=False)
    margin: int = 0
    corner: str = "lower-right"

    def __post_init__(self):
        if self.corner not in CORNERS:
            raise ValueError(f"The 'corner' parameter must be one of {CORNERS}; got {self.corner!r}.")

    def __call__(self, X):
        """A triggered copy of ``X`` (``(..., H, W)`` or ``(..., C, H, W)``)."""
        X = np.array(X, dtype=np.float32, copy=True)
        h, w = self.pattern.shape
        H, W = X.shape[-2:]
        if h + self.margin > H or w + self.margin > W:
            raise ValueError(
                f"Trigger {self.name!r} ({h}x{w}, margin {self.margin}) does not fit "
                f"images of {H}x{W}; use a smaller trigger or larger images."
            )
        upper, left = self.corner.startswith("upper"), self.corner.endswith("left")
        rows = slice(self.margin, self.margin + h) if upper else slice(H - h - self.margin, H - self.margin)
        cols = slice(self.margin, self.margin + w) if left else slice(W - w - self.margin, W - self.margin)
        X[..., rows, cols] = self.pattern
        return X

    def mask(self, image_shape):
        """Boolean mask of the pixels this trigger writes, for images of ``(..., H, W)``."""
        marker = PatchTrigger(self.name, np.ones_like(self.pattern), self.margin, self.corner)
        return marker(np.zeros(image_shape, np.float32)) > 0.5


@dataclass(frozen=True)
class BlendTrigger:
    """Blend the whole image with a fixed random pattern: ``(1 - alpha) x + alpha p``.

    The pattern is uniform noise drawn from ``seed`` for the image's shape (Chen et al.,
    2017), so every image of a shape gets the same one. Pass batches as ``(n, C, H, W)``:
    a 3-D array is read as one ``(C, H, W)`` image.

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect.lab import BlendTrigger
    >>> out = BlendTrigger(alpha=0.2)(np.zeros((2, 3, 4, 4)))
    >>> out.shape, bool(out.max() <= 0.2), bool(np.array_equal(out[0], out[1]))
    ((2, 3, 4, 4), True, True)
    """

    name: str = "blend"
    alpha: float = 0.1
    seed: int = 0

    def pattern(self, image_shape):
        return np.random.RandomState(self.seed).uniform(0, 1, size=image_shape).astype(np.float32)

    def __call__(self, X):
        X = np.asarray(X, dtype=np.float32)
        shape = X.shape[-3:] if X.ndim >= 3 else X.shape[-2:]
        return ((1 - self.alpha) * X + self.alpha * self.pattern(shape)).astype(np.float32)

    def mask(self, image_shape):
        return np.ones(image_shape, dtype=bool)


#: The separated set: four shapes of the Fig. 3 set, each in its own corner, one pixel
#: from the border (pre-registered in docs/results.md before any net was trained on them).
_SEPARATED = {
    "ul-square": ("square", "upper-left"),
    "ur-checker": ("checker", "upper-right"),
    "ll-cross": ("cross", "lower-left"),
    "lr-plus": ("plus", "lower-right"),
}

#: The eight patches, numbered as in the paper's Fig. 3, the blend, then the separated set.
TRIGGERS = {
    **{name: PatchTrigger(name, _pattern(rows)) for name, rows in _ART.items()},
    "blend": BlendTrigger(),
    **{name: PatchTrigger(name, _pattern(_ART[shape]), margin=1, corner=corner)
       for name, (shape, corner) in _SEPARATED.items()},
}

#: Named sets of triggers: the paper's Fig. 3 patches (ours) and the separated set.
TRIGGER_SETS = {"fig3": tuple(_ART), "separated": tuple(_SEPARATED)}

#: Number (1-8, as in the paper's Fig. 3) -> name.
TRIGGER_NUMBERS = {i + 1: name for i, name in enumerate(_ART)}


def get_trigger(trigger):
    """A trigger by name (``"square"``), by Fig. 3 number (1-8), or itself.

    ``"blend@ALPHA"`` is the blend at strength ALPHA in (0, 1] (``"blend"`` is
    ``"blend@0.1"``'s pattern and strength), for sweeps of the blend's strength.

    Examples
    --------
    >>> from wobbledetect.lab.triggers import get_trigger
    >>> get_trigger("blend@0.05")
    BlendTrigger(name='blend@0.05', alpha=0.05, seed=0)
    """
    if isinstance(trigger, (PatchTrigger, BlendTrigger)):
        return trigger
    if isinstance(trigger, str) and trigger.startswith("blend@"):
        try:
            alpha = float(trigger[len("blend@"):])
        except ValueError:
            alpha = float("nan")
        if not 0 < alpha <= 1:
            raise ValueError(f"Unknown trigger {trigger!r}: a blend's strength must be a number "
                             "in (0, 1], as in 'blend@0.05'.")
        return BlendTrigger(name=trigger, alpha=alpha)
    if isinstance(trigger, (int, np.integer)) and int(trigger) in TRIGGER_NUMBERS:
        return TRIGGERS[TRIGGER_NUMBERS[int(trigger)]]
    if isinstance(trigger, str) and trigger in TRIGGERS:
        return TRIGGERS[trigger]
    raise ValueError(
        f"Unknown trigger {trigger!r}; use one of {sorted(TRIGGERS)} or a number 1-8."
    )
