"""Plain L2 weight decay on path-selected leaves, for comparison with soft sharing.

The penalty is ``lambda/2 * sum_i w_i^2``, whose gradient ``lambda * w`` is added to the
updates (what ``optax.add_decayed_weights`` does, here with the same path-regex selection
and interface as the other penalties). It is the one-component special case of the
mixture prior: ``N(0, 1/lambda)`` on every weight.

References: Hinton, `Learning translation invariant recognition in a massively parallel
network <https://doi.org/10.1007/3-540-17943-7_117>`_, PARLE 1987; Nowlan & Hinton,
`Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, 1992.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from wsjax.penalties.additive import Strength, additive_penalty
from wsjax.penalties.leaves import Include, selected_leaves


def l2_penalty(params: Any, *, include: Include = r".*") -> jax.Array:
    """``1/2 * sum_i w_i^2`` over the selected leaves (no strength factor)."""
    total = jnp.zeros((), jnp.float32)
    for w in selected_leaves(params, include).values():
        total = total + 0.5 * jnp.sum(jnp.square(w.astype(jnp.promote_types(w.dtype, jnp.float32))))
    return total


def l2(strength: Strength, *, include: Include = r".*") -> optax.GradientTransformationExtraArgs:
    """Add ``strength * w`` to the selected leaves' updates (L2 penalty ``strength/2 * |w|^2``).

    ``update(updates, state, params)`` requires ``params``.
    """
    return additive_penalty("l2", lambda w: w, strength, include)
