"""Datasets as host NumPy arrays: images float32 NHWC in [0, 1], labels int32.

``load(name, split)`` tries every source that can hold ``name`` in order and raises one
:class:`DatasetNotFoundError` naming all of them (and the command that fixes it) when none
has it. Nothing is downloaded unless TFDS is allowed to (``download=True``, and the
environment variable ``WSJAX_OFFLINE`` is not set).

Sources:

* ``fashion_mnist``, ``mnist``: TFDS (``tfds.data_source``, no TensorFlow needed) if the
  dataset is prepared; MNIST-format IDX files in ``$WSJAX_DATA_DIR/<name>/`` (and, for
  fashion_mnist, the Debian package folder ``/usr/share/datasets/fashion-mnist``); then a
  TFDS download.
* ``cifar10``: TFDS.
* ``digits``: scikit-learn's bundled 8x8 digits (always offline), 1437 train / 360 test.
* ``lecun89``: LeCun's (1989) small digit problem rebuilt from those digits at 16x16:
  12 drawings per digit, each at 4 horizontal positions, 320 training and 160 test images,
  a new draw and split per ``seed`` (:mod:`wsjax.data.lecun89`).
* ``lecun89_new_drawings``: the same images split by drawing (no test drawing in training).
* ``lecun89_centred``: 320 / 160 of the centred 16x16 digits drawn disjointly by ``seed``.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

from wsjax import checks
from wsjax.data import lecun89
from wsjax.data.idx import find_idx_pair, load_idx_split

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
NAMES = ("fashion_mnist", "mnist", "cifar10", "digits", "lecun89", "lecun89_new_drawings", "lecun89_centred")
SPLITS = ("train", "test")
NUM_CLASSES = {name: 10 for name in NAMES}
#: Image shape ``(height, width, channels)`` of every dataset (what a model must accept).
SHAPES = {
    "fashion_mnist": (28, 28, 1),
    "mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "digits": (8, 8, 1),
    "lecun89": (16, 16, 1),
    "lecun89_new_drawings": (16, 16, 1),
    "lecun89_centred": (16, 16, 1),
}


class DatasetNotFoundError(FileNotFoundError):
    """No source holds the dataset; the message names each source tried and the fix."""


def _fix_hint(name: str) -> str:
    hints = [
        f"on a connected machine: python -c \"import tensorflow_datasets as tfds; "
        f"tfds.data_source('{name}', split='train')\" (prepares it for TFDS)",
    ]
    if name in ("fashion_mnist", "mnist"):
        hints.append(
            f"or put the four MNIST-format IDX files in $WSJAX_DATA_DIR/{name}/"
        )
    if name == "fashion_mnist":
        hints.insert(0, "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu, offline mirror)")
    return "; ".join(hints)


def _tfds_arrays(name: str, split: str, data_dir: str | None, download: bool):
    import tensorflow_datasets as tfds  # imported lazily: it is slow to import

    source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    n = len(source)
    try:  # batched random access (ArrayRecord); mocked sources only index one at a time
        items = source.__getitems__(list(range(n)))
    except (AttributeError, TypeError):
        items = [source[i] for i in range(n)]
    images = np.stack([np.asarray(it["image"]) for it in items]).astype(np.float32) / 255.0
    labels = np.asarray([int(it["label"]) for it in items], dtype=np.int32)
    if images.ndim == 3:
        images = images[..., None]
    return images, labels


def _idx_folders(name: str, data_dir: str | None) -> list[str]:
    roots = [d for d in (data_dir, os.environ.get("WSJAX_DATA_DIR")) if d]
    folders = [os.path.join(r, name) for r in roots]
    if name == "fashion_mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    return folders


def _quietly(probe):
    """Run a TFDS probe with absl's warnings off: a stale, unprepared TFDS folder only means
    "not prepared here", which the caller reports itself if nothing else is found."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return probe()
    finally:
        logger.setLevel(level)


def _load_image_dataset(name, split, data_dir, download):
    import tensorflow_datasets as tfds

    tried = []
    if _quietly(lambda: tfds.builder(name, data_dir=data_dir).is_prepared()):  # no side effects when absent
        return _tfds_arrays(name, split, data_dir, download=False)
    tried.append(f"TFDS prepared data in {data_dir or 'the default TFDS data_dir'} (not prepared)")
    if name in ("fashion_mnist", "mnist"):
        for folder in _idx_folders(name, data_dir):
            if find_idx_pair(folder, split) is not None:
                return load_idx_split(folder, split)
            tried.append(f"IDX files in {folder}")
        if not os.environ.get("WSJAX_DATA_DIR") and not data_dir:
            tried.append("IDX files in $WSJAX_DATA_DIR/<name> (WSJAX_DATA_DIR is not set)")
    if download and not os.environ.get("WSJAX_OFFLINE"):
        try:
            return _tfds_arrays(name, split, data_dir, download=True)
        except Exception as e:
            tried.append(f"TFDS download ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
    else:
        tried.append("TFDS download (disabled: download=False or WSJAX_OFFLINE is set)")
    raise DatasetNotFoundError(
        f"dataset {name!r} split {split!r} was not found. Tried: "
        + "; ".join(tried)
        + ". To fix: "
        + _fix_hint(name)
    )


def _digits(split: str, seed: int = 0):
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images.astype(np.float32) / 16.0)[..., None]
    labels = d.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(labels))
    cut = 1437
    idx = perm[:cut] if split == "train" else perm[cut:]
    return images[idx], labels[idx]


@functools.lru_cache(maxsize=16)
def _load_cached(name, split, seed, data_dir, download, env):
    del env  # part of the cache key only: the sources depend on these variables
    if name == "digits":
        x, y = _digits(split, seed)
    elif name == "lecun89":
        x, y = lecun89.positions_split(split, seed)
    elif name == "lecun89_new_drawings":
        x, y = lecun89.positions_split(split, seed, by_drawing=True)
    elif name == "lecun89_centred":
        x, y = lecun89.centred_split(split, seed)
    else:
        x, y = _load_image_dataset(name, split, data_dir, download)
    x, y = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.int32)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load(
    name: str,
    split: str,
    *,
    seed: int = 0,
    data_dir: str | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` for ``name`` and ``split`` ('train' or 'test').

    Images are float32 NHWC in [0, 1], labels int32; both are read-only host arrays (copy
    before modifying). ``seed`` selects the split of ``digits`` and the draw and split of the ``lecun89``
    variants.
    """
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for {name!r}; use one of {SPLITS}")
    seed = checks.seed(seed)
    env = tuple(os.environ.get(k) for k in ("WSJAX_DATA_DIR", "WSJAX_OFFLINE"))
    return _load_cached(name, split, int(seed), data_dir, bool(download), env)
