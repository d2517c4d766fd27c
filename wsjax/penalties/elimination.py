"""Weight elimination: a penalty that drives small weights to zero and spares large ones.

``lambda * sum_i (w_i/w0)^2 / (1 + (w_i/w0)^2)`` costs about ``lambda (w/w0)^2`` for
``|w| << w0`` (weight decay) and saturates at ``lambda`` per weight for ``|w| >> w0``, so it
counts weights rather than shrinking them. Its gradient is
``lambda * 2 w / (w0^2 (1 + (w/w0)^2)^2)``, written so that huge weights give 0, not NaN.

References: Weigend, Rumelhart & Huberman, `Generalization by Weight-Elimination with
Application to Forecasting <https://papers.nips.cc/paper/323>`_, NIPS 3, 1991.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from wsjax import checks
from wsjax.penalties.additive import Strength, additive_penalty
from wsjax.penalties.leaves import Include, selected_leaves


def _check_w0(w0) -> None:
    checks.number(w0, "w0", lo=0.0, lo_open=True)


def _float(w: jax.Array) -> jax.Array:
    return w.astype(jnp.promote_types(w.dtype, jnp.float32))


def weight_elimination_penalty(params: Any, w0: float = 1.0, *, include: Include = r".*") -> jax.Array:
    """``sum_i (w_i/w0)^2 / (1 + (w_i/w0)^2)`` over the selected leaves (no strength factor)."""
    _check_w0(w0)
    total = jnp.zeros((), jnp.float32)
    for w in selected_leaves(params, include).values():
        u = jnp.square(_float(w) / w0)
        finite = jnp.isfinite(u)
        u_safe = jnp.where(finite, u, 0.0)  # keeps the gradient finite for |w| ~ inf
        total = total + jnp.sum(jnp.where(finite, u_safe / (1.0 + u_safe), 1.0))
    return total


def weight_elimination_grad(w: jax.Array, w0: float = 1.0) -> jax.Array:
    """d/dw of ``(w/w0)^2 / (1 + (w/w0)^2)``: ``2 w / (w0^2 (1 + (w/w0)^2)^2)``."""
    a = _float(w) / w0
    denom = 1.0 + jnp.square(a)
    return (2.0 / w0) * (a / denom) / denom


def weight_elimination(
    strength: Strength, w0: float = 1.0, *, include: Include = r".*"
) -> optax.GradientTransformationExtraArgs:
    """Add ``strength *`` the weight-elimination gradient to the selected leaves' updates.

    Place it before the optimiser: ``optax.chain(weight_elimination(1e-4, 1.0), optax.sgd(0.1))``.
    ``update(updates, state, params)`` requires ``params``.
    """
    _check_w0(w0)
    return additive_penalty(
        "weight_elimination", lambda w: weight_elimination_grad(w, w0), strength, include
    )
