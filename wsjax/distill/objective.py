"""Distillation as a loss for the one training engine, :func:`wsjax.train.fit`.

``fit`` trains ``loss_fn(theta, x_batch, y_batch)``. A distillation method is a loss on
``(student_logits, teacher_logits, labels)`` (:func:`method_loss`); it becomes a ``loss_fn``

* over cached teacher logits (:func:`cached_loss_fn`, ``y`` = :func:`pack_targets` rows), or
* over a teacher called in every step (:func:`on_the_fly_loss_fn`, ``y`` = the labels).

The student is any ``apply(theta, x) -> logits``. Its ``theta`` may be the free parameters of
a weight-space transform (:func:`transformed_apply`: hashed, tied, pruned, quantized), so
"compress by distillation into a shared student" is one ``fit`` call::

    t = sharing.hashed(1 / 8); state = t.init(key, params)
    apply = transformed_apply(lambda p, x: model.apply({'params': p}, x), t, state)
    loss_fn = cached_loss_fn(apply, method_loss('hinton', temperature=4.0, alpha=0.1))
    fit(loss_fn, state.theta, optax.adam(1e-3), (x, pack_targets(y, teacher_logits(...))), ...)

References: Hinton, Vinyals & Dean, `Distilling the Knowledge in a Neural Network
<https://arxiv.org/abs/1503.02531>`_, 2015; Ba & Caruana, `Do Deep Nets Really Need to be
Deep? <https://arxiv.org/abs/1312.6184>`_, 2014.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

from wsjax.distill import _checks
from wsjax.distill.losses import hard_label_loss, hinton_loss, logit_regression_loss
from wsjax.distill.teacher import unpack_targets
from wsjax.sharing.core import SharedParams, Transform, bind

#: ``'hard'``: labels only; ``'hinton'``: :func:`hinton_loss`; ``'logits'``: logit regression
METHODS = ("hard", "hinton", "logits")

Loss = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def method_loss(method: str, *, temperature: float | None = None, alpha: float | None = None) -> Loss:
    """``loss(student_logits, teacher_logits, labels)`` of a named method.

    ``'hinton'`` needs ``temperature`` and ``alpha`` (checked here, once); the other methods
    take neither (a ValueError if given, so a config cannot carry a setting that does
    nothing)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "hinton":
        if temperature is None or alpha is None:
            raise ValueError(f"'hinton' needs a temperature and an alpha, got {temperature!r} and {alpha!r}")
        _checks.temperature(temperature), _checks.alpha(alpha)  # now, not in the first step
        return lambda s, t, y: hinton_loss(s, t, y, temperature=temperature, alpha=alpha)
    if temperature is not None or alpha is not None:
        raise ValueError(f"method {method!r} takes no temperature or alpha, got {temperature!r} and {alpha!r}")
    if method == "hard":
        return lambda s, t, y: hard_label_loss(s, y)
    return lambda s, t, y: logit_regression_loss(s, t)


def cached_loss_fn(student_apply: Callable[[Any, jax.Array], jax.Array], loss: Loss):
    """``loss_fn(theta, x, y)`` for ``fit`` where ``y`` holds :func:`pack_targets` rows."""

    def loss_fn(theta, x, y):
        labels, teacher = unpack_targets(y)
        return loss(student_apply(theta, x), teacher, labels)

    return loss_fn


def on_the_fly_loss_fn(student_apply: Callable[[Any, jax.Array], jax.Array],
                       teacher_apply: Callable[[Any, jax.Array], jax.Array], teacher_params: Any, loss: Loss):
    """``loss_fn(theta, x, labels)`` for ``fit`` that runs the teacher on every batch."""

    def loss_fn(theta, x, y):
        teacher = jax.lax.stop_gradient(teacher_apply(teacher_params, x))
        return loss(student_apply(theta, x), teacher, y)

    return loss_fn


def transformed_apply(apply_fn: Callable[[Any, jax.Array], jax.Array], transform: Transform,
                      state: SharedParams) -> Callable[[Any, jax.Array], jax.Array]:
    """``apply(theta, x) = apply_fn(W(theta), x)``: a student trained through a weight-space
    transform (``W = transform.apply(SharedParams(theta, state.frozen))``)."""
    to_params = bind(transform, state)
    return lambda theta, x: apply_fn(to_params(theta), x)
