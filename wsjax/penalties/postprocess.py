"""After soft-sharing training: merge near-identical components, snap weights to their means.

Ullrich et al. finish by merging mixture components whose KL divergence is small and then
setting every weight to the mean of the component most responsible for it; the weights
taken by the zero component become exactly 0 (pruned), and the rest take at most ``K - 1``
distinct values, ready for a codebook + sparse encoding.

Both steps run on the host: the number of components after merging depends on the data.

References: Ullrich, Meeds & Welling, `Soft Weight-Sharing for Neural Network Compression
<https://arxiv.org/abs/1702.04008>`_, ICLR 2017.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.penalties.leaves import Include, replace_selected, selected_leaves
from wsjax.penalties.mixture import (
    MAX_LOG_VAR,
    MIN_LOG_VAR,
    Mixture,
    check_mixture,
    component_log_probs,
)


def gaussian_kl(mu_p, var_p, mu_q, var_q) -> np.ndarray:
    """``KL(N(mu_p, var_p) || N(mu_q, var_q))`` (broadcasting, float64)."""
    mu_p, var_p, mu_q, var_q = (np.asarray(a, np.float64) for a in (mu_p, var_p, mu_q, var_q))
    return 0.5 * (np.log(var_q / var_p) + (var_p + (mu_p - mu_q) ** 2) / var_q - 1.0)


def _host_mixture(mixture: Mixture):
    means = np.asarray(mixture.means, np.float64)
    var = np.exp(np.clip(np.asarray(mixture.log_vars, np.float64), MIN_LOG_VAR, MAX_LOG_VAR))
    logits = np.asarray(mixture.logits, np.float64)
    pis = np.exp(logits - logits.max())
    return means, var, pis / pis.sum()


def merge_components(
    mixture: Mixture, *, kl_threshold: float = 0.1, zero_component: bool = True
) -> Mixture:
    """Repeatedly merge the closest pair of components while their symmetric KL is small.

    The distance is ``(KL(p||q) + KL(q||p)) / 2``; for equal variances it is
    ``(mu_p - mu_q)^2 / (2 sigma^2)``. A merged pair keeps the total mixing weight and
    matches the pair's mean and variance (moment matching). With ``zero_component`` a pair
    that contains component 0 stays component 0 with mean exactly 0.

    Returns:
      a :class:`Mixture` with ``K' <= K`` components (host-computed, float32).
    """
    check_mixture(mixture)
    kl_threshold = checks.number(kl_threshold, "kl_threshold", lo=0.0, finite=False)
    means, var, pis = (list(a) for a in _host_mixture(mixture))
    while len(means) > 1:
        m, v = np.asarray(means), np.asarray(var)
        dist = 0.5 * (
            gaussian_kl(m[:, None], v[:, None], m[None], v[None])
            + gaussian_kl(m[None], v[None], m[:, None], v[:, None])
        )
        dist[np.tril_indices(len(means))] = np.inf
        i, j = np.unravel_index(np.argmin(dist), dist.shape)  # i < j
        if not dist[i, j] < kl_threshold:
            break
        total = pis[i] + pis[j]
        mean = (pis[i] * means[i] + pis[j] * means[j]) / total
        if zero_component and i == 0:
            mean = 0.0
        second = (pis[i] * (var[i] + means[i] ** 2) + pis[j] * (var[j] + means[j] ** 2)) / total
        means[i], var[i], pis[i] = mean, max(second - mean**2, 1e-300), total
        del means[j], var[j], pis[j]
    return Mixture(
        jnp.asarray(means, jnp.float32),
        jnp.asarray(np.clip(np.log(var), MIN_LOG_VAR, MAX_LOG_VAR), jnp.float32),
        jnp.asarray(np.log(np.maximum(pis, 1e-300)), jnp.float32),
    )


class SnapStats(NamedTuple):
    """What snapping did to the selected weights.

    Attributes:
      num_weights: number of selected weights.
      num_nonzero: weights not exactly 0 after snapping.
      nonzero_fraction: ``num_nonzero / num_weights``.
      distinct_values: number of distinct values among the snapped weights (0 included).
      component_counts: weights assigned to each component, ``(K,)``.
    """

    num_weights: int
    num_nonzero: int
    nonzero_fraction: float
    distinct_values: int
    component_counts: np.ndarray


@jax.jit
def assign_components(w: jax.Array, mixture: Mixture) -> jax.Array:
    """Index of the most responsible component for every weight (``argmax_j r_j(w)``)."""
    return jnp.argmax(component_log_probs(w, mixture), axis=-1)


def snap_to_components(
    params: Any, mixture: Mixture, *, include: Include = r".*", zero_component: bool = True
) -> tuple[Any, SnapStats]:
    """Replace each selected weight by the mean of its most responsible component.

    With ``zero_component``, weights assigned to component 0 become exactly ``0.0``.
    Returns ``(new_params, stats)``; unselected leaves are returned unchanged.
    """
    k = check_mixture(mixture)
    means = jnp.asarray(mixture.means, jnp.float32)
    if zero_component:
        means = means.at[0].set(0.0)
    leaves = selected_leaves(params, include)
    snapped, counts = {}, np.zeros(k, np.int64)
    for path, w in leaves.items():
        idx = assign_components(w, mixture)
        snapped[path] = means[idx].astype(w.dtype)
        counts += np.bincount(np.asarray(idx).ravel(), minlength=k)
    values = np.concatenate([np.asarray(v).ravel() for v in snapped.values()])
    num_nonzero = int(np.count_nonzero(values))
    stats = SnapStats(
        num_weights=int(values.size),
        num_nonzero=num_nonzero,
        nonzero_fraction=num_nonzero / max(values.size, 1),
        distinct_values=int(np.unique(values).size),
        component_counts=counts,
    )
    return replace_selected(params, snapped), stats
