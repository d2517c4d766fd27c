"""Fixed-width bit packing of unsigned integers (vectorised).

Bits are written most significant first, into bytes filled from their most significant bit
(``numpy.packbits`` order); the last byte is padded with zero bits.
"""

from __future__ import annotations

import math

import numpy as np

from wsjax.storage.errors import StorageError


def bit_width(n_values: int) -> int:
    """Bits needed to tell ``n_values`` symbols apart (0 for one or no symbol)."""
    return max(0, int(n_values) - 1).bit_length()


def packed_size(n: int, width: int) -> int:
    """Bytes taken by ``n`` values of ``width`` bits."""
    return (n * width + 7) // 8


def pack_fields(values, widths) -> tuple[bytes, int]:
    """Concatenate the low ``widths[i]`` bits of each ``values[i]`` (most significant first,
    each width at most 32, values already below ``2**width``); returns ``(bytes, n_bits)``,
    the last byte padded with zero bits.

    Vectorised: each field lands in the 64 bits from the 32-bit word its first bit falls in,
    so it touches at most two words; since the fields are disjoint and in order, the words
    are the bitwise OR of runs of consecutive fields (``np.bitwise_or.reduceat``).
    """
    values = np.asarray(values, dtype=np.uint64).reshape(-1)
    widths = np.broadcast_to(np.asarray(widths, dtype=np.int64), values.shape)
    if values.size == 0:
        return b"", 0
    ends = np.cumsum(widths)
    n_bits = int(ends[-1])
    if n_bits == 0:
        return b"", 0
    starts = ends - widths
    word = starts >> 5
    placed = values << (64 - widths - (starts & 31)).astype(np.uint64)
    first = np.flatnonzero(np.concatenate([[True], word[1:] != word[:-1]]))
    words = np.zeros(n_bits // 32 + 2, dtype=np.uint64)
    words[word[first]] = np.bitwise_or.reduceat(placed >> np.uint64(32), first)
    words[word[first] + 1] |= np.bitwise_or.reduceat(placed & np.uint64(0xFFFFFFFF), first)
    return words.astype(">u4").tobytes()[: (n_bits + 7) // 8], n_bits


def pack_uint(values, width: int) -> bytes:
    """Pack non-negative integers below ``2**width`` into ``width`` bits each."""
    values = np.asarray(values, dtype=np.uint64).reshape(-1)
    if width == 0 or values.size == 0:
        if width == 0 and values.size and values.max() != 0:
            raise ValueError("non-zero value packed with width 0")
        return b""
    if width > 64:
        raise ValueError(f"width {width} > 64")
    if width < 64 and values.max() >> np.uint64(width):
        raise ValueError(f"value {values.max()} does not fit in {width} bits")
    group = math.lcm(width, 8) // width  # values that fill whole bytes, in at most 64 bits
    if group * width <= 64:
        return _pack_groups(values, width, group)
    if width <= 32:
        return pack_fields(values, width)[0]
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((values[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def _pack_groups(values: np.ndarray, width: int, group: int) -> bytes:
    """:func:`pack_uint` for a width where ``group`` values make whole bytes (at most 8):
    each group is shifted together into one 64-bit word, whose low bytes are the group's."""
    n = values.size
    if n % group:
        values = np.concatenate([values, np.zeros(group - n % group, dtype=np.uint64)])
    grid = values.reshape(-1, group)
    words = grid[:, 0].copy()
    for i in range(1, group):
        words <<= np.uint64(width)
        words |= grid[:, i]
    n_bytes = group * width // 8
    octets = words.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - n_bytes:]
    return octets.tobytes()[: packed_size(n, width)]


_SMALL_BITS = 1 << 14  # fields up to this many bits are unpacked bit by bit
_CHUNK = 1 << 20  # values unpacked at a time (bounds the temporaries to tens of MB)


def unpack_uint(data: bytes, n: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_uint`: ``n`` values from exactly ``packed_size`` bytes (int32
    for widths up to 31 bits, else int64), unpacked in chunks so that the temporaries stay
    small whatever ``n`` is.

    Raises StorageError when ``data`` has the wrong length or non-zero padding bits.
    """
    if len(data) != packed_size(n, width):
        raise StorageError(
            f"bit-packed field: {len(data)} byte(s), expected {packed_size(n, width)} "
            f"for {n} value(s) of {width} bit(s)"
        )
    out_dtype = np.int32 if width <= 31 else np.int64
    if width == 0 or n == 0:
        return np.zeros(n, dtype=out_dtype)
    if width > 63:
        raise StorageError(f"bit-packed field: width {width} too large")
    padding = 8 * len(data) - n * width
    if data[-1] & ((1 << padding) - 1):
        raise StorageError("bit-packed field: non-zero padding bits")
    if width > 56 or n * width <= _SMALL_BITS:  # bit by bit: a value may span nine bytes,
        # or the field is small (a Huffman table, a short stream), where this is fastest
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        bits = bits[: n * width].reshape(n, width).astype(np.int64)
        weights = np.left_shift(np.int64(1), np.arange(width - 1, -1, -1, dtype=np.int64))
        return (bits @ weights).astype(out_dtype, copy=False)
    buf = np.concatenate([np.frombuffer(data, dtype=np.uint8), np.zeros(8, np.uint8)])
    n_bytes = (width + 7 + 7) // 8  # bytes a value can touch
    mask = np.uint64((1 << width) - 1)
    out = np.empty(n, dtype=out_dtype)
    for lo in range(0, n, _CHUNK):
        offset = np.arange(lo, min(n, lo + _CHUNK), dtype=np.uint64) * np.uint64(width)
        first = (offset >> np.uint64(3)).astype(np.intp)
        word = np.zeros(first.size, dtype=np.uint64)
        for k in range(n_bytes):
            word = (word << np.uint64(8)) | buf[first + k]
        shift = np.uint64(8 * n_bytes - width) - (offset & np.uint64(7))
        out[lo : lo + first.size] = (word >> shift) & mask
    return out
