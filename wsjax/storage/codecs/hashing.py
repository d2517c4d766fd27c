"""The 'hashing' codec: HashedNets stored as their buckets and hash specs, never the virtual weights.

Meta::

    {"scope": "layer" | "pool", "precompute": bool,
     "leaves": [[path, shape, num_buckets, layer id, seed(, block)], ...],  (block only if > 1)
     "layer_scale": true}                                 (only for a pool with layer scales)

Records: scope 'layer' has one bucket vector per leaf, named by the leaf's path; scope
'pool' has the one shared vector, named ``'pool'``. A ``precompute=True`` state stores the
same (a pool with ``layer_scale`` adds one scalar record ``scale/<path>`` per leaf; its signed index array is rebuilt with :func:`~wsjax.sharing.hashing.signed_index`
on decoding, not stored). Decoding rebuilds the virtual leaves with the transform's gather
computed on the host (:func:`~wsjax.sharing.hashing.hashed_take_numpy`), which equals
``transform.apply(state)`` bit for bit.

Size report: one row per hashed leaf for scope 'layer' (its virtual float32 size against
its bucket record); one row ``'pool'`` for scope 'pool', whose dense size is that of all
its virtual leaves together.

References: Chen et al, `Compressing Neural Networks with the Hashing Trick
<https://arxiv.org/abs/1504.04788>`_, 2015.
"""

from __future__ import annotations

import jax
import numpy as np

from wsjax.sharing.hashing import SCOPES, HashSpec, hashed_take_numpy, pool_of, signed_index_numpy
from wsjax.sharing.core import SharedParams, Static
from wsjax.storage.codecs.base import (Group, Row, UINT32, array, as_int, as_list, as_numpy,
                                       as_shape, as_str, check_elements, check_keys,
                                       expect_records, fail, itemsize_of)

name = "hashing"
POOL = "pool"  # the record name of a pool's bucket vector
_WHERE = "hashing group"


def _scale(path: str) -> str:
    return f"scale/{path}"


def encode(state: SharedParams, options) -> Group:
    del options
    specs = dict(state.frozen["specs"].value)
    stored = state.frozen.get("signed_index")
    pool, scales = pool_of(state) or (None, None)
    if pool is not None:  # the order the leaves were given in, where the state still has it
        order = list(stored) if stored is not None else list(specs)
        buckets = {POOL: pool}
        if scales is not None:
            buckets.update({_scale(p): scales[p] for p in order})
    else:
        order = list(state.theta)
        buckets = dict(state.theta)
    if set(order) != set(specs):
        raise ValueError(f"hashing state: leaves {sorted(order)}, specs for {sorted(specs)}")
    for p in order:
        vector = state.theta[p] if pool is None else pool
        if tuple(vector.shape) != (specs[p].num_buckets,):
            raise ValueError(f"hashing state: the buckets of {p!r} have shape {vector.shape}, "
                             f"its spec wants ({specs[p].num_buckets},)")
    leaves = [
        [p, [int(d) for d in specs[p].shape], int(specs[p].num_buckets), int(specs[p].layer),
         int(specs[p].seed)] + ([int(specs[p].block)] if specs[p].block != 1 else [])
        for p in order
    ]
    meta = {"scope": "layer" if pool is None else "pool", "precompute": stored is not None,
            "leaves": leaves}
    if scales is not None:
        meta["layer_scale"] = True
    return Group(name, meta, as_numpy(buckets), tuple(order))


def _specs(meta, itemsize: int) -> dict:
    """``{path: HashSpec}`` in stored order, every field checked."""
    specs = {}
    for entry in as_list(meta["leaves"], _WHERE, "leaves"):
        entry = as_list(entry, _WHERE, "a leaf entry")
        if len(entry) not in (5, 6):
            fail(_WHERE, f"a leaf entry must be a list of 5 or 6, got {entry!r}"[:300])
        path, shape, k, layer, seed = entry[:5]
        block = as_int(entry[5], _WHERE, "block", 2, 1 << 31) if len(entry) == 6 else 1
        path = as_str(path, _WHERE, "leaf path")
        if path in specs:
            fail(_WHERE, f"leaf {path!r} listed twice")
        spec = HashSpec(
            as_shape(shape, _WHERE, f"shape of {path!r}"),
            as_int(k, _WHERE, "num_buckets", 1, 1 << 31),
            as_int(layer, _WHERE, "layer id", 0, UINT32),
            as_int(seed, _WHERE, "seed", 0, UINT32),
            block,
        )
        if spec.rows >= UINT32 or spec.cols >= UINT32:
            fail(_WHERE, f"{path!r}: a {spec.rows} x {spec.cols} matrix does not fit the "
                 "32-bit hash key")
        specs[path] = spec
    if not specs:
        fail(_WHERE, "no leaves")
    check_elements(sum(s.size for s in specs.values()), _WHERE, itemsize)
    return specs


def decode(group: Group):
    meta = check_keys(group.meta, _WHERE, ("scope", "precompute", "leaves"), ("layer_scale",))
    scope = meta["scope"]
    scaled = "layer_scale" in meta
    if scaled and (meta["layer_scale"] is not True or scope != "pool"):
        fail(_WHERE, "layer_scale, where present, is true and belongs to a pool")
    if scope not in SCOPES:
        fail(_WHERE, f"scope must be one of {SCOPES}, got {scope!r}")
    if not isinstance(meta["precompute"], bool):
        fail(_WHERE, f"precompute must be true or false, got {meta['precompute']!r}")
    specs = _specs(meta, itemsize_of(group))
    if scope == "pool":
        counts = {s.num_buckets for s in specs.values()}
        if len(counts) != 1:
            fail(_WHERE, "the leaves of a pool disagree on its number of buckets")
        (k,) = counts
        expect_records(group, [POOL] + ([_scale(p) for p in specs] if scaled else []), _WHERE)
        theta = jax.device_put(array(group, POOL, _WHERE, shape=(k,)))
        if scaled:
            theta = {"pool": theta,
                     "scale": {p: jax.device_put(array(group, _scale(p), _WHERE, shape=())) for p in specs}}
    else:
        expect_records(group, specs, _WHERE)
        theta = {
            p: jax.device_put(array(group, p, _WHERE, shape=(s.num_buckets,)))
            for p, s in specs.items()
        }
    frozen = {"specs": Static(tuple(sorted(specs.items())))}
    if scaled:
        frozen["layer_scale"] = Static(True)
    if meta["precompute"]:
        frozen["signed_index"] = {p: jax.device_put(signed_index_numpy(s)) for p, s in specs.items()}
    state = SharedParams(theta, frozen)
    # The transform's gather on the host (bit-identical to its jitted apply, without one
    # compilation per leaf: a file of many small hashed leaves decodes in milliseconds).
    vector = theta["pool"] if scaled else theta
    params = {p: hashed_take_numpy(np.asarray(theta[p] if scope == "layer" else vector), s)
              for p, s in specs.items()}
    if scaled:  # one rounding, as in the jitted apply (the sign product before it is exact)
        params = {p: np.asarray(theta["scale"][p]) * v for p, v in params.items()}
    return as_numpy(params), state


def rows(group: Group) -> list[Row]:
    paths = tuple(entry[0] for entry in group.meta["leaves"])
    if group.meta["scope"] == "pool":
        scales = tuple(_scale(p) for p in paths) if group.meta.get("layer_scale") else ()
        return [Row(POOL, (POOL,) + scales, paths)]
    return [Row(p, (p,), (p,)) for p in paths]
