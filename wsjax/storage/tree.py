"""Params pytrees <-> ordered ``{'/'-joined path: array}`` dicts.

Nested mappings of arrays (Flax ``params``) are flattened depth first in insertion order;
decoding rebuilds plain nested dicts in the same order. A mapping whose values are all
arrays is stored as *flat*, so its keys may themselves contain '/' (e.g. the output of
``wsjax.sharing.flatten_paths``) and decode back to the same flat dict.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from wsjax.storage.errors import StorageError


def as_array(leaf: Any, path: str) -> np.ndarray:
    """``leaf`` as a NumPy array; TypeError for anything that is not an array."""
    if isinstance(leaf, (np.ndarray, np.generic)) or (
        hasattr(leaf, "__array__") and hasattr(leaf, "shape") and hasattr(leaf, "dtype")
    ):
        return np.asarray(leaf)
    raise TypeError(
        f"leaf {path!r} is a {type(leaf).__name__}, not an array; params must be "
        "(nested) mappings of arrays"
    )


def flatten(params: Any) -> tuple[dict[str, np.ndarray], bool]:
    """``({path: array}, is_flat)`` for a mapping of arrays or of nested mappings."""
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a mapping (nested dicts of arrays), got {type(params).__name__}"
        )
    is_flat = not any(isinstance(v, Mapping) for v in params.values())
    out: dict[str, np.ndarray] = {}

    def visit(node: Mapping, prefix: str) -> None:
        if not node and prefix:
            raise ValueError(f"empty mapping at {prefix!r} cannot be stored")
        for key, value in node.items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be strings, got {key!r} under {prefix or 'the root'!r}")
            if not is_flat and "/" in key:
                raise ValueError(f"key {key!r} contains '/', which separates nested paths")
            path = f"{prefix}/{key}" if prefix else key
            if isinstance(value, Mapping):
                visit(value, path)
            else:
                out[path] = as_array(value, path)

    visit(params, "")
    return out, is_flat


def unflatten(arrays: Mapping[str, np.ndarray], is_flat: bool) -> dict:
    """Inverse of :func:`flatten`; StorageError for inconsistent paths."""
    if is_flat:
        return dict(arrays)
    root: dict = {}
    for path, array in arrays.items():
        *parents, leaf = path.split("/")
        node = root
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise StorageError(f"layer path {path!r} runs through an array")
        if leaf in node:
            raise StorageError(f"layer path {path!r} appears twice or names a group")
        node[leaf] = array
    return root


def structure(like: Any) -> tuple[dict[str, tuple[tuple[int, ...], np.dtype]], bool]:
    """``({path: (shape, dtype)}, is_flat)`` of a params pytree whose leaves are anything
    with ``.shape`` and ``.dtype`` (NumPy or JAX arrays, ``jax.ShapeDtypeStruct``), in the
    paths :func:`flatten` gives; TypeError for anything else, and for keys :func:`flatten`
    refuses (not strings, a '/' inside a nested key, an empty sub-mapping)."""
    if not isinstance(like, Mapping):
        raise TypeError(f"like must be a mapping (nested dicts of arrays), got {type(like).__name__}")
    is_flat = not any(isinstance(v, Mapping) for v in like.values())
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}

    def visit(node: Mapping, prefix: str) -> None:
        # the rules of flatten(): a like= that encode() would refuse cannot match a file
        if not node and prefix:
            raise TypeError(f"like: empty mapping at {prefix!r} (no file holds one)")
        for key, value in node.items():
            if not isinstance(key, str):
                raise TypeError(f"like: keys must be strings, got {key!r} under {prefix or 'the root'!r}")
            if not is_flat and "/" in key:
                raise TypeError(f"like: key {key!r} contains '/', which separates nested paths")
            path = f"{prefix}/{key}" if prefix else key
            if isinstance(value, Mapping):
                visit(value, path)
            elif hasattr(value, "shape") and hasattr(value, "dtype"):
                out[path] = (tuple(int(d) for d in value.shape), np.dtype(value.dtype))
            else:
                raise TypeError(f"like: leaf {path!r} is a {type(value).__name__}, not an array "
                                "or a jax.ShapeDtypeStruct")

    visit(like, "")
    return out, is_flat


def check_structure(arrays: Mapping[str, np.ndarray], is_flat: bool, like: Any) -> None:
    """StorageError naming the first difference between a decoded file (``arrays``,
    ``is_flat``) and the model ``like`` it was expected to hold: a missing or an extra
    layer path, a shape, a dtype, or flat against nested."""
    expected, like_flat = structure(like)
    missing = [p for p in expected if p not in arrays]
    extra = [p for p in arrays if p not in expected]
    if missing or extra:
        parts = ([f"missing {missing[:3]}" + (" ..." if len(missing) > 3 else "")] if missing else []) + (
            [f"not expected {extra[:3]}" + (" ..." if len(extra) > 3 else "")] if extra else [])
        raise StorageError(f"the file does not hold the expected model: layer paths {'; '.join(parts)}")
    for path, (shape, dtype) in expected.items():
        a = arrays[path]
        if a.shape != shape:
            raise StorageError(f"layer {path!r}: shape {a.shape} in the file, {shape} expected")
        if a.dtype != dtype:
            raise StorageError(f"layer {path!r}: dtype {a.dtype} in the file, {dtype} expected")
    if is_flat != like_flat and len(expected) > 0 and any("/" in p for p in expected):
        raise StorageError(
            f"the file stores a {'flat' if is_flat else 'nested'} mapping, the expected model is "
            f"{'flat' if like_flat else 'nested'}")
