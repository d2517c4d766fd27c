"""Gradual magnitude pruning during training, as an optax transformation.

Chained after the optimiser (``optax.chain(optax.adam(1e-3), gradual_pruning(0.9,
polynomial(0, 2000)))``), every ``every`` steps it recomputes each pruned layer's mask from
the magnitudes of the *updated* weights, pruning exactly ``round(schedule(target, step) *
size)`` weights (already pruned ones first, then the smallest), and it always returns
updates that land on ``(params + updates) * mask``, so pruned weights stay exactly zero.
Pruning is monotone: a pruned weight never comes back. The masks live in the state, so the
whole thing runs inside the jitted step.

References: Zhu & Gupta, `To prune, or not to prune: exploring the efficacy of pruning for
model compression <https://arxiv.org/abs/1710.01878>`_, 2017.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wsjax import checks
from wsjax.pruning.schedules import Schedule
from wsjax.sharing.core import path_str
from wsjax.sharing.paths import KERNELS, Include, PerLayer, matcher, per_layer


class GradualPruningState(NamedTuple):
    count: jax.Array  # int32, steps taken
    masks: Any  # the one mask representation: a bool array per pruned leaf, None for the others


def _prune_to(w: jax.Array, keep: jax.Array, n_prune: jax.Array) -> jax.Array:
    score = jnp.where(keep, jnp.abs(w), -jnp.inf).ravel()
    ranks = jnp.argsort(jnp.argsort(score, stable=True), stable=True)
    return jnp.logical_and(keep, (ranks >= n_prune).reshape(w.shape))


def gradual_pruning(
    target: PerLayer,
    schedule: Schedule,
    *,
    every: int = 100,
    include: Include = KERNELS,
) -> optax.GradientTransformation:
    """Prune the included leaves towards ``target`` sparsity along ``schedule``.

    Args:
      target: final fraction pruned; one number or a ``{path regex: fraction}`` dict.
      schedule: ``(target, step) -> sparsity``, e.g. :func:`wsjax.pruning.polynomial`.
      every: steps between mask updates (the first update is at step 0).
      include: regex (or predicate) selecting the prunable leaves by path.

    ``update`` requires ``params``. The final masks are ``state.masks``.
    """
    every = checks.positive_int(every, "every")
    fraction = lambda v, path=None: checks.number(v, "target", lo=0.0, hi=1.0, path=path)
    if target is not None and not isinstance(target, Mapping) and not callable(target):
        fraction(target)
    match = matcher(include)

    def targets(params):
        def one(kp, _):
            path = path_str(kp)
            if not match(path):
                return None
            return per_layer(target, path, name="target", check=fraction)

        return jax.tree_util.tree_map_with_path(one, params)

    def init(params):
        if not any(t is not None for t in jax.tree.leaves(targets(params), is_leaf=lambda x: x is None)):
            raise ValueError(f"gradual_pruning: include={include!r} / target select no leaf")
        masks = jax.tree.map(lambda t, p: None if t is None else jnp.ones(jnp.shape(p), jnp.bool_),
                             targets(params), params, is_leaf=lambda x: x is None)
        return GradualPruningState(jnp.zeros((), jnp.int32), masks)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("gradual_pruning needs params: call update(updates, state, params)")
        new = optax.apply_updates(params, updates)
        tgt = targets(params)
        step = state.count

        def recompute(masks):
            def one(t, w, m):
                if t is None:
                    return m
                n_prune = jnp.round(schedule(t, step) * w.size).astype(jnp.int32)
                return _prune_to(w, m, n_prune)

            return jax.tree.map(one, tgt, new, masks, is_leaf=lambda x: x is None)

        masks = jax.lax.cond(step % every == 0, recompute, lambda m: m, state.masks)

        def masked_update(t, u, p, w, m):
            if t is None:
                return u
            return (w * m.astype(w.dtype) - p).astype(u.dtype)

        out = jax.tree.map(masked_update, tgt, updates, params, new, masks, is_leaf=lambda x: x is None)
        return out, GradualPruningState(step + 1, masks)

    return optax.GradientTransformation(init, update)
