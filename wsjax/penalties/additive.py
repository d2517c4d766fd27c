"""An optax transformation that adds ``strength *`` an elementwise penalty's gradient.

Plain L2 and weight elimination differ only in the per-weight gradient they add; both are
built here, in the shape of ``optax.add_decayed_weights`` with a path-regex mask.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

from wsjax import checks
from wsjax.penalties.leaves import Include, add_to_selected, selected_leaves
from wsjax.sharing.paths import matcher

Strength = Union[float, jax.Array, Callable[[jax.Array], jax.Array]]


class AdditivePenaltyState(NamedTuple):
    """State of an additive penalty: the update count (for a strength schedule)."""

    count: jax.Array


def check_strength(strength: Strength) -> None:
    """Raise ValueError unless ``strength`` is a non-negative scalar or a schedule.

    A traced scalar (e.g. a strength ``vmap``-ped over a grid) is accepted unchecked.
    """
    if callable(strength):
        return
    checks.number(strength, "strength (a scalar or a schedule)", lo=0.0, traced=True)


def strength_at(strength: Strength, count: jax.Array) -> jax.Array:
    """The strength at update ``count`` (a constant or a schedule's value)."""
    return jnp.asarray(strength(count) if callable(strength) else strength, jnp.float32)


def additive_penalty(
    name: str,
    grad_fn: Callable[[jax.Array], jax.Array],
    strength: Strength,
    include: Include,
) -> optax.GradientTransformationExtraArgs:
    """``updates[w] += strength * grad_fn(w)`` for every selected leaf ``w`` of ``params``."""
    check_strength(strength)
    matcher(include)  # validate early

    def init_fn(params):
        selected_leaves(params, include)
        return AdditivePenaltyState(count=jnp.zeros((), jnp.int32))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(f"{name} needs the current params: call update(updates, state, params)")
        return _update(updates, state, params)

    @jax.jit  # one compiled step even when called eagerly; inlined under an outer jit
    def _update(updates, state, params):
        tau = strength_at(strength, state.count)
        grads = {p: tau * grad_fn(w) for p, w in selected_leaves(params, include).items()}
        new_state = AdditivePenaltyState(count=optax.safe_increment(state.count))
        return add_to_selected(updates, grads), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
