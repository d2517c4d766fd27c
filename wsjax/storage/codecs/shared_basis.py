"""The 'shared_basis' codec: one basis ``B`` per group and a coefficient block ``C_l`` per leaf.

Meta: ``{"groups": [[[path, ...], shape], ...]}``, one entry per basis: the group's leaf
paths and their common shape. Records: ``basis/<g>`` (``n x r``, ``g`` the group's index) and
``<path>/coef`` (``r x c``), where ``n x c`` is a leaf viewed as a matrix (``c`` its last
axis); all records of a group share one float dtype. Decoding forms ``B @ C_l`` with the
transform's own apply, so the leaves equal ``transform.apply(state)`` bit for bit. The size
report has one row per group, holding its basis and every coefficient block against the
dense size of all the group's leaves.

References: Wang et al, `Basis Sharing: Cross-Layer Parameter Sharing for Large Language
Model Compression <https://arxiv.org/abs/2410.03765>`_, 2024.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from wsjax.sharing.core import SharedParams, Static
from wsjax.sharing.shared_basis import Layout, shared_basis_leaves
from wsjax.storage.codecs.base import (Group, Row, array, as_list, as_names, as_numpy, as_shape,
                                       check_elements, check_keys, expect_records, fail,
                                       itemsize_of, unique_records)

name = "shared_basis"
_WHERE = "shared_basis group"


def _basis(g: int) -> str:
    return f"basis/{g}"


def _coef(path: str) -> str:
    return f"{path}/coef"


def _check_state(state: SharedParams) -> Layout:
    layout = getattr(state.frozen, "value", None)
    theta = state.theta
    if not isinstance(layout, Layout) or not isinstance(theta, dict) or set(theta) != {
            "bases", "coefs"} or len(theta["bases"]) != len(layout.groups):
        raise ValueError("shared_basis state: expected theta {'bases', 'coefs'} with one basis "
                         "per group of a Static(Layout) frozen")
    paths = [p for group in layout.groups for p in group]
    if set(theta["coefs"]) != set(paths) or len(paths) != len(set(paths)):
        raise ValueError(f"shared_basis state: coefficients for {sorted(theta['coefs'])}, "
                         f"groups name {paths}")
    for g, (basis, group, shape) in enumerate(zip(theta["bases"], layout.groups,
                                                 layout.shapes)):
        n, c = math.prod(shape[:-1]), shape[-1]
        if basis.ndim != 2 or basis.shape[0] != n:
            raise ValueError(f"shared_basis state: basis {g} has shape {basis.shape}, "
                             f"expected ({n}, r) for leaves of shape {shape}")
        for path in group:
            if tuple(theta["coefs"][path].shape) != (basis.shape[1], c):
                raise ValueError(f"shared_basis state: {path!r} has coefficients of shape "
                                 f"{theta['coefs'][path].shape}, expected "
                                 f"{(basis.shape[1], c)}")
    return layout


def encode(state: SharedParams, options) -> Group:
    del options
    layout = _check_state(state)
    meta = {"groups": [[list(paths), list(shape)]
                       for paths, shape in zip(layout.groups, layout.shapes)]}
    pairs = []
    for g, (basis, paths) in enumerate(zip(state.theta["bases"], layout.groups)):
        pairs.append((_basis(g), basis))
        pairs += [(_coef(p), state.theta["coefs"][p]) for p in paths]
    arrays = unique_records(pairs, "shared_basis state")
    return Group(name, meta, arrays, tuple(p for paths in layout.groups for p in paths))


def decode(group: Group):
    meta = check_keys(group.meta, _WHERE, ("groups",))
    entries = as_list(meta["groups"], _WHERE, "groups")
    if not entries:
        fail(_WHERE, "no groups")
    groups, shapes, bases, coefs, records, seen = [], [], [], {}, [], set()
    elements = 0
    for g, entry in enumerate(entries):
        paths, shape = as_list(entry, _WHERE, f"group {g}", 2)
        paths = as_names(paths, _WHERE, f"paths of group {g}")
        if not paths:
            fail(_WHERE, f"group {g} has no leaves")
        for path in paths:
            if path in seen:
                fail(_WHERE, f"leaf {path!r} is in two groups")
            seen.add(path)
        shape = as_shape(shape, _WHERE, f"shape of group {g}")
        if len(shape) < 2:
            fail(_WHERE, f"group {g}: a shared basis needs leaves of 2 or more axes, got {shape}")
        n, c, m = math.prod(shape[:-1]), shape[-1], len(paths)
        basis = array(group, _basis(g), _WHERE, ndim=2)
        rank = basis.shape[1]
        if basis.shape[0] != n or not 1 <= rank <= min(n, m * c):
            fail(_WHERE, f"group {g}: basis has shape {basis.shape}, expected ({n}, r) with "
                 f"1 <= r <= {min(n, m * c)}")
        for path in paths:
            coef = array(group, _coef(path), _WHERE, shape=(rank, c))
            if coef.dtype != basis.dtype:
                fail(_WHERE, f"{path!r}: coefficients of dtype {coef.dtype}, basis of "
                     f"{basis.dtype}")
            coefs[path] = coef
        records += [_basis(g)] + [_coef(p) for p in paths]
        groups.append(tuple(paths))
        shapes.append(shape)
        bases.append(basis)
        elements += m * math.prod(shape)
    expect_records(group, records, _WHERE)
    check_elements(elements, _WHERE, itemsize_of(group))
    theta = {"bases": tuple(jnp.asarray(b) for b in bases),
             "coefs": {p: jnp.asarray(x) for p, x in coefs.items()}}
    state = SharedParams(theta, Static(Layout(tuple(groups), tuple(shapes))))
    params = shared_basis_leaves(groups, 1).apply(state)  # the ranks are read off the factors
    return as_numpy(params), state


def rows(group: Group) -> list[Row]:
    out = []
    for g, (paths, _) in enumerate(group.meta["groups"]):
        label = paths[0] if len(paths) == 1 else "{" + ",".join(paths) + "}"
        out.append(Row(label, (_basis(g),) + tuple(_coef(p) for p in paths), tuple(paths)))
    return out
