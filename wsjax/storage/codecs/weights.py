"""The 'weights' codec: a flat ``{path: array}`` stored as it is, one layer record per leaf.

Every leaf goes through the layer encodings of :mod:`wsjax.storage.layers` (raw, or sparse /
dense codebook when pruning and quantization left it few distinct values), exactly as in a
plain (version 1) file. This is how the leaves outside a :func:`~wsjax.sharing.select` are
stored; it has no meta and no state.
"""

from __future__ import annotations

from wsjax.storage.codecs.base import Group, Row, as_numpy, check_keys

name = "weights"


def encode(arrays, options) -> Group:
    """A group of the arrays of a flat ``{path: array}`` mapping."""
    del options
    arrays = as_numpy(arrays)
    return Group(name, {}, arrays, tuple(arrays))


def decode(group: Group):
    """``(the arrays, None)``: the params are the records themselves."""
    check_keys(group.meta, "weights group", ())
    return dict(group.arrays), None


def rows(group: Group) -> list[Row]:
    """One row per record, as in a plain file."""
    return [Row(path, (path,), (path,)) for path in group.arrays]
