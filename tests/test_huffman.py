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
