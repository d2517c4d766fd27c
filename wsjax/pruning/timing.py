"""Forward-pass timing of flax linen models: what structured pruning buys at inference.

Unstructured pruning keeps every array dense (no speed-up without sparse kernels); removing
whole hidden units (:func:`wsjax.pruning.prune_neurons`) gives a genuinely narrower model.
:func:`compare` times the jitted forward pass of several models on the same inputs, the
models interleaved within each repeat so that machine noise hits all of them alike, and
keeps the best time of each.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from wsjax import nn as wnn

_FORWARD = {}


def forward(model):
    """The jitted ``(params, x) -> logits`` of ``model`` (one per model, compiled once per shape)."""
    if model not in _FORWARD:
        _FORWARD[model] = jax.jit(lambda p, xb: model.apply({"params": p}, xb),
                                  compiler_options=wnn.compiler_options())
    return _FORWARD[model]


def time_forward(model, params, x, repeats: int = 5, inner: int = 20) -> float:
    """Seconds per jitted forward pass on ``x`` (best of ``repeats`` runs of ``inner`` calls,
    after one untimed call that compiles)."""
    f = forward(model)
    x = jnp.asarray(x)
    jax.block_until_ready(f(params, x))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            out = f(params, x)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def compare(models_params, x, batches=(1, 100, 10_000), repeats: int = 5) -> dict:
    """``{(name, batch): seconds}`` for every ``(name, model, params)`` on the first ``batch``
    rows of ``x``: per batch size, ``repeats`` rounds each timing every model once (about
    20,000 examples' worth of calls, at most 200), the best round kept."""
    times = {}
    for batch in batches:
        xb = x[:batch]
        inner = max(1, min(200, 20_000 // batch))
        for _ in range(repeats):
            for name, model, params in models_params:
                t = time_forward(model, params, xb, repeats=1, inner=inner)
                times[(name, batch)] = min(times.get((name, batch), float("inf")), t)
    return times
