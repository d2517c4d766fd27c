"""Initial mixtures for soft weight sharing: means spread evenly, or k-means of trained weights.

Ullrich et al. start from a pretrained net with 16 means spread evenly over the weight range
plus a component fixed at zero holding ``pi_0 = 0.999`` of the mass; initialising from a 1-D
k-means of the trained weights (as Deep Compression does for its codebook) is the other
natural choice.

References: Ullrich, Meeds & Welling, `Soft Weight-Sharing for Neural Network Compression
<https://arxiv.org/abs/1702.04008>`_, ICLR 2017; Han, Mao & Dally, `Deep Compression
<https://arxiv.org/abs/1510.00149>`_, ICLR 2016.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.penalties.leaves import Include, selected_leaves
from wsjax.penalties.mixture import MAX_LOG_VAR, MIN_LOG_VAR, Mixture
from wsjax.sharing.kmeans import kmeans_1d

METHODS = ("even", "kmeans")


@functools.partial(jax.jit, static_argnames=("pi_zero",))
def _add_zero_component(means, log_vars, logits, *, pi_zero: float) -> Mixture:
    """Prepend a component at 0 (with the variance of the free component nearest 0) holding
    mixing weight ``pi_zero``; the free components share ``1 - pi_zero`` as before."""
    nearest = jnp.argmin(jnp.abs(means))
    head = math.log(pi_zero) - math.log1p(-pi_zero) + jax.nn.logsumexp(logits)
    return Mixture(
        jnp.concatenate([jnp.zeros((1,), means.dtype), means]),
        jnp.concatenate([log_vars[nearest][None], log_vars]),
        jnp.concatenate([jnp.reshape(head, (1,)), logits]),
    )


def _all_weights(params: Any, include: Include) -> list[jax.Array]:
    return list(selected_leaves(params, include).values())


def init_mixture(
    params: Any,
    num_components: int,
    *,
    method: str = "even",
    zero_component: bool = True,
    pi_zero: float = 0.999,
    include: Include = r".*",
    init_std: float | None = None,
) -> Mixture:
    """A ``num_components``-component mixture fitted to the selected weights of ``params``.

    Args:
      params: a pytree (or a single array) of weights.
      num_components: ``K``, counting the zero component when there is one.
      method: ``'even'``: the free means evenly spaced from the smallest to the largest
        weight, equal variances and mixing weights (traceable, works under ``jit``);
        ``'kmeans'``: the free means are 1-D k-means centres of the weights
        (:func:`wsjax.sharing.kmeans.kmeans_1d`, started from the ``(i + 1/2)/k`` quantiles,
        ``init='density'``), each with its cluster's variance and share of the weights
        (needs concrete arrays).
      zero_component: make component 0 a component at ``mu_0 = 0`` with mixing weight
        ``pi_zero`` (the rest share ``1 - pi_zero``).
      pi_zero: initial (or fixed, see :func:`~wsjax.penalties.soft_weight_sharing`) ``pi_0``.
      include: path regex choosing the leaves the prior models.
      init_std: one standard deviation for every component; by default the spacing of the
        even means (``'even'``) or each cluster's own spread (``'kmeans'``).

    Returns:
      a float32 :class:`Mixture` with ``K`` components.
    """
    num_components = checks.integer(
        num_components, f"num_components (zero_component={zero_component})", lo=2 if zero_component else 1)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if zero_component:
        pi_zero = checks.number(pi_zero, "pi_zero", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if init_std is not None:
        init_std = checks.number(init_std, "init_std", lo=0.0, lo_open=True)
    leaves = _all_weights(params, include)
    n_free = num_components - 1 if zero_component else num_components
    if method == "even":
        free = _even(leaves, n_free, init_std)
    else:
        free = _kmeans(leaves, n_free, init_std)
    if zero_component:
        return _add_zero_component(*free, pi_zero=float(pi_zero))
    return Mixture(*(jnp.asarray(a, jnp.float32) for a in free))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _even(leaves: list[jax.Array], n: int, init_std: float | None):
    w = jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in leaves])
    lo, hi = jnp.min(w), jnp.max(w)
    width = hi - lo
    # Degenerate range (e.g. all-equal weights): spread unit width around the value.
    lo = jnp.where(width > 0, lo, lo - 0.5)
    width = jnp.where(width > 0, width, 1.0)
    if n == 1:
        means = jnp.reshape(lo + 0.5 * width, (1,))
        spacing = 0.5 * width
    else:
        means = lo + width * jnp.arange(n, dtype=jnp.float32) / (n - 1)
        spacing = width / (n - 1)
    std = spacing if init_std is None else jnp.float32(init_std)
    log_vars = jnp.clip(jnp.full((n,), 2.0 * jnp.log(std), jnp.float32), MIN_LOG_VAR, MAX_LOG_VAR)
    return means, log_vars, jnp.zeros((n,), jnp.float32)


def _kmeans(leaves: list[jax.Array], n: int, init_std: float | None):
    if any(isinstance(w, jax.core.Tracer) for w in leaves):
        raise TypeError(
            "init_mixture(method='kmeans') runs on the host and needs concrete weights; "
            "call it outside jit (or use method='even')"
        )
    x = np.concatenate([np.asarray(w, np.float64).ravel() for w in leaves])
    result = kmeans_1d(x.astype(np.float32), n, init="density")
    centres = np.asarray(result.centroids, np.float64)
    assign = np.asarray(result.assignments)
    width = float(x.max() - x.min()) or 1.0
    floor = (1e-3 * width) ** 2
    counts = np.bincount(assign, minlength=n).astype(np.float64)
    sq = np.bincount(assign, weights=(x - centres[assign]) ** 2, minlength=n)
    var = np.maximum(sq / np.maximum(counts, 1.0), floor)
    if init_std is not None:
        var = np.full((n,), float(init_std) ** 2)
    shares = np.maximum(counts / counts.sum(), 1e-6)
    log_vars = np.clip(np.log(var), MIN_LOG_VAR, MAX_LOG_VAR)
    return (
        jnp.asarray(centres.astype(np.float32)),
        jnp.asarray(log_vars.astype(np.float32)),
        jnp.asarray(np.log(shares / shares.sum()).astype(np.float32)),
    )
