"""Argument checks shared by the distillation losses: one place, one wording."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wsjax import checks


def temperature(value) -> float:
    """A softmax temperature: a finite number > 0 (a traced value passes unchecked)."""
    return checks.number(value, "temperature", lo=0.0, lo_open=True, traced=True)


def alpha(value) -> float:
    """The hard-label weight: a number in [0, 1] (a traced value passes unchecked)."""
    return checks.number(value, "alpha", lo=0.0, hi=1.0, traced=True)


def floats(x, name: str) -> jax.Array:
    """``x`` as a floating-point array; TypeError for bool, integer or non-array input."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        what = f"dtype {dtype}" if dtype is not None else type(x).__name__
        raise TypeError(f"{name} must be a floating-point array, got {what}")
    return jnp.asarray(x)


def pair(student, teacher, student_name: str, teacher_name: str, min_ndim: int = 1):
    """Student and teacher arrays of one floating shape (``min_ndim`` axes at least)."""
    s, t = floats(student, student_name), floats(teacher, teacher_name)
    if s.ndim < min_ndim:
        raise ValueError(f"{student_name} needs at least {min_ndim} axes, got shape {tuple(s.shape)}")
    if s.shape != t.shape:
        raise ValueError(f"{student_name} has shape {tuple(s.shape)} but {teacher_name} has shape "
                         f"{tuple(t.shape)}; they must match")
    return s, t


def labels(y, logits: jax.Array) -> jax.Array:
    """Integer class labels with ``logits.shape[:-1]``."""
    dtype = getattr(y, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
        what = f"dtype {dtype}" if dtype is not None else type(y).__name__
        raise TypeError(f"labels must be integer class indices, got {what}")
    if tuple(y.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"labels have shape {tuple(y.shape)} but the logits {tuple(logits.shape)} need "
                         f"{tuple(logits.shape[:-1])}")
    return jnp.asarray(y)
