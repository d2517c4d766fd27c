"""One layer's record: header plus payload in one of three encodings.

Record layout (all integers little-endian, ``varint`` = unsigned LEB128)::

    varint name length, name (UTF-8, the '/'-joined parameter path)
    u8     dtype code (see :mod:`wsjax.storage.dtypes`)
    u8     ndim, then ndim varint dimensions
    u8     encoding: 0 raw, 1 sparse, 2 dense_codebook, 3 sparse_raw
    varint payload length, then the payload

Payloads:

* ``raw`` -- every element's bit pattern, little-endian, C order.
* ``sparse`` (Deep Compression: pruned + quantized) -- ``u8 index_bits``, ``varint``
  stored entries (nonzeros and fillers), ``varint`` codebook size K, ``u8`` flags (bit 0:
  fillers present), the codebook (K bit patterns, increasing), the *weight stream* of
  cluster indices (alphabet K, or K + 1 with symbol 0 = filler zero when fillers are
  present), then the *index stream* of gaps (alphabet ``2**index_bits``); see
  :mod:`wsjax.storage.sparse` and :mod:`wsjax.storage.streams`.
* ``sparse_raw`` (pruned, not quantized: every survivor a distinct float) -- ``u8
  index_bits``, ``varint`` stored entries, the index stream of gaps as for ``sparse``, then
  one raw bit pattern per stored entry (a filler's is zero, a nonzero's is its value).
* ``dense_codebook`` (quantized, not pruned) -- ``varint`` K, ``u8`` flags (bit 0: zeros
  present, then symbol 0 is zero), the codebook, and one weight-stream symbol per element.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from wsjax.storage import codebook as codebooks
from wsjax.storage import dtypes, limits, sparse, streams
from wsjax.storage.bytestream import ByteReader, ByteWriter
from wsjax.storage.errors import StorageError

ENCODINGS = ("raw", "sparse", "dense_codebook", "sparse_raw")
_ENCODING_CODE = {name: code for code, name in enumerate(ENCODINGS)}
MAX_INDEX_BITS = 16


class LayerInfo(NamedTuple):
    """What a layer record holds and where its bytes went (``parts`` sums to ``stored_bytes``)."""

    name: str
    shape: tuple
    dtype: np.dtype
    encoding: str
    n_nonzero: int
    codebook_size: Optional[int]
    index_bits: Optional[int]
    weight_stream: Optional[streams.StreamInfo]
    index_stream: Optional[streams.StreamInfo]
    parts: dict
    payload_bytes: int
    stored_bytes: int


def check_index_bits(index_bits, name: str) -> int:
    if isinstance(index_bits, bool) or not isinstance(index_bits, (int, np.integer)):
        raise TypeError(f"{name}: index_bits must be an int, got {index_bits!r}")
    if not 1 <= index_bits <= MAX_INDEX_BITS:
        raise ValueError(f"{name}: index_bits must be in [1, {MAX_INDEX_BITS}], got {index_bits}")
    return int(index_bits)


def _codebook_of(patterns: np.ndarray, name: str, encoding: str) -> np.ndarray:
    codebook = codebooks.distinct_nonzero(patterns)
    if codebook.size > codebooks.MAX_CODEBOOK_SIZE:
        raise ValueError(
            f"{name}: encoding {encoding!r} needs at most {codebooks.MAX_CODEBOOK_SIZE} distinct "
            f"nonzero values, found {codebook.size} (quantize the layer first, or use 'raw')"
        )
    return codebook


def _sparse_payload(patterns: np.ndarray, codebook: np.ndarray, index_bits: int) -> bytes:
    positions = np.flatnonzero(patterns)
    gaps, is_filler = sparse.encode_positions(positions, index_bits)
    has_filler = bool(is_filler.any())
    symbols = np.zeros(gaps.size, dtype=np.int64)
    symbols[~is_filler] = codebooks.assign(patterns[positions], codebook) + has_filler
    out = ByteWriter()
    out.uint(index_bits, 1)
    out.varint(gaps.size)
    out.varint(codebook.size)
    out.uint(int(has_filler), 1)
    out.bytes(codebooks.to_bytes(codebook))
    out.bytes(streams.encode(symbols, codebook.size + has_filler)[0])
    out.bytes(streams.encode(gaps, 1 << index_bits)[0])
    return out.getvalue()


def best_raw_index_bits(patterns: np.ndarray) -> int:
    """The index width that makes a ``sparse_raw`` record smallest: with a raw value per
    stored entry a filler costs a whole value, so wider gaps pay off sooner than in ``sparse``."""
    skipped = np.diff(np.flatnonzero(patterns), prepend=-1) - 1
    value_bits = 8 * patterns.dtype.itemsize
    sizes = {b: (skipped.size + int((skipped >> b).sum())) * (value_bits + b) for b in range(1, MAX_INDEX_BITS + 1)}
    return min(sizes, key=sizes.get)


def _sparse_raw_payload(patterns: np.ndarray, index_bits: int) -> bytes:
    positions = np.flatnonzero(patterns)
    gaps, is_filler = sparse.encode_positions(positions, index_bits)
    values = np.zeros(gaps.size, dtype=patterns.dtype)
    values[~is_filler] = patterns[positions]
    out = ByteWriter()
    out.uint(index_bits, 1)
    out.varint(gaps.size)
    out.bytes(streams.encode(gaps, 1 << index_bits)[0])
    out.bytes(dtypes.patterns_to_bytes(values))
    return out.getvalue()


def _dense_codebook_payload(patterns: np.ndarray, codebook: np.ndarray) -> bytes:
    is_zero = patterns == 0
    has_zero = bool(is_zero.any())
    symbols = np.zeros(patterns.size, dtype=np.int64)
    symbols[~is_zero] = codebooks.assign(patterns[~is_zero], codebook) + has_zero
    out = ByteWriter()
    out.varint(codebook.size)
    out.uint(int(has_zero), 1)
    out.bytes(codebooks.to_bytes(codebook))
    out.bytes(streams.encode(symbols, codebook.size + has_zero)[0])
    return out.getvalue()


def _payloads(array: np.ndarray, encoding: str, index_bits: int, name: str) -> dict[str, bytes]:
    """``{encoding: payload}`` for the requested encoding, or every eligible one for 'auto'."""
    patterns = dtypes.to_patterns(array)
    if encoding == "raw":
        return {"raw": dtypes.patterns_to_bytes(patterns)}
    if encoding == "auto":
        if array.ndim < 2:
            return {"raw": dtypes.patterns_to_bytes(patterns)}
        codebook = codebooks.distinct_nonzero(patterns)
        if codebook.size > codebooks.MAX_CODEBOOK_SIZE:
            return {"raw": dtypes.patterns_to_bytes(patterns),
                    "sparse_raw": _sparse_raw_payload(patterns, best_raw_index_bits(patterns))}
        return {
            "sparse": _sparse_payload(patterns, codebook, index_bits),
            "dense_codebook": _dense_codebook_payload(patterns, codebook),
            "raw": dtypes.patterns_to_bytes(patterns),
            "sparse_raw": _sparse_raw_payload(patterns, best_raw_index_bits(patterns)),
        }
    if encoding == "sparse":
        codebook = _codebook_of(patterns, name, encoding)
        return {"sparse": _sparse_payload(patterns, codebook, index_bits)}
    if encoding == "dense_codebook":
        codebook = _codebook_of(patterns, name, encoding)
        return {"dense_codebook": _dense_codebook_payload(patterns, codebook)}
    if encoding == "sparse_raw":
        return {"sparse_raw": _sparse_raw_payload(patterns, index_bits)}
    raise ValueError(f"{name}: unknown encoding {encoding!r}; choose from {ENCODINGS + ('auto',)}")


def encode_layer(name: str, array: np.ndarray, encoding: str, index_bits: int) -> bytes:
    """The record of one layer. ``encoding='auto'`` picks the smallest eligible encoding
    (sparse and codebook encodings only for 2-D and larger leaves; ties go to sparse, then
    dense codebook, raw, sparse raw; sparse raw with the index width of
    :func:`best_raw_index_bits`, the others with ``index_bits``)."""
    index_bits = check_index_bits(index_bits, name)
    dtypes.dtype_code(array.dtype)
    if array.ndim > 255:
        raise ValueError(f"{name}: {array.ndim} dimensions (max 255)")
    payloads = _payloads(array, encoding, index_bits, name)
    encoding = min(payloads, key=lambda e: len(payloads[e]))  # first wins ties
    payload = payloads[encoding]
    out = ByteWriter()
    name_bytes = name.encode("utf-8")
    out.varint(len(name_bytes))
    out.bytes(name_bytes)
    out.uint(dtypes.dtype_code(array.dtype), 1)
    out.uint(array.ndim, 1)
    for dim in array.shape:
        out.varint(dim)
    out.uint(_ENCODING_CODE[encoding], 1)
    out.varint(len(payload))
    out.bytes(payload)
    return out.getvalue()


def _read_flag(reader: ByteReader, field: str) -> bool:
    flags = reader.uint(1, field)
    if flags > 1:
        raise StorageError(f"{reader.what}: invalid {field} byte {flags}")
    return bool(flags)


def _numpy_max_ndim() -> int:
    for ndim in (64, 32):
        try:
            np.empty((1,) * ndim, dtype=np.uint8)
            return ndim
        except ValueError:
            pass
    return 32


MAX_DECODE_NDIM = _numpy_max_ndim()  # NumPy's own limit on an array's dimensions


def _codebook_and_stream(payload: ByteReader, mark, pos: int, parts: dict, n_symbols: int,
                         dtype, flag: str):
    """The codebook part of a sparse or dense-codebook payload: codebook size, the flag
    (fillers / zeros present, then symbol 0 is zero), the codebook, then ``n_symbols``
    weight-stream symbols. Returns ``(codebook, flag, stream)``; a zero-bit stream is not
    materialized (see :func:`streams.read`)."""
    codebook_size = payload.varint("codebook size")
    has_zero = _read_flag(payload, flag)
    pos = mark("header", pos)
    codebook = codebooks.read(payload, codebook_size, dtype)
    mark("codebook", pos)
    stream = streams.read(payload, n_symbols, codebook_size + has_zero)
    parts["weight_table"] = stream.info.table_bytes
    parts["weight_codes"] = stream.info.code_bytes
    return codebook, has_zero, stream


def _sparse_header(payload: ByteReader, where: str, n_elements: int) -> tuple[int, int]:
    """The index width and stored-entry count that open a sparse or sparse-raw payload."""
    index_bits = payload.uint(1, "index bits")
    if not 1 <= index_bits <= MAX_INDEX_BITS:
        raise StorageError(f"{where}: index bits {index_bits} outside [1, {MAX_INDEX_BITS}]")
    n_entries = payload.varint("entry count")
    if n_entries > n_elements:
        raise StorageError(f"{where}: {n_entries} stored entries for {n_elements} elements")
    return index_bits, n_entries


def decode_layer(reader: ByteReader, budget: Optional[limits.Budget] = None
                 ) -> tuple[np.ndarray, LayerInfo]:
    """Read one layer record; returns the array and a description of its bytes.

    Every array is charged against ``budget`` (default: the module's limits, see
    :mod:`wsjax.storage.limits`) before it is allocated; StorageError naming the layer and
    the field for anything malformed or over a limit.
    """
    budget = budget if budget is not None else limits.Budget()
    start = reader.pos
    name_bytes = reader.bytes(reader.varint("name length"), "layer name")
    try:
        name = name_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError(f"{reader.what}: layer name is not valid UTF-8") from None
    where = f"layer {name!r}"
    try:
        return _decode_body(reader, budget, start, name, where)
    except StorageError as e:
        if where in str(e):
            raise
        raise StorageError(f"{where}: {e}") from None
    except (ValueError, TypeError, IndexError, OverflowError, MemoryError) as e:  # a safety net
        raise StorageError(f"{where}: cannot be decoded ({type(e).__name__}: {e})"[:500]) from None


def _decode_body(reader: ByteReader, budget: limits.Budget, start: int, name: str, where: str):
    dtype = dtypes.code_dtype(reader.uint(1, "dtype"))
    if dtype is None:
        raise StorageError(f"{where}: unknown dtype code")
    ndim = reader.uint(1, "ndim")
    if ndim > MAX_DECODE_NDIM:
        raise StorageError(f"{where}: ndim {ndim} is more than NumPy's {MAX_DECODE_NDIM}")
    shape = tuple(reader.varint("dimension") for _ in range(ndim))
    n_elements = budget.check_shape(where, shape)
    encoding_code = reader.uint(1, "encoding")
    if encoding_code >= len(ENCODINGS):
        raise StorageError(f"{where}: unknown encoding code {encoding_code}")
    encoding = ENCODINGS[encoding_code]
    payload_bytes = reader.varint("payload length")
    payload = reader.sub(payload_bytes, where)
    budget.take(where, n_elements, dtype.itemsize)  # before anything of its size exists
    parts = {"header": payload.pos - start}
    codebook_size = index_bits = weight_info = index_info = None
    pattern = dtypes.pattern_dtype(dtype)

    def mark(part: str, since: int) -> int:
        parts[part] = parts.get(part, 0) + payload.pos - since
        return payload.pos

    if encoding == "raw":
        data = payload.bytes(n_elements * dtype.itemsize, "raw values")
        parts["raw"] = len(data)
        patterns = dtypes.patterns_from_bytes(data, dtype)
        del data
        n_nonzero = int(np.count_nonzero(patterns))
    elif encoding == "sparse":
        pos = payload.pos
        index_bits, n_entries = _sparse_header(payload, where, n_elements)
        codebook, has_filler, weights = _codebook_and_stream(
            payload, mark, pos, parts, n_entries, dtype, "sparse flags")
        codebook_size = codebook.size
        index = streams.read(payload, n_entries, 1 << index_bits)
        weight_info, index_info = weights.info, index.info
        parts["index_table"] = index_info.table_bytes
        parts["index_codes"] = index_info.code_bytes
        payload.expect_end()
        # A stream of at least one bit per entry bounds the entries by the file's size;
        # with both streams of zero bits, the whole layer is implied.
        all_implied = n_entries > 0 and weights.symbols is None and index.symbols is None
        if all_implied:
            budget.imply(where, n_elements, "its zero-bit weight and index streams")
        symbols, gaps = weights.array(), index.array()
        is_filler = symbols == 0 if has_filler else np.zeros(n_entries, dtype=bool)
        if has_filler != bool(is_filler.any()):
            raise StorageError(f"{where}: filler flag disagrees with the stored entries")
        positions = sparse.decode_positions(gaps, is_filler, index_bits, n_elements)
        del gaps
        if not all_implied:
            last = int(positions[-1]) if positions.size else -1
            budget.imply(where, n_elements - 1 - last, "the sparse index's zeros after its "
                         "last stored entry")
        values = codebook[symbols[~is_filler] - has_filler]
        del symbols, is_filler
        patterns = np.zeros(n_elements, dtype=pattern)
        patterns[positions] = values
        n_nonzero = int(positions.size)
    elif encoding == "sparse_raw":
        pos = payload.pos
        index_bits, n_entries = _sparse_header(payload, where, n_elements)
        mark("header", pos)
        index = streams.read(payload, n_entries, 1 << index_bits)
        index_info = index.info
        parts["index_table"] = index_info.table_bytes
        parts["index_codes"] = index_info.code_bytes
        pos = payload.pos
        data = payload.bytes(n_entries * dtype.itemsize, "raw survivor values")  # bounds the entries
        mark("raw", pos)
        payload.expect_end()
        values = dtypes.patterns_from_bytes(data, dtype)
        del data
        is_filler = values == 0
        positions = sparse.decode_positions(index.array(), is_filler, index_bits, n_elements)
        last = int(positions[-1]) if positions.size else -1
        budget.imply(where, n_elements - 1 - last, "the sparse index's zeros after its last stored entry")
        patterns = np.zeros(n_elements, dtype=pattern)
        patterns[positions] = values[~is_filler]
        del values, is_filler
        n_nonzero = int(positions.size)
    else:
        codebook, has_zero, weights = _codebook_and_stream(
            payload, mark, payload.pos, parts, n_elements, dtype, "dense codebook flags")
        codebook_size = codebook.size
        weight_info = weights.info
        payload.expect_end()
        lookup = np.concatenate([np.zeros(1, pattern), codebook]) if has_zero else codebook
        if weights.symbols is None:  # every element the one constant symbol
            if has_zero and weights.constant != 0:
                raise StorageError(f"{where}: zero flag disagrees with the stored symbols")
            budget.imply(where, n_elements, "its zero-bit weight stream")
            patterns = np.full(n_elements, lookup[weights.constant], dtype=pattern)
            n_nonzero = 0 if has_zero else n_elements
        else:
            symbols = weights.symbols
            n_nonzero = int(np.count_nonzero(symbols)) if has_zero else n_elements
            if has_zero != (n_nonzero < n_elements):
                raise StorageError(f"{where}: zero flag disagrees with the stored symbols")
            patterns = lookup[symbols]
            del symbols
    payload.expect_end()
    array = dtypes.from_patterns(patterns, dtype, shape)
    stored_bytes = reader.pos - start
    info = LayerInfo(
        name, shape, dtype, encoding, n_nonzero, codebook_size, index_bits,
        weight_info, index_info, parts, payload_bytes, stored_bytes,
    )
    if sum(parts.values()) != stored_bytes:
        raise AssertionError(f"{where}: byte accounting is off ({parts} vs {stored_bytes})")
    return array, info
