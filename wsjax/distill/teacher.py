"""The teacher's outputs: computed once and kept on the device, or computed in every step.

Distillation trains a student on the teacher's logits for each training image. The teacher
is fixed, so its logits are a function of the image alone and can be computed in one pass
over the training set (:func:`teacher_logits`) and kept on the device beside the images.
:func:`wsjax.train.fit` draws each minibatch from the ``(x, y)`` arrays by one index vector,
so the cached logits travel inside ``y``: :func:`pack_targets` puts each example's label
and the teacher's logits in one float32 row ``[label, z_1, ..., z_K]``, and
:func:`unpack_targets` splits a minibatch of them again inside the loss (labels up to
``2**24`` are exact in float32).

The alternative, calling the teacher inside every step
(:func:`wsjax.distill.on_the_fly_loss_fn`), recomputes the same logits once per epoch;
``experiments/distillation/benchmark.py`` measures both, and the study caches.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks

#: the largest label a float32 row holds exactly
MAX_LABEL = 2**24


def teacher_logits(apply_fn: Callable[[Any, jax.Array], jax.Array], params: Any, x, batch_size: int = 1000) -> jax.Array:
    """``apply_fn(params, x)`` over all of ``x`` in batches, as one device array ``(N, K)``.

    ValueError if any logit is NaN or infinite (a broken teacher would silently poison every
    student)."""
    batch_size = checks.positive_int(batch_size, "batch_size")
    if len(x) == 0:
        raise ValueError("teacher_logits got no examples")
    fn = jax.jit(apply_fn)
    out = jnp.concatenate([fn(params, jnp.asarray(x[i:i + batch_size])) for i in range(0, len(x), batch_size)])
    bad = int(jnp.sum(~jnp.isfinite(out)))
    if bad:
        raise ValueError(f"the teacher's logits hold {bad} NaN or infinite values (of {out.size})")
    return out


def pack_targets(labels, logits) -> jax.Array:
    """``(N, 1 + K)`` float32 rows ``[label, logits...]``: the ``y`` that :func:`wsjax.train.fit`
    batches alongside ``x`` for a cached-teacher loss.

    TypeError for non-integer labels or non-float logits; ValueError for a length mismatch,
    a label outside ``[0, K)`` or non-finite logits."""
    labels_dtype, logits_dtype = getattr(labels, "dtype", None), getattr(logits, "dtype", None)
    if labels_dtype is None or not jnp.issubdtype(labels_dtype, jnp.integer):
        raise TypeError(f"labels must be integer class indices, got {labels_dtype or type(labels).__name__}")
    if logits_dtype is None or not jnp.issubdtype(logits_dtype, jnp.floating):
        raise TypeError(f"logits must be floating point, got {logits_dtype or type(logits).__name__}")
    if np.ndim(labels) != 1 or np.ndim(logits) != 2 or len(labels) != len(logits):
        raise ValueError(f"need labels (N,) and logits (N, K) for the same N, got {tuple(np.shape(labels))} "
                         f"and {tuple(np.shape(logits))}")
    k = int(np.shape(logits)[1])
    lo, hi = (int(v) for v in jax.device_get((jnp.min(labels), jnp.max(labels))))
    if lo < 0 or hi >= min(k, MAX_LABEL):
        raise ValueError(f"labels must lie in [0, {k}) for {k} teacher logits, got labels from {lo} to {hi}")
    if not bool(jnp.all(jnp.isfinite(logits))):
        raise ValueError("the teacher's logits hold NaN or infinite values")
    return jnp.concatenate([jnp.asarray(labels, jnp.float32)[:, None], jnp.asarray(logits, jnp.float32)], axis=1)


def unpack_targets(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(labels int32 (B,), teacher logits (B, K))`` of a minibatch of :func:`pack_targets` rows."""
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError(f"packed targets have shape (batch, 1 + classes), got {tuple(y.shape)}")
    return y[:, 0].astype(jnp.int32), y[:, 1:]
