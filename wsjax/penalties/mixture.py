"""A Gaussian-mixture prior over weights: the density behind soft weight sharing.

Weights are modelled as independent draws from ``p(w) = sum_j pi_j N(w | mu_j, sigma_j^2)``.
The mixture is a :class:`Mixture` of unconstrained arrays: means, log-variances and mixing
logits (``pi = softmax(logits)``), as Nowlan & Hinton optimise them. Everything here is
pure, jit/grad/vmap safe, and computed in log space with ``logsumexp``; the log-variances are
clipped to ``[MIN_LOG_VAR, MAX_LOG_VAR]`` and squared standardised distances capped at
``MAX_SQUARED_Z``, so that tiny variances or huge weights give large finite numbers, never
``inf``/``NaN``.

The gradient of ``-log p(w)`` on one weight is ``sum_j r_j(w) (w - mu_j) / sigma_j^2`` with
responsibilities ``r_j(w) = pi_j N(w | mu_j, sigma_j^2) / p(w)``. :func:`log_prior` sums
``log p`` with :func:`sum_log_density`, whose custom VJP computes exactly these gradients
(and those of the means, log-variances and logits) in two passes over the weights, one
component at a time, instead of autodiff's ``(N, K)`` intermediates (about 2x faster on CPU).

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
import numpy as np

from wsjax import checks
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
    """Validate shapes and values and return ``K``.

    A NaN or infinite mean, log-variance or logit raises ValueError (it would make every
    density NaN); values are checked where they are concrete (outside ``jit`` / ``grad``).
    """
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
    for field, a in zip(Mixture._fields, mixture):
        if isinstance(a, jax.core.Tracer):
            continue  # inside jit / grad: checked where the mixture is concrete
        values = np.asarray(a, np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"the Mixture's {field} must be finite, got {values.tolist()}")
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


#: Mixtures with more components than this use plain autodiff of :func:`log_density`
#: (the custom VJP unrolls one fused pass per component).
MAX_UNROLLED_COMPONENTS = 32


def _component_terms(mixture: Mixture):
    """Per component: mean, clipped log-variance, precision and ``log pi - (log var + log 2pi)/2``."""
    means = as_float(mixture.means)
    log_vars = jnp.clip(as_float(mixture.log_vars), MIN_LOG_VAR, MAX_LOG_VAR)
    precisions = jnp.exp(-log_vars)
    offsets = mixing_log_probs(mixture) - 0.5 * (log_vars + _LOG_2PI)
    return means, log_vars, precisions, offsets


def _flat_log_density(w: jax.Array, mixture: Mixture) -> jax.Array:
    """``log p(w)`` of a flat ``w``, accumulated one component at a time (max, then sum of exps)."""
    means, _, precisions, offsets = _component_terms(mixture)
    k = means.shape[0]

    def log_component(j):
        d = w - means[j]
        return offsets[j] - 0.5 * jnp.minimum(d * d * precisions[j], MAX_SQUARED_Z)

    top = log_component(0)
    for j in range(1, k):
        top = jnp.maximum(top, log_component(j))
    total = sum(jnp.exp(log_component(j) - top) for j in range(k))
    return top + jnp.log(total)


@jax.custom_vjp
def _sum_log_density(w: jax.Array, mixture: Mixture) -> jax.Array:
    return jnp.sum(_flat_log_density(jnp.ravel(as_float(w)), mixture))


def _sum_log_density_fwd(w, mixture):
    flat = jnp.ravel(as_float(w))
    log_p = _flat_log_density(flat, mixture)
    return jnp.sum(log_p), (w, log_p, mixture)


def _sum_log_density_bwd(res, g):
    w, log_p, mixture = res
    flat = jnp.ravel(as_float(w))
    means, log_vars, precisions, offsets = _component_terms(mixture)
    k = means.shape[0]
    grad_w = jnp.zeros_like(flat)
    r_sums, mean_grads, log_var_grads = [], [], []
    for j in range(k):
        d = flat - means[j]
        squared_z = d * d * precisions[j]
        inside = squared_z < MAX_SQUARED_Z  # the cap has zero derivative
        r = jnp.exp(offsets[j] - 0.5 * jnp.minimum(squared_z, MAX_SQUARED_Z) - log_p)
        pull = jnp.where(inside, r * d * precisions[j], 0.0)  # r_j (w - mu_j) / sigma_j^2
        grad_w = grad_w - pull
        r_sums.append(jnp.sum(r))
        mean_grads.append(jnp.sum(pull))
        log_var_grads.append(jnp.sum(r * (jnp.where(inside, 0.5 * squared_z, 0.0) - 0.5)))
    r_sums = jnp.stack(r_sums)
    raw_log_vars = as_float(mixture.log_vars)
    in_range = (raw_log_vars >= MIN_LOG_VAR) & (raw_log_vars <= MAX_LOG_VAR)
    pis = jnp.exp(mixing_log_probs(mixture))
    cotangent = Mixture(
        means=(g * jnp.stack(mean_grads)).astype(jnp.asarray(mixture.means).dtype),
        log_vars=(g * jnp.where(in_range, jnp.stack(log_var_grads), 0.0)).astype(raw_log_vars.dtype),
        logits=(g * (r_sums - flat.shape[0] * pis)).astype(jnp.asarray(mixture.logits).dtype),
    )
    grad = (g * grad_w).reshape(jnp.shape(w)).astype(jnp.asarray(w).dtype)
    return grad, cotangent


_sum_log_density.defvjp(_sum_log_density_fwd, _sum_log_density_bwd)


def sum_log_density(w: jax.Array, mixture: Mixture) -> jax.Array:
    """``sum(log p(w))`` over all entries of ``w``, with a memory-light custom VJP.

    Equal to ``jnp.sum(log_density(w, mixture))``; its gradients are the closed forms
    ``d/dw = -sum_j r_j (w - mu_j) / sigma_j^2``, ``d/dmu_j = sum_i r_ij (w_i - mu_j) /
    sigma_j^2``, ``d/dlog sigma_j^2 = sum_i r_ij (z_ij^2 - 1) / 2`` and ``d/dlogit_j =
    sum_i r_ij - N pi_j``, computed one component at a time.
    """
    if check_mixture(mixture) > MAX_UNROLLED_COMPONENTS:
        return jnp.sum(log_density(w, mixture))
    return _sum_log_density(w, mixture)


def log_prior(params: Any, mixture: Mixture, *, include: Include = r".*") -> jax.Array:
    """``sum_i log p(w_i)`` over the float leaves of ``params`` whose path matches ``include``.

    Use ``-strength * log_prior(params, mixture)`` inside a loss to train the weights (and,
    if you differentiate with respect to it, the mixture) jointly, as Nowlan & Hinton do.
    """
    check_mixture(mixture)
    leaves = selected_leaves(params, include)
    return sum(sum_log_density(w, mixture) for w in leaves.values())


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
            pi_zero = checks.number(pi_zero, "pi_zero", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
            if logits.shape[0] < 2:
                raise ValueError("a fixed pi_zero needs at least one non-zero component")
            rest = jax.nn.logsumexp(logits[1:])
            logits = logits.at[0].set(math.log(pi_zero) - math.log1p(-pi_zero) + rest)
    elif pi_zero is not None:
        raise ValueError("pi_zero only applies to a mixture with a zero component")
    return Mixture(means, log_vars, logits)
