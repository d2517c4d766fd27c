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

from typing import NamedTuple, Optional

import numpy as np

from wsjax.storage import codebook as codebooks
from wsjax.storage import dtypes, limits, sparse, streams
from wsjax.storage.bytestream import ByteReader, ByteWriter, varint_size
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


class _Leaf:
    """What the encodings of one leaf share, each computed once: its nonzero positions and
    their zero runs, its codebook and cluster indices, and per index width the stored
    entries' gap counts. Every candidate is *planned* from these counts -- its exact size,
    stream layouts chosen -- and only the one written is built (:meth:`payload`)."""

    def __init__(self, patterns: np.ndarray):
        self.patterns = patterns
        self.positions = np.flatnonzero(patterns)
        self.skipped = np.diff(self.positions, prepend=-1) - 1  # zeros before each nonzero
        self._codebook = self._clusters = self._cluster_counts = None
        self._gaps: dict = {}  # index_bits -> (gap counts, fillers)
        self._streams: dict = {}  # what -> streams.Plan

    @property
    def itemsize(self) -> int:
        return self.patterns.dtype.itemsize

    def codebook(self) -> np.ndarray:
        if self._codebook is None:
            self._codebook = np.unique(self.patterns[self.positions])
        return self._codebook

    def clusters(self) -> np.ndarray:
        """Each nonzero's index in the codebook (int64)."""
        if self._clusters is None:
            self._clusters = codebooks.assign(self.patterns[self.positions], self.codebook())
        return self._clusters

    def cluster_counts(self) -> np.ndarray:
        if self._cluster_counts is None:
            self._cluster_counts = np.bincount(self.clusters(), minlength=self.codebook().size)
        return self._cluster_counts

    def gap_counts(self, index_bits: int) -> tuple[np.ndarray, int]:
        """Counts of the stored entries' gaps and the number of fillers (see
        :func:`sparse.encode_positions`, whose gaps these are)."""
        if index_bits not in self._gaps:
            span = 1 << index_bits
            fillers = self.skipped >> index_bits
            n_fillers = int(fillers.sum())
            counts = np.bincount(self.skipped & (span - 1), minlength=span)
            counts[span - 1] += n_fillers
            self._gaps[index_bits] = counts, n_fillers
        return self._gaps[index_bits]

    def stream(self, what, counts, alphabet_size: int) -> streams.Plan:
        if what not in self._streams:
            self._streams[what] = streams.plan(counts, alphabet_size)
        return self._streams[what]

    # -- sizes of the candidates (exact: what payload() writes) ---------------------------

    def sparse_size(self, index_bits: int) -> int:
        k = self.codebook().size
        gap_counts, n_fillers = self.gap_counts(index_bits)
        n_entries = self.positions.size + n_fillers
        weights, index = self._sparse_streams(index_bits)
        return (2 + varint_size(n_entries) + varint_size(k) + k * self.itemsize
                + weights.total_bytes + index.total_bytes)

    def _sparse_streams(self, index_bits: int):
        gap_counts, n_fillers = self.gap_counts(index_bits)
        has_filler = n_fillers > 0
        counts = self.cluster_counts()
        if has_filler:
            counts = np.concatenate([[n_fillers], counts])
        weights = self.stream(("sparse weights", index_bits), counts, counts.size)
        index = self.stream(("index", index_bits), gap_counts, 1 << index_bits)
        return weights, index

    def dense_codebook_size(self) -> int:
        k = self.codebook().size
        return 1 + varint_size(k) + k * self.itemsize + self._dense_stream().total_bytes

    def _dense_stream(self) -> streams.Plan:
        counts = self.cluster_counts()
        n_zero = self.patterns.size - self.positions.size
        if n_zero:
            counts = np.concatenate([[n_zero], counts])
        return self.stream("dense weights", counts, counts.size)

    def raw_size(self) -> int:
        return self.patterns.size * self.itemsize

    def sparse_raw_size(self, index_bits: int) -> int:
        gap_counts, n_fillers = self.gap_counts(index_bits)
        n_entries = self.positions.size + n_fillers
        index = self.stream(("index", index_bits), gap_counts, 1 << index_bits)
        return 1 + varint_size(n_entries) + index.total_bytes + n_entries * self.itemsize

    def best_raw_index_bits(self) -> int:
        """The index width that makes a ``sparse_raw`` record smallest: with a raw value per
        stored entry a filler costs a whole value, so wider gaps pay off sooner than in
        ``sparse``."""
        skipped, value_bits = self.skipped, 8 * self.itemsize
        sizes = {b: (skipped.size + int((skipped >> b).sum())) * (value_bits + b)
                 for b in range(1, MAX_INDEX_BITS + 1)}
        return min(sizes, key=sizes.get)

    # -- the payloads ----------------------------------------------------------------------

    def payload(self, encoding: str, index_bits: int) -> bytes:
        if encoding == "raw":
            return dtypes.patterns_to_bytes(self.patterns)
        if encoding == "dense_codebook":
            return self._dense_codebook_payload()
        gaps, is_filler = sparse.encode_positions(self.positions, index_bits)
        out = ByteWriter()
        out.uint(index_bits, 1)
        out.varint(gaps.size)
        index = self.stream(("index", index_bits), self.gap_counts(index_bits)[0],
                            1 << index_bits)
        if encoding == "sparse_raw":
            values = np.zeros(gaps.size, dtype=self.patterns.dtype)
            values[~is_filler] = self.patterns[self.positions]
            out.bytes(streams.emit(index, gaps))
            out.bytes(dtypes.patterns_to_bytes(values))
            return out.getvalue()
        weights, _ = self._sparse_streams(index_bits)
        has_filler = bool(is_filler.any())
        symbols = np.zeros(gaps.size, dtype=np.int64)
        symbols[~is_filler] = self.clusters() + has_filler
        out.varint(self.codebook().size)
        out.uint(int(has_filler), 1)
        out.bytes(codebooks.to_bytes(self.codebook()))
        out.bytes(streams.emit(weights, symbols))
        out.bytes(streams.emit(index, gaps))
        return out.getvalue()

    def _dense_codebook_payload(self) -> bytes:
        has_zero = self.positions.size < self.patterns.size
        symbols = np.zeros(self.patterns.size, dtype=np.int64)
        symbols[self.positions] = self.clusters() + has_zero
        out = ByteWriter()
        out.varint(self.codebook().size)
        out.uint(int(has_zero), 1)
        out.bytes(codebooks.to_bytes(self.codebook()))
        out.bytes(streams.emit(self._dense_stream(), symbols))
        return out.getvalue()


def best_raw_index_bits(patterns: np.ndarray) -> int:
    """The index width that makes a ``sparse_raw`` record of ``patterns`` smallest."""
    return _Leaf(patterns).best_raw_index_bits()


def _choose(leaf: _Leaf, array: np.ndarray, encoding: str, index_bits: int,
            name: str) -> tuple[str, int]:
    """``(encoding, index bits)`` of the record: the requested encoding, or for 'auto' the
    smallest eligible one (ties in the order sparse, dense codebook, raw, sparse raw)."""
    if encoding == "auto":
        if array.ndim < 2:
            return "raw", index_bits
        raw_bits = leaf.best_raw_index_bits()
        if leaf.codebook().size > codebooks.MAX_CODEBOOK_SIZE:
            sizes = {("raw", index_bits): leaf.raw_size(),
                     ("sparse_raw", raw_bits): leaf.sparse_raw_size(raw_bits)}
        else:
            sizes = {("sparse", index_bits): leaf.sparse_size(index_bits),
                     ("dense_codebook", index_bits): leaf.dense_codebook_size(),
                     ("raw", index_bits): leaf.raw_size(),
                     ("sparse_raw", raw_bits): leaf.sparse_raw_size(raw_bits)}
        return min(sizes, key=sizes.get)  # first wins ties
    if encoding in ("sparse", "dense_codebook"):
        if leaf.codebook().size > codebooks.MAX_CODEBOOK_SIZE:
            raise ValueError(
                f"{name}: encoding {encoding!r} needs at most {codebooks.MAX_CODEBOOK_SIZE} "
                f"distinct nonzero values, found {leaf.codebook().size} (quantize the layer "
                "first, or use 'raw')"
            )
        return encoding, index_bits
    if encoding in ("raw", "sparse_raw"):
        return encoding, index_bits
    raise ValueError(f"{name}: unknown encoding {encoding!r}; choose from {ENCODINGS + ('auto',)}")


def encode_layer(name: str, array: np.ndarray, encoding: str, index_bits: int) -> bytes:
    """The record of one layer. ``encoding='auto'`` picks the smallest eligible encoding
    (sparse and codebook encodings only for 2-D and larger leaves; ties go to sparse, then
    dense codebook, raw, sparse raw; sparse raw with the index width of
    :func:`best_raw_index_bits`, the others with ``index_bits``). Every candidate's size is
    worked out from the leaf's counts, and only the chosen payload is written."""
    index_bits = check_index_bits(index_bits, name)
    dtypes.dtype_code(array.dtype)
    if array.ndim > 255:
        raise ValueError(f"{name}: {array.ndim} dimensions (max 255)")
    leaf = _Leaf(dtypes.to_patterns(array))
    encoding, bits_used = _choose(leaf, array, encoding, index_bits, name)
    payload = leaf.payload(encoding, bits_used)
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
