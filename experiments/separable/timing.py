"""Forward-pass and training-step time of several nets, measured side by side.

Machine noise on a shared CPU moves every measurement; timing the nets interleaved, round
after round, and taking each net's ratio to the reference *within* a round makes the ratios
comparable even when the load drifts. The forward pass is
:func:`wsjax.pruning.timing.time_forward` (jitted with the training engine's compiler
options, warmed up, ``inner`` calls waited for with ``block_until_ready``); the training step
is timed the same way: a jitted ``value_and_grad`` of the softmax cross-entropy and an optax
update, each call fed the previous call's parameters and optimizer state.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsjax import nn as wnn
from wsjax.pruning.timing import time_forward


class Timed(NamedTuple):
    """What one net brings to the timing: its model, params and a jitted step with its state."""

    model: object
    params: object
    step: object
    opt_state: object


def train_step(model, optimizer: optax.GradientTransformation):
    """The jitted ``(params, opt_state, x, y) -> (params, opt_state, loss)`` of ``model``."""

    def step(params, opt_state, x, y):
        def loss(p):
            logits = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return jax.jit(step, compiler_options=wnn.compiler_options())


def prepare(model, params, optimizer: optax.GradientTransformation) -> Timed:
    return Timed(model, params, train_step(model, optimizer), optimizer.init(params))


def time_step(net: Timed, x, y, inner: int) -> float:
    """Seconds per training step on ``(x, y)``: the mean of ``inner`` chained steps after one
    untimed call (which compiles the first time)."""
    params, state, loss = net.step(net.params, net.opt_state, x, y)
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for _ in range(inner):
        params, state, loss = net.step(params, state, x, y)
    jax.block_until_ready(loss)
    return (time.perf_counter() - t0) / inner


def interleaved(nets: dict, x_forward, x_step, y_step, rounds: int, forward_inner: int, step_inner: int) -> dict:
    """``{name: {"forward": [seconds per round], "step": [...]}}`` for every ``{name: Timed}``.

    Every net is compiled and warmed up first; then each of ``rounds`` rounds times every
    net's forward pass and step once, starting one net later each round (no net is always
    timed first or last)."""
    x_forward, x_step, y_step = jnp.asarray(x_forward), jnp.asarray(x_step), jnp.asarray(y_step)
    names = list(nets)
    for name in names:  # compile and warm both functions outside the timed rounds
        time_forward(nets[name].model, nets[name].params, x_forward, repeats=1, inner=1)
        time_step(nets[name], x_step, y_step, 1)
    out = {name: {"forward": [], "step": []} for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            out[name]["forward"].append(time_forward(nets[name].model, nets[name].params, x_forward,
                                                     repeats=1, inner=forward_inner))
            out[name]["step"].append(time_step(nets[name], x_step, y_step, step_inner))
    return out


def ratio_stats(times: list[float], reference: list[float]) -> dict:
    """Median and quartiles of the per-round ratios ``times[i] / reference[i]``."""
    r = np.asarray(times, np.float64) / np.asarray(reference, np.float64)
    q25, q50, q75 = np.percentile(r, [25, 50, 75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75), "per_round": [float(v) for v in r]}
