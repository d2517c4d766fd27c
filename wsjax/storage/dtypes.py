"""Element types a storage file can hold, each with a one-byte code.

Values are stored by bit pattern: an array is viewed as unsigned integers of its item size,
so every float (NaN payloads, infinities, ``-0.0``) survives a round trip bit for bit.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

# Code -> dtype. Codes are part of the file format: never renumber, only append.
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    1: np.dtype(np.bool_),
    2: np.dtype(np.int8),
    3: np.dtype(np.uint8),
    4: np.dtype(np.int16),
    5: np.dtype(np.uint16),
    6: np.dtype(np.int32),
    7: np.dtype(np.uint32),
    8: np.dtype(np.int64),
    9: np.dtype(np.uint64),
    10: np.dtype(np.float16),
    11: np.dtype(np.float32),
    12: np.dtype(np.float64),
    13: np.dtype(ml_dtypes.bfloat16),
}
_DTYPE_TO_CODE = {dtype: code for code, dtype in _CODE_TO_DTYPE.items()}


def dtype_code(dtype) -> int:
    """The file code of ``dtype`` (byte order ignored); TypeError for unsupported types."""
    dtype = np.dtype(dtype).newbyteorder("=")
    try:
        return _DTYPE_TO_CODE[dtype]
    except KeyError:
        supported = ", ".join(str(d) for d in _CODE_TO_DTYPE.values())
        raise TypeError(f"dtype {dtype} cannot be stored; supported: {supported}") from None


def code_dtype(code: int) -> np.dtype | None:
    """The dtype of a file code, or ``None`` for an unknown code."""
    return _CODE_TO_DTYPE.get(code)


def pattern_dtype(dtype) -> np.dtype:
    """The native unsigned integer type with the same item size as ``dtype``."""
    return np.dtype(f"u{np.dtype(dtype).itemsize}")


def is_float(dtype) -> bool:
    """True for floating point element types (including bfloat16)."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype == np.dtype(ml_dtypes.bfloat16)


def to_patterns(array: np.ndarray) -> np.ndarray:
    """The bit patterns of ``array`` as native unsigned integers (a flat C-order copy)."""
    native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    return native.reshape(-1).view(pattern_dtype(native.dtype)).copy()


def from_patterns(patterns: np.ndarray, dtype, shape) -> np.ndarray:
    """Inverse of :func:`to_patterns`."""
    dtype = np.dtype(dtype)
    patterns = np.ascontiguousarray(patterns, dtype=pattern_dtype(dtype))
    return patterns.view(dtype).reshape(shape)


def patterns_to_bytes(patterns: np.ndarray) -> bytes:
    """Little-endian bytes of unsigned bit patterns."""
    little = patterns.dtype.newbyteorder("<")
    return np.ascontiguousarray(patterns, dtype=little).tobytes()


def patterns_from_bytes(data: bytes, dtype) -> np.ndarray:
    """Native unsigned bit patterns of ``dtype`` read from little-endian bytes."""
    little = pattern_dtype(dtype).newbyteorder("<")
    return np.frombuffer(data, dtype=little).astype(pattern_dtype(dtype))
