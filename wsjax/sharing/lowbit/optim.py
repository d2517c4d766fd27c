"""BinaryConnect's clipping of the latent weights to ``[-1, 1]``, as an optax transformation.

BinaryConnect keeps the real-valued weights in ``[-1, 1]`` after every update: outside it
the hard-tanh straight-through gradient is zero and a latent weight would drift away for
good. :func:`clip_latent` rewrites the update ``u`` of each selected leaf ``p`` into ``u'``
with ``p + u' = clip(p + u, lo, hi)``; place it *last* in the chain, so that
``optax.apply_updates`` adds exactly the ``u'`` it returns::

    tx = optax.chain(optax.adam(1e-3), clip_latent(binary_latents(state)))

The bound holds exactly in floating point: ``u' = clip(p + u) - p`` can overshoot by one
rounding of the final add, so where ``p + u'`` would leave ``[lo, hi]`` ``u'`` is moved one
ulp inwards (``nextafter``), after which the rounded sum cannot exceed the bound.

References: Courbariaux, Bengio & David, `BinaryConnect: Training Deep Neural Networks with
binary weights during propagations <https://arxiv.org/abs/1511.00363>`_, 2015.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wsjax import checks
from wsjax.sharing.core import SharedParams
from wsjax.sharing.lowbit.transform import LowBitFrozen


class ClipLatentState(NamedTuple):
    """:func:`clip_latent` keeps no state."""


def _is_none(x) -> bool:
    return x is None


def binary_latents(state: SharedParams) -> Any:
    """A mask in the structure of ``state.theta``: True at the latents of binary leaves,
    False at every other leaf (``None`` stays ``None``); for the state of
    :func:`~wsjax.sharing.lowbit.lowbit_weights` (and :func:`binary`, ...) or the flat state
    of :func:`~wsjax.sharing.lowbit.lowbit_leaves`."""
    theta, frozen = state.theta, state.frozen
    if isinstance(theta, Mapping) and set(theta) == {"rest", "inner"}:
        rest = jax.tree.map(lambda _: False, theta["rest"])
        return {"rest": rest, "inner": binary_latents(SharedParams(theta["inner"], frozen))}
    if not (isinstance(theta, Mapping) and isinstance(frozen, Mapping)
            and set(theta) == set(frozen)
            and all(isinstance(f, LowBitFrozen) for f in frozen.values())):
        raise ValueError("binary_latents needs the state of a lowbit transform")
    return {p: jax.tree.map(lambda _, b=frozen[p].spec.value.kind == "binary": b, x)
            for p, x in theta.items()}


def clip_latent(mask: Any, lo: float = -1.0, hi: float = 1.0) -> optax.GradientTransformation:
    """Updates that keep ``params + updates`` inside ``[lo, hi]`` on the masked leaves.

    Args:
      mask: a pytree of bools in the params' structure (True: clip this leaf; e.g.
        :func:`binary_latents`; bool arrays select per element), one bool for every leaf,
        a callable ``params -> mask``, or a lowbit :class:`~wsjax.sharing.SharedParams`
        state (its binary latents).
      lo, hi: the interval, ``lo < hi``.

    ``update(updates, state, params)`` needs ``params``; the state is an empty
    :class:`ClipLatentState`. Unmasked leaves' updates pass unchanged.
    """
    lo = checks.number(lo, "lo")
    hi = checks.number(hi, "hi")
    if not lo < hi:
        raise ValueError(f"clip_latent needs lo < hi, got lo={lo}, hi={hi}")
    if isinstance(mask, SharedParams):
        mask = binary_latents(mask)

    def init(params):
        del params
        return ClipLatentState()

    def clip_one(u, p, keep):
        if u is None or keep is None or keep is False:
            return u
        d = jnp.clip(p + u, lo, hi) - p
        d = jnp.where(p + d > hi, jnp.nextafter(d, jnp.asarray(-jnp.inf, d.dtype)), d)
        d = jnp.where(p + d < lo, jnp.nextafter(d, jnp.asarray(jnp.inf, d.dtype)), d)
        return d if keep is True else jnp.where(keep, d, u)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("clip_latent needs params: call update(updates, state, params)")
        m = mask(params) if callable(mask) else mask
        if isinstance(m, bool):
            m = jax.tree.map(lambda _: m, params)
        return jax.tree.map(clip_one, updates, params, m, is_leaf=_is_none), state

    return optax.GradientTransformation(init, update)

