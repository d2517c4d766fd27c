"""Canonical, length-limited Huffman codes: build from frequencies, encode, decode.

A code is described by its code lengths alone (one per symbol, 0 for an unused symbol);
codewords are assigned canonically -- in order of (length, symbol), each the previous one
plus one, shifted left when the length grows -- so a file stores only the lengths.

Lengths come from the package-merge algorithm, which gives an optimal prefix code under a
maximum codeword length (here :data:`MAX_CODE_LENGTH` bits). When the limit does not bind
its total cost equals Huffman's. Decoding is table driven: the ``max_length``-bit window
starting at *every* bit position is looked up at once with NumPy, which gives the symbol and
length of the codeword that would start there, and pointer doubling over those jumps picks
out the positions where codewords really start -- no Python loop over symbols.

References: Huffman, `A Method for the Construction of Minimum-Redundancy Codes
<https://doi.org/10.1109/JRPROC.1952.273898>`_, 1952. Larmore & Hirschberg, `A fast
algorithm for optimal length-limited Huffman codes <https://doi.org/10.1145/79147.79150>`_,
1990. Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016
(Huffman coding of cluster indices and sparse-index gaps).
"""

from __future__ import annotations

import numpy as np

from wsjax.storage.errors import StorageError

MAX_CODE_LENGTH = 16


def code_lengths(frequencies, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Optimal code lengths (int64, one per symbol) for symbol counts ``frequencies``.

    Unused symbols (count 0) get length 0. A single used symbol gets length 1 (a prefix code
    needs at least one bit per symbol). Ties are broken by symbol number, so the result is
    deterministic.
    """
    freqs = np.asarray(frequencies)
    if freqs.ndim != 1 or not np.issubdtype(freqs.dtype, np.integer):
        raise ValueError("frequencies must be a 1-D integer array")
    if (freqs < 0).any():
        raise ValueError("frequencies must be non-negative")
    if not 1 <= max_length <= 32:
        raise ValueError(f"max_length must be in [1, 32], got {max_length}")
    lengths = np.zeros(freqs.size, dtype=np.int64)
    used = np.flatnonzero(freqs)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used[0]] = 1
        return lengths
    if used.size > 1 << max_length:
        raise ValueError(f"{used.size} symbols cannot be coded in at most {max_length} bits")
    # Package-merge: an item is (weight, node); a node is a symbol (int) or a pair of nodes.
    leaves = sorted(((int(freqs[s]), int(s)) for s in used), key=lambda item: item[0])
    items = leaves
    for _ in range(max_length - 1):
        packages = [
            (a[0] + b[0], (a[1], b[1])) for a, b in zip(items[0::2], items[1::2])
        ]
        items = sorted(leaves + packages, key=lambda item: item[0])  # stable: leaves first
    # Each appearance of a symbol among the 2n - 2 cheapest items adds one bit to its length.
    stack = [node for _, node in items[: 2 * (used.size - 1)]]
    while stack:
        node = stack.pop()
        if isinstance(node, int):
            lengths[node] += 1
        else:
            stack.extend(node)
    return lengths


def validate_lengths(lengths, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Check that ``lengths`` describe a usable prefix code; raise StorageError if not.

    The code must be complete (Kraft sum exactly 1), or be a single symbol of length 1.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and (lengths.min() < 0 or lengths.max() > max_length):
        raise StorageError(f"Huffman table: code length outside [0, {max_length}]")
    used = lengths[lengths > 0]
    if used.size == 0:
        raise StorageError("Huffman table: no symbol has a code")
    if used.size == 1:
        if used[0] != 1:
            raise StorageError("Huffman table: a single symbol must have a 1-bit code")
        return lengths
    kraft = int(np.sum(np.left_shift(np.int64(1), max_length - used)))
    if kraft != 1 << max_length:
        state = "over-subscribed" if kraft > 1 << max_length else "incomplete"
        raise StorageError(f"Huffman table: code lengths are {state}")
    return lengths


def canonical_codes(lengths) -> np.ndarray:
    """Canonical codewords (int64) for ``lengths``; 0 where a symbol has no code."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    order = np.lexsort((np.arange(lengths.size), lengths))
    order = order[lengths[order] > 0]
    code, previous = 0, 0
    for symbol in order.tolist():
        length = int(lengths[symbol])
        code <<= length - previous
        codes[symbol] = code
        code += 1
        previous = length
    return codes


def encoded_bits(symbols, lengths) -> int:
    """Number of bits :func:`encode` writes for ``symbols``."""
    return int(np.asarray(lengths, dtype=np.int64)[np.asarray(symbols, dtype=np.int64)].sum())


def encode(symbols, lengths) -> tuple[bytes, int]:
    """Encode ``symbols`` with the canonical code of ``lengths``; returns (bytes, n_bits).

    The last byte is padded with zero bits.
    """
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    lengths = np.asarray(lengths, dtype=np.int64)
    if symbols.size == 0:
        return b"", 0
    if symbols.min() < 0 or symbols.max() >= lengths.size:
        raise ValueError("symbol outside the code's alphabet")
    symbol_lengths = lengths[symbols]
    if (symbol_lengths == 0).any():
        raise ValueError("symbol without a codeword (frequency 0 when the code was built)")
    symbol_codes = canonical_codes(lengths)[symbols]
    starts = np.cumsum(symbol_lengths) - symbol_lengths
    n_bits = int(symbol_lengths.sum())
    bits = np.zeros(n_bits, dtype=np.uint8)
    for j in range(int(symbol_lengths.max())):
        has_bit = symbol_lengths > j
        shift = symbol_lengths[has_bit] - 1 - j
        bits[starts[has_bit] + j] = (symbol_codes[has_bit] >> shift) & 1
    return np.packbits(bits).tobytes(), n_bits


_SEGMENT_BITS = 1 << 20  # bits decoded at a time (bounds the temporaries to tens of MB)


def decode(data: bytes, lengths, n_symbols: int) -> tuple[np.ndarray, int]:
    """Decode ``n_symbols`` symbols (int32) from ``data``; returns (symbols, bits consumed).

    Raises StorageError when the bits run out, hit an invalid codeword, or leave more than
    the final byte's zero padding unread. The stream is decoded in segments of
    ``_SEGMENT_BITS`` bits, so the temporaries stay small whatever its length.
    """
    lengths = validate_lengths(lengths)
    if n_symbols < 0:
        raise StorageError("Huffman stream: negative symbol count")
    if n_symbols == 0:
        if data:
            raise StorageError("Huffman stream: data present for zero symbols")
        return np.zeros(0, dtype=np.int32), 0
    n_bits = 8 * len(data)
    if n_symbols > n_bits:
        raise StorageError(
            f"Huffman stream: {n_symbols} symbols cannot fit in {len(data)} byte(s)"
        )
    max_length = int(lengths.max())
    if n_bits > n_symbols * max_length + 7:
        raise StorageError(
            f"Huffman stream: unexpected bits after the last symbol ({len(data)} byte(s) "
            f"are more than {n_symbols} symbols of at most {max_length} bits can take)"
        )
    # Lookup table: every max_length-bit window -> (symbol, length) of its leading codeword.
    table_symbol = np.zeros(1 << max_length, dtype=np.int32)
    table_length = np.zeros(1 << max_length, dtype=np.int64)
    codes = canonical_codes(lengths)
    for symbol in np.flatnonzero(lengths).tolist():
        length = int(lengths[symbol])
        lo = int(codes[symbol]) << (max_length - length)
        hi = (int(codes[symbol]) + 1) << (max_length - length)
        table_symbol[lo:hi] = symbol
        table_length[lo:hi] = length
    # The max_length-bit window at bit p lies within the three bytes from byte p // 8.
    padded = np.concatenate([np.frombuffer(data, dtype=np.uint8), np.zeros(3, np.uint8)])
    padded = padded.astype(np.int64)
    out = np.empty(n_symbols, dtype=np.int32)
    done, start = 0, 0  # symbols decoded; bit where the next codeword starts
    while done < n_symbols:
        if start >= n_bits:
            raise StorageError("Huffman stream: truncated or invalid codeword")
        size = min(_SEGMENT_BITS, n_bits - start)
        position = np.arange(start, start + size, dtype=np.int64)
        byte = position >> 3
        triples = (padded[byte] << 16) | (padded[byte + 1] << 8) | padded[byte + 2]
        window = (triples >> ((24 - max_length) - (position & 7))) & ((1 << max_length) - 1)
        del triples, byte
        step = table_length[window]
        # Local states: 0..size-1 a bit of this segment; ``size`` a codeword that ends at or
        # after the segment's end; ``size + 1`` an invalid codeword or one past the data.
        local = np.arange(size, dtype=np.int64) + step
        exit_state, invalid = size, size + 1
        local[local >= size] = exit_state
        local[(step == 0) | (position + step > n_bits)] = invalid
        jump = np.concatenate([local, np.array([exit_state, invalid], dtype=np.int64)])
        del local, position
        # Pointer doubling: if ``starts`` holds the first 2**k codeword starts and ``leap``
        # is ``jump`` applied 2**k times, ``leap[starts]`` are the next 2**k starts.
        want = min(n_symbols - done, size)
        starts = np.zeros(1, dtype=np.int64)
        leap = jump
        while starts.size < want and starts[-1] < size:
            starts = np.concatenate([starts, leap[starts]])
            if starts.size < want and starts[-1] < size:
                leap = leap[leap]
        del leap
        starts = starts[starts < size][:want]
        last = int(starts[-1])
        if jump[last] == invalid:
            raise StorageError("Huffman stream: truncated or invalid codeword")
        out[done : done + starts.size] = table_symbol[window[starts]]
        done += starts.size
        start += last + int(step[last])
    end = start
    padding = n_bits - end
    if padding >= 8 or data[-1] & ((1 << padding) - 1):
        raise StorageError("Huffman stream: unexpected bits after the last symbol")
    return out, end
