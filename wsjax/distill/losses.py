"""Distillation losses on output logits: Hinton's softened targets and Ba & Caruana's logit
regression.

Hinton's loss. With ``p_T(z) = softmax(z / T)`` the student (logits ``s``) learns from the
teacher (logits ``t``) by the cross-entropy ``-sum_k p_T(t)_k log p_T(s)_k`` between the two
softened distributions. Its gradient with respect to ``s`` is ``(p_T(s) - p_T(t)) / T``,
which for a large ``T`` (and zero-mean logits) is close to ``(s - t) / (K T^2)`` for ``K``
classes: the soft term shrinks as ``1 / T^2``, so it is multiplied by ``T^2`` to keep its
weight against the hard-label term the same whatever ``T`` is (Hinton et al., Sec. 2 and
2.1). The full objective mixes it with the ordinary cross-entropy to the true labels::

    hinton_loss = alpha * CE(labels, softmax(s)) + (1 - alpha) * T^2 * CE(p_T(t), p_T(s))

``alpha`` is the weight of the *hard-label* term (``alpha = 1`` is plain training on the
labels; Hinton found a small weight on it works best). The soft term is a cross-entropy
rather than a KL divergence: the two differ by the teacher's entropy, a constant with no
gradient.

Logit regression (Ba & Caruana): the student regresses the teacher's logits by least
squares, ``0.5 * ||s - t||^2`` per example (the squared L2 norm over classes, halved),
averaged over the examples, as their objective ``1/(2T) sum_t ||g(x_t) - z_t||^2``. For a
large ``T`` Hinton's soft term approaches this loss divided by ``K``.

Every loss averages over all leading axes (examples, and tokens if any); the teacher is a
target (``stop_gradient``): no gradient flows into it.

References: Hinton, Vinyals & Dean, `Distilling the Knowledge in a Neural Network
<https://arxiv.org/abs/1503.02531>`_, 2015; Ba & Caruana, `Do Deep Nets Really Need to be
Deep? <https://arxiv.org/abs/1312.6184>`_, 2014.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from wsjax.distill import _checks


def soft_targets(teacher_logits: jax.Array, temperature: float = 1.0) -> jax.Array:
    """``softmax(teacher_logits / temperature)`` over the last axis."""
    t = _checks.floats(teacher_logits, "teacher_logits")
    return jax.nn.softmax(t / _checks.temperature(temperature), axis=-1)


def hard_label_loss(student_logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The ordinary softmax cross-entropy to integer ``labels``, averaged."""
    s = _checks.floats(student_logits, "student_logits")
    y = _checks.labels(labels, s)
    return optax.softmax_cross_entropy_with_integer_labels(s, y).mean()


def soft_cross_entropy(student_logits: jax.Array, teacher_logits: jax.Array, temperature: float = 1.0) -> jax.Array:
    """``-sum_k softmax(t/T)_k log softmax(s/T)_k``, averaged (no ``T^2`` factor)."""
    s, t = _checks.pair(student_logits, teacher_logits, "student_logits", "teacher_logits")
    T = _checks.temperature(temperature)
    p = jax.lax.stop_gradient(jax.nn.softmax(t / T, axis=-1))
    return -jnp.mean(jnp.sum(p * jax.nn.log_softmax(s / T, axis=-1), axis=-1))


def hinton_loss(student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, *,
                temperature: float, alpha: float) -> jax.Array:
    """``alpha * CE(labels) + (1 - alpha) * T^2 * soft_cross_entropy`` (module docstring).

    Raises TypeError for non-float logits, non-integer labels or a bool/str setting, and
    ValueError for ``temperature <= 0``, a NaN or infinite setting, ``alpha`` outside
    ``[0, 1]`` or student and teacher logits (or labels) of different shapes.
    """
    T, a = _checks.temperature(temperature), _checks.alpha(alpha)
    soft = soft_cross_entropy(student_logits, teacher_logits, T)
    hard = hard_label_loss(student_logits, labels)
    return a * hard + (1.0 - a) * T * T * soft


def logit_regression_loss(student_logits: jax.Array, teacher_logits: jax.Array) -> jax.Array:
    """``0.5 * sum_k (s_k - t_k)^2``, averaged over the examples (Ba & Caruana's L2 mimic).

    Equals ``0.5 * K * mean((s - t)^2)`` for ``K`` logits per example."""
    s, t = _checks.pair(student_logits, teacher_logits, "student_logits", "teacher_logits")
    d = s - jax.lax.stop_gradient(t)
    return 0.5 * jnp.mean(jnp.sum(d * d, axis=-1))
