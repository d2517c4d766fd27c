"""Codebooks read off already-quantized weights.

A layer that went through weight sharing (k-means centroids, snapped soft-shared weights,
k-bit quantization) holds few distinct values; its codebook is the sorted set of distinct
nonzero *bit patterns*, and every weight is an index into it. Any quantizer therefore works,
and the round trip is exact. Zero is the all-zero bit pattern (``+0.0``); ``-0.0`` is an
ordinary codebook value.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016,
Section 3 (weight sharing, codebook of 2**b centroids).
"""

from __future__ import annotations

import numpy as np

from wsjax.storage import dtypes
from wsjax.storage.bytestream import ByteReader
from wsjax.storage.errors import StorageError

MAX_CODEBOOK_SIZE = 256  # 8-bit cluster indices, as for Deep Compression's conv layers


def distinct_nonzero(patterns: np.ndarray) -> np.ndarray:
    """Sorted distinct nonzero bit patterns."""
    return np.unique(patterns[patterns != 0])


def assign(patterns: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index (int64) of each pattern in the sorted ``codebook``."""
    return np.searchsorted(codebook, patterns).astype(np.int64)


def to_bytes(codebook: np.ndarray) -> bytes:
    return dtypes.patterns_to_bytes(codebook)


def read(reader: ByteReader, size: int, dtype) -> np.ndarray:
    """Read ``size`` codebook patterns; they must be nonzero and strictly increasing."""
    if size > MAX_CODEBOOK_SIZE:
        raise StorageError(f"{reader.what}: codebook of {size} entries (max {MAX_CODEBOOK_SIZE})")
    itemsize = np.dtype(dtype).itemsize
    codebook = dtypes.patterns_from_bytes(reader.bytes(size * itemsize, "codebook"), dtype)
    if size and (codebook[0] == 0 or np.any(codebook[1:] <= codebook[:-1])):
        raise StorageError(f"{reader.what}: codebook not strictly increasing and nonzero")
    return codebook
