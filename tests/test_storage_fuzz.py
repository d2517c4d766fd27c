"""wsjax.storage under hostile input: over 1,000 mutated files, decompression bombs, a memory cap.

The mutated files come from four real encodings (a pruned and quantized LeNet-300-100-like
MLP, a raw tree of mixed dtypes, a hashed and a low-rank ``(transform, state)`` pair). A
walker that knows the format (independently of the decoder) finds every field, so that
mutations can target the envelope, record headers, shapes, streams, metas or value bytes,
with or without a recomputed CRC-32. What each kind must give:

* ``corrupt`` (bit flips, truncations, insertions, deletions, header edits; CRC left
  alone): StorageError, or the original model;
* ``structural`` (edits the format can detect, CRC and length recomputed: lengths, counts,
  codes, element counts a payload pins down, shapes over the limits, metas): StorageError,
  or the original model;
* ``value`` (bytes no format can validate -- raw floats, codebook values, bucket values,
  coded symbols; CRC recomputed): StorageError, or a model of the original's structure;
* ``undetectable`` (a valid file of another model: renamed layers, a sparse layer's shape,
  a dtype of the same item size, a hashed shape or seed within the limits, random bytes
  anywhere; CRC recomputed): StorageError, or a well-formed model within the limits.

Every file that decodes is decoded again with ``like=`` the original model: then *every*
mutation, the undetectable ones included, is a StorageError, the original model, or a model
of its structure (a value edit).

Every decode must finish with one of these, never another exception; all of them together
in under 30 s.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsjax import pruning, sharing, storage
from wsjax.models import MLP
from wsjax.storage import Limits, StorageError
from wsjax.storage.bytestream import ByteWriter

HEADER = struct.Struct("<8sHBIQ")
N_MUTATIONS = 1200
SEED = 20240616
ITEMSIZE = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 4, 8: 8, 9: 8, 10: 2, 11: 4, 12: 8, 13: 2}


# ----------------------------------------------------------------------------- sources


def _params(model, in_dim, seed=0):
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, in_dim)))["params"]
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.1, s.shape).astype(s.dtype)),
                        shapes)


@functools.cache
def sources() -> dict[str, bytes]:
    # LeNet-300-100's three layers and Han's sparsities, at a quarter of the width.
    params = _params(MLP((75, 25, 10)), 196)
    masks = pruning.sparsity_masks(params, {"Dense_0": 0.92, "Dense_1": 0.91, "Dense_2": 0.74})
    pruned = sharing.apply_masks(params, masks)
    quantize = sharing.quantize(bits=5, max_iter=30)
    quantized = jax.tree.map(np.asarray, quantize.apply(quantize.init(jax.random.key(0), pruned)))
    periodic = np.zeros(64, np.float32)  # a nonzero every 4th weight: a constant index stream
    periodic[3::4] = np.tile(np.unique(quantized["Dense_2"]["kernel"])[-2:], 8)
    quantized["Dense_3"] = {"kernel": periodic.reshape(8, 8),
                            "scale": np.full((4, 4), 0.5, np.float32)}  # a zero-width stream
    rng = np.random.default_rng(1)
    raw = {"a": {"w": rng.normal(size=(12, 7)).astype(np.float32),
                 "b": rng.normal(size=7).astype(np.float16)},
           "c": {"i": rng.integers(-5, 5, (3, 4, 2)).astype(np.int8),
                 "s": np.asarray(2.5, np.float64)}}
    small = _params(MLP((16, 8)), 12, seed=2)
    hashed = sharing.hashed(1 / 4, seed=3)
    low_rank = sharing.low_rank(2)
    return {
        "deep": storage.encode(quantized, encoding={"Dense_2/kernel": "dense_codebook",
                                                    "Dense_3/scale": "dense_codebook"}),
        "raw": storage.encode(raw, encoding="raw"),
        "hashed": storage.encode((hashed, hashed.init(jax.random.key(1), small))),
        "low_rank": storage.encode((low_rank, low_rank.init(jax.random.key(2), small))),
    }


# ----------------------------------------------------------------------------- the format


class Reader:
    def __init__(self, data, pos):
        self.data, self.pos = data, pos

    def u8(self):
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self):
        value, shift = 0, 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value


def varint(value: int) -> bytes:
    out = ByteWriter()
    out.varint(value)
    return out.getvalue()


def walk(data: bytes) -> list[dict]:
    """Every field of a valid file: ``{kind, start, end, ...}``, in file order."""
    fields = [dict(kind="magic", start=0, end=8), dict(kind="version", start=8, end=10),
              dict(kind="flags", start=10, end=11), dict(kind="layer_count", start=11, end=15),
              dict(kind="length", start=15, end=23)]
    version = HEADER.unpack_from(data)[1]
    r = Reader(data, HEADER.size)

    def field(kind, start, **extra):
        fields.append(dict(kind=kind, start=start, end=r.pos, **extra))

    def read(kind, read_value, **extra):
        """Read one value with ``read_value`` and record its bytes as the field ``kind``."""
        start = r.pos
        value = read_value()
        field(kind, start, **extra)
        return value

    zero_bit = []  # of the record being read: whether a stream takes zero bits a symbol

    def stream(layer, n_symbols, alphabet):
        """One symbol stream; returns its mode."""
        start = r.pos
        mode = r.u8()
        field("stream_mode", start, layer=layer, mode=mode)
        if mode == 2:
            start = r.pos
            r.varint()
            field("constant_symbol", start, layer=layer)
        elif mode == 1:
            table_size = read("huffman_table_size", r.varint, layer=layer)
            max_length = read("huffman_max_length", r.u8, layer=layer)
            start = r.pos
            r.pos += (table_size * max_length.bit_length() + 7) // 8
            field("huffman_table", start, layer=layer)
            n = read("huffman_data_size", r.varint, layer=layer)
            start = r.pos
            r.pos += n
            field("value", start, layer=layer, what="codes")
        else:
            start = r.pos
            r.pos += (n_symbols * (alphabet - 1).bit_length() + 7) // 8
            field("value", start, layer=layer, what="codes")
            zero_bit.append(alphabet <= 1)
        if mode == 2:
            zero_bit.append(True)
        return mode

    def record():
        first = r.pos
        n = r.varint()
        field("name_length", first)
        start = r.pos
        r.pos += n
        name = data[start:r.pos].decode()
        field("name", start, layer=name)
        start = r.pos
        dtype = r.u8()
        field("dtype", start, layer=name, code=dtype)
        ndim = read("ndim", r.u8, layer=name)
        dims = []
        for axis in range(ndim):
            start = r.pos
            dims.append(r.varint())
            field("dim", start, layer=name, axis=axis, value=dims[-1])
        start = r.pos
        encoding = r.u8()
        field("encoding", start, layer=name, value=encoding)
        start = r.pos
        n_payload = r.varint()
        field("payload_length", start, layer=name, value=n_payload)
        end = r.pos + n_payload
        info = dict(layer=name, encoding=encoding, dims=dims, dtype=dtype, modes=[])
        zero_bit.clear()
        if encoding == 0:
            start = r.pos
            r.pos = end
            field("value", start, what="raw", layer=name)
        else:
            n_symbols = int(np.prod(dims))
            if encoding == 1:
                index_bits = read("index_bits", r.u8, layer=name)
                n_symbols = read("entry_count", r.varint, layer=name)
            k = read("codebook_size", r.varint, layer=name)
            flag = read("codebook_flags", r.u8, layer=name)
            start = r.pos
            r.pos += k * ITEMSIZE[dtype]
            field("value", start, what="codebook", layer=name)
            info["modes"].append(stream(name, n_symbols, k + flag))
            if encoding == 1:
                info["modes"].append(stream(name, n_symbols, 1 << index_bits))
        assert r.pos == end
        fields.append(dict(kind="record", start=first, end=end, zero_bit=any(zero_bit), **info))

    if version == 1:
        for _ in range(HEADER.unpack_from(data)[3]):
            record()
    else:
        n_groups = read("group_count", r.varint)
        for _ in range(n_groups):
            start = r.pos
            n = r.varint()
            r.pos += n
            field("codec_name", start, codec=data[start + 1:r.pos].decode())
            codec = fields[-1]["codec"]
            start = r.pos
            n = r.varint()
            meta_start = r.pos
            r.pos += n
            field("meta", start, codec=codec, meta=json.loads(data[meta_start:r.pos]))
            count = read("record_count", r.varint, codec=codec)
            for _ in range(count):
                record()
    assert r.pos == len(data) - 4
    return fields


def fix(body: bytes, length: bool = True) -> bytes:
    """``body`` (a file without its CRC) with its length field (optionally) and CRC fixed."""
    body = bytearray(body)
    if length and len(body) >= HEADER.size:
        body[15:23] = struct.pack("<Q", len(body) + 4)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def replace(data: bytes, f: dict, new: bytes) -> bytes:
    """``data`` with field ``f`` replaced by ``new``, length and CRC fixed."""
    return fix(data[: f["start"]] + new + data[f["end"]: -4])


# ----------------------------------------------------------------------------- mutations


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def corrupt(rng, data, fields):
    """No fix-up: the envelope (length, CRC) must catch it."""
    kind = int(rng.integers(6))
    out = bytearray(data)
    if kind == 0:
        for bit in rng.choice(8 * len(data), int(rng.integers(1, 4)), replace=False):
            out[bit // 8] ^= 1 << (bit % 8)
    elif kind == 1:
        del out[int(rng.integers(len(data))):]
    elif kind == 2:
        at = int(rng.integers(len(data) + 1))
        out[at:at] = rng.bytes(int(rng.integers(1, 9)))
    elif kind == 3:
        at = int(rng.integers(len(data)))
        del out[at: at + int(rng.integers(1, 9))]
    elif kind == 4:
        f = _pick(rng, fields[:5])
        for i in range(f["start"], f["end"]):
            out[i] = int(rng.integers(256))
        if out == bytearray(data):
            out[f["start"]] ^= 1
    else:
        at = int(rng.integers(len(data)))
        out[at] ^= int(rng.integers(1, 256))
    return bytes(out)


def _scaled_dim(rng, value):
    k = int(rng.integers(2, 4))
    return value * k if value < 2 * k or rng.random() < 0.5 else value // k


def structural(rng, data, fields, version):
    """Edits the format can detect, with the length and CRC recomputed."""
    records = [f for f in fields if f["kind"] == "record"]
    choices = ["truncate", "insert", "delete", "version", "flags", "layer_count", "encoding",
               "payload_length", "ndim", "dtype", "huge_dim", "count_dim", "stream_mode",
               "entry_count", "codebook_size"]
    if version == 2:
        choices += ["meta", "meta_json", "record_count", "codec_name", "group_count"]
    kind = _pick(rng, choices)
    return kind, _structural(rng, data, fields, version, kind, records)


def _structural(rng, data, fields, version, kind, records):
    body = data[:-4]
    if kind == "truncate":
        return fix(body[: int(rng.integers(HEADER.size, len(body)))])
    if kind == "insert":
        at = int(rng.integers(HEADER.size, len(body) + 1))
        return fix(body[:at] + rng.bytes(int(rng.integers(1, 9))) + body[at:])
    if kind == "delete":
        at = int(rng.integers(HEADER.size, len(body)))
        return fix(body[:at] + body[at + int(rng.integers(1, 9)):])
    by_kind = lambda k: [f for f in fields if f["kind"] == k]
    if kind == "version":
        return replace(data, fields[1], struct.pack("<H", _pick(rng, [0, 3, 4, 255, 3 - version])))
    if kind == "flags":
        return replace(data, fields[2], bytes([int(rng.integers(2, 256))]))
    if kind == "layer_count":
        n = HEADER.unpack_from(data)[3]
        return replace(data, fields[3], struct.pack("<I", max(0, n + _pick(rng, [-2, -1, 1, 2, 1000]))))
    if kind == "encoding":
        f = _pick(rng, by_kind("encoding"))
        return replace(data, f, bytes([_pick(rng, [v for v in (0, 1, 2, 3, 200) if v != f["value"]])]))
    if kind == "payload_length":
        f = _pick(rng, by_kind("payload_length"))
        return replace(data, f, varint(max(0, f["value"] + _pick(rng, [-3, -1, 1, 2, 1 << 20]))))
    if kind == "ndim":
        f = _pick(rng, by_kind("ndim"))
        return replace(data, f, bytes([(data[f["start"]] + int(rng.integers(1, 256))) % 256]))
    if kind == "dtype":  # an unknown code, or one of another item size
        f = _pick(rng, by_kind("dtype"))
        other = [c for c, s in ITEMSIZE.items() if s != ITEMSIZE[f["code"]]] + [0, 14, 255]
        return replace(data, f, bytes([_pick(rng, other)]))
    if kind == "huge_dim":  # at least 2**25 elements: over some limit, or not in the payload
        f = _pick(rng, by_kind("dim"))
        return replace(data, f, varint(_pick(rng, [1 << 25, 1 << 27, (1 << 28) + 1, 1 << 40, 1 << 63])))
    if kind == "count_dim":  # the element count of a layer whose payload pins it down
        pinned = [r for r in records if r["encoding"] in (0, 2) and not r["zero_bit"]
                  and r["dims"]]
        rec = _pick(rng, pinned)
        f = _pick(rng, [d for d in by_kind("dim") if d["layer"] == rec["layer"]])
        return replace(data, f, varint(_scaled_dim(rng, f["value"])))
    if kind == "stream_mode":
        f = _pick(rng, by_kind("stream_mode") or by_kind("version"))
        if f["kind"] == "version":
            return replace(data, f, struct.pack("<H", 9))
        return replace(data, f, bytes([_pick(rng, [m for m in (0, 1, 2, 3, 77) if m != f["mode"]])]))
    if kind in ("entry_count", "codebook_size"):
        options = by_kind(kind) or by_kind("codebook_size") or by_kind("layer_count")
        f = _pick(rng, options)
        if f["kind"] == "layer_count":
            return replace(data, f, struct.pack("<I", 0))
        value = Reader(data, f["start"]).varint()
        return replace(data, f, varint(max(0, value + _pick(rng, [-2, -1, 1, 3, 1 << 30]))))
    if kind == "meta":
        f = _pick(rng, [g for g in by_kind("meta") if g["codec"] != "weights"])
        meta = json.loads(json.dumps(f["meta"]))
        edit = int(rng.integers(5))
        if f["codec"] == "hashing" and edit == 4:  # a hashed shape is free (see undetectable)
            edit = 0
        leaf = _pick(rng, meta["leaves"])
        if edit == 0:  # a virtual shape far over the limits
            leaf[1] = _pick(rng, [[1 << 20, 1 << 20], [1 << 15, (1 << 14) + 1], [1 << 40, 1],
                                  [1 << 62, 4], [2, 3, 4, 1 << 30]])
        elif edit == 1:
            meta["at"][int(rng.integers(len(meta["at"])))] = _pick(rng, [-1, 999, meta["at"][0] + 1])
            if meta["at"] == f["meta"]["at"]:
                meta["at"].append(0)
        elif edit == 2 and f["codec"] == "hashing":
            leaf[2] += _pick(rng, [-1, 1, 1000])
        elif edit == 3:
            meta[_pick(rng, ["extra", "leaves"])] = _pick(rng, [None, 1, "x", [], {}])
        else:  # a low-rank or hashed shape whose rows or columns no longer match
            leaf[1] = [leaf[1][0] + _pick(rng, [1, 7]), leaf[1][-1]]
        text = json.dumps(meta, separators=(",", ":")).encode()
        return replace(data, f, varint(len(text)) + text)
    if kind == "meta_json":
        f = _pick(rng, by_kind("meta"))
        text = _pick(rng, [b"{", b"[]", b"null", b'{"at":[0],"at":[0]}', b"\xff\xfe", b"[" * 5000,
                           b'{"at":[0],"x":NaN}'])
        return replace(data, f, varint(len(text)) + text)
    if kind == "record_count":
        f = _pick(rng, by_kind("record_count"))
        value = Reader(data, f["start"]).varint()
        return replace(data, f, varint(max(0, value + _pick(rng, [-1, 1, 5]))))
    if kind == "codec_name":
        f = _pick(rng, by_kind("codec_name"))
        name = _pick(rng, [b"weightz", b"", b"hashing", b"low_rank", b"tying", b"\xff"])
        if name == data[f["start"] + 1: f["end"]]:
            name = b"nope"
        return replace(data, f, varint(len(name)) + name)
    f = by_kind("group_count")[0]
    return replace(data, f, varint(_pick(rng, [0, 3, 9, 1 << 40])))


def value_edit(rng, data, fields):
    """1-3 bytes of values no format can validate changed, CRC recomputed."""
    regions = [f for f in fields if f["kind"] == "value" and f["end"] > f["start"]]
    out = bytearray(data[:-4])
    for _ in range(int(rng.integers(1, 4))):
        f = _pick(rng, regions)
        out[int(rng.integers(f["start"], f["end"]))] ^= int(rng.integers(1, 256))
    return fix(bytes(out), length=False)


def undetectable(rng, data, fields, version):
    """A valid file of another model, or random bytes behind a valid CRC."""
    by_kind = lambda k: [f for f in fields if f["kind"] == k]
    kind = int(rng.integers(6))
    if kind == 0:  # rename a layer (same length)
        f = _pick(rng, by_kind("name"))
        out = bytearray(data)
        out[int(rng.integers(f["start"], f["end"]))] = ord(_pick(rng, "xyz_09/"))
        return fix(bytes(out[:-4]), length=False)
    if kind == 1:  # a sparse layer's shape, or any dimension within the limits
        sparse = [f for f in by_kind("dim") if any(
            r["layer"] == f["layer"] and r["encoding"] == 1 for r in by_kind("record"))]
        f = _pick(rng, sparse or by_kind("dim"))
        return replace(data, f, varint(int(rng.integers(0, 2 * f["value"] + 3))))
    if kind == 2:  # a dtype of the same item size
        f = _pick(rng, by_kind("dtype"))
        same = [c for c, s in ITEMSIZE.items() if s == ITEMSIZE[f["code"]] and c != f["code"]]
        return replace(data, f, bytes([_pick(rng, same or [f["code"]])]))
    if kind == 3:  # flat <-> nested
        return replace(data, fields[2], bytes([1 - data[10]]))
    if kind == 4 and version == 2:  # a hashed / low-rank shape or seed within the limits
        f = _pick(rng, [g for g in by_kind("meta") if g["codec"] != "weights"])
        meta = json.loads(json.dumps(f["meta"]))
        leaf = _pick(rng, meta["leaves"])
        if f["codec"] == "hashing" and rng.random() < 0.5:
            leaf[4] = int(rng.integers(0, 1 << 32))
        else:
            leaf[1] = [leaf[1][0], int(rng.integers(1, 64))]
        text = json.dumps(meta, separators=(",", ":")).encode()
        return replace(data, f, varint(len(text)) + text)
    out = bytearray(data[:-4])  # random bytes anywhere past the header
    for position in rng.integers(HEADER.size, len(out), int(rng.integers(1, 4))):
        out[position] ^= int(rng.integers(1, 256))
    return fix(bytes(out), length=False)


# ----------------------------------------------------------------------------- checks


def flat(tree, prefix=()):
    """``{key path as a tuple: leaf}``: a flat ``{'a/b': x}`` and a nested ``{'a': {'b': x}}``
    are different models."""
    out = {}
    for k, v in tree.items():
        out.update(flat(v, prefix + (k,)) if isinstance(v, dict) else {prefix + (k,): v})
    return out


def equal(a, b) -> bool:
    fa, fb = flat(a), flat(b)
    return list(fa) == list(fb) and all(
        fa[k].dtype == fb[k].dtype and fa[k].shape == fb[k].shape
        and fa[k].tobytes() == fb[k].tobytes() for k in fa)


def same_structure(a, b) -> bool:
    fa, fb = flat(a), flat(b)
    return list(fa) == list(fb) and all(
        fa[k].dtype == fb[k].dtype and fa[k].shape == fb[k].shape for k in fa)


def well_formed(tree) -> bool:
    leaves = flat(tree)
    return all(isinstance(x, np.ndarray) for x in leaves.values()) and sum(
        x.size for x in leaves.values()) <= storage.limits.MAX_ELEMENTS


def test_fuzzed_files_raise_storage_errors_or_decode_correctly():
    files = sources()
    originals = {name: storage.decode(data) for name, data in files.items()}
    layouts = {name: walk(data) for name, data in files.items()}
    for name, data in files.items():  # the walker reads the format as the decoder does
        records = [f for f in layouts[name] if f["kind"] == "record"]
        assert [r["layer"] for r in records] == [i.name for i in storage.parse(data)[2]]
    modes = {r["layer"]: r["modes"] for r in layouts["deep"] if r["kind"] == "record"}
    assert modes["Dense_3/kernel"][1] == 2 and modes["Dense_3/scale"] == [0]
    rng = np.random.default_rng(SEED)
    outcomes, kinds, with_like = Counter(), Counter(), Counter()
    seconds = 0.0
    for i in range(N_MUTATIONS):
        name = _pick(rng, sorted(files))
        category_kind = None
        data, fields = files[name], layouts[name]
        version = HEADER.unpack_from(data)[1]
        category = _pick(rng, ["corrupt"] * 3 + ["structural"] * 4 + ["value"] * 2
                         + ["undetectable"])
        if category == "corrupt":
            mutated = corrupt(rng, data, fields)
        elif category == "structural":
            category_kind, mutated = structural(rng, data, fields, version)
        elif category == "value":
            mutated = value_edit(rng, data, fields)
        else:
            mutated = undetectable(rng, data, fields, version)
        start = time.perf_counter()
        try:
            out = storage.decode(mutated)
        except StorageError as e:
            assert str(e), "an error says what is wrong"
            outcome = "error"
        else:
            if equal(out, originals[name]):
                outcome = "equal"
            elif same_structure(out, originals[name]):
                outcome = "same structure"
            else:
                outcome = "other model"
        if outcome in ("equal", "same structure", "other model"):  # expected-model check
            try:
                checked = storage.decode(mutated, like=originals[name])
            except StorageError as e:
                assert outcome == "other model", (i, name, category, outcome, str(e))
                assert "expected" in str(e)
                with_like["error"] += 1
            else:
                assert outcome != "other model" and equal(checked, out), (i, name, category, outcome)
                with_like[outcome] += 1
        else:
            with_like["error"] += 1
        seconds += time.perf_counter() - start
        outcomes[category, outcome] += 1
        kinds[category_kind] += 1
        allowed = {"corrupt": {"error", "equal"}, "structural": {"error", "equal"},
                   "value": {"error", "equal", "same structure"},
                   "undetectable": {"error", "equal", "same structure", "other model"}}
        assert outcome in allowed[category], (i, name, category, category_kind, outcome)
        if outcome == "other model":
            assert well_formed(out), (i, name)
    print(f"\n{N_MUTATIONS} mutated files decoded in {seconds:.1f} s: "
          + ", ".join(f"{c}/{o}: {n}" for (c, o), n in sorted(outcomes.items())))
    print("decoded with like=the original model: " + ", ".join(f"{o}: {n}" for o, n in sorted(with_like.items())))
    # With the expected model given, no file of another model gets through: every mutated
    # file is an error, the original, or (value edits only) a model of its structure.
    assert sum(with_like.values()) == N_MUTATIONS and set(with_like) <= {"error", "equal", "same structure"}
    assert outcomes["undetectable", "other model"] > 0  # ... and there were such files
    assert sum(outcomes.values()) == N_MUTATIONS >= 1000
    assert seconds < 30
    for category in ("corrupt", "structural", "value", "undetectable"):
        assert outcomes[category, "error"] > 0
    assert outcomes["value", "same structure"] > 0  # value edits do get through
    assert len(kinds) == 1 + 20  # every structural edit was tried (None: other categories)


# ----------------------------------------------------------------------------- bombs


def _record(name, dtype_code, shape, encoding, payload):
    w = ByteWriter()
    w.varint(len(name.encode()))
    w.bytes(name.encode())
    w.uint(dtype_code, 1)
    w.uint(len(shape), 1)
    for d in shape:
        w.varint(d)
    w.uint(encoding, 1)
    w.varint(len(payload))
    w.bytes(payload)
    return w.getvalue()


def bomb(shape=(1 << 17, 1 << 10)) -> bytes:
    """The issue's decompression bomb: one dense-codebook layer whose weight stream is a
    constant stream (zero bits an element), padded to ~28 KB by a raw bias, checksum valid."""
    p = ByteWriter()
    p.varint(1)  # codebook size
    p.uint(0, 1)  # no zeros
    p.bytes(np.float32(0.5).tobytes())
    p.uint(2, 1)  # constant stream
    p.varint(0)  # of symbol 0
    records = [_record("Dense_0/kernel", 11, shape, 2, p.getvalue()),
               _record("Dense_0/bias", 11, (7150,), 0, np.ones(7150, np.float32).tobytes())]
    body = b"".join(records)
    head = HEADER.pack(storage.MAGIC, 1, 0, len(records), HEADER.size + len(body) + 4)
    return head + body + struct.pack("<I", zlib.crc32(head + body))


def sparse_bomb(shape) -> bytes:
    """A sparse layer of no stored entries: every element an implied zero."""
    p = ByteWriter()
    for value, size in ((5, 1),):
        p.uint(value, size)
    p.varint(0)  # entries
    p.varint(0)  # codebook size
    p.uint(0, 1)
    p.bytes(b"\x00\x00")  # two empty fixed-width streams
    body = _record("w", 11, shape, 1, p.getvalue())
    head = HEADER.pack(storage.MAGIC, 1, 0, 1, HEADER.size + len(body) + 4)
    return head + body + struct.pack("<I", zlib.crc32(head + body))


def test_the_decompression_bomb_is_refused_before_anything_is_allocated():
    data = bomb()
    assert 28_000 < len(data) < 29_000
    start = time.perf_counter()
    with pytest.raises(StorageError, match=r"layer 'Dense_0/kernel'.*max_implied"):
        storage.decode(data)
    assert time.perf_counter() - start < 0.5
    with pytest.raises(StorageError, match="max_implied"):
        storage.decode(sparse_bomb((1 << 14, 1 << 12)))
    for shape in ((1 << 20, 1 << 20), (1 << 40,), (1 << 64 - 1,), (3,) * 60):
        with pytest.raises(StorageError, match="max_layer_elements|max_elements"):
            storage.decode(bomb(shape))
    with pytest.raises(StorageError, match="ndim"):
        storage.decode(bomb((1,) * 100))
    # The limits are the caller's to set: raised, the same file decodes (and stays exact).
    small = bomb((1 << 12, 1 << 10))
    with pytest.raises(StorageError, match="max_implied"):
        storage.decode(small, limits=Limits(max_implied=1 << 20))
    out = storage.decode(small)
    assert out["Dense_0"]["kernel"].shape == (1 << 12, 1 << 10)
    assert (out["Dense_0"]["kernel"] == 0.5).all()
    with pytest.raises(StorageError, match=r"max_layer_elements=1000\b"):
        storage.decode(small, max_elements=1000)
    with pytest.raises(StorageError, match=r"Dense_0/bias.*max_elements=4200000\b"):
        storage.decode(small, limits=Limits(max_elements=4_200_000))
    with pytest.raises(StorageError, match=r"max_bytes"):
        storage.decode(small, limits=Limits(max_bytes=1 << 20))
    # A whole file's total counts, not only each layer.
    two = storage.encode({"a": np.ones((300, 300), np.float32), "b": np.ones((300, 300), np.float32)},
                         encoding="raw")
    storage.decode(two, limits=Limits(max_elements=180_000, max_layer_elements=90_000))
    with pytest.raises(StorageError, match=r"layer 'b'.*max_elements=100000\b"):
        storage.decode(two, limits=Limits(max_elements=100_000))


def test_module_defaults_can_be_changed(monkeypatch):
    data = storage.encode({"w": np.ones((64, 64), np.float32)}, encoding="raw")
    monkeypatch.setattr(storage.limits, "MAX_ELEMENTS", 100)
    with pytest.raises(StorageError, match="max_elements=100"):
        storage.decode(data)
    assert storage.decode(data, max_elements=4096)["w"].shape == (64, 64)
    with pytest.raises(ValueError, match="non-negative int"):
        Limits(max_bytes=-1)
    with pytest.raises(ValueError, match="non-negative int"):
        storage.decode(data, max_elements=True)


def test_a_crafted_hashed_meta_is_refused_before_any_xla_op(monkeypatch):
    from wsjax.storage.codecs import hashing as hashing_codec

    data = sources()["hashed"]
    f = next(f for f in walk(data) if f["kind"] == "meta" and f["codec"] == "hashing")
    meta = json.loads(json.dumps(f["meta"]))
    meta["leaves"][0][1] = [1 << 15, (1 << 14) + 1]  # 2**29 virtual weights from a few buckets
    text = json.dumps(meta).encode()
    crafted = replace(data, f, varint(len(text)) + text)

    def refuse(*args, **kwargs):
        raise AssertionError("a bucket was gathered or an array placed for a meta over the limits")

    monkeypatch.setattr(hashing_codec, "hashed_take_numpy", refuse)
    monkeypatch.setattr(hashing_codec, "signed_index_numpy", refuse)
    monkeypatch.setattr(hashing_codec.jax, "device_put", refuse)
    with pytest.raises(StorageError, match=r"hashing group.*max_(layer_)?elements"):
        storage.decode(crafted)
    meta["leaves"][0][1] = [1 << 13, 1 << 13]  # 2**26: within max_layer_elements, not 2**25
    text = json.dumps(meta).encode()
    with pytest.raises(StorageError, match=r"hashing group.*max_elements=33554432\b"):
        storage.decode(replace(data, f, varint(len(text)) + text), limits=Limits(max_elements=1 << 25))


def test_a_bomb_under_a_memory_cap_raises_storage_error_not_memory_error(tmp_path):
    """In a subprocess whose address space is capped a few hundred MB above what it uses
    after importing wsjax (the old decoder needed 2.5 GB more for this file)."""
    path = tmp_path / "bomb.wsjax"
    path.write_bytes(bomb())
    script = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        from wsjax import storage
        used = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status")
                    if l.startswith("VmSize:"))
        cap = used + (384 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:
            np.ones(1 << 28, np.float32)  # 1 GiB: the cap must bite
            print("cap ineffective"); sys.exit(3)
        except MemoryError:
            pass
        try:
            storage.load({str(path)!r})
        except storage.StorageError as e:
            print("StorageError", e); sys.exit(0)
        except MemoryError:
            print("MemoryError"); sys.exit(4)
        print("decoded"); sys.exit(5)
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "max_implied" in proc.stdout


def test_many_hashed_leaves_decode_without_compiling_per_leaf(caplog):
    """A file of several small hashed leaves of distinct shapes (crafted or real) decodes on the
    host: no XLA compilation at all (it was one per leaf, 25 s for 200 leaves). Any compile
    fails, so six distinct shapes show it as well as forty did (building the file costs
    about seven compiles a leaf, most of this test's time)."""
    import logging

    import jax

    from wsjax import sharing

    params = {f"L{i}": {"kernel": np.full((i + 101, 3), 0.5, np.float32)} for i in range(6)}
    t = sharing.hashed(0.5)
    state = t.init(jax.random.key(0), params)
    data = storage.encode((t, state))
    expected = t.apply(state)
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        loaded, _ = storage.decode(data, with_state=True)
    compiles = [r for r in caplog.records if "ompil" in r.getMessage()]
    assert not compiles, compiles[:3]
    for k in params:
        np.testing.assert_array_equal(loaded[k]["kernel"], np.asarray(expected[k]["kernel"]))
