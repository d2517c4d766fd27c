"""The 'predicted' codec: parameter prediction stored as the free rows ``V`` and a dictionary spec.

Meta: ``{"leaves": [entry, ...]}``, one JSON object per predicted leaf::

    {"path": p, "shape": [...], "kind": "kernel",
     "image_shape": [H, W] | [H, W, C], "length_scale": l, "ridge": r}
    {"path": p, "shape": [...], "kind": "matrix", "alpha": true | false}

Records: ``<path>/v`` (``k x cols``, the leaf's dtype) always; ``<path>/alpha`` (the
sorted seen rows, as the smallest of uint8 / uint16 / uint32 that holds ``n - 1``) for a
kernel spec and for a matrix spec with ``alpha``; ``<path>/u`` (``n x k``) for a matrix
spec only. A kernel spec's dictionary is *not* stored: decoding recomputes it from the spec
(:func:`~wsjax.sharing.predicted.dictionary_matrix`, float64 NumPy, deterministic), so such
a leaf costs ``V``, ``alpha`` and its meta. Decoding forms ``U @ V`` with the transform's
own apply, so the leaves equal ``transform.apply(state)`` bit for bit. One size-report row
per leaf holds its records.

References: Denil et al, `Predicting Parameters in Deep Learning
<https://arxiv.org/abs/1306.0543>`_, 2013.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from wsjax.sharing.core import SharedParams, Static, per_leaf
from wsjax.sharing.predicted import (PredictedFrozen, check_alpha, dictionary_matrix,
                                     kernel_spec, predict, predicted_frozen)
from wsjax.storage.codecs.base import (Group, Row, array, as_list, as_numpy, as_shape, as_str,
                                       check_elements, check_keys, expect_records, fail,
                                       unique_records)

name = "predicted"
_WHERE = "predicted group"
_KERNEL_KEYS = ("path", "shape", "kind", "image_shape", "length_scale", "ridge")
_MATRIX_KEYS = ("path", "shape", "kind", "alpha")


def alpha_dtype(n: int) -> np.dtype:
    """The record dtype of the seen rows of a leaf of ``n`` rows."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"a leaf of {n} rows is too large for the predicted codec")


def _names(path: str) -> dict:
    return {"v": f"{path}/v", "alpha": f"{path}/alpha", "u": f"{path}/u"}


def _leaf_records(entry: dict) -> list[str]:
    names = _names(entry["path"])
    if entry["kind"] == "kernel":
        return [names["v"], names["alpha"]]
    return [names["v"], names["u"]] + ([names["alpha"]] if entry["alpha"] else [])


def encode(state: SharedParams, options) -> Group:
    del options
    if set(state.theta) != set(state.frozen):
        raise ValueError(f"predicted state: theta leaves {sorted(state.theta)}, frozen "
                         f"leaves {sorted(state.frozen)}")
    entries, pairs = [], []
    for path, theta in state.theta.items():
        frozen = state.frozen[path]
        if not isinstance(frozen, PredictedFrozen):
            raise ValueError(f"predicted state: {path!r} has no PredictedFrozen")
        shape = tuple(int(d) for d in frozen.shape.value)
        v, u, alpha = theta["v"], frozen.u, frozen.alpha.value
        n, cols = math.prod(shape[:-1]), shape[-1]
        k = u.shape[1]
        if u.shape != (n, k) or v.shape != (k, cols) or v.dtype != u.dtype:
            raise ValueError(f"predicted state: U {u.shape} {u.dtype} @ V {v.shape} {v.dtype} "
                             f"does not make {path!r} of shape {shape}")
        if alpha is not None and len(alpha) != k:
            raise ValueError(f"predicted state: {path!r} has {len(alpha)} alpha rows for k={k}")
        names = _names(path)
        entry = {"path": path, "shape": list(shape)}
        pairs.append((names["v"], v))
        kernel = frozen.kernel.value
        if kernel is not None:
            if kernel.alpha != alpha:
                raise ValueError(f"predicted state: {path!r}: the kernel spec's alpha is not "
                                 "the leaf's")
            entry.update(kind="kernel", image_shape=list(kernel.image_shape),
                         length_scale=float(kernel.length_scale), ridge=float(kernel.ridge))
        else:
            entry.update(kind="matrix", alpha=alpha is not None)
            pairs.append((names["u"], u))
        if alpha is not None:
            pairs.append((names["alpha"], np.asarray(alpha, alpha_dtype(n))))
        entries.append(entry)
    arrays = unique_records(pairs, "predicted state")
    return Group(name, {"leaves": entries}, arrays, tuple(state.theta))


def _number(value, field: str, path: str, positive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        sign = "positive" if positive else "non-negative"
        fail(_WHERE, f"{path!r}: {field} must be a finite {sign} number, got {value!r}")
    return float(value)


def _alpha(group: Group, record: str, n: int, path: str) -> tuple:
    a = array(group, record, _WHERE, ndim=1, floating=False)
    if a.dtype != alpha_dtype(n):
        fail(_WHERE, f"{path!r}: alpha has dtype {a.dtype}, expected {alpha_dtype(n)} for "
             f"{n} rows")
    try:
        return check_alpha(a, n)
    except ValueError as e:
        fail(_WHERE, f"{path!r}: {e}")


def _entry(group: Group, entry) -> tuple[str, dict, PredictedFrozen]:
    if not isinstance(entry, dict):
        fail(_WHERE, f"a leaf entry must be a JSON object, got {entry!r}"[:300])
    kind = entry.get("kind")
    if kind not in ("kernel", "matrix"):
        fail(_WHERE, f"a leaf's kind must be 'kernel' or 'matrix', got {kind!r}")
    check_keys(entry, _WHERE, _KERNEL_KEYS if kind == "kernel" else _MATRIX_KEYS)
    path = as_str(entry["path"], _WHERE, "leaf path")
    shape = as_shape(entry["shape"], _WHERE, f"shape of {path!r}")
    if len(shape) < 2 or 0 in shape:
        fail(_WHERE, f"{path!r}: a predicted leaf needs 2 or more non-empty axes, got {shape}")
    n, cols = math.prod(shape[:-1]), shape[-1]
    names = _names(path)
    if kind == "kernel":
        image = as_shape(entry["image_shape"], _WHERE, f"image shape of {path!r}")
        if len(image) not in (2, 3) or math.prod(image) != n:
            fail(_WHERE, f"{path!r}: image shape {image} does not hold the leaf's {n} inputs")
        length_scale = _number(entry["length_scale"], "length_scale", path, positive=True)
        ridge = _number(entry["ridge"], "ridge", path, positive=False)
        alpha = _alpha(group, names["alpha"], n, path)
        k = len(alpha)
        v = array(group, names["v"], _WHERE, shape=(k, cols))
        check_elements(4 * n * k + 2 * k * k, _WHERE, 8)  # the float64 kernels and the solve
        check_elements(n * k + n * cols, _WHERE, v.dtype.itemsize)  # U and the leaf
        spec = kernel_spec(image, length_scale, ridge, alpha)
        try:
            dictionary_matrix(spec)
        except ValueError as e:
            fail(_WHERE, f"{path!r}: {e}")
        frozen = predicted_frozen(spec, shape, v.dtype)
    else:
        if not isinstance(entry["alpha"], bool):
            fail(_WHERE, f"{path!r}: alpha must be true or false, got {entry['alpha']!r}")
        u = array(group, names["u"], _WHERE, ndim=2)
        k = u.shape[1]
        if u.shape[0] != n or not 1 <= k <= n:
            fail(_WHERE, f"{path!r}: U has shape {u.shape}, expected ({n}, k) with "
                 f"1 <= k <= {n}")
        v = array(group, names["v"], _WHERE, shape=(k, cols))
        if v.dtype != u.dtype:
            fail(_WHERE, f"{path!r}: U has dtype {u.dtype}, V {v.dtype}")
        if not np.all(np.isfinite(u)):
            fail(_WHERE, f"{path!r}: U is not finite")
        alpha = _alpha(group, names["alpha"], n, path) if entry["alpha"] else None
        if alpha is not None and len(alpha) != k:
            fail(_WHERE, f"{path!r}: {len(alpha)} alpha rows for a dictionary of {k} columns")
        check_elements(n * cols, _WHERE, v.dtype.itemsize)
        frozen = PredictedFrozen(jnp.asarray(u), Static(shape), Static(None), Static(alpha))
    return path, {"v": jnp.asarray(v)}, frozen


def decode(group: Group):
    meta = check_keys(group.meta, _WHERE, ("leaves",))
    entries = as_list(meta["leaves"], _WHERE, "leaves")
    if not entries:
        fail(_WHERE, "no leaves")
    theta, frozen, records = {}, {}, []
    for entry in entries:
        path, th, fr = _entry(group, entry)
        if path in theta:
            fail(_WHERE, f"leaf {path!r} listed twice")
        theta[path], frozen[path] = th, fr
        records += _leaf_records(entry)
    expect_records(group, records, _WHERE)
    state = SharedParams(theta, frozen)
    params = per_leaf(None, predict).apply(state)  # the transform's own apply
    return as_numpy(params), state


def rows(group: Group) -> list[Row]:
    return [Row(e["path"], tuple(_leaf_records(e)), (e["path"],)) for e in group.meta["leaves"]]
