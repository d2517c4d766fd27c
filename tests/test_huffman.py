"""Canonical Huffman coding, bit packing, varints and coded streams of wsjax.storage."""

import heapq

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsjax.storage import StorageError, bits, huffman, streams
from wsjax.storage.bytestream import ByteReader, ByteWriter, varint_size

FAST = settings(max_examples=60, deadline=None)


def huffman_cost(frequencies) -> int:
    """Total bits of an (unlimited) Huffman code: the sum of all merge weights."""
    heap = [int(f) for f in frequencies if f > 0]
    if len(heap) == 1:
        return heap[0]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


def is_prefix_free(lengths, codes) -> bool:
    words = [format(int(c), f"0{int(l)}b") for l, c in zip(lengths, codes) if l > 0]
    return not any(a != b and b.startswith(a) for a in words for b in words)


@FAST
@given(st.lists(st.integers(0, 1000), min_size=2, max_size=300))
def test_code_lengths_are_optimal_and_canonical(frequencies):
    frequencies = np.array(frequencies)
    lengths = huffman.code_lengths(frequencies)
    used = frequencies > 0
    np.testing.assert_array_equal(lengths > 0, used)
    if used.sum() >= 2:
        assert int((lengths * frequencies).sum()) == huffman_cost(frequencies)
        huffman.validate_lengths(lengths)  # complete prefix code
    codes = huffman.canonical_codes(lengths)
    assert is_prefix_free(lengths, codes)


def test_length_limit_binds_on_fibonacci_frequencies():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    frequencies = np.array(fib)
    unlimited = huffman.code_lengths(frequencies, max_length=32)
    assert unlimited.max() == 29  # a Huffman tree this skewed is a path
    limited = huffman.code_lengths(frequencies, max_length=16)
    assert limited.max() == 16
    huffman.validate_lengths(limited)
    # Optimal under the limit: no worse than this simple valid alternative, no better than Huffman.
    cost = int((limited * frequencies).sum())
    assert cost >= huffman_cost(frequencies)
    assert cost <= int((np.full(30, 5) * frequencies).sum())


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(2, 300), st.integers(1, 3000), st.floats(0.05, 3.0))
def test_encode_decode_round_trip(seed, alphabet, n, skew):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(alphabet, skew))
    symbols = rng.choice(alphabet, size=n, p=p)
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=alphabet))
    data, n_bits = huffman.encode(symbols, lengths)
    assert n_bits == huffman.encoded_bits(symbols, lengths)
    assert len(data) == (n_bits + 7) // 8
    decoded, consumed = huffman.decode(data, lengths, n)
    np.testing.assert_array_equal(decoded, symbols)
    assert consumed == n_bits


def test_single_symbol_stream():
    lengths = huffman.code_lengths(np.array([0, 7, 0]))
    np.testing.assert_array_equal(lengths, [0, 1, 0])
    data, n_bits = huffman.encode(np.ones(7, int), lengths)
    assert (data, n_bits) == (b"\x00", 7)
    np.testing.assert_array_equal(huffman.decode(data, lengths, 7)[0], np.ones(7))
    # As a stream it costs no bits at all: the constant layout is chosen.
    encoded, info = streams.encode(np.ones(1000, int), alphabet_size=3)
    assert info.mode == "constant" and info.code_bits == 0 and len(encoded) == 2
    decoded, _ = streams.decode(ByteReader(encoded), 1000, 3)
    np.testing.assert_array_equal(decoded, np.ones(1000))


def test_skewed_distribution_beats_fixed_width():
    rng = np.random.default_rng(0)
    p = 0.5 ** np.arange(1, 33)
    symbols = rng.choice(32, size=20_000, p=p / p.sum())
    encoded, info = streams.encode(symbols, alphabet_size=32)
    assert info.mode == "huffman"
    assert info.fixed_bits == 5
    assert info.bits_per_symbol < 2.1  # entropy is ~2 bits
    assert len(encoded) < bits.packed_size(symbols.size, 5) / 2
    decoded, info2 = streams.decode(ByteReader(encoded), symbols.size, 32)
    np.testing.assert_array_equal(decoded, symbols)
    assert info2 == info


def test_uniform_distribution_falls_back_to_fixed_width():
    symbols = np.tile(np.arange(32), 100)
    encoded, info = streams.encode(symbols, alphabet_size=32)
    assert info.mode == "fixed" and info.bits_per_symbol == 5.0
    assert len(encoded) == 1 + 32 * 100 * 5 // 8
    np.testing.assert_array_equal(streams.decode(ByteReader(encoded), symbols.size, 32)[0], symbols)


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 257), st.integers(0, 500))
def test_stream_round_trip_every_mode(seed, alphabet, n):
    rng = np.random.default_rng(seed)
    used = rng.integers(1, alphabet + 1)
    symbols = rng.choice(rng.permutation(alphabet)[:used], size=n)
    encoded, info = streams.encode(symbols, alphabet)
    sizes = [1 + bits.packed_size(n, bits.bit_width(alphabet))]
    assert len(encoded) <= min(sizes)  # never worse than fixed width
    assert info.total_bytes == len(encoded)
    reader = ByteReader(encoded + b"tail")
    decoded, info2 = streams.decode(reader, n, alphabet)
    np.testing.assert_array_equal(decoded, symbols)
    assert reader.remaining == 4 and info2 == info


def test_decode_rejects_bad_tables_and_bits():
    lengths = np.array([1, 2, 2])
    data, _ = huffman.encode(np.array([0, 1, 2, 2, 1]), lengths)
    with pytest.raises(StorageError, match="over-subscribed"):
        huffman.decode(data, [1, 1, 2], 5)
    with pytest.raises(StorageError, match="incomplete"):
        huffman.decode(data, [1, 2, 0], 5)
    with pytest.raises(StorageError, match="truncated|cannot fit"):
        huffman.decode(data, lengths, 50)
    with pytest.raises(StorageError, match="after the last symbol"):
        huffman.decode(data + b"\x00", lengths, 5)
    with pytest.raises(StorageError):
        huffman.decode(data[:-1] + bytes([data[-1] | 1]), lengths, 5)  # padding bit set


def test_encode_rejects_symbol_without_code():
    with pytest.raises(ValueError, match="without a codeword"):
        huffman.encode(np.array([0, 2]), np.array([1, 1, 0]))


@FAST
@given(st.integers(0, 40), st.data())
def test_fixed_width_packing_round_trip(width, data):
    values = data.draw(st.lists(st.integers(0, 2**width - 1), max_size=200))
    packed = bits.pack_uint(values, width)
    assert len(packed) == bits.packed_size(len(values), width)
    np.testing.assert_array_equal(bits.unpack_uint(packed, len(values), width), values)


def test_bit_packing_order_and_errors():
    assert bits.pack_uint([1, 0, 3], 2) == bytes([0b01001100])
    assert bits.bit_width(1) == 0 and bits.bit_width(2) == 1 and bits.bit_width(33) == 6
    with pytest.raises(ValueError):
        bits.pack_uint([4], 2)
    with pytest.raises(StorageError, match="padding"):
        bits.unpack_uint(bytes([0b01001101]), 3, 2)
    with pytest.raises(StorageError, match="expected"):
        bits.unpack_uint(b"", 3, 2)


@FAST
@given(st.lists(st.integers(0, 2**64 - 1), max_size=20))
def test_varint_round_trip(values):
    writer = ByteWriter()
    for v in values:
        writer.varint(v)
    data = writer.getvalue()
    assert len(data) == sum(varint_size(v) for v in values)
    reader = ByteReader(data)
    assert [reader.varint() for _ in values] == values
    reader.expect_end()


def test_reader_errors():
    with pytest.raises(StorageError, match="non-canonical"):
        ByteReader(b"\x80\x00").varint()
    with pytest.raises(StorageError, match="truncated"):
        ByteReader(b"\x80").varint()
    with pytest.raises(StorageError, match="truncated"):
        ByteReader(b"ab").uint(4)
    with pytest.raises(StorageError, match="claims"):
        ByteReader(b"ab").sub(3, "payload")


# ----------------------------------------------------------------------------- the vectorised code
# against plain reference implementations (the list-based package-merge and canonical-code loop
# the vectorised ones replaced, a bit-string encoder, and a bit-by-bit decoder).


def reference_code_lengths(frequencies, max_length=huffman.MAX_CODE_LENGTH):
    """Package-merge over Python lists (the implementation the vectorised one replaced)."""
    freqs = np.asarray(frequencies)
    lengths = np.zeros(freqs.size, dtype=np.int64)
    used = np.flatnonzero(freqs)
    if used.size <= 1:
        lengths[used] = 1
        return lengths
    leaves = sorted(((int(freqs[s]), int(s)) for s in used), key=lambda item: item[0])
    items = leaves
    for _ in range(max_length - 1):
        packages = [(a[0] + b[0], (a[1], b[1])) for a, b in zip(items[0::2], items[1::2])]
        items = sorted(leaves + packages, key=lambda item: item[0])
    stack = [node for _, node in items[: 2 * (used.size - 1)]]
    while stack:
        node = stack.pop()
        if isinstance(node, int):
            lengths[node] += 1
        else:
            stack.extend(node)
    return lengths


def reference_codewords(lengths) -> dict:
    """``{codeword bit string: symbol}`` of the canonical code, by the defining loop."""
    order = sorted((int(l), s) for s, l in enumerate(lengths) if l > 0)
    out, code, previous = {}, 0, 0
    for length, symbol in order:
        code <<= length - previous
        out[format(code, f"0{length}b")] = symbol
        code += 1
        previous = length
    return out


def reference_encode(symbols, lengths) -> bytes:
    words = {s: w for w, s in reference_codewords(lengths).items()}
    text = "".join(words[int(s)] for s in symbols)
    text += "0" * (-len(text) % 8)
    return bytes(int(text[i : i + 8], 2) for i in range(0, len(text), 8))


def reference_decode(data: bytes, lengths, n_symbols: int):
    """Symbols read one bit at a time, or None where :func:`huffman.decode` must raise."""
    try:
        lengths = huffman.validate_lengths(lengths)
    except StorageError:
        return None
    words, text = reference_codewords(lengths), "".join(format(b, "08b") for b in data)
    if n_symbols == 0:
        return [] if not data else None
    if n_symbols > len(text) or len(text) > n_symbols * int(lengths.max()) + 7:
        return None
    out, pos = [], 0
    while len(out) < n_symbols:
        for end in range(pos + 1, min(pos + int(lengths.max()), len(text)) + 1):
            if text[pos:end] in words:
                out.append(words[text[pos:end]])
                pos = end
                break
        else:
            return None  # invalid, or truncated
    padding = text[pos:]
    return out if len(padding) < 8 and "1" not in padding else None


@FAST
@given(st.lists(st.integers(0, 6), min_size=2, max_size=80), st.integers(2, 300),
       st.sampled_from([16, 12, 9, 7, 32]), st.integers(0, 2**32 - 1))
def test_code_lengths_and_codes_match_the_reference(small, n, max_length, seed):
    rng = np.random.default_rng(seed)
    # few distinct counts (many ties), a heavy tail, and Fibonacci-like (the limit binds)
    for frequencies in (np.array(small), rng.zipf(1.3, n) % 10_000,
                        np.array([1, 1] + [int(1.7 ** i) for i in range(n % 40)])):
        if np.count_nonzero(frequencies) > 1 << max_length:
            continue
        lengths = huffman.code_lengths(frequencies, max_length)
        np.testing.assert_array_equal(lengths, reference_code_lengths(frequencies, max_length))
        codes = huffman.canonical_codes(lengths)
        assert {format(int(codes[s]), f"0{int(lengths[s])}b"): s
                for s in np.flatnonzero(lengths)} == reference_codewords(lengths)


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(2, 300), st.integers(1, 2000), st.floats(0.05, 3.0))
def test_encode_matches_a_bit_string_encoder(seed, alphabet, n, skew):
    rng = np.random.default_rng(seed)
    symbols = rng.choice(alphabet, size=n, p=rng.dirichlet(np.full(alphabet, skew)))
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=alphabet))
    data, n_bits = huffman.encode(symbols, lengths)
    assert data == reference_encode(symbols, lengths)
    assert n_bits == huffman.encoded_bits(symbols, lengths)


def _mutations(rng, data: bytes):
    yield data
    for _ in range(3):
        b = bytearray(data)
        b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        yield bytes(b)
    yield data[:-1]
    yield data + b"\x00"
    yield data[: len(data) // 2]


# The decoder's paths: speculative lanes (and how long they are, how far they may walk on,
# how long a segment is) or pointer doubling. Every setting must give the same answer.
DECODER_SETTINGS = {
    "default": {},
    "lanes on short streams": {"_DOUBLING_BITS": 0},
    "tiny lanes": {"_DOUBLING_BITS": 0, "_LANE_SYMBOLS": 1},
    "short lanes": {"_DOUBLING_BITS": 0, "_LANE_SYMBOLS": 3},
    "no walking on (offset lanes)": {"_DOUBLING_BITS": 0, "_MAX_EXTENSION": 0},
    "offset lanes": {"_DOUBLING_BITS": 0, "_SLOW_SYNC_MASS": 0.0, "_OFFSET_LANE_SYMBOLS": 2},
    "sync lanes only": {"_DOUBLING_BITS": 0, "_SLOW_SYNC_MASS": 2.0, "_SLOW_SYNC_MASS_SHORT": 2.0},
    "short segments": {"_DOUBLING_BITS": 0, "_LANE_SYMBOLS": 2, "_SEGMENT_BITS": 333},
    "doubling only": {"_DOUBLING_BITS": 1 << 62},
}


@pytest.mark.parametrize("setting", list(DECODER_SETTINGS))
def test_every_decoder_path_agrees_with_a_bit_by_bit_decoder(setting, monkeypatch):
    for name, value in DECODER_SETTINGS[setting].items():
        monkeypatch.setattr(huffman, name, value)
    rng = np.random.default_rng(sum(map(ord, setting)))
    for trial in range(25):
        alphabet = int(rng.integers(2, 200))
        n = int(rng.integers(1, 600))
        p = rng.dirichlet(np.full(alphabet, rng.uniform(0.05, 2.0)))
        symbols = rng.choice(alphabet, size=n, p=p)
        counts = np.bincount(symbols, minlength=alphabet)
        if np.count_nonzero(counts) < 2:
            continue
        limit = max(int(rng.choice([16, 8, 5])), bits.bit_width(np.count_nonzero(counts)))
        lengths = huffman.code_lengths(counts, limit)
        data, n_bits = huffman.encode(symbols, lengths)
        for mutated in _mutations(rng, data):
            for count in (n, n - 1, n + 1):
                expected = reference_decode(mutated, lengths, count)
                if expected is None:
                    with pytest.raises(StorageError):
                        huffman.decode(mutated, lengths, count)
                else:
                    decoded, consumed = huffman.decode(mutated, lengths, count)
                    assert decoded.dtype == np.int32
                    np.testing.assert_array_equal(decoded, expected)
                    assert consumed <= 8 * len(mutated) < consumed + 8


def test_codes_slow_to_resynchronise_take_offset_lanes(monkeypatch):
    """Equal-length codewords never resynchronise: a lane that starts between two codewords
    stays out of step until it meets a lane of its own phase, chunks later. Such codes (most
    of the Kraft sum on one length) go to offset lanes, exact from the start, and so do
    streams whose speculative lanes did not get in step; a skewed code takes speculative
    lanes. Every way gives the same symbols."""
    used = []
    for name in ("_lane_starts", "_offset_starts"):
        def spy(*args, _f=getattr(huffman, name), _name=name):
            used.append(_name)
            return _f(*args)
        monkeypatch.setattr(huffman, name, spy)
    rng = np.random.default_rng(0)
    p = 0.5 ** np.arange(1, 13)
    skewed = rng.choice(12, size=20_000, p=p / p.sum())
    equal = rng.integers(0, 8, 20_001)
    defaults = {"_SLOW_SYNC_MASS": huffman._SLOW_SYNC_MASS,
                "_SLOW_SYNC_MASS_SHORT": huffman._SLOW_SYNC_MASS_SHORT,
                "_MAX_EXTENSION": huffman._MAX_EXTENSION}
    for symbols, setting, expected in [
        (equal, {}, ["_offset_starts"]),
        (skewed, {}, ["_lane_starts"]),
        (equal, {"_SLOW_SYNC_MASS": 2.0, "_SLOW_SYNC_MASS_SHORT": 2.0, "_MAX_EXTENSION": 8},
         ["_lane_starts", "_offset_starts"]),
    ]:
        for name, value in {**defaults, **setting}.items():
            monkeypatch.setattr(huffman, name, value)
        lengths = huffman.code_lengths(np.bincount(symbols))
        data, _ = huffman.encode(symbols, lengths)
        used.clear()
        np.testing.assert_array_equal(huffman.decode(data, lengths, symbols.size)[0], symbols)
        assert used == expected, (setting, used)


def test_long_streams_decode_across_segments(monkeypatch):
    monkeypatch.setattr(huffman, "_SEGMENT_BITS", 5_000)
    rng = np.random.default_rng(1)
    for alphabet, skew in ((256, 0.3), (32, 1.0), (4, 0.1)):
        symbols = rng.choice(alphabet, size=30_000, p=rng.dirichlet(np.full(alphabet, skew)))
        lengths = huffman.code_lengths(np.bincount(symbols, minlength=alphabet))
        data, n_bits = huffman.encode(symbols, lengths)
        decoded, consumed = huffman.decode(data, lengths, symbols.size)
        np.testing.assert_array_equal(decoded, symbols)
        assert consumed == n_bits


@pytest.mark.parametrize("width", range(65))
def test_fixed_width_packing_matches_a_bit_string(width):
    rng = np.random.default_rng(width)
    for n in (0, 1, 7, 8, 9, 63, 1000):
        values = rng.integers(0, 1 << min(width, 63), n, dtype=np.uint64) if width else np.zeros(n, np.uint64)
        if width == 64 and n:
            values[0] = np.uint64(2**64 - 1)
        text = "".join(format(int(v), f"0{width}b") for v in values) if width else ""
        text += "0" * (-len(text) % 8)
        expected = bytes(int(text[i : i + 8], 2) for i in range(0, len(text), 8))
        assert bits.pack_uint(values, width) == expected, (width, n)
