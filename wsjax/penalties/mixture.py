"""A Gaussian-mixture prior over weights: the density behind soft weight sharing.

Weights are modelled as independent draws from ``p(w) = sum_j pi_j N(w | mu_j, sigma_j^2)``.
The mixture is a :class:`Mixture` of unconstrained arrays: means, log-variances and mixing
logits (``pi = softmax(logits)``), as Nowlan & Hinton optimise them. Everything here is
pure, jit/grad/vmap safe, and computed in log space with ``logsumexp``; the log-variances are
clipped to ``[MIN_LOG_VAR, MAX_LOG_VAR]`` and squared standardised distances capped at
``MAX_SQUARED_Z``, so that tiny variances or huge weights give large finite numbers, never
``inf``/``NaN``.

The gradient of ``-log p(w)`` on one weight is ``sum_j r_j(w) (w - mu_j) / sigma_j^2`` with
responsibilities ``r_j(w) = pi_j N(w | mu_j, sigma_j^2) / p(w)``; autodiff of
:func:`log_prior` computes exactly this.

References: Nowlan & Hinton, `Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, Neural Computation 1992;
Ullrich, Meeds & Welling, `Soft Weight-Sharing for Neural Network Compression
<https://arxiv.org/abs/1702.04008>`_, ICLR 2017.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wsjax.penalties.leaves import Include, selected_leaves

MIN_LOG_VAR = -30.0  # sigma ~ 3e-7: far below any weight scale, far above float32 underflow
MAX_LOG_VAR = 30.0
# Cap on (w - mu)^2 / sigma^2: a weight more than 1e6 standard deviations from a component
# feels no pull from it, and the gradients (and Adam's squared-gradient state) stay finite.
MAX_SQUARED_Z = 1e12
_LOG_2PI = math.log(2.0 * math.pi)


class Mixture(NamedTuple):
    """Unconstrained parameters of a ``K``-component 1-D Gaussian mixture.

    Attributes:
      means: ``(K,)`` component means ``mu_j``.
      log_vars: ``(K,)`` log-variances ``log sigma_j^2``.
      logits: ``(K,)`` mixing logits; ``pi = softmax(logits)``.

    By convention, when a mixture has a zero component (Ullrich et al.) it is component 0.
    """

    means: jax.Array
    log_vars: jax.Array
    logits: jax.Array


def check_mixture(mixture: Mixture) -> int:
    """Validate shapes (host side, outside jit is best) and return ``K``."""
    if not isinstance(mixture, Mixture):
        raise TypeError(f"expected a Mixture, got {type(mixture).__name__}")
    shapes = [jnp.shape(a) for a in mixture]
    if len(shapes[0]) != 1 or any(s != shapes[0] for s in shapes):
        raise ValueError(
            f"Mixture fields must be 1-D arrays of one length K; got shapes "
            f"means={shapes[0]}, log_vars={shapes[1]}, logits={shapes[2]}"
        )
    if shapes[0][0] < 1:
        raise ValueError("a Mixture needs at least one component")
    return shapes[0][0]


def as_float(x) -> jax.Array:
    """``x`` as an array of at least float32 precision (float64 stays float64)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def mixing_log_probs(mixture: Mixture) -> jax.Array:
    """``log pi_j`` (``(K,)``), a stable log-softmax of the logits."""
    return jax.nn.log_softmax(as_float(mixture.logits))


def variances(mixture: Mixture) -> jax.Array:
    """``sigma_j^2`` after clipping the log-variances to the stable range."""
    return jnp.exp(jnp.clip(as_float(mixture.log_vars), MIN_LOG_VAR, MAX_LOG_VAR))


def component_log_probs(w: jax.Array, mixture: Mixture) -> jax.Array:
    """``log pi_j + log N(w | mu_j, sigma_j^2)`` for every weight and component.

    Args:
      w: weights of any shape.
      mixture: a ``K``-component :class:`Mixture`.

    Returns:
      array of shape ``w.shape + (K,)``, at least float32.
    """
    w = as_float(w)[..., None]
    means = as_float(mixture.means)
    log_vars = jnp.clip(as_float(mixture.log_vars), MIN_LOG_VAR, MAX_LOG_VAR)
    squared_z = jnp.minimum(jnp.square(w - means) * jnp.exp(-log_vars), MAX_SQUARED_Z)
    return mixing_log_probs(mixture) - 0.5 * (squared_z + log_vars + _LOG_2PI)


def log_density(w: jax.Array, mixture: Mixture) -> jax.Array:
    """``log p(w)`` elementwise (same shape as ``w``)."""
    return jax.nn.logsumexp(component_log_probs(w, mixture), axis=-1)


def responsibilities(w: jax.Array, mixture: Mixture) -> jax.Array:
    """``r_j(w) = pi_j N(w | mu_j, sigma_j^2) / p(w)``, shape ``w.shape + (K,)``, rows sum to 1."""
    return jax.nn.softmax(component_log_probs(w, mixture), axis=-1)


def log_prior(params: Any, mixture: Mixture, *, include: Include = r".*") -> jax.Array:
    """``sum_i log p(w_i)`` over the float leaves of ``params`` whose path matches ``include``.

    Use ``-strength * log_prior(params, mixture)`` inside a loss to train the weights (and,
    if you differentiate with respect to it, the mixture) jointly, as Nowlan & Hinton do.
    """
    leaves = selected_leaves(params, include)
    return sum(jnp.sum(log_density(w, mixture)) for w in leaves.values())


def constrain(
    mixture: Mixture, *, zero_component: bool = False, pi_zero: float | None = None
) -> Mixture:
    """Project a mixture onto its constraints (differentiably, so fixed parts get zero gradient).

    * log-variances are clipped to ``[MIN_LOG_VAR, MAX_LOG_VAR]``;
    * with ``zero_component``, ``mu_0 = 0``;
    * with ``zero_component`` and a fixed ``pi_zero``, ``logits[0]`` is set so that
      ``softmax(logits)[0] == pi_zero`` while the other components keep their relative weights.

    The result is an ordinary :class:`Mixture`: every density function reads it unchanged.
    """
    means, log_vars, logits = (as_float(a) for a in mixture)
    log_vars = jnp.clip(log_vars, MIN_LOG_VAR, MAX_LOG_VAR)
    if zero_component:
        means = means.at[0].set(0.0)
        if pi_zero is not None:
            if not 0.0 < pi_zero < 1.0:
                raise ValueError(f"pi_zero must lie in (0, 1), got {pi_zero}")
            if logits.shape[0] < 2:
                raise ValueError("a fixed pi_zero needs at least one non-zero component")
            rest = jax.nn.logsumexp(logits[1:])
            logits = logits.at[0].set(math.log(pi_zero) - math.log1p(-pi_zero) + rest)
    elif pi_zero is not None:
        raise ValueError("pi_zero only applies to a mixture with a zero component")
    return Mixture(means, log_vars, logits)
