"""wsjax.storage.codecs: a transform's state stored by its codec, version 2 files, errors."""

import functools
import glob
import json
import os
import re
import struct
import types
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_storage import assert_bit_exact, quantized
from wsjax import sharing, storage
from wsjax.models import MLP, LeNet300100
from wsjax.sharing import SharedParams, Transform
from wsjax.storage import StorageError, codecs, layers
from wsjax.storage.bytestream import ByteReader, ByteWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = struct.Struct("<8sHBIQ")


def model_params(model, in_dim):
    """The model's params pytree (shapes from its ``init``, values drawn with NumPy)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, in_dim)))["params"]
    rng = np.random.default_rng(0)
    return jax.tree.map(
        lambda s: jnp.asarray(rng.normal(0.0, 0.1, s.shape).astype(s.dtype)), shapes)


@functools.cache
def lenet_params():
    return model_params(LeNet300100(), 784)


@functools.cache
def mlp_params():
    """``MLP((16, 16, 16, 4))`` on 6 inputs: Dense_1 and Dense_2 are both 16x16."""
    return model_params(MLP((16, 16, 16, 4)), 6)


def trained(transform, params, seed=1):
    """A state whose every float leaf moved off its initial value (as after training)."""
    state = transform.init(jax.random.key(seed), params)
    rng = np.random.default_rng(seed)
    theta = jax.tree.map(
        lambda x: jnp.asarray(np.asarray(x) + rng.normal(0.0, 0.01, x.shape).astype(x.dtype)),
        state.theta)
    return SharedParams(theta, state.frozen)


def numpy_tree(tree):
    return jax.tree.map(np.asarray, tree)


def whole_state(state, inner, params):
    """A select's state rebuilt from loaded params and the loaded inner state."""
    if not (isinstance(state.theta, dict) and set(state.theta) == {"rest", "inner"}):
        return inner
    kept = set(sharing.flatten_paths(state.theta["rest"]))
    rest = jax.tree_util.tree_map_with_path(
        lambda kp, x: x if sharing.path_str(kp) in kept else None, params)
    return SharedParams({"rest": rest, "inner": inner.theta}, inner.frozen)


def check_round_trip(transform, state, codec, **options):
    """Params bit exact against ``transform.apply(state)``, the state back, every byte counted,
    and the loaded state encoding to the same bytes again."""
    data = storage.encode((transform, state), **options)
    assert HEADER.unpack_from(data)[1] == storage.VERSION_CODECS == 2
    params, states = storage.decode(data, with_state=True)
    assert_bit_exact(numpy_tree(transform.apply(state)), params)
    assert list(states) == [codec]
    loaded = states[codec]
    is_select = isinstance(transform.codec, tuple)
    expected = SharedParams(state.theta["inner"], state.frozen) if is_select else state
    chex.assert_trees_all_equal(loaded.theta, expected.theta)
    chex.assert_trees_all_equal(loaded.frozen, expected.frozen)
    chex.assert_trees_all_equal_structs(loaded, expected)
    again = whole_state(state, loaded, params)
    assert_bit_exact(numpy_tree(transform.apply(again)), params)
    assert storage.encode((transform, again), **options) == data
    report = storage.size_report(data)
    assert sum(r.stored_bytes for r in report.layers) + report.file_overhead_bytes == len(data)
    assert report.file_bytes == len(data)
    for row in report.layers:
        assert sum(row.parts.values()) == row.stored_bytes
    assert sum(r.n_weights for r in report.layers) == sharing.count_params(params)
    assert report == storage.size_report((transform, state), **options)
    assert "| codec |" in report.to_markdown() and f"| {codec} |" in report.to_markdown()
    return data, report


# ----------------------------------------------------------------------------- codecs


@pytest.mark.parametrize("precompute", [False, True])
@pytest.mark.parametrize("scope", ["layer", "pool"])
def test_hashing_round_trip(scope, precompute):
    params = mlp_params()
    t = sharing.hashed(1 / 4, scope=scope, precompute=precompute, seed=7)
    assert t.codec == ("select", "hashing")
    state = trained(t, params)
    data, report = check_round_trip(t, state, "hashing")
    rows = {r.name: r for r in report.layers}
    kernels = [p for p in sharing.flatten_paths(params) if p.endswith("kernel")]
    if scope == "layer":
        for p in kernels:
            virtual = params[p.split("/")[0]]["kernel"]
            assert rows[p].codec == "hashing" and rows[p].shape == virtual.shape
            assert rows[p].dense_bytes == 4 * virtual.size
            k = state.theta["inner"][p].size
            assert rows[p].n_stored == k and rows[p].parts["raw"] == 4 * k
    else:
        pool = rows["pool"]
        assert pool.codec == "hashing" and pool.n_weights == sum(
            params[p.split("/")[0]]["kernel"].size for p in kernels)
        assert pool.parts["raw"] == 4 * state.theta["inner"].size
    assert {r.codec for r in report.layers if r.name.endswith("bias")} == {"weights"}
    # a precompute state stores no index array: its file is the on-the-fly state's file but
    # for the meta's "precompute": true / false
    twin = sharing.hashed(1 / 4, scope=scope, precompute=not precompute, seed=7)
    frozen = twin.init(jax.random.key(1), params).frozen
    assert ("signed_index" in frozen) != precompute
    twin_data = storage.encode((twin, SharedParams(state.theta, frozen)))
    assert len(twin_data) - len(data) == (1 if precompute else -1)


def test_hashing_without_select_on_a_flat_dict():
    leaves = {"b/w": jnp.ones((5, 7)), "a/w": jnp.ones((3, 2, 4))}
    t = sharing.hashing(1 / 3, seed=3)
    state = trained(t, leaves)
    check_round_trip(t, state, "hashing")
    assert storage.decode(storage.encode((t, state))).keys() == t.apply(state).keys()


@pytest.mark.parametrize("how", ["rank", "compression"])
def test_low_rank_round_trip(how):
    params = mlp_params()
    t = sharing.low_rank(3) if how == "rank" else sharing.low_rank(compression=1 / 4)
    assert t.codec == ("select", "low_rank")
    state = trained(t, params)
    _, report = check_round_trip(t, state, "low_rank")
    row = {r.name: r for r in report.layers}["Dense_1/kernel"]
    u, v = state.theta["inner"]["Dense_1/kernel"].values()
    assert row.codec == "low_rank" and row.n_stored == u.size + v.size
    assert row.n_weights == 16 * 16 and row.dense_bytes == 4 * 256


@pytest.mark.parametrize("multiplex", [None, "scale_shift", "lowrank"])
def test_tying_round_trip(multiplex):
    params = mlp_params()
    t = sharing.tied(["Dense_1", "Dense_2"], multiplex=multiplex, rank=2)
    assert t.codec == ("select", "tying")
    state = trained(t, params)
    _, report = check_round_trip(t, state, "tying")
    rows = {r.name: r for r in report.layers}
    kernel = rows["{Dense_1,Dense_2}/kernel"]
    assert kernel.codec == "tying" and kernel.n_weights == 2 * 16 * 16
    extras = {None: 0, "scale_shift": 2 * 2 * 16, "lowrank": 2 * (16 * 2 + 2 * 16)}[multiplex]
    assert kernel.n_stored == 16 * 16 + extras
    assert rows["{Dense_1,Dense_2}/bias"].n_stored == 16
    assert "Dense_0/kernel" in rows and "Dense_1/kernel" not in rows


def test_select_keeps_the_rest_as_weights_with_todays_encodings():
    rng = np.random.default_rng(0)
    params = {
        "Dense_0": {"kernel": quantized(rng, (40, 30), 0.1, 8), "bias": np.ones(30, np.float32)},
        "Dense_1": {"kernel": rng.normal(size=(30, 20)).astype(np.float32)},
        "Dense_2": {"kernel": quantized(rng, (20, 10), 1.0, 4), "bias": np.zeros(10, np.float32)},
    }
    t = sharing.select(r"Dense_1/kernel$", sharing.hashing(1 / 8))
    state = trained(t, params)
    state = SharedParams({"rest": params_with_none(params, "Dense_1/kernel"),
                          "inner": state.theta["inner"]}, state.frozen)
    data, report = check_round_trip(t, state, "hashing", index_bits=4)
    rows = {r.name: r for r in report.layers}
    assert [r.name for r in report.layers] == list(sharing.flatten_paths(params))
    assert rows["Dense_0/kernel"].encoding == "sparse" and rows["Dense_0/kernel"].index_bits == 4
    assert rows["Dense_2/kernel"].encoding == "dense_codebook"
    assert rows["Dense_1/kernel"].codec == "hashing"
    plain = storage.size_report({k: v for k, v in params.items() if k != "Dense_1"},
                                index_bits=4)
    same = {r.name: r for r in plain.layers}
    for name in ("Dense_0/kernel", "Dense_0/bias", "Dense_2/kernel", "Dense_2/bias"):
        assert rows[name].stored_bytes - rows[name].parts.get("group", 0) == same[
            name].stored_bytes


def params_with_none(params, path):
    layer, leaf = path.split("/")
    return {k: {n: (None if (k, n) == (layer, leaf) else x) for n, x in v.items()}
            for k, v in params.items()}


def test_lenet_300_100_hashed_at_one_eighth_is_an_eighth_of_float32():
    params = lenet_params()
    t = sharing.hashed(1 / 8)
    state = t.init(jax.random.key(0), params)
    data = storage.encode((t, state))
    dense = 4 * sharing.count_params(params)
    ratio = len(data) / dense
    print(f"\nhashed LeNet-300-100 at 1/8: {len(data):,} bytes of {dense:,} dense, "
          f"ratio {ratio:.4f}")
    assert 0.12 < ratio < 0.14
    report = storage.size_report(data)
    assert report.dense_bytes == dense == 4 * 266_610
    assert report.compression == pytest.approx(1 / ratio)


def test_transforms_without_a_codec_store_weights_in_version_1():
    params = lenet_params()
    for t in (sharing.identity(), sharing.chain(sharing.identity()),
              sharing.select("Dense_1", sharing.identity())):
        assert t.codec is None
        state = t.init(jax.random.key(0), params)
        data = storage.encode((t, state))
        assert data == storage.encode(t.apply(state))
        assert HEADER.unpack_from(data)[1] == 1
        assert storage.decode(data, with_state=True)[1] == {}


def test_plain_trees_keep_version_1_bytes_and_committed_files_load():
    data = storage.encode({"a": {"w": np.eye(3, dtype=np.float32)}})
    expected_header = HEADER.pack(storage.MAGIC, 1, 0, 1, len(data))
    assert data[: HEADER.size] == expected_header
    record = layers.encode_layer("a/w", np.eye(3, dtype=np.float32), "auto", 5)
    body = expected_header + record
    assert data == body + struct.pack("<I", zlib.crc32(body))
    files = sorted(glob.glob(os.path.join(ROOT, "experiments/results/**/*.wsjax"),
                             recursive=True))
    assert files
    for path in files:
        with open(path, "rb") as f:
            raw = f.read()
        if HEADER.unpack_from(raw)[1] == 1:  # weights only: re-encoding its params gives its bytes
            # with the relative-index widths the file was written with (a study may tune them)
            widths = {f"^{re.escape(x.name)}$": x.index_bits for x in storage.size_report(raw).layers
                      if x.index_bits is not None}
            assert storage.encode(storage.load(path), index_bits=widths) == raw, path
        else:  # a codec file (a study's hashed or low-rank net): decodes, every byte accounted for
            storage.load(path)
            assert storage.size_report(raw).file_bytes == len(raw), path


@pytest.fixture
def scaled_codec():
    """A toy codec, registered for one test only (the contract test checks the registry)."""

    def encode(state, options):
        return codecs.Group("test_scaled", {"scale": float(state.frozen)},
                            {"w": np.asarray(state.theta)}, ("w",))

    def decode(group):
        state = SharedParams(jnp.asarray(group.arrays["w"]), group.meta["scale"])
        return {"w": np.asarray(state.theta * state.frozen)}, state

    codec = types.SimpleNamespace(name="test_scaled", encode=encode, decode=decode)
    yield codecs.register(codec)
    codecs.unregister("test_scaled")
    assert "test_scaled" not in codecs.names()


def test_registry_and_a_new_codec_is_one_module_and_one_registration(scaled_codec):
    assert {"weights", "hashing", "low_rank", "tying"} <= set(codecs.names())
    assert codecs.get("hashing").name == "hashing"
    with pytest.raises(KeyError, match="unknown codec"):
        codecs.get("nope")
    codec = scaled_codec
    assert codecs.register(codec) is codec  # registering it again is harmless
    with pytest.raises(ValueError, match="already registered"):
        codecs.register(types.SimpleNamespace(**vars(codec)))
    t = Transform(lambda key, p: SharedParams(p["w"] / 2, 2.0),
                  lambda s: {"w": s.theta * s.frozen}, codec="test_scaled")
    state = t.init(None, {"w": jnp.arange(6.0).reshape(2, 3)})
    params, states = storage.decode(storage.encode((t, state)), with_state=True)
    np.testing.assert_array_equal(params["w"], np.arange(6.0).reshape(2, 3))
    assert states["test_scaled"].frozen == 2.0
    (row,) = storage.size_report((t, state)).layers
    assert row.codec == "test_scaled" and row.parts["group"] > 0


def test_encode_errors():
    params = mlp_params()
    state = sharing.hashed(1 / 4).init(jax.random.key(0), params)
    for codec in ("no_such_codec", ("select",), ("other", "hashing"), 3):
        t = Transform(sharing.hashed(1 / 4).init, sharing.hashed(1 / 4).apply, codec=codec)
        with pytest.raises(ValueError, match="codec"):
            storage.encode((t, state))
    with pytest.raises(TypeError, match="mapping"):
        storage.encode((1, 2))


def test_load_with_state(tmp_path):
    params = mlp_params()
    t = sharing.low_rank(2)
    state = trained(t, params)
    report = storage.save(tmp_path / "lr.wsjax", (t, state))
    assert report.file_bytes == os.path.getsize(tmp_path / "lr.wsjax")
    loaded, states = storage.load(tmp_path / "lr.wsjax", with_state=True)
    assert_bit_exact(numpy_tree(t.apply(state)), loaded)
    assert_bit_exact(loaded, storage.load(tmp_path / "lr.wsjax"))
    assert isinstance(states["low_rank"].theta["Dense_1/kernel"]["u"], jax.Array)
    storage.save(tmp_path / "plain.wsjax", numpy_tree(params))
    assert storage.load(tmp_path / "plain.wsjax", with_state=True)[1] == {}


# ----------------------------------------------------------------------------- corrupt files


def split_groups(data):
    """``[[codec name, meta, record count, record bytes]]`` of a version 2 file."""
    reader = ByteReader(data, HEADER.size, len(data) - 4)
    groups = []
    for _ in range(reader.varint()):
        name = reader.bytes(reader.varint())
        meta = reader.bytes(reader.varint())
        count = reader.varint()
        start = reader.pos
        for _ in range(count):
            layers.decode_layer(reader)
        groups.append([name, meta, count, data[start:reader.pos]])
    return groups


def join_groups(data, groups, n_layers=None):
    """A version 2 file of ``groups`` with the header and checksum of ``data`` fixed up."""
    out = ByteWriter()
    out.varint(len(groups))
    for name, meta, count, records in groups:
        for field in (name, meta):
            out.varint(len(field))
            out.bytes(field)
        out.varint(count)
        out.bytes(records)
    body = out.getvalue()
    _, version, flags, header_layers, _ = HEADER.unpack_from(data)
    n_layers = header_layers if n_layers is None else n_layers
    head = HEADER.pack(storage.MAGIC, version, flags, n_layers, HEADER.size + len(body) + 4)
    return head + body + struct.pack("<I", zlib.crc32(head + body))


def edited(data, codec, edit):
    """``data`` with the meta of its ``codec`` group changed by ``edit(meta)``."""
    groups = split_groups(data)
    for g in groups:
        if g[0] == codec.encode():
            meta = json.loads(g[1])
            g[1] = edit(meta) or json.dumps(meta).encode()
    return join_groups(data, groups)


@functools.cache
def small_files():
    params = mlp_params()
    out = {}
    for name, t in {"hashing": sharing.hashed(1 / 4, seed=5),
                    "pool": sharing.hashed(1 / 4, scope="pool"),
                    "low_rank": sharing.low_rank(2),
                    "tying": sharing.tied(["Dense_1", "Dense_2"], multiplex="scale_shift")}.items():
        out[name] = storage.encode((t, trained(t, params)))
    return out


def test_rewritten_files_are_still_valid():
    for data in small_files().values():
        assert join_groups(data, split_groups(data)) == data
        respaced = edited(data, "weights", lambda meta: None)  # json.dumps adds spaces
        assert respaced != data
        assert_bit_exact(storage.decode(data), storage.decode(respaced))


def _set(path, value):
    def edit(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


BAD_METAS = {
    "bad json": ("hashing", "hashing", lambda meta: b"{not json"),
    "not an object": ("hashing", "hashing", lambda meta: b"[1, 2]"),
    "duplicate key": ("hashing", "hashing", lambda meta: b'{"at": [1], "at": [1]}'),
    "nan": ("hashing", "hashing", lambda meta: b'{"scope": NaN}'),
    "deep": ("hashing", "hashing", lambda meta: b"[" * 100_000),
    "not utf-8": ("hashing", "hashing", lambda meta: b"\xff\xfe"),
    "unknown field": ("hashing", "hashing", _set(["extra"], 1)),
    "missing at": ("hashing", "hashing", lambda meta: json.dumps(
        {k: v for k, v in meta.items() if k != "at"}).encode()),
    "at out of range": ("hashing", "hashing", _set(["at", 0], 99)),
    "at clash": ("hashing", "hashing", _set(["at", 0], 0)),
    "wrong bucket count": ("hashing", "hashing", _set(["leaves", 0, 2], 1000)),
    "pool bucket count": ("pool", "hashing", _set(["leaves", 1, 2], 3)),
    "huge shape": ("hashing", "hashing", _set(["leaves", 0, 1], [2**41, 2**41])),
    "negative dim": ("hashing", "hashing", _set(["leaves", 0, 1], [-1, 4])),
    "float dim": ("hashing", "hashing", _set(["leaves", 0, 1], [1.5, 4])),
    "bool seed": ("hashing", "hashing", _set(["leaves", 0, 4], True)),
    "seed out of range": ("hashing", "hashing", _set(["leaves", 0, 4], 2**32)),
    "layer id out of range": ("hashing", "hashing", _set(["leaves", 0, 3], -1)),
    "bad scope": ("hashing", "hashing", _set(["scope"], "model")),
    "bad precompute": ("hashing", "hashing", _set(["precompute"], 1)),
    "short leaf entry": ("hashing", "hashing", _set(["leaves", 0], ["Dense_0/kernel"])),
    "renamed leaf": ("hashing", "hashing", _set(["leaves", 0, 0], "Dense_9/kernel")),
    "rank vs factors": ("low_rank", "low_rank", _set(["leaves", 0, 1], [4, 16])),
    "one axis": ("low_rank", "low_rank", _set(["leaves", 0, 1], [96])),
    "tied path elsewhere": ("tying", "tying", _set(["paths", 0], "Dense_0/kernel")),
    "one tied layer": ("tying", "tying", _set(["layers"], ["Dense_1"])),
    "tied extras": ("tying", "tying", _set(["extras"], [["kernel"]])),
    "tied multiplex": ("tying", "tying", _set(["multiplex"], "lowrank")),
    "weights meta": ("hashing", "weights", _set(["x"], 1)),
}


@pytest.mark.parametrize("case", sorted(BAD_METAS))
def test_corrupted_metas_raise_storage_errors(case):
    file, codec, edit = BAD_METAS[case]
    data = edited(small_files()[file], codec, edit)
    with pytest.raises(StorageError):
        storage.decode(data)


def test_corrupted_groups_raise_storage_errors():
    data = small_files()["hashing"]
    groups = split_groups(data)
    renamed = [list(g) for g in groups]
    renamed[1][0] = b"no_such_codec"
    with pytest.raises(StorageError, match="unknown codec"):
        storage.decode(join_groups(data, renamed))
    with pytest.raises(StorageError):
        storage.decode(join_groups(data, groups[:1]))  # the hashed leaves are missing
    with pytest.raises(StorageError, match="records"):
        storage.decode(join_groups(data, groups, n_layers=HEADER.unpack_from(data)[3] + 1))
    moved = [list(g) for g in groups]
    moved[0][2] -= 1  # the last weights record now reads as part of the next group
    with pytest.raises(StorageError):
        storage.decode(join_groups(data, moved))
    with pytest.raises(StorageError):
        storage.decode(join_groups(data, [groups[0], groups[1], groups[1]]))
    with pytest.raises(StorageError, match="versions 1 and 2"):
        body = bytearray(data[:-4])
        body[8:10] = struct.pack("<H", 3)
        storage.decode(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


def test_random_corruption_behind_a_valid_checksum_never_crashes_the_parser():
    rng = np.random.default_rng(0)
    for data in small_files().values():
        for _ in range(40):
            body = bytearray(data[:-4])
            for position in rng.integers(HEADER.size, len(body), rng.integers(1, 4)):
                body[position] ^= int(rng.integers(1, 256))
            try:
                out = storage.decode(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))
            except StorageError:
                continue
            assert isinstance(out, dict)


def test_nested_select_and_a_select_of_every_leaf():
    params = mlp_params()
    nested = sharing.select("Dense_[12]", sharing.select("kernel", sharing.hashing(1 / 4)))
    assert nested.codec == ("select", ("select", "hashing"))
    state = trained(nested, params)
    data = storage.encode((nested, state))
    assert [g[0] for g in split_groups(data)] == [b"weights", b"hashing"]  # weights merged
    assert_bit_exact(numpy_tree(nested.apply(state)), storage.decode(data))
    every = sharing.hashed(1 / 4, biases=True)
    data, report = check_round_trip(every, trained(every, params), "hashing")
    assert [g[0] for g in split_groups(data)] == [b"hashing"]  # no empty weights group
    assert {r.codec for r in report.layers} == {"hashing"}
    assert sharing.chain(every).codec is None  # a chain stores its weights
