"""wsjax.storage: Deep Compression file format, bit-exact round trips, size report, errors."""

import os
import struct
import zlib

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsjax import storage
from wsjax.storage import StorageError, sparse

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def quantized(rng, shape, density, n_clusters, dtype=np.float32):
    """A pruned, quantized matrix: ``n_clusters`` distinct nonzero values, ~``density`` kept."""
    values = np.unique(rng.normal(0.0, 0.1, 4 * n_clusters + 8).astype(dtype))
    values = rng.permutation(values[values != 0])[:n_clusters]
    weights = values[rng.integers(0, n_clusters, shape)]
    weights[rng.random(shape) >= density] = 0
    return weights


def assert_bit_exact(a, b):
    """Same nesting, keys in the same order, dtypes, shapes and bytes."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            assert_bit_exact(a[key], b[key])
    else:
        a = np.asarray(a)
        assert isinstance(b, np.ndarray)
        assert a.dtype.newbyteorder("=") == b.dtype and a.shape == b.shape
        assert np.ascontiguousarray(a, a.dtype.newbyteorder("=")).tobytes() == b.tobytes()


def lenet_300_100(seed=0, n_clusters=32):
    """LeNet-300-100 shaped params at Deep Compression's densities (8%, 9%, 26%)."""
    rng = np.random.default_rng(seed)
    return {
        "Dense_0": {"kernel": quantized(rng, (784, 300), 0.08, n_clusters),
                    "bias": rng.normal(size=300).astype(np.float32)},
        "Dense_1": {"kernel": quantized(rng, (300, 100), 0.09, n_clusters),
                    "bias": rng.normal(size=100).astype(np.float32)},
        "Dense_2": {"kernel": quantized(rng, (100, 10), 0.26, n_clusters),
                    "bias": rng.normal(size=10).astype(np.float32)},
    }


def small_model():
    rng = np.random.default_rng(1)
    return {
        "Conv_0": {"kernel": quantized(rng, (3, 3, 2, 4), 0.5, 7), "bias": np.ones(4, np.float32)},
        "Dense_0": {"kernel": quantized(rng, (20, 9), 0.1, 5), "bias": np.zeros(9, np.float32)},
        "Dense_1": {"kernel": quantized(rng, (9, 3), 1.0, 3)},
    }


# ----------------------------------------------------------------------------- round trips


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    density=st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0)),
    n_clusters=st.integers(1, 256),
    index_bits=st.integers(1, 8),
    encoding=st.sampled_from(["auto", "sparse", "dense_codebook"]),
)
def test_random_sparse_quantized_round_trip(seed, shape, density, n_clusters, index_bits, encoding):
    rng = np.random.default_rng(seed)
    weights = quantized(rng, tuple(shape), density, n_clusters)
    params = {"layer": {"kernel": weights}}
    data = storage.encode(params, index_bits=index_bits, encoding=encoding)
    assert_bit_exact(params, storage.decode(data))
    report = storage.size_report(data)
    (row,) = report.layers
    assert row.n_nonzero == np.count_nonzero(weights)
    assert report.layer_bytes + report.file_overhead_bytes == len(data)
    if row.encoding == "sparse":
        assert row.index_bits == index_bits
        positions = np.flatnonzero(weights)
        gaps, is_filler = sparse.encode_positions(positions, index_bits)
        assert row.n_entries == gaps.size == positions.size + is_filler.sum()
    # Deterministic and canonical: re-encoding the decoded params gives the same bytes.
    assert storage.encode(storage.decode(data), index_bits=index_bits, encoding=encoding) == data


@FAST
@given(
    codebook_bits=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=256, unique=True),
    seed=st.integers(0, 2**32 - 1),
    encoding=st.sampled_from(["auto", "sparse", "dense_codebook"]),
    dtype=st.sampled_from([np.float32, np.float16]),
)
def test_random_codebook_bit_patterns_round_trip(codebook_bits, seed, encoding, dtype):
    """Any bit patterns (NaNs, infinities, -0.0, subnormals) work as codebook values."""
    rng = np.random.default_rng(seed)
    pattern_type = np.uint32 if dtype == np.float32 else np.uint16
    codebook = np.unique(np.array(codebook_bits, np.uint64).astype(pattern_type)).view(dtype)
    weights = codebook[rng.integers(0, codebook.size, (rng.integers(1, 30), rng.integers(1, 30)))]
    data = storage.encode({"w": weights}, encoding=encoding, index_bits=int(rng.integers(1, 9)))
    assert_bit_exact({"w": weights}, storage.decode(data))


@pytest.mark.parametrize("encoding", ["raw", "sparse", "dense_codebook"])
def test_special_float_bit_patterns_are_exact(encoding):
    values = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, -1e-45, np.finfo(np.float32).max], np.float32
    )
    nan_payload = np.array([0x7FC00123, 0xFFA00001], np.uint32).view(np.float32)  # NaN bits
    weights = np.concatenate([values, nan_payload, values[::-1]]).reshape(3, 6)
    data = storage.encode({"w": weights}, encoding=encoding)
    out = storage.decode(data)["w"]
    assert out.view(np.uint32).tolist() == weights.view(np.uint32).tolist()
    assert storage.size_report(data).layers[0].encoding == encoding


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float16).reshape(3, 4) / 7,
        np.linspace(-1, 1, 10, dtype=np.float64),
        np.array([[1.5, 0.0], [0.0, -2.25]], dtype=ml_dtypes.bfloat16),
        np.array([[-128, 0, 127]], dtype=np.int8),
        np.array([[2**64 - 1, 0]], dtype=np.uint64),
        np.eye(5, dtype=bool),
        np.float32(3.25),
        np.zeros((0, 3), np.float32),
        np.arange(6, dtype=">f4").reshape(2, 3),
    ],
    ids=["f16", "f64", "bf16", "i8", "u64", "bool", "scalar", "empty", "big_endian"],
)
def test_other_dtypes_and_shapes_round_trip(array):
    for encoding in (None, "raw"):
        data = storage.encode({"x": array}, encoding=encoding)
        assert_bit_exact({"x": array}, storage.decode(data))


def test_jax_arrays_and_flat_dicts():
    params = {"Dense_0/kernel": jnp.eye(3), "Dense_0/bias": jnp.ones(3)}
    out = storage.decode(storage.encode(params))
    assert list(out) == ["Dense_0/kernel", "Dense_0/bias"]  # flat in, flat out
    np.testing.assert_array_equal(out["Dense_0/kernel"], np.eye(3))
    nested = {"b": {"x": np.ones(2)}, "a": {"y": {"z": np.zeros((2, 2))}}}
    assert_bit_exact(nested, storage.decode(storage.encode(nested)))
    assert storage.decode(storage.encode({})) == {}


def test_save_load(tmp_path):
    params = lenet_300_100()
    path = tmp_path / "lenet.wsjax"
    report = storage.save(path, params)
    assert report.file_bytes == os.path.getsize(path)
    assert_bit_exact(params, storage.load(path))
    assert_bit_exact(params, storage.load(str(path)))


def test_load_checks_the_expected_model(tmp_path):
    """``like=``: a file of another model (here written as one) is refused, naming the layer."""
    import jax

    params = lenet_300_100()
    path = tmp_path / "lenet.wsjax"
    storage.save(path, params)
    assert_bit_exact(params, storage.load(path, like=params))
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    assert_bit_exact(params, storage.load(path, like=shapes))  # shapes and dtypes are enough
    renamed = {("Dense_9" if k == "Dense_2" else k): v for k, v in params.items()}
    with pytest.raises(StorageError, match=r"lenet.wsjax: .*missing \['Dense_9/kernel', 'Dense_9/bias'\]"
                       r".*not expected \['Dense_2/kernel', 'Dense_2/bias'\]"):
        storage.load(path, like=renamed)
    wider = jax.tree.map(lambda x: x, params)
    wider["Dense_2"]["kernel"] = np.zeros((100, 11), np.float32)
    with pytest.raises(StorageError, match=r"'Dense_2/kernel': shape \(100, 10\) in the file, \(100, 11\)"):
        storage.load(path, like=wider)
    half = jax.tree.map(lambda x: x.astype(np.float16), params)
    with pytest.raises(StorageError, match=r"dtype float32 in the file, float16 expected"):
        storage.load(path, like=half)
    flat = {"Dense_0/kernel": np.eye(3, dtype=np.float32)}
    data = storage.encode(flat)
    with pytest.raises(StorageError, match="stores a flat mapping, the expected model is nested"):
        storage.decode(data, like={"Dense_0": {"kernel": flat["Dense_0/kernel"]}})
    with pytest.raises(TypeError, match="leaf 'Dense_0/kernel' is a list"):
        storage.decode(data, like={"Dense_0/kernel": [1.0]})
    # a like= that encode() would refuse matches no file, even one whose joined paths agree
    w = np.ones((2, 3), np.float32)
    nested = storage.encode({"a": {"b": {"c": w}}})
    for bad, why in (({"a": {"b/c": w}}, "contains '/'"), ({"a": {"b": {"c": w}}, "extra": {}}, "empty mapping"),
                     ({0: w}, "keys must be strings")):
        with pytest.raises(TypeError, match=why):
            storage.decode(nested, like=bad)


# ----------------------------------------------------------------------------- sparse format


def test_filler_zero_rule():
    bits = 3  # gaps 0..7 fit
    gaps, filler = sparse.encode_positions([7], bits)  # 7 zeros skipped: fits
    assert gaps.tolist() == [7] and filler.tolist() == [False]
    gaps, filler = sparse.encode_positions([8], bits)  # 8 = 2**bits zeros: one filler
    assert gaps.tolist() == [7, 0] and filler.tolist() == [True, False]
    gaps, filler = sparse.encode_positions([9], bits)
    assert gaps.tolist() == [7, 1] and filler.tolist() == [True, False]
    gaps, filler = sparse.encode_positions([0, 17], bits)  # 16 zeros skipped: two fillers
    assert gaps.tolist() == [0, 7, 7, 0] and filler.tolist() == [False, True, True, False]
    gaps, filler = sparse.encode_positions([0, 1, 40], bits)
    assert (gaps <= 7).all() and filler.sum() == 38 // 8
    positions = sparse.decode_positions(gaps, filler, bits, 41)
    assert positions.tolist() == [0, 1, 40]


@pytest.mark.parametrize("index_bits", [1, 3, 5, 8])
def test_filler_zeros_in_files(index_bits):
    span = 2**index_bits
    weights = np.zeros((1, 6 * span), np.float32)
    positions = [span - 1, 2 * span, 4 * span + 1]  # gaps of 2**b - 1, exactly 2**b, 2**(b+1)
    weights[0, positions] = [1.0, -2.0, 1.0]
    data = storage.encode({"w": weights}, index_bits=index_bits, encoding="sparse")
    (row,) = storage.size_report(data).layers
    expected_fillers = 0 + 1 + 2
    assert row.n_entries == 3 + expected_fillers and row.n_nonzero == 3
    assert row.codebook_size == 2
    assert_bit_exact({"w": weights}, storage.decode(data))


def test_lenet_300_100_sized_layer_compresses_over_30x():
    rng = np.random.default_rng(0)
    params = {"ip1": {"kernel": quantized(rng, (784, 300), 0.08, 32)}}
    data = storage.encode(params, index_bits=5)
    assert_bit_exact(params, storage.decode(data))
    report = storage.size_report(data)
    (row,) = report.layers
    assert row.encoding == "sparse" and row.codebook_size == 32 and row.index_bits == 5
    assert abs(row.kept_fraction - 0.08) < 0.005
    assert row.compression >= 30 and report.compression >= 30
    assert row.bits_per_index_huffman < row.bits_per_index_fixed == 5
    assert row.compression > row.compression_fixed  # Huffman coding helped
    print(f"\n784x300 @ 8%, 32 centroids: {len(data)} bytes, {report.compression:.1f}x")


def test_skewed_clusters_huffman_codes_weights_below_fixed_width():
    rng = np.random.default_rng(0)
    p = np.exp(-np.arange(32) / 4)
    values = np.linspace(-0.2, 0.2, 32, dtype=np.float32) + 0.5
    weights = values[rng.choice(32, size=(300, 100), p=p / p.sum())]
    weights[rng.random(weights.shape) > 0.1] = 0
    (row,) = storage.size_report({"k": weights}).layers
    assert row.weight_stream_mode == "huffman"
    assert row.bits_per_weight_huffman < row.bits_per_weight_fixed - 1


def test_auto_picks_the_smallest_eligible_encoding():
    rng = np.random.default_rng(0)
    params = {
        "dense": rng.normal(size=(30, 30)).astype(np.float32),  # 900 distinct: not eligible
        "quantized": np.linspace(1, 2, 4, dtype=np.float32)[rng.integers(0, 4, (30, 30))],
        "pruned": quantized(rng, (30, 30), 0.05, 4),
        "bias": np.zeros(30, np.float32),  # 1-D: raw by default even though all zero
    }
    rows = {r.name: r for r in storage.size_report(params).layers}
    assert rows["dense"].encoding == "raw"
    assert rows["quantized"].encoding == "dense_codebook"
    assert rows["pruned"].encoding == "sparse"
    assert rows["bias"].encoding == "raw"
    for name in ("quantized", "pruned"):
        for encoding in ("raw", "sparse", "dense_codebook"):
            forced = storage.size_report({name: params[name]}, encoding=encoding).layers[0]
            assert rows[name].stored_bytes <= forced.stored_bytes


def test_per_layer_options():
    rng = np.random.default_rng(0)
    params = {
        "Conv_0": {"kernel": quantized(rng, (5, 5, 1, 20), 0.3, 16)},
        "Dense_0": {"kernel": quantized(rng, (50, 40), 0.1, 16)},
        "Dense_1": {"kernel": quantized(rng, (40, 10), 0.2, 16), "bias": np.ones(10, np.float32)},
    }
    default = {r.name: r for r in storage.size_report(params, encoding="sparse").layers}
    assert default["Conv_0/kernel"].index_bits == 8 and default["Dense_0/kernel"].index_bits == 5
    assert default["Dense_1/bias"].encoding == "sparse"  # explicit encoding applies to 1-D too
    by_regex = storage.size_report(
        params, index_bits={"Conv": 4, "Dense_0": 3}, encoding={"bias": "raw", ".": "sparse"}
    )
    rows = {r.name: r for r in by_regex.layers}
    assert (rows["Conv_0/kernel"].index_bits, rows["Dense_0/kernel"].index_bits) == (4, 3)
    assert rows["Dense_1/kernel"].index_bits == 5 and rows["Dense_1/bias"].encoding == "raw"
    by_callable = storage.size_report(
        params, index_bits=lambda p: 2 if "Dense_1" in p else None, encoding="sparse"
    )
    rows = {r.name: r for r in by_callable.layers}
    assert rows["Dense_1/kernel"].index_bits == 2 and rows["Conv_0/kernel"].index_bits == 8


# ----------------------------------------------------------------------------- size report


def test_every_byte_is_accounted_for():
    params = lenet_300_100()
    data = storage.encode(params)
    report = storage.size_report(data)
    assert sum(r.stored_bytes for r in report.layers) + report.file_overhead_bytes == len(data)
    assert report.file_overhead_bytes == storage.FILE_OVERHEAD_BYTES == 27
    assert report.file_bytes == len(data)
    rows = report.to_rows()
    required = {
        "name", "shape", "n_weights", "kept_fraction", "encoding", "codebook_size",
        "bits_per_weight_fixed", "bits_per_weight_huffman", "bits_per_index_fixed",
        "bits_per_index_huffman", "stored_bytes", "dense_bytes", "compression",
    }
    assert all(required <= set(row) for row in rows)
    for layer, row in zip(report.layers, rows):
        parts = {k: v for k, v in row.items() if k.startswith("bytes_")}
        assert sum(parts.values()) == layer.stored_bytes == row["stored_bytes"]
        assert row["dense_bytes"] == 4 * row["n_weights"]
        assert row["compression"] == pytest.approx(row["dense_bytes"] / row["stored_bytes"])
    sparse_row = rows[0]
    expected_parts = {"bytes_header", "bytes_codebook", "bytes_weight_codes", "bytes_index_codes"}
    assert expected_parts <= set(sparse_row)
    assert sparse_row["bytes_codebook"] == 4 * 32
    assert rows[1]["bytes_raw"] == 4 * 300
    assert report.dense_bytes == 4 * 266_610
    assert report.compression == pytest.approx(report.dense_bytes / len(data))
    # The report from params equals the report from their bytes.
    assert storage.size_report(params) == report
    table = report.to_markdown()
    assert table.count("\n") == 2 + len(report.layers) + 1
    assert "Dense_0/kernel" in table and "**total**" in table and f"{len(data):,}" in table


def test_compression_fixed_counts_fixed_width_streams_exactly():
    rng = np.random.default_rng(3)
    weights = quantized(rng, (200, 50), 0.1, 8)
    fixed_width_bytes = len(storage.encode({"k": weights}, encoding="sparse"))
    (row,) = storage.size_report({"k": weights}, encoding="sparse").layers
    assert row.stored_bytes + storage.FILE_OVERHEAD_BYTES == fixed_width_bytes
    n = row.n_entries
    fixed_streams = (1 + (n * row.bits_per_weight_fixed + 7) // 8) + (1 + (n * 5 + 7) // 8)
    coded_streams = (row.parts["weight_table"] + row.parts["weight_codes"]
                     + row.parts["index_table"] + row.parts["index_codes"])
    # Streams differ; header varints may grow by at most a byte.
    assert 0 <= row.stored_bytes_fixed - row.stored_bytes - (fixed_streams - coded_streams) <= 1


# ----------------------------------------------------------------------------- errors


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_truncated_files_raise():
    data = storage.encode(small_model())
    for n in range(len(data)):
        with pytest.raises(StorageError):
            storage.decode(data[:n])
    with pytest.raises(StorageError, match="truncated"):
        storage.decode(data[: len(data) // 2])
    with pytest.raises(StorageError, match="trailing"):
        storage.decode(data + b"\x00")


@FAST
@given(st.data())
def test_random_corruptions_raise(data):
    original = storage.encode(small_model())
    corrupted = bytearray(original)
    positions = st.integers(0, len(original) - 1)
    for position in data.draw(st.lists(positions, min_size=1, max_size=4, unique=True)):
        corrupted[position] ^= data.draw(st.integers(1, 255))
    kind = data.draw(st.sampled_from(["flip", "insert", "delete"]))
    if kind == "insert":
        position = data.draw(st.integers(0, len(original)))
        corrupted[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        position = data.draw(st.integers(0, len(original) - 1))
        del corrupted[position : position + data.draw(st.integers(1, 8))]
    with pytest.raises(StorageError):
        storage.decode(bytes(corrupted))


@FAST
@given(st.data())
def test_corruption_behind_a_valid_checksum_never_crashes_the_parser(data):
    """With the CRC recomputed, the parser itself must still fail cleanly (or decode)."""
    original = storage.encode(small_model())
    body = bytearray(original[:-4])
    positions = st.integers(23, len(body) - 1)  # past the file header
    for position in data.draw(st.lists(positions, min_size=1, max_size=3, unique=True)):
        body[position] ^= data.draw(st.integers(1, 255))
    try:
        out = storage.decode(with_crc(bytes(body)))
    except StorageError:
        return
    assert isinstance(out, dict)


def test_wrong_magic_and_version():
    data = bytearray(storage.encode(small_model()))
    with pytest.raises(StorageError, match="not a wsjax storage file"):
        storage.decode(b"PK\x03\x04" + bytes(data[4:]))
    with pytest.raises(StorageError, match="not a wsjax storage file"):
        storage.decode(b"hello")
    newer = data[:-4]
    newer[8:10] = struct.pack("<H", 3)
    with pytest.raises(StorageError, match="version 3.*reads versions 1 and 2"):
        storage.decode(with_crc(bytes(newer)))
    flipped = bytearray(data)
    flipped[40] ^= 0x10
    with pytest.raises(StorageError, match="checksum"):
        storage.decode(bytes(flipped))


def test_inconsistent_layer_counts_raise():
    data = bytearray(storage.encode(small_model()))[:-4]
    data[11:15] = struct.pack("<I", 6)  # claims one layer more than stored
    with pytest.raises(StorageError, match="truncated"):
        storage.decode(with_crc(bytes(data)))
    data[11:15] = struct.pack("<I", 4)  # one layer fewer: leftover bytes
    with pytest.raises(StorageError, match="trailing"):
        storage.decode(with_crc(bytes(data)))


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="not an array"):
        storage.encode({"Dense_0": {"kernel": np.ones((2, 2)), "name": "fc1"}})
    with pytest.raises(TypeError, match="not an array"):
        storage.encode({"w": [1.0, 2.0]})
    with pytest.raises(TypeError, match="mapping"):
        storage.encode([np.ones(3)])
    with pytest.raises(TypeError, match="cannot be stored"):
        storage.encode({"w": np.ones(3, np.complex64)})
    with pytest.raises(ValueError, match="contains '/'"):
        storage.encode({"a/b": {"c": np.ones(2)}})
    with pytest.raises(ValueError, match="index_bits"):
        storage.encode({"w": np.eye(3)}, index_bits=0)
    with pytest.raises(ValueError, match="index_bits"):
        storage.encode({"w": np.eye(3)}, index_bits={"w": 17})
    with pytest.raises(ValueError, match="unknown encoding"):
        storage.encode({"w": np.eye(3)}, encoding="zip")
    with pytest.raises(ValueError, match="at most 256 distinct"):
        unquantized = np.arange(1, 301, dtype=np.float32).reshape(10, 30)
        storage.encode({"w": unquantized}, encoding="sparse")
    with pytest.raises(ValueError, match="not to already encoded bytes"):
        storage.size_report(storage.encode({}), index_bits=5)
    with pytest.raises(TypeError, match="bytes"):
        storage.decode("not bytes")
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(StorageError):
        storage.load(path)
    assert issubclass(StorageError, ValueError)


def test_sparse_raw_stores_a_pruned_unquantized_layer_as_gaps_and_raw_floats(tmp_path):
    """Pruned but not quantized (every survivor a distinct float): the sparse index plus one
    raw float per stored entry, bit exact, far smaller than raw; chosen by 'auto'."""
    import math

    rng = np.random.default_rng(0)
    w = rng.normal(size=(300, 200)).astype(np.float32)
    w[rng.random(w.shape) > 0.1] = 0.0  # 10% kept, all distinct
    w[5, 7] = -0.0  # a negative zero is a value the raw bits keep
    params = {"Dense_0": {"kernel": w, "bias": np.zeros(200, np.float32)}}
    report = storage.save(tmp_path / "p.wsjax", params)
    layer = {r.name: r for r in report.layers}["Dense_0/kernel"]
    assert layer.encoding == "sparse_raw"
    loaded = storage.load(tmp_path / "p.wsjax")
    assert np.array_equal(loaded["Dense_0"]["kernel"].view(np.uint32), w.view(np.uint32))
    n_entries = layer.n_entries
    nonzero_bits = np.count_nonzero(w.view(np.uint32))
    assert n_entries >= nonzero_bits  # fillers add entries, never drop one
    assert layer.parts["raw"] == 4 * n_entries
    assert layer.stored_bytes < w.nbytes * 0.2
    index_bytes = layer.parts["index_table"] + layer.parts["index_codes"]
    assert index_bytes >= math.floor(n_entries * layer.bits_per_index_huffman / 8)
    forced = storage.encode(params, encoding="sparse_raw")
    assert np.array_equal(storage.decode(forced)["Dense_0"]["kernel"].view(np.uint32), w.view(np.uint32))
    data = (tmp_path / "p.wsjax").read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 9):
        with pytest.raises(storage.StorageError):
            storage.decode(data[:cut])


# ----------------------------------------------------------------------------- pinned bytes


def pseudo_uniform(n: int, salt: int) -> np.ndarray:
    """``n`` floats in [0, 1) from a fixed integer hash (splitmix64) of ``arange(n) + salt``:
    the same on every NumPy, unlike a random generator's stream."""
    x = (np.arange(n, dtype=np.uint64) + np.uint64(salt)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / 2.0**53


def pinned_layer(shape, density, n_clusters, skew, salt, dtype=np.float32):
    """A pruned, quantized layer: ``n_clusters`` values, cluster ``c`` drawn with a skewed
    probability (``skew`` > 1 favours the first clusters), ~``density`` of it kept."""
    n = int(np.prod(shape))
    values = ((np.arange(n_clusters) - n_clusters / 2 + 0.5) * (0.4 / n_clusters)).astype(dtype)
    cluster = np.minimum((pseudo_uniform(n, salt) ** skew * n_clusters).astype(np.int64),
                         n_clusters - 1)
    keep = pseudo_uniform(n, salt + 1) < density
    return np.where(keep, values[cluster], np.zeros((), dtype)).reshape(shape)


def pinned_bias(n, salt, dtype=np.float32):
    return ((pseudo_uniform(n, salt) - 0.5) * 0.02).astype(dtype)


def pinned_files() -> dict:
    """``{name: (tree, encode options)}``: Deep Compression LeNets at Han's sparsities and
    bits, per-layer options, every encoding and dtype, and a layer long enough for its
    Huffman streams to span several decoding segments."""
    lenet5 = {
        "Conv_0": {"kernel": pinned_layer((5, 5, 1, 20), 0.66, 256, 1.5, 10), "bias": pinned_bias(20, 11)},
        "Conv_1": {"kernel": pinned_layer((5, 5, 20, 50), 0.12, 256, 2.0, 20), "bias": pinned_bias(50, 21)},
        "Dense_0": {"kernel": pinned_layer((800, 500), 0.08, 32, 2.5, 30), "bias": pinned_bias(500, 31)},
        "Dense_1": {"kernel": pinned_layer((500, 10), 0.19, 32, 1.2, 40), "bias": pinned_bias(10, 41)},
    }
    lenet300 = {
        "Dense_0": {"kernel": pinned_layer((784, 300), 0.08, 64, 3.0, 50), "bias": pinned_bias(300, 51)},
        "Dense_1": {"kernel": pinned_layer((300, 100), 0.09, 64, 1.0, 60), "bias": pinned_bias(100, 61)},
        "Dense_2": {"kernel": pinned_layer((100, 10), 0.26, 64, 0.7, 70), "bias": pinned_bias(10, 71)},
    }
    unquantized = (pseudo_uniform(300 * 200, 80) - 0.5).astype(np.float32).reshape(300, 200)
    unquantized[pseudo_uniform(300 * 200, 81).reshape(300, 200) > 0.1] = 0.0
    dtypes_tree = {
        "f16": pinned_layer((40, 30), 0.5, 16, 1.0, 90, np.float16),
        "bf16": pinned_layer((30, 40), 0.3, 7, 2.0, 91, ml_dtypes.bfloat16),
        "f64": pinned_layer((20, 20), 0.9, 200, 1.0, 92, np.float64),
        "i8": (pseudo_uniform(60, 93).reshape(6, 10) * 5).astype(np.int8),
        "scalar": np.float32(1.25),
    }
    return {
        "lenet5": (lenet5, {}),
        "lenet300": (lenet300, {}),
        "lenet300 index_bits=3": (lenet300, {"index_bits": 3}),
        "lenet5 per-layer": (lenet5, {"index_bits": {"Conv": 4, "Dense_0": 8},
                                      "encoding": {"Conv_0": "dense_codebook",
                                                   "Dense_1": "sparse_raw"}}),
        "lenet5 dense_codebook": (lenet5, {"encoding": {"kernel": "dense_codebook"}}),
        "lenet5 raw": (lenet5, {"encoding": "raw"}),
        "pruned floats": ({"w": unquantized}, {}),
        "dtypes": (dtypes_tree, {}),
        "long streams": ({"w": pinned_layer((1500, 1000), 0.4, 256, 4.0, 100)}, {}),
        "long sparse streams": ({"w": pinned_layer((2000, 1000), 0.05, 20, 1.5, 110)},
                                {"index_bits": 2}),
    }


# sha256 of each file, written by the encoder before its vectorised rewrite (issue 15):
# a format change shows up here, and must come with a new file version.
PINNED_SHA256 = {
    'lenet5': "74fa72de357726c4ebd775d1ac9e32a3aab489816fb77d1b5ef637b2147133ed",
    'lenet300': "62af655a91e0b8f636133d481bd41d6f97f9edf96ee2cae2b675102844a87fbe",
    'lenet300 index_bits=3': "5e15d1a73f9f0afad64e171ac5eee09d0b0c033a488fada371a4566cc690a1b3",
    'lenet5 per-layer': "568663cbd5bd864019c3acd72d95dc9f3e0296014a3d248f18d7a1905fdce3ab",
    'lenet5 dense_codebook': "74ac42b546600aaa4c5a910c28960ef15c3bfbccb3fac7fe3e34f0a5eb23ccb1",
    'lenet5 raw': "c4f292eeaf13ea48389c140c9397f49693b1990ec9b505d64d7012ba298705a7",
    'pruned floats': "3f95629db30398e902f5a13857d16c086bf5a98a3b24756bc4119aaaf2174f76",
    'dtypes': "7bd931e5e7bd161fd586417af7a8b7cc1d4f59bc4671efb1fe22ae261abe493b",
    'long streams': "46d3ccb4bdb270ac1f0f7acb7399f5db32035bf0b47b2f53caeb12ff0f51fc38",
    'long sparse streams': "9c6dcaf6a694d3ab025bdb264359e38238fe45e3fc7eaaeef26afe261194b9ee",
}


def test_file_bytes_are_pinned():
    import hashlib

    for name, (tree, options) in pinned_files().items():
        data = storage.encode(tree, **options)
        assert hashlib.sha256(data).hexdigest() == PINNED_SHA256[name], name
        assert_bit_exact(tree, storage.decode(data))


@FAST
@given(seed=st.integers(0, 2**32 - 1), shape=st.lists(st.integers(1, 60), min_size=2, max_size=3),
       density=st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0)),
       n_clusters=st.integers(1, 300), index_bits=st.integers(1, 16),
       dtype=st.sampled_from([np.float32, np.float16, np.float64]))
def test_auto_plans_every_candidate_exactly_and_writes_only_the_smallest(
        seed, shape, density, n_clusters, index_bits, dtype):
    """'auto' sizes each candidate from the leaf's counts without writing it: each planned
    size is the length of the payload it would write, and the record is the smallest (the
    first of equal ones) of all of them written out."""
    from wsjax.storage import dtypes, layers

    rng = np.random.default_rng(seed)
    weights = quantized(rng, tuple(shape), density, n_clusters, dtype)
    leaf = layers._Leaf(dtypes.to_patterns(weights))
    raw_bits = leaf.best_raw_index_bits()
    planned = {("raw", index_bits): leaf.raw_size(),
               ("sparse_raw", raw_bits): leaf.sparse_raw_size(raw_bits)}
    if leaf.codebook().size <= 256:
        planned = {("sparse", index_bits): leaf.sparse_size(index_bits),
                   ("dense_codebook", index_bits): leaf.dense_codebook_size(), **planned}
    written = {key: layers._Leaf(dtypes.to_patterns(weights)).payload(*key) for key in planned}
    assert {k: len(v) for k, v in written.items()} == planned
    record = layers.encode_layer("w", weights, "auto", index_bits)
    best = min(planned, key=planned.get)
    assert record.endswith(written[best])
    assert len(record) == len(layers.encode_layer("w", weights, best[0], best[1]))
