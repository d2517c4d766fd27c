"""LeCun (1989)'s small digit problem rebuilt from scikit-learn's bundled digits.

LeCun's 480 images (`Generalization and network design strategies
<http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, 1989) were his own drawings and were
never published, so both arrangements here stand in for them with scikit-learn's 8x8 digits
resampled to 16x16:

* :func:`positions_split` (the data set ``lecun89``): the database as we read the paper's
  description of it -- 12 drawings of each digit, each put at 4 consecutive horizontal
  positions (10 x 12 x 4 = 480 images), a random 32 images of each class to train on and
  the other 16 to test on. Nearly every test image is a drawing the training set holds at
  another position (a drawing lands with all 4 positions in the test set with probability
  C(16,4)/C(48,4), under 1 %), so the test measures generalisation across positions, what
  shift-invariant feature detectors are for.
* ``positions_split(..., by_drawing=True)`` (the data set ``lecun89_new_drawings``): the
  same 480 images split by drawing instead, 8 drawings of each digit (all 4 positions) to
  train on and the other 4 to test on, so no test drawing is ever seen in training.
* :func:`centred_split` (the data set ``lecun89_centred``): 320 training and 160 test
  images drawn at random from all 1797 digits, every digit centred as scikit-learn ships it.

All are pure functions of ``seed`` (a new draw and split per seed) returning read-only arrays.
"""

from __future__ import annotations

import functools

import numpy as np

TRAIN_SIZE, TEST_SIZE = 320, 160
#: 12 drawings per digit, each at 4 horizontal positions, squeezed to 13 columns so that the
#: 4 positions fit in 16 (our reading of the paper's construction).
ORIGINALS_PER_CLASS, POSITIONS, GLYPH_WIDTH = 12, 4, 13


@functools.lru_cache(maxsize=1)
def digits_16x16() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 scikit-learn digits resampled (bilinear) to 16x16 in [0, 1], and their labels.

    Read-only, computed once per process."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.float32) / 16.0
    images = np.stack([zoom(im, 2.0, order=1, mode="nearest") for im in images])
    images = np.clip(images, 0.0, 1.0)[..., None]
    images.setflags(write=False)
    labels = d.target.astype(np.int32)
    labels.setflags(write=False)
    return images, labels


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _read_only(*arrays):
    for a in arrays:
        a.setflags(write=False)
    return arrays


def centred_split(split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``lecun89_centred``: 320 / 160 centred digits drawn disjointly by ``seed``."""
    _check_split(split)
    images, labels = digits_16x16()
    perm = np.random.default_rng(seed).permutation(len(images))
    idx = perm[:TRAIN_SIZE] if split == "train" else perm[TRAIN_SIZE : TRAIN_SIZE + TEST_SIZE]
    return _read_only(images[idx], labels[idx])


@functools.lru_cache(maxsize=32)
def _positions(seed: int, by_drawing: bool = False):
    from scipy.ndimage import zoom

    images, labels = digits_16x16()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        chosen = rng.choice(np.flatnonzero(labels == c), ORIGINALS_PER_CLASS, replace=False)
        glyphs = np.clip(zoom(images[chosen, :, :, 0], (1, 1, GLYPH_WIDTH / 16), order=1), 0, 1)
        placed = np.zeros((ORIGINALS_PER_CLASS, POSITIONS, 16, 16), np.float32)
        for col in range(POSITIONS):
            placed[:, col, :, col : col + GLYPH_WIDTH] = glyphs
        order = rng.permutation(ORIGINALS_PER_CLASS * POSITIONS)
        n_train = len(order) * 2 // 3  # 32 of 48: LeCun's 320 / 160
        placed = placed.reshape(-1, 16, 16)  # drawing-major: the first 8 drawings' 32 images come first
        if not by_drawing:
            placed = placed[order]
        train.append(placed[:n_train])
        test.append(placed[n_train:])

    def stack(parts):
        x = np.concatenate(parts)[..., None]
        y = np.repeat(np.arange(10, dtype=np.int32), [len(p) for p in parts])
        order = rng.permutation(len(y))
        return _read_only(x[order], y[order])

    return stack(train), stack(test)


def positions_split(split: str, seed: int, by_drawing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``lecun89``: for each class ``seed`` draws 12 digits, squeezes each to 16 rows x 13
    columns and puts it at columns 0, 1, 2 and 3 of an empty 16x16 image; of those 48
    images a random 32 train and 16 test. ``by_drawing`` (``lecun89_new_drawings``): 8
    drawings train and 4 test, each with its 4 positions."""
    _check_split(split)
    train, test = _positions(int(seed), bool(by_drawing))
    return train if split == "train" else test
