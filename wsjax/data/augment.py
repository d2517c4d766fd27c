"""Moving images by random offsets: a translation-invariance probe.

LeCun (1989), `Generalization and network design strategies
<http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, argues that shared (convolutional)
feature detectors pay off when a pattern may appear anywhere; moving every image of an
otherwise centred data set by its own small offset makes that so on any data set.
"""

from __future__ import annotations

import numpy as np

from wsjax import checks


def shift_images(x: np.ndarray, max_shift: int, seed: int) -> np.ndarray:
    """Every image of ``x`` (``(N, H, W, C)``) moved by its own random ``(dy, dx)`` in
    ``[-max_shift, max_shift]`` pixels, zero filled; the offsets are drawn by
    ``np.random.default_rng(seed)``. ``max_shift=0`` returns ``x`` itself."""
    max_shift = checks.integer(max_shift, "max_shift", lo=0)
    if max_shift == 0:
        return x
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"shift_images takes (N, H, W, C) images, got shape {x.shape}")
    n, h, w, _ = x.shape
    offsets = np.random.default_rng(seed).integers(0, 2 * max_shift + 1, size=(n, 2))
    padded = np.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    return np.stack([padded[i, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])


#: The offset seed of a split: ``1000 * seed + SPLIT_OFFSET[split]``.
SPLIT_OFFSET = {"train": 0, "test": 1}


def shifted_split(name: str, split: str, seed: int, max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """``wsjax.data.load(name, split, seed=seed)`` with every image moved by
    :func:`shift_images` (offsets seeded by ``1000 * seed`` for the training split and
    ``1000 * seed + 1`` for the test split, so each split has its own offsets)."""
    from wsjax import data

    if split not in SPLIT_OFFSET:
        raise ValueError(f"split must be one of {tuple(SPLIT_OFFSET)}, got {split!r}")
    x, y = data.load(name, split, seed=seed)
    return shift_images(x, max_shift, 1000 * seed + SPLIT_OFFSET[split]), y
