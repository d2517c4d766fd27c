"""The 'tying' codec: tied layers stored as one shared copy plus each layer's multiplex extras.

Meta::

    {"layers": [layer, ...], "paths": [path, ...], "shared": [leaf name, ...],
     "multiplex": null | "scale_shift" | "lowrank",
     "extras": [[leaf name, ...] for each layer]}      (only with multiplex)

Records: ``shared/<leaf name>`` for the shared copy, ``<layer>/<leaf name>/<key>`` for a
layer's extras (``scale``, ``shift`` or ``a``, ``b``). Decoding runs the transform's own
apply, so the leaves equal ``transform.apply(state)`` bit for bit. The size report has one
row per shared leaf name, ``{layer,layer,...}/<leaf name>``: its shared copy and every
layer's extras for it against the dense size of all the layers it makes.

References: Lan et al, `ALBERT <https://arxiv.org/abs/1909.11942>`_, 2020; Zhang et al,
`MiniViT <https://arxiv.org/abs/2204.07154>`_, 2022.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from wsjax.sharing.tying import MULTIPLEX, tying
from wsjax.sharing.core import SharedParams, Static
from wsjax.storage.codecs.base import (Group, Row, array, as_list, as_names, as_numpy,
                                       check_elements, check_keys, expect_records, fail,
                                       itemsize_of, unique_records)

name = "tying"
_WHERE = "tying group"
_KEYS = {"scale_shift": ("scale", "shift"), "lowrank": ("a", "b")}


def _shared(leaf: str) -> str:
    return f"shared/{leaf}"


def _extra(layer: str, leaf: str, key: str) -> str:
    return f"{layer}/{leaf}/{key}"


def _multiplex_of(per_layer) -> str:
    """The multiplex whose extras the state holds (a state without any reads as either)."""
    found = {tuple(sorted(d)) for extras in per_layer.values() for d in extras.values()}
    for multiplex, keys in _KEYS.items():
        if found <= {tuple(sorted(keys))}:
            return multiplex
    raise ValueError(f"tying state: unknown multiplex extras {sorted(found)}")


def encode(state: SharedParams, options) -> Group:
    del options
    layers, paths = state.frozen.value
    shared = state.theta["shared"]
    per_layer = state.theta.get("layers")
    meta = {"layers": list(layers), "paths": list(paths), "shared": list(shared),
            "multiplex": None}
    pairs = [(_shared(leaf), x) for leaf, x in shared.items()]
    if per_layer is not None:
        multiplex = _multiplex_of(per_layer)
        meta["multiplex"] = multiplex
        meta["extras"] = [list(per_layer[layer]) for layer in layers]
        pairs += [
            (_extra(layer, leaf, key), per_layer[layer][leaf][key])
            for layer in layers for leaf in per_layer[layer] for key in _KEYS[multiplex]
        ]
    arrays = unique_records(pairs, "tying state")
    return Group(name, meta, arrays, tuple(paths))


def _layer_of(path: str, layers) -> tuple[str, str]:
    for layer in layers:
        if path.startswith(layer + "/"):
            return layer, path[len(layer) + 1:]
    fail(_WHERE, f"{path!r} is under none of the tied layers")


def _check_extras(group, layer, leaf, w, multiplex) -> dict:
    if w.ndim < 1:
        fail(_WHERE, f"{leaf!r} is a scalar; multiplex extras need an output axis")
    rows, cols = math.prod(w.shape[:-1]), w.shape[-1]
    first, second = (_extra(layer, leaf, key) for key in _KEYS[multiplex])
    if multiplex == "scale_shift":
        scale = array(group, first, _WHERE, shape=(cols,))
        return {"scale": scale, "shift": array(group, second, _WHERE, shape=(cols,))}
    a = array(group, first, _WHERE, ndim=2)
    if a.shape[0] != rows or a.shape[1] < 1:
        fail(_WHERE, f"{first!r} has shape {a.shape}, expected ({rows}, r >= 1)")
    return {"a": a, "b": array(group, second, _WHERE, shape=(a.shape[1], cols))}


def decode(group: Group):
    meta = check_keys(group.meta, _WHERE, ("layers", "paths", "shared", "multiplex"),
                      ("extras",))
    layers = as_names(meta["layers"], _WHERE, "layers")
    paths = as_names(meta["paths"], _WHERE, "paths")
    leaves = as_names(meta["shared"], _WHERE, "shared")
    multiplex = meta["multiplex"]
    if len(layers) < 2 or multiplex not in MULTIPLEX:
        fail(_WHERE, f"needs 2 or more layers and multiplex in {MULTIPLEX}")
    if ("extras" in meta) != (multiplex is not None):
        fail(_WHERE, "extras are stored if and only if multiplex is set")
    records = [_shared(leaf) for leaf in leaves]
    shared = {leaf: array(group, _shared(leaf), _WHERE, floating=False) for leaf in leaves}
    for path in paths:
        if _layer_of(path, layers)[1] not in shared:
            fail(_WHERE, f"{path!r} has no shared copy")
    check_elements(sum(shared[_layer_of(p, layers)[1]].size for p in paths), _WHERE,
                   itemsize_of(group))
    theta = {"shared": shared}
    if multiplex is not None:
        extras = as_list(meta["extras"], _WHERE, "extras", len(layers))
        theta["layers"] = {}
        for layer, names in zip(layers, extras):
            names = as_names(names, _WHERE, f"extras of {layer!r}")
            if not set(names) <= set(shared):
                fail(_WHERE, f"extras of {layer!r} name leaves without a shared copy")
            theta["layers"][layer] = {
                leaf: _check_extras(group, layer, leaf, shared[leaf], multiplex)
                for leaf in names
            }
            records += [_extra(layer, leaf, k) for leaf in names for k in _KEYS[multiplex]]
    expect_records(group, records, _WHERE)
    theta = _to_jax(theta)
    state = SharedParams(theta, Static((tuple(layers), tuple(paths))))
    params = tying(layers, multiplex=multiplex).apply(state)
    return as_numpy(params), state


def _to_jax(tree):
    if isinstance(tree, dict):
        return {k: _to_jax(v) for k, v in tree.items()}
    return jnp.asarray(tree)


def rows(group: Group) -> list[Row]:
    layers, paths = group.meta["layers"], group.meta["paths"]
    extras = group.meta.get("extras") or [[] for _ in layers]
    keys = _KEYS.get(group.meta["multiplex"], ())
    out = []
    for leaf in group.meta["shared"]:
        mine = tuple(p for p in paths if _layer_of(p, layers)[1] == leaf)
        owners = [_layer_of(p, layers)[0] for p in mine]
        records = (_shared(leaf),) + tuple(
            _extra(layer, leaf, k)
            for layer, names in zip(layers, extras) if leaf in names for k in keys
        )
        label = f"{{{','.join(owners)}}}/{leaf}" if owners else _shared(leaf)
        out.append(Row(label, records, mine))
    return out
