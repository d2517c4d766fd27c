"""Convolution as weight sharing: one kernel per feature map, copied to every position.

A locally connected layer (:class:`wsjax.models.local.LocallyConnected2D`) owns a kernel
``W[i, j, q, f]`` per output position ``(i, j)``. LeCun's Weight-Space Transformation makes
it a convolution by choosing ``W = T(theta)`` with ``theta[q, f]`` one shared kernel and
``T`` the copy to every position; the gradient of the shared kernel is the sum over the
positions of the gradients of its copies,
``dL/dtheta[q, f] = sum_{i, j} dL/dW[i, j, q, f]``.
:func:`broadcast_positions` is that copy with the sum written as its custom VJP.

Biases stay one per unit (``biases='unit'``, as in LeCun's Net-4 and Net-5) or are shared
per map too (``biases='map'``, the usual convolution).

References: LeCun, `Generalization and network design strategies
<http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, 1989.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp

from wsjax.sharing.core import SharedParams, Static, Transform, per_leaf, select

BIASES = ("unit", "map")
INITS = ("first", "mean")
_LEAF_NAME = re.compile(r"(?:^|/)(kernel|bias)(?:/value)?$")  # '/value': flax nnx State


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def broadcast_positions(shared: jax.Array, positions: tuple[int, int]) -> jax.Array:
    """Copy ``shared`` (any shape ``S``) to every position: an array of shape ``positions + S``."""
    return jnp.broadcast_to(shared, tuple(positions) + shared.shape)


def _broadcast_fwd(shared, positions):
    return broadcast_positions(shared, positions), None


def _broadcast_bwd(positions, residual, cotangent):
    del residual
    return (jnp.sum(cotangent, axis=tuple(range(len(positions)))),)


broadcast_positions.defvjp(_broadcast_fwd, _broadcast_bwd)


def _leaf_name(path: str) -> str:
    m = _LEAF_NAME.search(path)
    if m is None:
        raise ValueError(
            f"convolution sharing acts on locally connected 'kernel'/'bias' leaves, got {path!r}"
        )
    return m.group(1)


def _reduce(leaf: jax.Array, init: str) -> jax.Array:
    return leaf[0, 0] if init == "first" else jnp.mean(leaf, axis=(0, 1))


def _leaf_init(biases: str, init: str):
    def leaf_init(key, leaf, path):
        del key
        name = _leaf_name(path)
        if name == "kernel":
            if leaf.ndim != 4:
                raise ValueError(
                    f"{path}: a locally connected kernel is (out_h, out_w, patch, features), "
                    f"got shape {leaf.shape}"
                )
            return SharedParams(_reduce(leaf, init), Static(tuple(leaf.shape[:2])))
        if leaf.ndim == 1 or biases == "unit":  # per-map biases, or per-unit kept free
            if leaf.ndim not in (1, 3):
                raise ValueError(
                    f"{path}: a bias is (out_h, out_w, features) or (features,), got {leaf.shape}"
                )
            return SharedParams(leaf, None)
        if leaf.ndim != 3:
            raise ValueError(
                f"{path}: a per-unit bias is (out_h, out_w, features), got {leaf.shape}"
            )
        return SharedParams(_reduce(leaf, init), Static(tuple(leaf.shape[:2])))

    return leaf_init


def _leaf_apply(state: SharedParams, path: str) -> jax.Array:
    del path
    if state.frozen is None:
        return state.theta
    return broadcast_positions(state.theta, state.frozen.value)


def convolution(pattern: str, biases: str = "unit", init: str = "first") -> Transform:
    """Share each selected locally connected layer's kernel over positions (a convolution).

    Args:
      pattern: regex searched in the '/'-joined module path of the layers to share (e.g.
        ``'^H1$'`` or ``'^H[12]$'``); each matching layer's ``kernel`` and ``bias`` leaves are
        transformed, its other leaves raise.
      biases: 'unit' keeps one free bias per unit; 'map' shares one bias per feature map.
      init: how the shared values are taken from the layer's initial weights: 'first' (the
        weights of position (0, 0), which keeps a fresh layer's init scale) or 'mean' (the
        average over positions, the least-squares projection of trained weights).

    Returns:
      A :class:`~wsjax.sharing.Transform`; the shared kernel of a layer is ``theta`` of
      shape ``(patch_h * patch_w * in_ch, features)``, i.e. ``nn.Conv``'s kernel flattened.
    """
    if biases not in BIASES:
        raise ValueError(f"biases must be one of {BIASES}, got {biases!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return select(_LayerLeaves(pattern), per_leaf(_leaf_init(biases, init), _leaf_apply))


class _LayerLeaves:
    """Path predicate: a 'kernel'/'bias' leaf whose module path matches ``pattern``."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._layer = re.compile(pattern)

    def __call__(self, path: str) -> bool:
        m = _LEAF_NAME.search(path)
        return m is not None and self._layer.search(path[: m.start()]) is not None

    def __repr__(self) -> str:
        return f"kernel/bias of layers matching {self.pattern!r}"
