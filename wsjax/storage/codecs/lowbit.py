"""The 'lowbit' codec: binary, ternary and k-bit leaves as packed codes plus their scales.

Meta: ``{"leaves": [entry, ...]}``, one JSON object per leaf: ``path``, ``shape``, ``dtype``
(the leaf's float dtype), ``kind`` (``binary`` / ``ternary`` / ``uniform`` / ``lsq``),
``scale`` (``none`` / ``layer`` / ``channel``), plus ``bits`` (2..8) for the k-bit kinds and
``threshold`` for ternary. Records per leaf:

* ``<path>/codes``: the codes packed into a 1-D uint8 array, at the exact width:
  binary 1 bit per weight (``+1 -> 1``, ``-1 -> 0``); k-bit ``q + 2**(k-1)`` in ``k`` bits
  (both :func:`wsjax.storage.bits.pack_uint`, most significant bit first, zero padded);
  ternary in base 3, five trits per byte, ``byte = sum_i (T_i + 1) 3**(4-i)`` (< 243),
  the last byte padded with zero trits: 8/5 = 1.6 bits per weight (the bound is
  log2 3 = 1.585; two bits per weight would be 2);
* ``<path>/scale``: the scale ``W`` multiplies, float32 (float64 for float64 leaves), of
  shape ``()`` per layer or ``(channels,)`` per channel; none for scale ``none``. For k-bit
  leaves it is the step ``s``.

The latent ``theta`` is not stored. Decoding gives a state whose ``theta`` reproduces ``W``
exactly: ``+-1`` for binary, ``T`` in ``{-1, 0, 1}`` for ternary, ``W = s q`` itself for
k-bit (with the step as ``theta['step']`` for lsq). Scales that the transform computes
from ``theta`` (XNOR-Net's ``mean|theta|``, TWN's alpha) come back as given scales in
:class:`~wsjax.sharing.lowbit.LowBitFrozen`, so a decoded state holds them fixed if it is
trained further. A stochastic binary leaf is stored, and decodes, as its deterministic
sign. The params are the transform's own apply of the decoded state, so they equal
``transform.apply(state)`` bit for bit; the decoder also checks that the decoded state
gives back the stored codes, and refuses non-finite, negative (zero for steps) scales.

Size report: one row per leaf (its codes and scale). :func:`leaf_sizes` turns a report's
rows into bits per weight and the ratio against float32.

References: Courbariaux, Bengio & David, `BinaryConnect <https://arxiv.org/abs/1511.00363>`_,
2015; Li, Zhang & Liu, `Ternary Weight Networks <https://arxiv.org/abs/1605.04711>`_, 2016.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import ml_dtypes
import numpy as np

from wsjax.sharing.core import SharedParams, Static
from wsjax.sharing.lowbit.quantizers import (KINDS, MAX_BITS, MIN_BITS, SCALES, LowBit,
                                             codes_and_scale, compute_dtype,
                                             make_spec, theta_from_codes)
from wsjax.sharing.lowbit.transform import LowBitFrozen, leaf_weights
from wsjax.storage import bits as bitpack
from wsjax.storage.codecs.base import (Group, Row, array, as_int, as_list, as_shape, as_str,
                                       check_elements, check_keys, expect_records, fail,
                                       unique_records)
from wsjax.storage.errors import StorageError

name = "lowbit"
_WHERE = "lowbit group"
_DTYPES = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16),
           "float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
_TRITS = 5  # trits per byte: 3**5 = 243 <= 256
_POW3 = 3 ** np.arange(_TRITS - 1, -1, -1)


def _records(path: str) -> tuple[str, str]:
    return f"{path}/codes", f"{path}/scale"


# ----------------------------------------------------------------------------- packing


def code_bytes(spec: LowBit, n: int) -> int:
    """Bytes of the packed codes of ``n`` weights."""
    if spec.kind == "ternary":
        return -(-n // _TRITS)
    return bitpack.packed_size(n, spec.bits)


def pack_trits(symbols) -> bytes:
    """Base-3 packing of symbols in ``{0, 1, 2}``, five per byte, first one most significant."""
    t = np.asarray(symbols, dtype=np.int64).reshape(-1)
    t = np.concatenate([t, np.zeros(-t.size % _TRITS, np.int64)]).reshape(-1, _TRITS)
    return (t @ _POW3).astype(np.uint8).tobytes()


def unpack_trits(data: bytes, n: int) -> np.ndarray:
    """Inverse of :func:`pack_trits`; StorageError for a wrong length, a byte over 242 or a
    non-zero padding trit."""
    if len(data) != -(-n // _TRITS):
        raise StorageError(f"ternary codes: {len(data)} byte(s), expected {-(-n // _TRITS)} "
                           f"for {n} weight(s)")
    b = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    if b.size and b.max() >= 3**_TRITS:
        raise StorageError(f"ternary codes: byte {int(b.max())} is not five trits (max 242)")
    digits = ((b[:, None] // _POW3) % 3).reshape(-1)
    if digits[n:].any():
        raise StorageError("ternary codes: non-zero padding trits")
    return digits[:n]


def _pack(spec: LowBit, symbols: np.ndarray) -> np.ndarray:
    data = pack_trits(symbols) if spec.kind == "ternary" else bitpack.pack_uint(symbols, spec.bits)
    return np.frombuffer(data, dtype=np.uint8).copy()


def _unpack(spec: LowBit, data: bytes, n: int) -> np.ndarray:
    if spec.kind == "ternary":
        return unpack_trits(data, n)
    return bitpack.unpack_uint(data, n, spec.bits)


# ----------------------------------------------------------------------------- encode


def _entry(path: str, spec: LowBit, shape: tuple, dtype) -> dict:
    entry = {"path": path, "shape": [int(d) for d in shape], "dtype": str(np.dtype(dtype)),
             "kind": spec.kind, "scale": spec.scale}
    if spec.kind in ("uniform", "lsq"):
        entry["bits"] = spec.bits
    if spec.kind == "ternary":
        entry["threshold"] = spec.threshold
    return entry


def _scale_shape(spec: LowBit, shape: tuple) -> tuple:
    return () if spec.scale == "layer" else (shape[-1],)


def encode(state: SharedParams, options) -> Group:
    del options
    entries, pairs = [], []
    for path, theta in state.theta.items():
        frozen = state.frozen.get(path) if isinstance(state.frozen, dict) else None
        if not isinstance(frozen, LowBitFrozen):
            raise ValueError(f"lowbit state: {path!r} has no LowBitFrozen, got {frozen!r}")
        spec = frozen.spec.value
        latent = theta["latent"] if spec.kind == "lsq" else theta
        shape, dtype = tuple(latent.shape), np.dtype(latent.dtype)
        if str(dtype) not in _DTYPES:
            raise ValueError(f"lowbit state: {path!r} has dtype {dtype}; the codec stores "
                             f"{sorted(_DTYPES)}")
        symbols, scale = codes_and_scale(spec, theta, frozen.scale)
        entries.append(_entry(path, spec, shape, dtype))
        codes_name, scale_name = _records(path)
        pairs.append((codes_name, _pack(spec, np.asarray(symbols))))
        if (scale is None) != (spec.scale == "none"):
            raise ValueError(f"lowbit state: {path!r} has scale {spec.scale!r} but "
                             f"{'no' if scale is None else 'a given'} scale array")
        if scale is not None:
            scale = np.asarray(scale)
            want = _scale_shape(spec, shape)
            if scale.shape != want or scale.dtype != compute_dtype(dtype):
                raise ValueError(f"lowbit state: the scale of {path!r} has shape {scale.shape} "
                                 f"and dtype {scale.dtype}, expected {want} and "
                                 f"{np.dtype(compute_dtype(dtype))}")
            _check_scale(spec, scale, path, ValueError)
            pairs.append((scale_name, scale))
    arrays = unique_records(pairs, "lowbit state")
    return Group(name, {"leaves": entries}, arrays, tuple(state.theta))


def _check_scale(spec: LowBit, scale: np.ndarray, path: str, error) -> None:
    s = scale.astype(np.float64)
    positive = spec.kind in ("uniform", "lsq")
    if not np.all(np.isfinite(s)) or (np.any(s <= 0) if positive else np.any(s < 0)):
        bad = "positive" if positive else "non-negative"
        raise error(f"{_WHERE}: {path!r}: scales must be finite and {bad}, got "
                    f"{s.reshape(-1)[:4].tolist()}")


# ----------------------------------------------------------------------------- decode


def _parse_entry(entry, seen) -> tuple[str, LowBit, tuple, np.dtype]:
    if not isinstance(entry, dict):
        fail(_WHERE, f"a leaf entry must be a JSON object, got {entry!r}"[:300])
    kind = entry.get("kind")
    if kind not in KINDS:
        fail(_WHERE, f"kind must be one of {KINDS}, got {kind!r}")
    extra = {"ternary": ("threshold",), "uniform": ("bits",), "lsq": ("bits",)}.get(kind, ())
    check_keys(entry, _WHERE, ("path", "shape", "dtype", "kind", "scale") + extra)
    path = as_str(entry["path"], _WHERE, "leaf path")
    if path in seen:
        fail(_WHERE, f"leaf {path!r} listed twice")
    shape = as_shape(entry["shape"], _WHERE, f"shape of {path!r}")
    dtype = _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        fail(_WHERE, f"{path!r}: dtype must be one of {sorted(_DTYPES)}, got {entry['dtype']!r}")
    scale = entry["scale"]
    if scale not in SCALES:
        fail(_WHERE, f"{path!r}: scale must be one of {SCALES}, got {scale!r}")
    bits = as_int(entry["bits"], _WHERE, f"bits of {path!r}", MIN_BITS, MAX_BITS + 1) \
        if "bits" in entry else None
    threshold = entry.get("threshold", 0.7)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0 <= threshold < 1:
        fail(_WHERE, f"{path!r}: threshold must be a number in [0, 1), got {threshold!r}")
    if scale == "channel" and len(shape) < 2:
        fail(_WHERE, f"{path!r}: scale 'channel' needs 2 or more axes, got shape {shape}")
    try:
        spec = make_spec(kind, scale=scale, bits=bits, threshold=float(threshold))
    except (ValueError, TypeError) as e:
        fail(_WHERE, f"{path!r}: {e}")
    return path, spec, shape, dtype


def _leaf(group: Group, path: str, spec: LowBit, shape: tuple, dtype: np.dtype):
    """``(W, theta, frozen)`` of one stored leaf."""
    codes_name, scale_name = _records(path)
    n = math.prod(shape)
    codes = array(group, codes_name, _WHERE, shape=(code_bytes(spec, n),), floating=False)
    if codes.dtype != np.uint8:
        fail(_WHERE, f"record {codes_name!r} has dtype {codes.dtype}, expected uint8")
    try:
        symbols = _unpack(spec, codes.tobytes(), n).reshape(shape)
    except StorageError as e:
        fail(_WHERE, f"{codes_name!r}: {e}")
    scale = None
    if spec.scale != "none":
        scale = array(group, scale_name, _WHERE, shape=_scale_shape(spec, shape))
        if scale.dtype != compute_dtype(dtype):
            fail(_WHERE, f"record {scale_name!r} has dtype {scale.dtype}, expected "
                 f"{np.dtype(compute_dtype(dtype))}")
        _check_scale(spec, scale, path, StorageError)
        scale = jnp.asarray(scale)
    theta = theta_from_codes(spec, symbols, scale, dtype)
    frozen = LowBitFrozen(Static(spec), None if spec.kind == "lsq" else scale, None)
    again, _ = codes_and_scale(spec, theta, frozen.scale)
    if not np.array_equal(np.asarray(again), symbols):
        fail(_WHERE, f"{path!r}: the scale does not reproduce the stored codes")
    return np.asarray(leaf_weights(theta, frozen)), theta, frozen


def decode(group: Group):
    meta = check_keys(group.meta, _WHERE, ("leaves",))
    leaves = {}
    for entry in as_list(meta["leaves"], _WHERE, "leaves"):
        path, spec, shape, dtype = _parse_entry(entry, leaves)
        leaves[path] = (spec, shape, dtype)
    if not leaves:
        fail(_WHERE, "no leaves")
    expect_records(group, [r for p, (s, _, _) in leaves.items()
                           for r in _records(p)[: 1 if s.scale == "none" else 2]], _WHERE)
    # what is built: each leaf's codes as ints, its theta and W
    check_elements(sum(3 * math.prod(shape) for _, shape, _ in leaves.values()), _WHERE, 4)
    params, theta, frozen = {}, {}, {}
    for path, (spec, shape, dtype) in leaves.items():
        params[path], theta[path], frozen[path] = _leaf(group, path, spec, shape, dtype)
    return params, SharedParams(theta, frozen)


def rows(group: Group) -> list[Row]:
    out = []
    for entry in group.meta["leaves"]:
        codes_name, scale_name = _records(entry["path"])
        records = (codes_name,) if entry["scale"] == "none" else (codes_name, scale_name)
        out.append(Row(entry["path"], records, (entry["path"],)))
    return out


# ----------------------------------------------------------------------------- sizes


class LeafSize(NamedTuple):
    """What one stored low-bit leaf takes."""

    n_weights: int
    stored_bytes: int  # its records (codes, scale, their headers; the group meta on the first)
    bits_per_weight: float  # 8 * stored_bytes / n_weights
    float32_ratio: float  # 4 * n_weights / stored_bytes: the leaf as float32 against stored


def leaf_sizes(report) -> dict[str, LeafSize]:
    """``{path: LeafSize}`` of the 'lowbit' rows of a :class:`~wsjax.storage.SizeReport`."""
    out = {}
    for row in report.layers:
        if row.codec == name:
            out[row.name] = LeafSize(row.n_weights, row.stored_bytes,
                                     8 * row.stored_bytes / max(row.n_weights, 1),
                                     4 * row.n_weights / row.stored_bytes)
    return out
