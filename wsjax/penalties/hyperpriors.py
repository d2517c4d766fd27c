"""Hyper-priors on the mixture: Gamma / inverse-Gamma on the variances, Beta on ``pi_0``.

Ullrich et al. put Gamma priors on the components' precisions ``lambda_j = 1/sigma_j^2``
(equivalently inverse-Gamma priors on the variances), with a stronger one on the zero
component so that it stays narrow, and may learn the zero component's mixing weight
``pi_0`` under a Beta prior. Each prior here returns its full log density (normalising
constants included), evaluated at the mixture's unconstrained parameters.

References: Ullrich, Meeds & Welling, `Soft Weight-Sharing for Neural Network Compression
<https://arxiv.org/abs/1702.04008>`_, ICLR 2017.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln, gammaln

from wsjax import checks
from wsjax.penalties.mixture import MAX_LOG_VAR, MIN_LOG_VAR, Mixture, as_float, mixing_log_probs


def _check_positive(name: str, **values: float) -> None:
    """Positive scalars required; traced values (a ``vmap``-ped hyper-parameter) pass unchecked."""
    for k, v in values.items():
        checks.number(v, f"{name}: {k}", lo=0.0, lo_open=True, traced=True)


@dataclasses.dataclass(frozen=True)
class _OnVariance:
    """A shape/scale prior on a component's variance, evaluated at its log-variance:
    ``a log b - lgamma(a) - exponent * log_var - b exp(-log_var)``."""

    alpha: float
    beta: float

    def __post_init__(self):
        _check_positive(type(self).__name__, alpha=self.alpha, beta=self.beta)

    def log_prob(self, log_var: jax.Array) -> jax.Array:
        log_var = jnp.clip(log_var, MIN_LOG_VAR, MAX_LOG_VAR)
        a, b = self.alpha, self.beta
        return a * jnp.log(b) - gammaln(a) - self._exponent() * log_var - b * jnp.exp(-log_var)


class Gamma(_OnVariance):
    """``Gamma(alpha, beta)`` (shape, rate) on the precision ``lambda = 1/sigma^2``:
    ``log p(lambda)`` at ``lambda = exp(-log_var)``."""

    def _exponent(self):
        return self.alpha - 1.0


class InverseGamma(_OnVariance):
    """``InvGamma(alpha, beta)`` (shape, scale) on the variance ``sigma^2``:
    ``log p(sigma^2)`` at ``sigma^2 = exp(log_var)``."""

    def _exponent(self):
        return self.alpha + 1.0


@dataclasses.dataclass(frozen=True)
class Beta:
    """``Beta(a, b)`` on the zero component's mixing weight ``pi_0``."""

    a: float
    b: float

    def __post_init__(self):
        _check_positive("Beta", a=self.a, b=self.b)

    def log_prob_from_logs(self, log_p: jax.Array, log_1mp: jax.Array) -> jax.Array:
        """``log Beta(p)`` given ``log p`` and ``log(1 - p)`` (stable near 0 and 1)."""
        return (self.a - 1.0) * log_p + (self.b - 1.0) * log_1mp - betaln(self.a, self.b)


VariancePrior = Union[Gamma, InverseGamma]


class HyperPrior(NamedTuple):
    """Hyper-priors of a mixture; ``None`` switches a term off.

    Attributes:
      precision: prior on each non-zero component's variance.
      zero_precision: prior on the zero component's variance (component 0).
      pi_zero: Beta prior on the zero component's mixing weight.
    """

    precision: Optional[VariancePrior] = None
    zero_precision: Optional[VariancePrior] = None
    pi_zero: Optional[Beta] = None


def hyper_log_prior(
    mixture: Mixture, hyper_prior: HyperPrior | None, *, zero_component: bool
) -> jax.Array:
    """``log p(mixture)`` under ``hyper_prior`` (0.0 when it is ``None`` or empty)."""
    log_vars = as_float(mixture.log_vars)
    total = jnp.zeros((), log_vars.dtype)
    if hyper_prior is None:
        return total
    if not isinstance(hyper_prior, HyperPrior):
        raise TypeError(f"hyper_prior must be a HyperPrior, got {type(hyper_prior).__name__}")
    if not zero_component and (
        hyper_prior.zero_precision is not None or hyper_prior.pi_zero is not None
    ):
        raise ValueError(
            "zero_precision and pi_zero hyper-priors need a mixture with a zero component"
        )
    start = 1 if zero_component else 0
    if hyper_prior.precision is not None:
        total = total + jnp.sum(hyper_prior.precision.log_prob(log_vars[start:]))
    if zero_component and hyper_prior.zero_precision is not None:
        total = total + hyper_prior.zero_precision.log_prob(log_vars[0])
    if zero_component and hyper_prior.pi_zero is not None:
        log_pis = mixing_log_probs(mixture)
        log_rest = jax.nn.logsumexp(log_pis[1:])
        total = total + hyper_prior.pi_zero.log_prob_from_logs(log_pis[0], log_rest)
    return total
