"""The 'low_rank' codec: each factored leaf stored as its factors ``U`` and ``V``.

Meta: ``{"leaves": [[path, shape], ...]}``. Records ``<path>/u`` (``rows x r``) and
``<path>/v`` (``r x cols``), where ``rows x cols`` is the leaf viewed as a matrix (``cols``
its last axis). Decoding forms ``U @ V`` with the transform's own apply, so the leaves equal
``transform.apply(state)`` bit for bit. One size-report row per leaf holds both factors.

References: Denil et al, `Predicting Parameters in Deep Learning
<https://arxiv.org/abs/1306.0543>`_, 2013.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from wsjax.sharing.lowrank import low_rank_leaves
from wsjax.sharing.core import SharedParams, Static
from wsjax.storage.codecs.base import (Group, Row, array, as_list, as_numpy, as_shape, as_str,
                                       check_elements, check_keys, expect_records, fail,
                                       itemsize_of, unique_records)

name = "low_rank"
_WHERE = "low_rank group"


def _records(path: str) -> tuple[str, str]:
    return f"{path}/u", f"{path}/v"


def encode(state: SharedParams, options) -> Group:
    del options
    leaves, pairs = [], []
    for path, factors in state.theta.items():
        shape = tuple(int(d) for d in state.frozen[path].value)
        u, v = factors["u"], factors["v"]
        if u.ndim != 2 or v.ndim != 2 or u.shape[1] != v.shape[0] or (
            u.shape[0] * v.shape[1] != math.prod(shape)
        ):
            raise ValueError(f"low_rank state: factors {u.shape} @ {v.shape} do not make "
                             f"{path!r} of shape {shape}")
        leaves.append([path, list(shape)])
        pairs += zip(_records(path), (u, v))
    arrays = unique_records(pairs, "low_rank state")
    return Group(name, {"leaves": leaves}, arrays, tuple(state.theta))


def decode(group: Group):
    meta = check_keys(group.meta, _WHERE, ("leaves",))
    theta, frozen = {}, {}
    for entry in as_list(meta["leaves"], _WHERE, "leaves"):
        path, shape = as_list(entry, _WHERE, "a leaf entry", 2)
        path = as_str(path, _WHERE, "leaf path")
        shape = as_shape(shape, _WHERE, f"shape of {path!r}")
        if path in theta:
            fail(_WHERE, f"leaf {path!r} listed twice")
        if len(shape) < 2:
            fail(_WHERE, f"{path!r}: low rank needs a leaf of 2 or more axes, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        u_name, v_name = _records(path)
        u = array(group, u_name, _WHERE, ndim=2)
        rank = u.shape[1]
        if u.shape[0] != rows or not 1 <= rank <= min(rows, cols):
            fail(_WHERE, f"{path!r}: U has shape {u.shape}, expected ({rows}, r) with "
                 f"1 <= r <= {min(rows, cols)}")
        v = array(group, v_name, _WHERE, shape=(rank, cols))
        theta[path] = {"u": jnp.asarray(u), "v": jnp.asarray(v)}
        frozen[path] = Static(shape)
    expect_records(group, [r for p in theta for r in _records(p)], _WHERE)
    check_elements(sum(math.prod(f.value) for f in frozen.values()), _WHERE,
                   itemsize_of(group))
    state = SharedParams(theta, frozen)
    params = low_rank_leaves(1).apply(state)  # the rank is read off the factors
    return as_numpy(params), state


def rows(group: Group) -> list[Row]:
    return [Row(path, _records(path), (path,)) for path, _ in group.meta["leaves"]]
