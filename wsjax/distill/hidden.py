"""Hidden-state distillation through a learned linear projection.

A student's hidden layer (width ``d_s``) rarely has the teacher's width (``d_t``), so the
student's states ``h`` are mapped by a trained linear projection ``P = (W, b)`` into the
teacher's space and pulled towards the teacher's states ``g`` by least squares::

    hidden_state_loss = 0.5 * ||h W + b - g||^2   per example (and token), averaged.

``P`` is trained with the student (put it beside the student's parameters in the ``theta``
that :func:`wsjax.train.fit` optimises) and thrown away afterwards. This is the "hint"
objective of FitNets and the hidden-state loss of TinyBERT; MiniViT, whose students share
weights across layers, distils hidden states and attention in the same spirit (see
:mod:`wsjax.distill.attention`). The teacher's states are targets (``stop_gradient``).

References: Romero et al., `FitNets: Hints for Thin Deep Nets
<https://arxiv.org/abs/1412.6550>`_, 2015; Jiao et al., `TinyBERT
<https://arxiv.org/abs/1909.10351>`_, 2020; Zhang et al., `MiniViT: Compressing Vision
Transformers with Weight Multiplexing <https://arxiv.org/abs/2204.07154>`_, 2022.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.distill import _checks


def init_projection(key: jax.Array, student_dim: int, teacher_dim: int, dtype=jnp.float32) -> dict:
    """``{'kernel': (student_dim, teacher_dim), 'bias': (teacher_dim,)}``: a LeCun-normal
    kernel (variance ``1 / student_dim``) and a zero bias."""
    ds = checks.positive_int(student_dim, "student_dim")
    dt = checks.positive_int(teacher_dim, "teacher_dim")
    kernel = jax.random.normal(key, (ds, dt), dtype) / jnp.sqrt(jnp.asarray(ds, dtype))
    return {"kernel": kernel, "bias": jnp.zeros((dt,), dtype)}


def _check_projection(projection, student_dim: int, teacher_dim: int):
    if not (isinstance(projection, dict) and set(projection) == {"kernel", "bias"}):
        got = sorted(projection) if isinstance(projection, dict) else type(projection).__name__
        raise TypeError(f"projection must be a dict with 'kernel' and 'bias' (init_projection), got {got}")
    w = _checks.floats(projection["kernel"], "projection['kernel']")
    b = _checks.floats(projection["bias"], "projection['bias']")
    if w.shape != (student_dim, teacher_dim) or b.shape != (teacher_dim,):
        raise ValueError(f"the projection's kernel {tuple(w.shape)} and bias {tuple(b.shape)} do not map "
                         f"student width {student_dim} to teacher width {teacher_dim}: need kernel "
                         f"{(student_dim, teacher_dim)} and bias {(teacher_dim,)}")
    return w, b


def project(projection: dict, student_hidden: jax.Array) -> jax.Array:
    """``student_hidden @ kernel + bias`` (the last axis mapped to the teacher's width)."""
    h = _checks.floats(student_hidden, "student_hidden")
    width = np.shape(projection["kernel"])[-1] if isinstance(projection, dict) and "kernel" in projection else 0
    w, b = _check_projection(projection, h.shape[-1], width)
    return h @ w + b


def hidden_state_loss(student_hidden: jax.Array, teacher_hidden: jax.Array, projection: dict) -> jax.Array:
    """``0.5 * ||project(projection, h) - g||^2`` over the last axis, averaged over the others.

    ``student_hidden``: ``(..., d_s)``; ``teacher_hidden``: ``(..., d_t)`` with the same
    leading axes. TypeError for non-float input; ValueError for mismatched shapes."""
    h = _checks.floats(student_hidden, "student_hidden")
    g = _checks.floats(teacher_hidden, "teacher_hidden")
    if h.ndim < 1 or h.shape[:-1] != g.shape[:-1]:
        raise ValueError(f"student_hidden {tuple(h.shape)} and teacher_hidden {tuple(g.shape)} must share "
                         "every axis but the last (examples, tokens)")
    w, b = _check_projection(projection, h.shape[-1], g.shape[-1])
    d = h @ w + b - jax.lax.stop_gradient(g)
    return 0.5 * jnp.mean(jnp.sum(d * d, axis=-1))
