"""Soft weight sharing as an optax gradient transformation.

The weights are pulled towards the means of a Gaussian mixture prior whose parameters are
learned at the same time. With total cost ``L(w) + strength * (-log p(w) - log p(mixture))``
the transformation, placed before the optimiser, adds ``strength * d(-log p)/dw =
strength * sum_j r_j(w) (w - mu_j) / sigma_j^2`` to the selected weights' gradients and
takes one step of its own optimiser (Adam with its own learning rate by default, as
Ullrich et al. use separate learning rates for the mixture) on the mixture parameters::

    tx = optax.chain(
        soft_weight_sharing(strength=5e-3, num_components=17, include=r"kernel"),
        optax.adam(1e-3),
    )

References: Nowlan & Hinton, `Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, Neural Computation 1992;
Ullrich, Meeds & Welling, `Soft Weight-Sharing for Neural Network Compression
<https://arxiv.org/abs/1702.04008>`_, ICLR 2017.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wsjax import checks
from wsjax.penalties.additive import Strength, check_strength, strength_at
from wsjax.penalties.hyperpriors import HyperPrior, hyper_log_prior
from wsjax.penalties.init import init_mixture
from wsjax.penalties.leaves import Include, add_to_selected, selected_leaves
from wsjax.penalties.mixture import Mixture, check_mixture, constrain, log_prior
from wsjax.sharing.paths import matcher


class SoftWeightSharingState(NamedTuple):
    """State of :func:`soft_weight_sharing`.

    Attributes:
      mixture: the current mixture prior (already constrained: ``mu_0 = 0`` etc.).
      mixture_opt_state: the mixture optimiser's state.
      count: number of updates taken (for a strength schedule).
      penalty: ``-log p(w) - log p(mixture)`` at the params of the last update (at ``init``'s
        params before the first), without the strength factor; for logging.
    """

    mixture: Mixture
    mixture_opt_state: optax.OptState
    count: jax.Array
    penalty: jax.Array


def penalty_value(
    params: Any,
    mixture: Mixture,
    *,
    include: Include = r".*",
    hyper_prior: HyperPrior | None = None,
    zero_component: bool = False,
) -> jax.Array:
    """The soft-sharing penalty ``-log p(w) - log p(mixture)`` (no strength factor).

    ``zero_component`` only tells the hyper-prior which component is the zero one.
    """
    value = -log_prior(params, mixture, include=include)
    return value - hyper_log_prior(mixture, hyper_prior, zero_component=zero_component)


def soft_weight_sharing(
    strength: Strength,
    num_components: int = 17,
    *,
    init: str | Mixture = "even",
    include: Include = r".*",
    zero_component: bool = True,
    pi_zero: float = 0.999,
    learn_pi_zero: bool = False,
    hyper_prior: HyperPrior | None = None,
    mixture_optimizer: optax.GradientTransformation | None = None,
    mixture_learning_rate: float = 5e-4,
    init_std: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Soft weight sharing (a learned Gaussian-mixture prior) as an optax transformation.

    Args:
      strength: ``tau``, the weight of the penalty relative to the data loss: a non-negative
        scalar (a traced one works too, e.g. ``vmap``-ped over a grid of strengths) or a
        schedule ``count -> strength``.
      num_components: ``K`` (including the zero component). Ignored when ``init`` is a Mixture.
      init: ``'even'`` or ``'kmeans'`` (see :func:`~wsjax.penalties.init_mixture`, run on the
        params given to ``init``), or an explicit :class:`Mixture`.
      include: path regex (or predicate) choosing the leaves the prior applies to.
      zero_component: component 0 is held at mean 0 (its weights are pruned by snapping).
      pi_zero: the zero component's mixing weight: fixed, or the starting value when
        ``learn_pi_zero`` is set.
      learn_pi_zero: learn ``pi_0`` (optionally under ``hyper_prior.pi_zero``, a Beta prior).
      hyper_prior: Gamma / inverse-Gamma priors on the variances, Beta prior on ``pi_0``.
      mixture_optimizer: optax transformation stepping the mixture; default
        ``optax.adam(mixture_learning_rate)``.
      mixture_learning_rate: learning rate of the default mixture optimiser.
      init_std: initial component standard deviation (see ``init_mixture``).

    Returns:
      A ``GradientTransformationExtraArgs``; its ``update(updates, state, params)`` requires
      ``params``.
    """
    check_strength(strength)
    matcher(include)  # validate early
    mixture_learning_rate = checks.number(mixture_learning_rate, "mixture_learning_rate", lo=0.0, lo_open=True)
    if init_std is not None:
        init_std = checks.number(init_std, "init_std", lo=0.0, lo_open=True)
    if not zero_component and learn_pi_zero:
        raise ValueError("learn_pi_zero needs zero_component=True")
    if isinstance(init, Mixture):
        k = check_mixture(init)
        if zero_component and k < 2:
            raise ValueError("a zero component needs a mixture with at least 2 components")
    elif init not in ("even", "kmeans"):
        raise ValueError(f"init must be 'even', 'kmeans' or a Mixture, got {init!r}")
    else:
        checks.integer(num_components, "num_components", lo=2 if zero_component else 1)
    if zero_component:
        pi_zero = checks.number(pi_zero, "pi_zero", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if hyper_prior is not None:
        # Surfaces a bad hyper-prior (wrong type, zero-component terms without one) now.
        hyper_log_prior(
            Mixture(*(jnp.zeros((2,)) for _ in range(3))), hyper_prior,
            zero_component=zero_component,
        )
    fixed_pi_zero = pi_zero if (zero_component and not learn_pi_zero) else None
    optimizer = mixture_optimizer or optax.adam(mixture_learning_rate)

    def project(mixture: Mixture) -> Mixture:
        return constrain(mixture, zero_component=zero_component, pi_zero=fixed_pi_zero)

    def objective(weights, mixture):
        return penalty_value(
            weights, project(mixture), hyper_prior=hyper_prior, zero_component=zero_component
        )

    def init_fn(params):
        weights = selected_leaves(params, include)
        if isinstance(init, Mixture):
            mixture = init
        else:
            mixture = init_mixture(
                weights, num_components, method=init, zero_component=zero_component,
                pi_zero=pi_zero, init_std=init_std,
            )
        return _initial_state(weights, mixture)

    @jax.jit
    def _initial_state(weights, mixture):
        mixture = project(mixture)
        return SoftWeightSharingState(
            mixture=mixture,
            mixture_opt_state=optimizer.init(mixture),
            count=jnp.zeros((), jnp.int32),
            penalty=jnp.asarray(objective(weights, mixture), jnp.float32),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError(
                "soft_weight_sharing needs the current params: call "
                "update(updates, state, params)"
            )
        return _update(updates, state, params)

    @jax.jit  # one compiled step even when called eagerly; inlined under an outer jit
    def _update(updates, state, params):
        weights = selected_leaves(params, include)
        value, (grad_w, grad_mix) = jax.value_and_grad(objective, argnums=(0, 1))(
            weights, state.mixture
        )
        tau = strength_at(strength, state.count)
        updates = add_to_selected(updates, jax.tree.map(lambda g: tau * g, grad_w))
        grad_mix = jax.tree.map(lambda g: tau * g, grad_mix)
        steps, opt_state = optimizer.update(grad_mix, state.mixture_opt_state, state.mixture)
        mixture = project(optax.apply_updates(state.mixture, steps))
        new_state = SoftWeightSharingState(
            mixture=mixture,
            mixture_opt_state=opt_state,
            count=optax.safe_increment(state.count),
            penalty=jnp.asarray(value, jnp.float32),
        )
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
