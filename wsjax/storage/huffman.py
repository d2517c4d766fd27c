"""Canonical, length-limited Huffman codes: build from frequencies, encode, decode.

A code is described by its code lengths alone (one per symbol, 0 for an unused symbol);
codewords are assigned canonically -- in order of (length, symbol), each the previous one
plus one, shifted left when the length grows -- so a file stores only the lengths.

Lengths come from the package-merge algorithm, which gives an optimal prefix code under a
maximum codeword length (here :data:`MAX_CODE_LENGTH` bits). When the limit does not bind
its total cost equals Huffman's. It runs on arrays: each round's stable merge of the leaves
and the packages is two ``searchsorted`` calls, and a symbol's length is the number of
rounds whose selected prefix holds it, counted back from the last round.

Decoding is table driven and vectorised. The ``max_length``-bit window at every bit
position is computed at once (a ``uint16`` array), and a lookup table gives the symbol and
length of the codeword that would start there. The positions where codewords really start
-- those reachable from bit 0 -- are then found by *speculative lanes*: the stream is cut
into chunks of about 32 codewords, one lane per chunk starts at the chunk's first bit (a
guess) and walks codeword by codeword in lockstep with all the others (three NumPy calls a
step for all lanes) until it leaves its chunk, and then on until it lands on a position the
lane of the chunk it is in visited. From there the two paths are the same (the code is a
prefix code: the walk from a position is determined by the position), so the true parse is
lane 0's positions up to that meeting point, then the meeting lane's, and so on. Prefix
codes resynchronise within a few codewords, so the lanes do a few tens of percent more work
than there are symbols, with one NumPy step per codeword of a chunk rather than one Python
step per symbol.

A code whose codewords are nearly all of one length resynchronises slowly (one of equal
lengths never does). Such a code -- most of its Kraft sum on one length -- and any stream
whose lanes are still apart after :data:`_MAX_EXTENSION` steps is decoded by *offset
lanes*: one lane at each of a chunk's first ``max_length`` bits, one of which is where the
true path enters the chunk, so the parse is a chain of lanes, exact without any meeting
(``max_length`` times the work). Short segments (and invalid codewords, where a lane
stops) are decoded by pointer doubling over the position after each bit's codeword. All
three give the same answer; temporaries stay small (large ones cost page faults on every
call).

References: Huffman, `A Method for the Construction of Minimum-Redundancy Codes
<https://doi.org/10.1109/JRPROC.1952.273898>`_, 1952. Larmore & Hirschberg, `A fast
algorithm for optimal length-limited Huffman codes <https://doi.org/10.1145/79147.79150>`_,
1990. Klein & Wiseman, `Parallel Huffman decoding with applications to JPEG files
<https://doi.org/10.1093/comjnl/46.5.487>`_, 2003 (self-synchronisation of Huffman codes,
speculative parallel decoding). Han, Mao & Dally, `Deep Compression
<https://arxiv.org/abs/1510.00149>`_, 2016 (Huffman coding of cluster indices and
sparse-index gaps).
"""

from __future__ import annotations

import numpy as np

from wsjax.storage import bits
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
    # Package-merge. The leaves, sorted stably by weight (ties by symbol), are list 1; list
    # j + 1 is the stable merge (a leaf before a package of equal weight) of the leaves with
    # the packages of list j (the sums of its consecutive pairs, already sorted).
    n = used.size
    order = used[np.argsort(freqs[used], kind="stable")]
    leaf_w = freqs[order].astype(np.int64)
    leaf_rank = np.arange(n)
    items = leaf_w
    leaf_flags = []  # per round: which items of its merged list are leaves
    for _ in range(max_length - 1):
        half = items.size // 2
        packages = items[0 : 2 * half : 2] + items[1 : 2 * half : 2]
        at_leaf = leaf_rank + np.searchsorted(packages, leaf_w, side="left")
        at_package = np.arange(half) + np.searchsorted(leaf_w, packages, side="right")
        items = np.empty(n + half, dtype=np.int64)
        items[at_leaf] = leaf_w
        items[at_package] = packages
        is_leaf = np.zeros(n + half, dtype=bool)
        is_leaf[at_leaf] = True
        leaf_flags.append(is_leaf)
    # The 2n - 2 cheapest items of the last list: each appearance of a leaf in them, or in
    # the items of list j - 1 that the packages among them are made of, adds one bit.
    # Those leaves are always the cheapest ones (a prefix of the sorted leaves).
    per_rank = np.zeros(n + 1, dtype=np.int64)  # a difference array over leaf ranks
    take = 2 * (n - 1)
    for is_leaf in reversed(leaf_flags):
        take = min(take, is_leaf.size)
        n_leaves = int(np.count_nonzero(is_leaf[:take]))
        per_rank[0] += 1
        per_rank[n_leaves] -= 1
        take = 2 * (take - n_leaves)
    take = min(take, n)
    per_rank[0] += 1
    per_rank[take] -= 1
    lengths[order] = np.cumsum(per_rank[:n])
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


def _canonical_order(lengths: np.ndarray) -> np.ndarray:
    """The coded symbols in canonical order: by length, then by symbol."""
    order = np.lexsort((np.arange(lengths.size), lengths))
    return order[lengths[order] > 0]


def canonical_codes(lengths) -> np.ndarray:
    """Canonical codewords (int64) for ``lengths``; 0 where a symbol has no code.

    In canonical order each codeword, left-aligned to the longest length, is the sum of
    ``2**(longest - length)`` over the codewords before it (that is what "the previous one
    plus one, shifted left when the length grows" adds up to), so one cumulative sum gives
    them all.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    order = _canonical_order(lengths)
    if order.size == 0:
        return codes
    longest = int(lengths[order[-1]])
    if longest > 40 or order.size > 1 << 20:  # keep the sums well inside int64
        code, previous = 0, 0
        for symbol in order.tolist():
            length = int(lengths[symbol])
            code <<= length - previous
            codes[symbol] = code
            code += 1
            previous = length
        return codes
    spans = np.left_shift(np.int64(1), longest - lengths[order])
    aligned = np.cumsum(spans) - spans
    codes[order] = aligned >> (longest - lengths[order])
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
    if int(symbol_lengths.max()) > 32:
        raise ValueError("codewords longer than 32 bits")
    return bits.pack_fields(canonical_codes(lengths)[symbols], symbol_lengths)


# ----------------------------------------------------------------------------- decoding

_SEGMENT_BITS = 1 << 20  # bits decoded at a time (bounds the temporaries to a few MB)
_LANE_SYMBOLS = 32  # codewords per speculative lane's chunk (NumPy steps of the walk)
_DOUBLING_BITS = 4096  # segments up to this long are decoded by pointer doubling (faster)
_MAX_EXTENSION = 256  # steps a lane may walk past its chunk to meet another lane's path
_OFFSET_LANE_SYMBOLS = 32  # codewords per chunk of offset lanes
_SLOW_SYNC_MASS = 0.8  # offset lanes for codes whose commonest length has this Kraft mass,
_SLOW_SYNC_MASS_SHORT = 0.65  # or this much with codewords of at most 8 bits


def _tables(lengths: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``max_length``-bit window -> (symbol, length) of its leading codeword (length 0:
    no codeword starts so), plus one entry past them, the *stop* window (length 0). In
    canonical order the codewords' ranges of windows tile the table from 0 up, so the table
    is one ``np.repeat``."""
    order = _canonical_order(lengths)
    spans = np.left_shift(np.int64(1), max_length - lengths[order])
    size = (1 << max_length) + 1
    table_symbol = np.zeros(size, dtype=np.int32)
    table_length = np.zeros(size, dtype=np.int64)
    covered = int(spans.sum())  # all of it for a complete code, half for a 1-symbol one
    table_symbol[:covered] = np.repeat(order.astype(np.int32), spans)
    table_length[:covered] = np.repeat(lengths[order], spans)
    return table_symbol, table_length


def _windows(padded: np.ndarray, start: int, size: int, max_length: int) -> np.ndarray:
    """The ``max_length``-bit window at each of the ``size`` bits from bit ``start`` of the
    zero-padded bytes ``padded``, followed by ``max_length + 1`` stop windows (a walk that
    reaches or jumps past the segment's end stays there)."""
    first, skip = start >> 3, start & 7
    n_bytes = (skip + size + 7) >> 3
    octets = padded[first : first + n_bytes + 2].astype(np.uint32)
    triples = (octets[:-2] << 16) | (octets[1:-1] << 8) | octets[2:]  # the window's bytes
    stop = 1 << max_length
    windows = np.empty(n_bytes * 8 + max_length + 1, np.uint16 if stop <= 1 << 15 else np.uint32)
    grid = windows[: n_bytes * 8].reshape(n_bytes, 8)
    for offset in range(8):  # the windows at bit ``offset`` of each byte (faster than broadcasting)
        np.bitwise_and(triples >> (24 - max_length - offset), stop - 1, out=grid[:, offset],
                       casting="unsafe")
    windows = windows[skip:]
    windows[size:] = stop
    return windows


def _walk_lanes(windows: np.ndarray, table_length: np.ndarray, p: np.ndarray,
                lane_end: np.ndarray) -> np.ndarray | None:
    """Every lane's codeword starts from ``p`` until it has left its own chunk (ends at
    ``lane_end``), 8 steps at a time: ``(lanes, steps)``; ``None`` if a lane inside its chunk
    is stuck on an invalid codeword."""
    rows = [p]
    while True:
        for _ in range(8):
            p = p + table_length[windows[p]]
            rows.append(p)
        if (p >= lane_end).all():
            return np.stack(rows, axis=1)
        if ((p == rows[-2]) & (p < lane_end)).any():
            return None


def _lane_starts(windows: np.ndarray, table_length: np.ndarray, size: int,
                 chunk: int) -> np.ndarray | None:
    """The codeword starts reachable from local bit 0 (those below ``size``, in order), by
    speculative lanes of ``chunk`` bits each (see the module docstring); ``None`` if a lane
    on the true path did not meet another lane's path, or stopped at an invalid codeword."""
    n_lanes = -(-size // chunk)
    lane_start = np.arange(n_lanes, dtype=np.int64) * chunk
    lane_end = np.minimum(lane_start + chunk, size)
    walked = _walk_lanes(windows, table_length, lane_start, lane_end)  # lane k's path: row k
    if walked is None:
        return None
    p = walked[:, -1]  # where each lane stopped
    n_steps = walked.shape[1]
    past = walked >= lane_end[:, None]
    visited = np.zeros(windows.size, dtype=bool)  # positions lanes visited in their own chunk
    visited[walked[~past]] = True
    # A lane meets another's path at the first position past its own chunk that the lane
    # of that chunk visited, or it stops at or past the segment's end.
    meets = visited[walked]
    meets |= walked >= size
    meets &= past
    met = meets.any(axis=1)
    meet_step = np.where(met, meets.argmax(axis=1), n_steps)
    meet_at = walked[np.arange(n_lanes), np.minimum(meet_step, n_steps - 1)]
    del meets, past
    late = np.flatnonzero(~met)
    if late.size and _MAX_EXTENSION > 0:  # the lanes still apart walk on, most a few steps
        q, more, ahead = p[late], [], np.zeros(late.size, dtype=bool)
        while len(more) < _MAX_EXTENSION:
            for _ in range(8):
                q = q + table_length[windows[q]]
                more.append(q)
            block = np.stack(more[-8:], axis=1)
            ahead |= (visited[block] | (block >= size)).any(axis=1)
            if ahead.all():
                break
        more = np.stack(more, axis=1)
        hits = visited[more] | (more >= size)
        hit = hits.any(axis=1)
        first = np.where(hit, hits.argmax(axis=1), more.shape[1])
        met[late] = hit
        meet_at[late[hit]] = more[hit, first[hit]]
    # The true path: lane 0 from bit 0, then the lane whose chunk holds the meeting point.
    next_lane = np.where(meet_at < size, meet_at // chunk, n_lanes)
    if met.all() and np.array_equal(next_lane, np.arange(1, n_lanes + 1)):
        path = np.arange(n_lanes)  # the usual case: each lane meets the next one
    else:  # some lane met one further on: follow them by pointer doubling
        path = _doubling_starts(np.append(next_lane, n_lanes), n_lanes, n_lanes)
        if not met[path].all():
            return None
    entry = np.zeros(path.size, dtype=np.int64)
    entry[1:] = meet_at[path[:-1]]
    mine = walked[path] if path.size < n_lanes else walked
    keep = mine >= entry[:, None]
    keep &= np.arange(n_steps) < meet_step[path, None]
    starts = mine[keep]
    if late.size and _MAX_EXTENSION > 0:  # the late lanes' steps on the path before they met
        on_path = np.zeros(n_lanes, dtype=bool)
        on_path[path] = True
        mine = on_path[late]
        extra = more[mine][np.arange(more.shape[1]) < first[mine, None]]
        if extra.size:  # into their places among the others (all distinct)
            extra.sort()
            starts = np.insert(starts, np.searchsorted(starts, extra), extra)
    return starts


def _offset_starts(windows: np.ndarray, table_length: np.ndarray, size: int, chunk: int,
                   max_length: int) -> np.ndarray | None:
    """The codeword starts reachable from local bit 0 (those below ``size``, in order), by
    *offset lanes*: each chunk of ``chunk`` bits (at least ``max_length``) gets a lane at
    each of its first ``max_length`` bits. The true path enters a chunk at one of them (no
    codeword is longer), so it is the chain of lanes each entering the next chunk where the
    next lane starts: exact, with no waiting for lanes to get in step -- for codes slow to
    resynchronise (nearly equal codeword lengths), at ``max_length`` lanes a chunk. ``None``
    if a lane stopped at an invalid codeword."""
    chunk = max(chunk, max_length)
    n_chunks = -(-size // chunk)
    n_lanes = n_chunks * max_length
    home = np.arange(n_lanes, dtype=np.int64) // max_length  # each lane's chunk
    lane_end = np.minimum((home + 1) * chunk, size)
    p = np.minimum(home * chunk + np.arange(n_lanes, dtype=np.int64) % max_length, size)
    walked = _walk_lanes(windows, table_length, p, lane_end)  # (lanes, steps)
    if walked is None:
        return None
    past = walked >= lane_end[:, None]
    exit_at = walked[np.arange(n_lanes), past.argmax(axis=1)]
    # The lane a lane hands over to: the next chunk's lane at its exit's offset.
    next_lane = np.where(exit_at < size, (home + 1) * max_length + exit_at - lane_end, n_lanes)
    path = _doubling_starts(np.append(next_lane, n_lanes), n_lanes, n_lanes)
    return walked[path][~past[path]]


def _jumps(windows: np.ndarray, table_length: np.ndarray, size: int, room: int) -> np.ndarray:
    """Local bit -> local bit after its codeword: ``size`` for a codeword that ends at or
    after the segment's end, ``size + 1`` for an invalid codeword or one past the data (which
    ends at local bit ``room``); the two are absorbing."""
    step = table_length[windows[:size]]
    jump = np.empty(size + 2, dtype=np.int64)
    np.add(np.arange(size, dtype=np.int64), step, out=jump[:size])
    bad = (step == 0) | (jump[:size] > room)
    np.minimum(jump[:size], size, out=jump[:size])
    jump[:size][bad] = size + 1
    jump[size], jump[size + 1] = size, size + 1
    return jump


def _doubling_starts(jump: np.ndarray, size: int, want: int) -> np.ndarray:
    """The first ``want`` codeword starts reachable from local bit 0 by pointer doubling:
    if ``starts`` holds the first 2**k starts and ``leap`` is ``jump`` applied 2**k times,
    ``leap[starts]`` are the next 2**k starts."""
    starts = np.zeros(1, dtype=np.int64)
    leap = jump
    while starts.size < want and starts[-1] < size:
        starts = np.concatenate([starts, leap[starts]])
        if starts.size < want and starts[-1] < size:
            leap = leap[leap]
    return starts[starts < size][:want]


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
    table_symbol, table_length = _tables(lengths, max_length)
    padded = np.concatenate([np.frombuffer(data, dtype=np.uint8), np.zeros(3, np.uint8)])
    # Lanes of about _LANE_SYMBOLS codewords: the stream's mean codeword length is about
    # n_bits / n_symbols (the padding is under a byte).
    chunk = max(8, -(-_LANE_SYMBOLS * n_bits // n_symbols))
    offset_chunk = max(8, -(-_OFFSET_LANE_SYMBOLS * n_bits // n_symbols))
    # A code whose codewords are mostly of one length is slow to resynchronise: the share
    # of the code space (its Kraft sum) the commonest length takes says how slow.
    used = lengths[lengths > 0]
    mass = float(np.bincount(used, weights=np.ldexp(1.0, -used)).max())
    slow = mass >= _SLOW_SYNC_MASS or (mass >= _SLOW_SYNC_MASS_SHORT and max_length <= 8)
    out = np.empty(n_symbols, dtype=np.int32)
    done, start = 0, 0  # symbols decoded; bit where the next codeword starts
    while done < n_symbols:
        if start >= n_bits:
            raise StorageError("Huffman stream: truncated or invalid codeword")
        size = min(_SEGMENT_BITS, n_bits - start)
        windows = _windows(padded, start, size, max_length)
        want = min(n_symbols - done, size)
        starts = None
        if size > _DOUBLING_BITS:
            if not slow:
                starts = _lane_starts(windows, table_length, size, chunk)
            if starts is None:
                starts = _offset_starts(windows, table_length, size, offset_chunk, max_length)
        if starts is None:  # a short segment, or an invalid codeword
            starts = _doubling_starts(_jumps(windows, table_length, size, n_bits - start),
                                      size, want)
        else:
            starts = starts[:want]
        last = int(starts[-1])
        step = int(table_length[windows[last]])
        if step == 0 or start + last + step > n_bits:
            raise StorageError("Huffman stream: truncated or invalid codeword")
        out[done : done + starts.size] = table_symbol[windows[starts]]
        done += starts.size
        start += last + step
    end = start
    padding = n_bits - end
    if padding >= 8 or data[-1] & ((1 << padding) - 1):
        raise StorageError("Huffman stream: unexpected bits after the last symbol")
    return out, end
