"""Many tiny nets trained at once: full-batch Adam, ``vmap``-ped over seeds and settings.

:func:`wsjax.train.fit` trains one minibatched model at a time. The nets of Nowlan &
Hinton's (1992) problems have a few hundred weights and a study needs hundreds of runs of
them (seeds x penalty strengths), so :func:`lane_trainer` compiles one program that trains
all of them: each *lane* is one (seed, setting) pair, seeds on the outer axis (each with its
own data, sample weights and initial weights), settings (a vector of hyper-parameters such
as penalty strengths, traced) on the inner one.

The net is :func:`mlp`, a plain-function multilayer perceptron with logistic hidden units
(Nowlan & Hinton's and Weigend et al.'s nets), whose params have Flax's layout
(``{'Dense_i': {'kernel', 'bias'}}``) so path regexes (``include=r'kernel'``) select them.

A random loss (``lane_trainer(..., loss_takes_key=True)``: ``loss(params, x, y, w, key)``)
gets :func:`lane_step_key` ``(seed_key, step)`` at each full-batch step: the lanes of one
seed share their keys (as they share data and initialisation), seeds differ.

Reference: Nowlan & Hinton, `Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, Neural Computation 1992.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsjax import nn as wnn
from wsjax.train.loop import LOSS_KEY_STREAM

LOSSES = ("bce", "mse")


def init_mlp(key: jax.Array, sizes: Sequence[int]) -> dict:
    """Params of :func:`mlp` with layer widths ``sizes`` (input first): kernels
    ``normal / sqrt(fan_in)`` (untruncated LeCun normal), biases zero."""
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs an input and an output width, got sizes {tuple(sizes)}")
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        key, k = jax.random.split(key)
        params[f"Dense_{i}"] = {"kernel": jax.random.normal(k, (a, b)) / np.sqrt(a), "bias": jnp.zeros((b,))}
    return params


def mlp(params: dict, x: jax.Array) -> jax.Array:
    """Logistic hidden layers, a linear last layer with one output; returns ``(batch,)``
    (a logit for ``'bce'``, the prediction for ``'mse'``)."""
    n = len(params)
    for i in range(n):
        x = x @ params[f"Dense_{i}"]["kernel"] + params[f"Dense_{i}"]["bias"]
        if i < n - 1:
            x = jax.nn.sigmoid(x)
    return x[..., 0]


def weighted_loss(kind: str, apply: Callable = mlp):
    """``loss(params, x, y, w)``: the ``w``-weighted mean of logistic cross-entropy
    (``'bce'``, targets in {0, 1}) or squared error (``'mse'``). A weight of 0 leaves a case
    out (a cross-validation fold) without changing the array shapes."""
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")

    def loss(params, x, y, w):
        out = apply(params, x)
        per = optax.sigmoid_binary_cross_entropy(out, y) if kind == "bce" else jnp.square(out - y)
        return jnp.sum(w * per) / jnp.sum(w)

    return loss


def lane_step_key(key: jax.Array, step) -> jax.Array:
    """The key a ``loss_takes_key`` lane's loss gets at 0-based full-batch ``step`` (warm
    steps first): ``fold_in(fold_in(key, LOSS_KEY_STREAM), step)`` of the seed's key, a
    stream apart from the keys ``init(key)`` splits off. Jittable (``step`` may be traced)."""
    return jax.random.fold_in(jax.random.fold_in(key, LOSS_KEY_STREAM), step)


def _run(tx, loss, params, state, steps, x, y, w, key=None, start=0):
    """``steps`` full-batch steps; with ``key``, the loss's fifth argument is
    ``lane_step_key(key, t)`` for the steps' indices ``t = start, start + 1, ...``."""
    if key is None:
        def step(carry, _):
            p, s = carry
            updates, s = tx.update(jax.grad(loss)(p, x, y, w), s, p)
            return (optax.apply_updates(p, updates), s), None

        return jax.lax.scan(step, (params, state), None, length=steps)[0]

    def keyed_step(carry, t):
        p, s = carry
        updates, s = tx.update(jax.grad(loss)(p, x, y, w, lane_step_key(key, t)), s, p)
        return (optax.apply_updates(p, updates), s), None

    ts = start + jnp.arange(steps, dtype=jnp.int32)
    return jax.lax.scan(keyed_step, (params, state), ts)[0]


def lane_trainer(loss: Callable, init: Callable[[jax.Array], Any],
                 penalty: Callable[[jax.Array], optax.GradientTransformation], *, steps: int, warm: int,
                 lr: float, probe: Callable[[Any], Any] = lambda state: (), loss_takes_key: bool = False):
    """A jitted ``train(keys, hypers, x, y, w)`` for ``S`` seeds x ``C`` settings.

    Per lane: ``params = init(key)``; ``warm`` full-batch steps of ``optax.adam(lr)`` on
    ``loss(params, x, y, w)``; then ``steps - warm`` steps of
    ``optax.chain(penalty(hyper), optax.adam(lr))`` (the penalty switched on, its state
    initialised on the warm params, e.g. a mixture spread over their range).

    Inputs: ``keys (S,)``, ``hypers (C, H)``, ``x (S, n, ...)``, ``y (S, n)``, ``w (S, n)``.
    Returns ``(params, (params_on, probe_on), probe_end)`` with leading axes ``(S, C)``:
    the final params, the params and ``probe(penalty_state)`` when the penalty switched on,
    and ``probe`` of the final penalty state.

    With ``loss_takes_key``, the loss is ``loss(params, x, y, w, key)`` with
    :func:`lane_step_key` ``(keys[s], t)`` at step ``t`` (0-based, warm steps included).
    """
    if not 0 <= warm <= steps:
        raise ValueError(f"need 0 <= warm <= steps, got warm={warm}, steps={steps}")
    if not isinstance(loss_takes_key, (bool, np.bool_)):
        raise TypeError(f"loss_takes_key must be True or False, got {type(loss_takes_key).__name__}")

    def train_one(key, hyper, x, y, w):
        params = init(key)
        loss_key = key if loss_takes_key else None
        plain = optax.adam(lr)
        params, _ = _run(plain, loss, params, plain.init(params), warm, x, y, w, loss_key)
        tx = optax.chain(penalty(hyper), optax.adam(lr))
        state = tx.init(params)
        switch_on = (params, probe(state[0]))
        params, state = _run(tx, loss, params, state, steps - warm, x, y, w, loss_key, start=warm)
        return params, switch_on, probe(state[0])

    per_setting = jax.vmap(train_one, in_axes=(None, 0, None, None, None))
    return jax.jit(jax.vmap(per_setting, in_axes=(0, None, 0, 0, 0)), compiler_options=wnn.compiler_options())


def lane(tree: Any, seed_index: int, setting_index: int) -> Any:
    """One lane ``[seed_index, setting_index]`` of a :func:`lane_trainer` output."""
    return jax.tree.map(lambda a: a[seed_index, setting_index], tree)
