"""Random edge removal (RER): keep a fixed random set of ``k`` weights of a leaf, zero the rest.

Only the kept weights are free parameters: ``theta`` is the vector of their ``k`` values and
``frozen`` their flat positions (int32, drawn once at ``init`` without replacement, sorted),
so ``W = zeros.at[positions].set(theta)`` and :func:`~wsjax.sharing.free_params` counts
exactly ``k``. The kept values start at the given leaf's values.

References: the RER baseline of Chen et al, `Compressing Neural Networks with the Hashing
Trick <https://arxiv.org/abs/1504.04788>`_, 2015 (after Cireşan et al, `Deep Big Multilayer
Perceptrons for Digit Recognition <https://doi.org/10.1007/978-3-642-35289-8_31>`_, 2012).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wsjax import checks
from wsjax.sharing.core import SharedParams, Static, Transform, per_leaf, select
from wsjax.sharing.paths import KERNELS, Include


def kept_edges(compression: float, size: int) -> int:
    """``k = max(1, round(compression * size))`` weights kept of ``size``."""
    return max(1, min(size, int(round(compression * size))))


def random_edges_leaves(compression: float) -> Transform:
    """RER over a ``{path: leaf}`` dict: each leaf keeps ``kept_edges(compression, size)`` weights."""
    compression = checks.number(compression, "compression", lo=0.0, hi=1.0, lo_open=True)

    def leaf_init(key, leaf, path):
        del path
        k = kept_edges(compression, leaf.size)
        positions = jnp.sort(jax.random.choice(key, leaf.size, (k,), replace=False))
        positions = positions.astype(jnp.int32)
        values = leaf.reshape(-1)[positions]
        return SharedParams(values, {"positions": positions, "shape": Static(tuple(leaf.shape))})

    def leaf_apply(state, path):
        del path
        shape = state.frozen["shape"].value
        size = 1
        for d in shape:
            size *= d
        flat = jnp.zeros((size,), state.theta.dtype).at[state.frozen["positions"]].set(
            state.theta, indices_are_sorted=True, unique_indices=True
        )
        return flat.reshape(shape)

    return per_leaf(leaf_init, leaf_apply)


def random_edges(compression: float, *, include: Include = KERNELS) -> Transform:
    """RER on a model's params pytree: thin the leaves matching ``include`` to ``compression``."""
    return select(include, random_edges_leaves(compression))
