"""Ullrich et al.'s soft weight-sharing as a pipeline recipe, and what follows its snap.

:func:`soft_weight_sharing` is the paper's compression: retrain under a learned 17-component
Gaussian-mixture prior (:class:`~wsjax.compress.SoftShare`; component 0 fixed at zero with
mixing weight ``pi_zero``, Gamma hyper-priors on the precisions, the mixture learned by its
own Adam with one learning rate per field) and then merge close components and snap every
selected weight to its component's mean (:class:`~wsjax.compress.Snap`). The defaults are
the paper's (their tutorial's learning rates and priors) except where noted on the
function.

After a snap the net's weights take a few distinct values and its zeros are the pruning;
:func:`snapped_start` turns such weights (e.g. read back from their stored file) into a
pipeline start whose masks are those zeros, so a later :class:`~wsjax.compress.Quantize`
(Deep Compression's trained quantization) keeps them while it fine-tunes the values.

References: Ullrich, Meeds & Welling, `Soft Weight-Sharing for Neural Network Compression
<https://arxiv.org/abs/1702.04008>`_, ICLR 2017; Han, Mao & Dally, `Deep Compression
<https://arxiv.org/abs/1510.00149>`_, ICLR 2016.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import numpy as np

from wsjax.compress.pipeline import Pipeline
from wsjax.compress.stages import Snap, SoftShare, _nonzero_masks
from wsjax.compress.state import Compressed, start
from wsjax.sharing.paths import KERNELS

#: Ullrich et al.'s learning rates (their tutorial): the weights' Adam rate and the mixture
#: fields' own Adam rates.
WEIGHT_LR = 5e-4
MIXTURE_LR = {"means": 1e-4, "log_vars": 3e-3, "logits": 3e-3}
#: Their Gamma hyper-priors on the precisions 1/sigma^2, ``(alpha, beta)``: the non-zero
#: components' and the (narrower) zero component's; modes at sigma ~ 0.02.
PRECISION_PRIOR = (250.0, 0.1)
ZERO_PRECISION_PRIOR = (5000.0, 2.0)
PI_ZERO = 0.999
NUM_COMPONENTS = 17
INIT_STD = 0.02


def mixture_optimizer(means: float = MIXTURE_LR["means"], log_vars: float = MIXTURE_LR["log_vars"],
                      logits: float = MIXTURE_LR["logits"]):
    """Adam with one learning rate per mixture field (Ullrich et al.: means 1e-4, log-variances
    and mixing logits 3e-3)."""
    import optax

    from wsjax import penalties

    labels = penalties.Mixture(means="means", log_vars="log_vars", logits="logits")
    return optax.multi_transform({"means": optax.adam(means), "log_vars": optax.adam(log_vars),
                                  "logits": optax.adam(logits)}, labels)


def soft_weight_sharing(tau: float, epochs: int, *, lr: float = WEIGHT_LR, pi_zero: float = PI_ZERO,
                        num_components: int = NUM_COMPONENTS, mixture_init: str = "kmeans",
                        init_std: float | None = INIT_STD, mixture_lr: Mapping[str, float] | None = None,
                        precision_prior=PRECISION_PRIOR, zero_precision_prior=ZERO_PRECISION_PRIOR,
                        kl_threshold: float = 1e-2, include: Any = KERNELS, alpha: float = 0.1,
                        scope: str = "global") -> Pipeline:
    """Ullrich et al.'s retraining and snap: ``Pipeline([SoftShare(...), Snap(...)])``.

    The objective is their ``mean cross-entropy + (tau / N) (-log p(w) - log p(mixture))``
    (``N`` training examples), so ``tau`` is their loss weight. ``mixture_lr`` overrides
    fields of :data:`MIXTURE_LR`; the priors are ``(alpha, beta)`` of Gamma priors on the
    precisions (``None`` switches one off). A pruned start's zeros stay zero. ``scope``:
    one prior over every selected leaf (``'global'``, the paper) or one per leaf (``'layer'``).

    Departure from the paper, by default: ``mixture_init='kmeans'`` puts the free means at
    1-D k-means centres of the weights, where Ullrich et al. spread them evenly over the
    weights' range (``'even'``).
    """
    from wsjax import penalties

    lrs = {**MIXTURE_LR, **(mixture_lr or {})}
    unknown = set(lrs) - set(MIXTURE_LR)
    if unknown:
        raise ValueError(f"mixture_lr fields are {sorted(MIXTURE_LR)}, got {sorted(unknown)}")
    gamma = lambda ab: None if ab is None else penalties.Gamma(alpha=float(ab[0]), beta=float(ab[1]))  # noqa: E731
    hyper = penalties.HyperPrior(precision=gamma(precision_prior), zero_precision=gamma(zero_precision_prior))
    return Pipeline([
        SoftShare(tau=tau, epochs=epochs, lr=lr, pi_zero=pi_zero, num_components=num_components,
                  mixture_init=mixture_init, init_std=init_std, hyper_prior=hyper, include=include,
                  mixture_optimizer=functools.partial(mixture_optimizer, **lrs), alpha=alpha, scope=scope),
        Snap(kl_threshold=kl_threshold, include=include)])


def snapped_start(params, include: Any = KERNELS) -> Compressed:
    """A pipeline start from snapped weights: ``W = params``, with the zeros of the selected
    leaves as the masks every later stage keeps (what :class:`~wsjax.compress.Snap` leaves)."""
    params = jax.device_get(params)
    return start(params)._replace(masks=_nonzero_masks(params, include))


def distinct_values(params, include: Any = KERNELS) -> int:
    """The number of distinct nonzero values over the selected leaves (the codebook entries a
    snapped or quantized net actually uses)."""
    from wsjax.penalties import selected_leaves

    flat = np.concatenate([np.ravel(np.asarray(v)) for v in selected_leaves(params, include).values()])
    return int(np.unique(flat[flat != 0]).size)


def max_abs_difference(a, b) -> float:
    """The largest ``|a - b|`` over two pytrees of the same structure (e.g. how far a
    codebook starts from the snapped weights it clusters)."""
    return float(max(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))
                     for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)))
