"""Many seeds of one small net trained together: one vmapped :func:`wsjax.train.fit` call.

A study that repeats a small net over many seeds (each seed its own data split and its own
initialisation, e.g. LeCun's 1989 nets, `Generalization and network design strategies
<http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, on 20 draws of 320 images) is
dominated by compilation and dispatch when it trains them one by one. Here the seeds are
one more array axis:

* :func:`stack_seeds` puts the per-seed splits side by side with the *examples* axis first,
  ``(N, S, ...)``, so that ``fit``'s minibatches (drawn along axis 0) give every seed the
  same minibatch order of its own split;
* :func:`init_seeds` draws one initialisation per seed in one jitted, vmapped call;
* :func:`fit_seeds` trains them with the sum of the per-seed losses: the gradient of the
  sum with respect to seed ``s``'s parameters is the gradient of seed ``s``'s own loss, so
  with a per-coordinate optimizer (SGD, Adam, ...) each seed trains exactly as it would on
  its own;
* :func:`seed_errors` scores every seed's parameters on its own split.

A random loss (``fit_seeds(..., loss_takes_key=True)``, ``loss_fn(theta, x, y, key)``) gives
seed ``s`` (its index in the stack) ``fold_in(k, s)`` of fit's step key ``k``: the seeds'
dropout masks and the like are drawn apart, as in separate runs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from wsjax.train.loop import TrainResult, fit


def stack_seeds(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of one split per seed, stacked as ``(N, S, ...)`` and ``(N, S)``.

    Every seed's split must have the same number of examples and the same image shape."""
    if not pairs:
        raise ValueError("stack_seeds needs at least one (x, y) pair")
    shapes = {(np.shape(x), np.shape(y)) for x, y in pairs}
    if len(shapes) != 1:
        raise ValueError(f"the seeds' splits differ in shape: {sorted(shapes)}")
    return np.stack([x for x, _ in pairs], axis=1), np.stack([y for _, y in pairs], axis=1)


def seed_keys(seeds: Sequence[int], impl: str = "rbg") -> jax.Array:
    """One PRNG key ``jax.random.key(s, impl=impl)`` per seed, stacked. ``'rbg'`` keys
    compile far faster than threefry ones on XLA:CPU (for small nets, initialisation is
    otherwise most of a short run)."""
    return jax.vmap(lambda s: jax.random.key(s, impl=impl))(jnp.asarray(list(seeds)))


def init_seeds(init: Callable[[jax.Array], Any], seeds: Sequence[int], impl: str = "rbg") -> Any:
    """``init(key)`` for every seed's key (:func:`seed_keys`), jitted and vmapped: a pytree
    whose leaves have a leading seeds axis.

    With ``impl='threefry2x32'`` seed ``s`` gets exactly ``init(jax.random.key(s))``. With
    ``'rbg'`` (the default: faster to compile) the vmapped draw is not batch-invariant: a
    seed's initialisation depends on the whole list of seeds drawn with it, so a result is
    a function of that list (keep the list, not just the seed, in a result's config)."""
    return jax.jit(jax.vmap(init))(seed_keys(seeds, impl))


def stacked_loss(loss_fn: Callable[..., jax.Array], loss_takes_key: bool = False):
    """``(thetas, xs, ys) -> sum over seeds of loss_fn(theta_s, xs[:, s], ys[:, s])``.

    With ``loss_takes_key``: ``(thetas, xs, ys, key) -> sum over seeds s of
    loss_fn(theta_s, xs[:, s], ys[:, s], fold_in(key, s))``."""

    def total(thetas, xs, ys):
        return jnp.sum(jax.vmap(loss_fn, in_axes=(0, 1, 1))(thetas, xs, ys))

    def total_keyed(thetas, xs, ys, key):
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(xs.shape[1]))
        return jnp.sum(jax.vmap(loss_fn, in_axes=(0, 1, 1, 0))(thetas, xs, ys, keys))

    return total_keyed if loss_takes_key else total


def fit_seeds(loss_fn: Callable[..., jax.Array], thetas: Any, optimizer, train,
              **fit_kwargs) -> TrainResult:
    """Train every seed's ``thetas[s]`` on its own split ``train[0][:, s], train[1][:, s]``
    (stacked by :func:`stack_seeds`) in one :func:`wsjax.train.fit` call.

    ``loss_fn(theta, x, y)`` is one seed's loss on one minibatch; ``fit_kwargs`` go to
    ``fit`` (``epochs``, ``batch_size``, ``seed``, ``loop``, ...). The history's
    ``train_loss`` is the sum over seeds (divide by the number of seeds for the mean).
    With ``loss_takes_key=True``, ``loss_fn(theta, x, y, key)``: seed ``s`` gets
    ``fold_in(step_key, s)`` (see the module docstring)."""
    keyed = fit_kwargs.get("loss_takes_key", False)
    if not isinstance(keyed, (bool, np.bool_)):  # fit's own check, before the wrapping reads it
        raise TypeError(f"loss_takes_key must be True or False, got {type(keyed).__name__}")
    return fit(stacked_loss(loss_fn, bool(keyed)), thetas, optimizer, train, **fit_kwargs)


def seed_errors(predict: Callable[[Any, jax.Array], jax.Array], thetas: Any, x, y) -> np.ndarray:
    """The error rate of every seed's ``predict(theta, x) -> logits`` on its own split
    (``x``: ``(N, S, ...)``, ``y``: ``(N, S)``): a NumPy array of ``S`` fractions."""

    @jax.jit
    def errors(thetas, xs, ys):
        z = jax.vmap(predict, in_axes=(0, 1))(thetas, xs)  # (S, N, classes)
        return jnp.mean(jnp.argmax(z, -1) != ys.T, axis=1)

    return np.asarray(errors(thetas, x, y))
