"""Keep pruned weights at zero while any optimiser trains the rest, as an optax transformation.

Chained last (``optax.chain(penalty, optax.adam(lr), keep_pruned(masks))``), it turns each
update into one that lands on ``(params + updates) * mask``: surviving weights get the
optimiser's update unchanged, pruned ones get ``-params`` (zero when they already are zero).
This is how a penalty that acts on the weights themselves, such as soft weight-sharing,
retrains a net pruned by Han et al.'s recipe without reviving its pruned connections; the
alternative, :func:`wsjax.sharing.mask.masked`, hides the mask from the optimiser but lets
the penalty and the optimiser's state move the hidden ``theta``.

References: Han, Pool, Tran & Dally, `Learning both Weights and Connections for Efficient
Neural Networks <https://arxiv.org/abs/1506.02626>`_, 2015.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from wsjax.sharing.mask import _as_bool, _is_none, check_masks


def keep_pruned(masks: Any) -> optax.GradientTransformation:
    """Updates that keep the entries where ``masks`` is False at exactly zero.

    Args:
      masks: the params' structure with a bool array for every pruned leaf and ``None`` for
        leaves left alone (what :func:`wsjax.pruning.sparsity_masks` returns).

    Returns:
      A ``GradientTransformation`` with an empty state; its ``update`` needs ``params``.
    """
    masks = jax.tree.map(_as_bool, masks, is_leaf=_is_none)

    def init_fn(params):
        check_masks(params, masks)
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("keep_pruned needs params: call update(updates, state, params)")

        def keep(u, p, m):
            return u if m is None else jnp.where(m, u, -p.astype(u.dtype))

        return jax.tree.map(keep, updates, params, masks, is_leaf=_is_none), state

    return optax.GradientTransformation(init_fn, update_fn)
