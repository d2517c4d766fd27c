"""Early stopping inside the jitted step: an optax transformation that watches the
validation set.

Chained after the optimiser (``optax.chain(optax.adam(lr), early_stopping(val_fn, every,
total))``), it passes the updates through unchanged and, every ``every`` steps and at the
last one, scores the *updated* parameters with ``val_fn(theta) -> (loss, accuracy)`` on a
device-resident validation set, keeping the parameters and step of the lowest validation
loss (Frankle & Carbin's early-stopping criterion) and of the highest validation accuracy.
With ``snapshot_at=k`` it also keeps the parameters after ``k`` steps (``theta_k``, for late
rewinding). Nothing leaves the device during training; :func:`wsjax.train.fit` returns it
all in its ``opt_state``.

References: Frankle & Carbin, `The Lottery Ticket Hypothesis
<https://arxiv.org/abs/1803.03635>`_, ICLR 2019 (the early-stopping iteration as a measure
of learning speed); Frankle et al., `Linear Mode Connectivity and the Lottery Ticket
Hypothesis <https://arxiv.org/abs/1912.05671>`_, ICML 2020 (``theta_k``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsjax import checks


class Tracked(NamedTuple):
    count: jax.Array  # int32, steps taken
    best: jax.Array  # (2,): the lowest validation loss, the highest validation accuracy so far
    best_step: jax.Array  # (2,) int32: the steps after which each was reached (first, on ties)
    best_theta: Any  # (theta at the lowest validation loss, theta at the highest accuracy)
    snapshot: Any  # theta after snapshot_at steps (None when not asked for)
    curve: jax.Array  # (evaluations, 2): validation loss and accuracy at each evaluation


def _copy(tree):
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)  # fit donates its buffers


def eval_steps(every: int, total: int) -> np.ndarray:
    """The steps after which :func:`early_stopping` evaluates: ``every, 2 every, ...`` and ``total``."""
    return np.unique(np.append(np.arange(every, total + 1, every), total))


def validation_fn(eval_fn: Callable, x, y, chunk: int = 1000) -> Callable:
    """``theta -> (mean loss, mean accuracy)`` of a :func:`wsjax.train.classifier` ``eval_fn``
    on all of ``(x, y)``, in equal chunks of at most ``chunk`` examples (``lax.map``)."""
    n = len(x)
    size = max(d for d in range(1, min(chunk, n) + 1) if n % d == 0)
    xs = jnp.asarray(x).reshape(n // size, size, *np.shape(x)[1:])
    ys = jnp.asarray(y).reshape(n // size, size)

    def score(theta):
        m = jax.lax.map(lambda b: eval_fn(theta, *b), (xs, ys))
        return m["loss"].mean(), m["accuracy"].mean()

    return score


def early_stopping(val_fn: Callable, every: int, total: int, snapshot_at: int | None = None
                   ) -> optax.GradientTransformation:
    """Track the best validation loss and accuracy of ``total`` steps (see the module docstring).

    ``update`` needs ``params``; the state is :class:`Tracked` (its ``curve`` row ``i`` is
    the evaluation after step ``eval_steps(every, total)[i]``).
    """
    every, total = checks.positive_int(every, "every"), checks.positive_int(total, "total")
    if snapshot_at is not None:
        snapshot_at = checks.integer(snapshot_at, "snapshot_at", lo=0, hi=total)
    n = len(eval_steps(every, total))

    def init(params):
        snap = None if snapshot_at is None else _copy(params)
        return Tracked(jnp.zeros((), jnp.int32), jnp.array([jnp.inf, -jnp.inf], jnp.float32),
                       jnp.zeros(2, jnp.int32), (_copy(params), _copy(params)), snap,
                       jnp.full((n, 2), jnp.nan, jnp.float32))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("early_stopping needs params: call update(updates, state, params)")
        new = optax.apply_updates(params, updates)
        c = state.count + 1

        def evaluate(st):
            loss, acc = val_fn(new)
            better = jnp.stack([loss < st.best[0], acc > st.best[1]])
            value = jnp.stack([loss, acc]).astype(jnp.float32)
            keep = lambda b, old: jax.tree.map(lambda a, o: jnp.where(b, a, o), new, old)
            return st._replace(best=jnp.where(better, value, st.best),
                               best_step=jnp.where(better, c, st.best_step),
                               best_theta=(keep(better[0], st.best_theta[0]), keep(better[1], st.best_theta[1])),
                               curve=st.curve.at[(c - 1) // every].set(value))

        state = jax.lax.cond((c % every == 0) | (c == total), evaluate, lambda st: st, state)
        if snapshot_at:
            state = state._replace(snapshot=jax.lax.cond(c == snapshot_at, lambda _: new, lambda s: s,
                                                         state.snapshot))
        return updates, state._replace(count=c)

    return optax.GradientTransformation(init, update)
