"""Reader for the MNIST IDX file format (LeCun et al.), gzipped or plain.

The format: a 4-byte magic ``0x00 0x00 <dtype code> <ndim>``, ``ndim`` big-endian uint32
dimensions, then the raw big-endian data. Corrupt or truncated files raise ``ValueError``
naming the file, never a silently wrong array.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (``.gz`` or not) into a NumPy array."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip raises these for truncated/corrupt streams
        raise ValueError(f"cannot read IDX file {path!r}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path!r} is not an IDX file (bad magic {raw[:4]!r})")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path!r} is truncated inside its header")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"IDX file {path!r} holds {len(raw) - header} data bytes, "
            f"its header {shape} says {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find_idx_pair(folder: str, split: str) -> tuple[str, str] | None:
    """Paths of the (images, labels) IDX files for ``split`` in ``folder``, or None."""
    found = []
    for stem in _FILES[split]:
        for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
            p = os.path.join(folder, name)
            if os.path.isfile(p):
                found.append(p)
                break
        else:
            return None
    return found[0], found[1]


def load_idx_split(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28, 1) float32 in [0, 1] and labels int32 from an MNIST-format folder."""
    pair = find_idx_pair(folder, split)
    if pair is None:
        raise FileNotFoundError(f"no {split} IDX files in {folder!r}")
    images, labels = (read_idx(p) for p in pair)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"IDX files in {folder!r} disagree: images {images.shape}, labels {labels.shape}"
        )
    return images[..., None].astype(np.float32) / 255.0, labels.astype(np.int32)
