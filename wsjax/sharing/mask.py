"""Pruning masks as a weight-space transformation: ``W = theta * M`` with ``M`` frozen.

The optimiser sees the dense ``theta``; the model sees ``theta * M`` (computed as a select,
so pruned entries are +0.0, never -0.0, which a bit-pattern codebook would count as a
weight). Autodiff gives ``dL/dtheta = M * dL/dW``, so pruned entries get exactly zero gradient, stay zero in
``W`` through any amount of retraining (whatever the optimiser does to their ``theta``), and
the surviving weights are retrained as Han et al. do between pruning rounds.

``masks`` mirrors the params' structure with a boolean array for every pruned leaf and
``None`` for leaves left dense (biases, usually); the functions of :mod:`wsjax.pruning`
return exactly that. Inside :func:`wsjax.sharing.select` the params are a flat
``{path: leaf}`` dict and so are the masks.

References: Han, Pool, Tran & Dally, `Learning both Weights and Connections for Efficient
Neural Networks <https://arxiv.org/abs/1506.02626>`_, 2015; LeCun, `Generalization and
network design strategies <http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, 1989
(strategy 1, removing connections).
"""

from __future__ import annotations

from typing import Any, Callable, Union

import jax
import jax.numpy as jnp
import numpy as np

from wsjax.sharing.core import SharedParams, Transform, flatten_paths, path_str

Masks = Any  # pytree of bool arrays / None, the params' structure
MaskSource = Union[Masks, Callable[[Any], Masks]]


def _is_none(x) -> bool:
    return x is None


def check_masks(params, masks) -> None:
    """Raise a clear error unless ``masks`` has ``params``' structure and shapes."""
    p_struct = jax.tree.structure(params)
    m_struct = jax.tree.structure(masks, is_leaf=_is_none)
    if p_struct != m_struct:
        raise ValueError(
            "masks must have the params' tree structure (None for dense leaves); "
            f"params paths {sorted(flatten_paths(params))}, "
            f"mask structure {m_struct}"
        )
    flat_m = jax.tree.leaves(masks, is_leaf=_is_none)
    for (path, p), m in zip(flatten_paths(params).items(), flat_m):
        if m is None:
            continue
        if not hasattr(m, "shape") or tuple(m.shape) != tuple(p.shape):
            raise ValueError(
                f"mask for {path!r} (shape {tuple(p.shape)}) has shape "
                f"{getattr(m, 'shape', type(m).__name__)}"
            )


def _as_bool(m):
    return None if m is None else jnp.asarray(m).astype(jnp.bool_)


def _mask_leaf(m, p):
    if m is None:
        return p
    # where, not multiply: negative theta times 0 is -0.0, which storage (bit patterns)
    # would count as a nonzero weight. The gradient is still dL/dW where kept, 0 elsewhere.
    return jnp.where(jnp.asarray(m).astype(jnp.bool_), p, jnp.zeros((), jnp.asarray(p).dtype))


def apply_masks(params, masks):
    """``params`` with the masked-out entries set to +0.0 (``None`` masks leave a leaf as is)."""
    return jax.tree.map(_mask_leaf, masks, params, is_leaf=_is_none)


def masked(masks: MaskSource) -> Transform:
    """The transform ``W = theta * M``.

    Args:
      masks: a pytree of boolean arrays (``None`` for dense leaves) with the params'
        structure, or a function ``params -> masks`` evaluated on the params given to
        ``init`` (e.g. ``lambda p: wsjax.pruning.sparsity_masks(p, 0.9)``).

    ``init`` zeroes the pruned entries of ``theta`` (so ``theta`` itself is a valid pruned
    network) and keeps the masks, as booleans, in ``frozen``. Inside a :func:`chain` a
    weight that a transform around it already pruned stays pruned (the masks are combined),
    and the transforms inside it see the masks (``masks_of``), so ``chain(masked(m),
    codebook())`` clusters only the surviving weights.
    """

    source = masks

    def init(key, params, masks=None):
        del key
        m = source(params) if callable(source) else source
        check_masks(params, m)
        m = jax.tree.map(_as_bool, m, is_leaf=_is_none)
        if masks is not None:  # pruned by a transform around this one
            m = combine(m, masks)
        return SharedParams(apply_masks(params, m), m)

    def apply(state):
        return apply_masks(state.theta, state.frozen)

    return Transform(init, apply, masks_of=lambda frozen: frozen)


def combine(masks, other):
    """``masks`` AND ``other`` leaf by leaf (matched by path; a leaf ``None`` in both stays ``None``)."""
    other_flat = flatten_paths(other)

    def one(kp, m):
        o = other_flat.get(path_str(kp))
        if o is None:
            return m
        o = jnp.asarray(o).astype(jnp.bool_)
        return o if m is None else jnp.logical_and(m, o)

    return jax.tree_util.tree_map_with_path(one, masks, is_leaf=_is_none)


def mask_counts(masks) -> dict[str, tuple[int, int]]:
    """``{path: (kept, total)}`` for every masked leaf."""
    out = {}
    for path, m in flatten_paths(masks).items():  # None leaves are empty subtrees
        a = np.asarray(m)
        out[path] = (int(a.sum()), int(a.size))
    return out
