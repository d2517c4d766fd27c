"""What a codec hands the file format, and the checks a codec's decoder runs on its meta.

A codec stores the free state of one kind of transform as a :class:`Group`: a small JSON
``meta`` (shapes, seeds, layer names) and named arrays that the file format writes as
ordinary layer records (so they are raw, sparse or codebook encoded and reported like any
other layer). A group's meta comes from the file, so a decoder trusts none of it: the
helpers here check each field's type and range and raise :class:`StorageError`.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np

from wsjax.storage import dtypes, limits
from wsjax.storage.errors import StorageError

MAX_NDIM = 255  # what a layer record can hold
UINT32 = 1 << 32


class Group(NamedTuple):
    """One codec's share of a file.

    ``arrays`` (``{record name: array}``, in storage order) become layer records; record
    names are unique within the group, and the ``index_bits`` / ``encoding`` options of
    :func:`wsjax.storage.encode` match them by regex like parameter paths. ``paths`` are
    the params paths the group gives back when decoded (set by ``encode``; a decoder
    reads the paths off its meta and sees ``()`` here).
    """

    codec: str
    meta: dict
    arrays: dict
    paths: tuple = ()


class Row(NamedTuple):
    """One size-report row: the ``records`` of a group that hold the params ``leaves``."""

    name: str
    records: tuple
    leaves: tuple


def fail(where: str, message: str):
    raise StorageError(f"{where}: {message}")


def check_keys(meta: Any, where: str, required: tuple, optional: tuple = ()) -> dict:
    """``meta`` as a dict with every ``required`` key and nothing beyond ``optional``."""
    if not isinstance(meta, dict):
        fail(where, f"meta must be a JSON object, got {type(meta).__name__}")
    missing = [k for k in required if k not in meta]
    unknown = [k for k in meta if k not in required and k not in optional]
    if missing or unknown:
        fail(where, f"meta fields missing {missing} / unknown {unknown}")
    return meta


def as_int(value: Any, where: str, field: str, lo: int = 0, hi: int = UINT32) -> int:
    """An int in ``[lo, hi)`` (JSON ``true`` is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value < hi:
        fail(where, f"{field} must be an int in [{lo}, {hi}), got {value!r}")
    return value


def as_str(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str):
        fail(where, f"{field} must be a string, got {value!r}")
    return value


def as_list(value: Any, where: str, field: str, length: int | None = None) -> list:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        want = "a list" if length is None else f"a list of {length}"
        fail(where, f"{field} must be {want}, got {value!r}"[:300])
    return value


def as_names(value: Any, where: str, field: str) -> list[str]:
    """A list of distinct strings."""
    names = [as_str(v, where, field) for v in as_list(value, where, field)]
    if len(set(names)) != len(names):
        fail(where, f"{field} repeats a name")
    return names


def as_shape(value: Any, where: str, field: str = "shape") -> tuple:
    """A shape: at most 255 non-negative dimensions, none and their product not over the
    per-layer limit of the decode in progress (:mod:`wsjax.storage.limits`)."""
    dims = as_list(value, where, field)
    if len(dims) > MAX_NDIM:
        fail(where, f"{field} has {len(dims)} dimensions (max {MAX_NDIM})")
    shape = tuple(as_int(d, where, field, 0, 1 << 64) for d in dims)
    limits.current().check_shape(where, shape, field)
    return shape


def check_elements(n: int, where: str, itemsize: int = 4) -> None:
    """Charge ``n`` elements of ``itemsize`` bytes that a codec is about to build against
    the limits of the decode in progress; call it before building them (before any XLA op
    runs), so that a crafted meta is refused before anything of its size is allocated."""
    limits.current().take(where, n, itemsize, "elements to decode")


def itemsize_of(group: Group) -> int:
    """The largest item size among a group's records (what the leaves it builds take)."""
    return max((np.dtype(x.dtype).itemsize for x in group.arrays.values()), default=4)


def expect_records(group: Group, names, where: str) -> None:
    """The group's records are exactly ``names`` (in any order)."""
    names = list(names)
    if len(set(names)) != len(names):
        fail(where, "meta names a record twice")
    if set(names) != set(group.arrays):
        missing = sorted(set(names) - set(group.arrays))[:5]
        extra = sorted(set(group.arrays) - set(names))[:5]
        fail(where, f"records do not match the meta (missing {missing}, unexpected {extra})")


def array(group: Group, name: str, where: str, shape: tuple | None = None,
          ndim: int | None = None, floating: bool = True) -> np.ndarray:
    """Record ``name`` of the group, checked for shape, rank and a float dtype."""
    x = group.arrays.get(name)
    if x is None:
        fail(where, f"no record {name!r}")
    if floating and not dtypes.is_float(x.dtype):
        fail(where, f"record {name!r} has dtype {x.dtype}, expected a float dtype")
    if ndim is not None and x.ndim != ndim:
        fail(where, f"record {name!r} has shape {x.shape}, expected {ndim} axes")
    if shape is not None and tuple(x.shape) != tuple(shape):
        fail(where, f"record {name!r} has shape {x.shape}, expected {tuple(shape)}")
    return x


def unique_records(pairs, what: str) -> dict:
    """``{name: array}`` from ``(name, array)`` pairs; ValueError if a name repeats."""
    out: dict = {}
    for name, x in pairs:
        if name in out:
            raise ValueError(f"{what}: two arrays would be stored as record {name!r}")
        out[name] = np.asarray(x)
    return out


def as_numpy(tree: Mapping) -> dict:
    """``{path: np.ndarray}`` from a flat mapping of (JAX or NumPy) arrays."""
    return {p: np.asarray(x) for p, x in tree.items()}
