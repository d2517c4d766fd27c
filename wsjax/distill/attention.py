"""Attention-map distillation: the student's attention rows follow the teacher's.

For a transformer with attention maps ``A`` of shape ``(batch, heads, N, N)`` (row ``i`` of
head ``a`` is query ``i``'s distribution over the ``N`` keys), the loss is the KL divergence
from each teacher row to the student's row, averaged over batch, heads and queries::

    attention_map_loss = mean_{b, a, i} KL(A_T[b, a, i, :] || A_S[b, a, i, :])

as MiniLM's self-attention transfer, which MiniViT uses to distil the attention of a large
vision transformer into a weight-multiplexed (shared-across-layers) one. Student and
teacher need the same number of heads and tokens. Maps are probabilities (rows summing to
1) or, with ``logits=True``, the pre-softmax scores ``QK^T / sqrt(d)`` (numerically safer:
the log-softmax is taken directly). A teacher probability of 0 contributes 0 (``0 log 0``);
the teacher is a target (``stop_gradient``).

References: Zhang et al., `MiniViT: Compressing Vision Transformers with Weight
Multiplexing <https://arxiv.org/abs/2204.07154>`_, 2022; Wang et al., `MiniLM: Deep
Self-Attention Distillation <https://arxiv.org/abs/2002.10957>`_, 2020.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from wsjax.distill import _checks

#: how far a probability row may sum from 1 before it is rejected (concrete input only)
ROW_SUM_TOLERANCE = 1e-3


def _check_rows(a: jax.Array, name: str) -> None:
    if isinstance(a, jax.core.Tracer):
        return  # under jit the rows cannot be inspected; concrete calls are checked
    sums = np.asarray(jnp.sum(a, axis=-1))
    lo, hi = float(np.min(sums)), float(np.max(sums))
    if not (np.all(np.isfinite(sums)) and abs(lo - 1) <= ROW_SUM_TOLERANCE and abs(hi - 1) <= ROW_SUM_TOLERANCE
            and float(jnp.min(a)) >= 0):
        raise ValueError(f"{name} rows must be probabilities summing to 1 (row sums from {lo:.6g} to {hi:.6g}, "
                         f"min {float(jnp.min(a)):.6g}); pass logits=True for pre-softmax scores")


def attention_map_loss(student_attention: jax.Array, teacher_attention: jax.Array, *,
                       logits: bool = False) -> jax.Array:
    """The mean row-wise ``KL(teacher || student)`` of two ``(batch, heads, N, N)`` maps.

    TypeError for non-float maps or a non-bool ``logits``; ValueError for maps of other
    ranks or shapes, or (concrete probability maps) rows that are not distributions."""
    if not isinstance(logits, bool):
        raise TypeError(f"logits must be True or False, got {logits!r}")
    s, t = _checks.pair(student_attention, teacher_attention, "student_attention", "teacher_attention")
    if s.ndim != 4 or s.shape[-1] != s.shape[-2]:
        raise ValueError(f"attention maps must have shape (batch, heads, N, N), got {tuple(s.shape)}")
    if logits:
        log_s = jax.nn.log_softmax(s, axis=-1)
        log_t = jax.lax.stop_gradient(jax.nn.log_softmax(t, axis=-1))
        kl = jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1)
    else:
        _check_rows(s, "student_attention")
        _check_rows(t, "teacher_attention")
        t = jax.lax.stop_gradient(t)
        kl = jnp.sum(xlogy(t, t) - xlogy(t, s), axis=-1)
    return jnp.mean(kl)
