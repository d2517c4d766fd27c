"""A coded symbol stream: the smallest of fixed-width, Huffman, or constant coding.

Deep Compression Huffman-codes the cluster indices and the sparse-index gaps. Here each such
stream picks whichever layout is smallest *including its table*, and records which:

* ``fixed``    -- ``mode`` byte, then every symbol in ``bit_width(alphabet_size)`` bits;
* ``huffman``  -- ``mode`` byte, the canonical code table (varint ``table_size`` = last coded
  symbol + 1, one byte ``max_length``, then ``table_size`` code lengths packed in
  ``bit_width(max_length + 1)`` bits each), varint data byte count, then the codewords;
* ``constant`` -- ``mode`` byte, varint symbol: every symbol equal, zero bits each.

The number of symbols and the alphabet size are known to the caller (from the layer header),
so they are not repeated here. Ties prefer constant, then fixed, then Huffman. The layout
depends on the symbol counts alone: :func:`plan` sizes a stream from them without writing
it, :func:`emit` writes it, so an encoder can size every candidate and write only one.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from wsjax.storage import bits, huffman
from wsjax.storage.bytestream import ByteReader, ByteWriter
from wsjax.storage.errors import StorageError

MODES = {0: "fixed", 1: "huffman", 2: "constant"}
_MODE_CODE = {name: code for code, name in MODES.items()}


class StreamInfo(NamedTuple):
    """How a stream was stored. ``table_bytes + code_bytes`` is its whole size."""

    mode: str
    n_symbols: int
    fixed_bits: int  # bits per symbol at fixed width
    code_bits: int  # bits of symbol data actually stored (excluding padding and table)
    table_bytes: int  # mode byte, code table, length fields
    code_bytes: int  # symbol data bytes

    @property
    def total_bytes(self) -> int:
        return self.table_bytes + self.code_bytes

    @property
    def bits_per_symbol(self) -> float:
        return self.code_bits / self.n_symbols if self.n_symbols else 0.0

    @property
    def fixed_total_bytes(self) -> int:
        """Size this stream would take in ``fixed`` mode."""
        return 1 + bits.packed_size(self.n_symbols, self.fixed_bits)


def _huffman_layout(lengths: np.ndarray) -> tuple[int, int, int]:
    """(table_size, max_length, length_width) of a Huffman table."""
    table_size = int(np.flatnonzero(lengths)[-1]) + 1
    max_length = int(lengths.max())
    return table_size, max_length, bits.bit_width(max_length + 1)


def _varint(value: int) -> bytes:
    out = ByteWriter()
    out.varint(value)
    return out.getvalue()


class Plan(NamedTuple):
    """How :func:`encode` stores a stream, worked out from the symbol counts alone: the
    layout, everything before the symbol data, and the data's size. :func:`emit` writes it."""

    mode: str
    n_symbols: int
    fixed_bits: int  # bits per symbol at fixed width
    header: bytes  # after the mode byte: the constant symbol, or the Huffman table
    code_bits: int
    code_bytes: int
    lengths: Optional[np.ndarray]  # the Huffman code lengths (mode 'huffman')

    @property
    def total_bytes(self) -> int:
        return 1 + len(self.header) + self.code_bytes

    @property
    def info(self) -> StreamInfo:
        return StreamInfo(self.mode, self.n_symbols, self.fixed_bits, self.code_bits,
                          1 + len(self.header), self.code_bytes)


def plan(counts, alphabet_size: int) -> Plan:
    """The smallest layout of a stream whose symbol ``s`` occurs ``counts[s]`` times
    (``counts`` of length ``alphabet_size``): exactly what :func:`encode` picks."""
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    width = bits.bit_width(alphabet_size)
    candidates = [("fixed", b"", bits.packed_size(n, width), n * width, None)]
    if n:
        used = np.flatnonzero(counts)
        if used.size == 1:
            candidates.insert(0, ("constant", _varint(int(used[0])), 0, 0, None))
        else:
            lengths = huffman.code_lengths(counts)
            table_size, max_length, length_width = _huffman_layout(lengths)
            n_bits = int(np.dot(counts, lengths))
            n_bytes = (n_bits + 7) // 8
            header = ByteWriter()
            header.varint(table_size)
            header.uint(max_length, 1)
            header.bytes(bits.pack_uint(lengths[:table_size], length_width))
            header.varint(n_bytes)
            candidates.append(("huffman", header.getvalue(), n_bytes, n_bits, lengths))
    mode, header, n_bytes, code_bits, lengths = min(candidates, key=lambda c: len(c[1]) + c[2])
    return Plan(mode, n, width, header, code_bits, n_bytes, lengths)


def emit(stream: Plan, symbols) -> bytes:
    """The bytes of a stream laid out by ``stream`` (a :func:`plan` of these ``symbols``)."""
    if stream.mode == "fixed":
        data = bits.pack_uint(symbols, stream.fixed_bits)
    elif stream.mode == "huffman":
        data = huffman.encode(symbols, stream.lengths)[0]
    else:
        data = b""
    if len(data) != stream.code_bytes:
        raise AssertionError(f"stream of {stream.code_bytes} planned bytes wrote {len(data)}")
    return bytes([_MODE_CODE[stream.mode]]) + stream.header + data


def encode(symbols, alphabet_size: int) -> tuple[bytes, StreamInfo]:
    """Encode integer ``symbols`` in ``[0, alphabet_size)`` in the smallest layout (ties
    prefer constant, then fixed, then Huffman)."""
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet_size):
        raise ValueError(f"symbols outside the alphabet [0, {alphabet_size})")
    counts = np.bincount(symbols, minlength=alphabet_size) if symbols.size else np.zeros(
        alphabet_size, dtype=np.int64)
    stream = plan(counts, alphabet_size)
    return emit(stream, symbols), stream.info


class Stream(NamedTuple):
    """A stream read off a file: its symbols, or for a stream of zero bits per symbol
    (``constant``, or ``fixed`` over a one-symbol alphabet) only the one ``constant`` symbol,
    so that nothing the size of ``n_symbols`` is allocated until :meth:`array` is called."""

    symbols: Optional[np.ndarray]  # int32; None when constant
    constant: Optional[int]
    info: StreamInfo

    def array(self) -> np.ndarray:
        if self.symbols is not None:
            return self.symbols
        return np.full(self.info.n_symbols, self.constant, dtype=np.int32)


def read(reader: ByteReader, n_symbols: int, alphabet_size: int) -> Stream:
    """Read a stream of ``n_symbols`` symbols written by :func:`encode`, materializing only
    streams that store at least one bit per symbol (so at most eight symbols a byte)."""
    start = reader.pos
    mode_code = reader.uint(1, "stream mode")
    if mode_code not in MODES:
        raise StorageError(f"{reader.what}: unknown stream mode {mode_code}")
    mode = MODES[mode_code]
    width = bits.bit_width(alphabet_size)
    symbols = constant = None
    if mode == "fixed":
        if width == 0 and n_symbols:  # a one-symbol (or empty) alphabet: zero bits each
            if alphabet_size < 1:
                raise StorageError(f"{reader.what}: fixed-width symbol outside alphabet")
            data, constant = b"", 0
        else:
            data = reader.bytes(bits.packed_size(n_symbols, width), "fixed-width symbols")
            symbols = bits.unpack_uint(data, n_symbols, width).astype(np.int32, copy=False)
            if symbols.size and symbols.max() >= alphabet_size:
                raise StorageError(f"{reader.what}: fixed-width symbol outside alphabet")
        code_bits = n_symbols * width
    elif mode == "constant":
        symbol = reader.varint("constant symbol")
        if n_symbols == 0:
            raise StorageError(f"{reader.what}: constant stream without symbols")
        if symbol >= alphabet_size:
            raise StorageError(f"{reader.what}: constant symbol {symbol} outside alphabet")
        data, code_bits, constant = b"", 0, symbol
    else:
        table_size = reader.varint("Huffman table size")
        if not 2 <= table_size <= alphabet_size:
            raise StorageError(f"{reader.what}: Huffman table size {table_size} invalid")
        max_length = reader.uint(1, "Huffman max length")
        if not 1 <= max_length <= huffman.MAX_CODE_LENGTH:
            raise StorageError(f"{reader.what}: Huffman max code length {max_length} invalid")
        length_width = bits.bit_width(max_length + 1)
        packed = reader.bytes(bits.packed_size(table_size, length_width), "Huffman table")
        lengths = bits.unpack_uint(packed, table_size, length_width)
        if lengths.max() != max_length or lengths[-1] == 0:
            raise StorageError(f"{reader.what}: Huffman table inconsistent with its header")
        data = reader.bytes(reader.varint("Huffman data size"), "Huffman data")
        try:
            symbols, code_bits = huffman.decode(data, lengths, n_symbols)
        except StorageError as e:
            raise StorageError(f"{reader.what}: {e}") from None
        if n_symbols == 0 or symbols.min() == symbols.max():  # fewer than two symbols
            raise StorageError(f"{reader.what}: Huffman stream with fewer than two symbols")
    code_bytes = len(data)
    table_bytes = reader.pos - start - code_bytes
    info = StreamInfo(mode, n_symbols, width, code_bits, table_bytes, code_bytes)
    return Stream(symbols, constant, info)


def decode(reader: ByteReader, n_symbols: int, alphabet_size: int) -> tuple[np.ndarray, StreamInfo]:
    """Read a stream of ``n_symbols`` symbols written by :func:`encode`."""
    stream = read(reader, n_symbols, alphabet_size)
    return stream.array(), stream.info
