"""L2 weight decay, weight elimination and soft weight sharing in one optax chain, each at a
strength given as data, so that one compiled program trains lanes of every penalty.

:func:`penalty_chain` takes ``hyper = (tau_l2, tau_elimination, tau_soft, beta)`` (traced:
``vmap`` it over a grid); a zero strength adds nothing to the gradients, so a lane with only
``tau_l2 > 0`` is plain weight decay, and so on. Soft sharing follows Nowlan & Hinton's
prior as :mod:`wsjax.penalties.soft_sharing` implements it: ``K`` components, component 0
at mean 0 with a learned mixing weight starting at ``pi_zero``, the other means spread
evenly over the weights' range when the chain is initialised, and Gamma(1, beta) priors on
the precisions against variance collapse.

References: Nowlan & Hinton, `Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, 1992; Weigend, Rumelhart &
Huberman, `Generalization by Weight-Elimination <https://papers.nips.cc/paper/323>`_, 1991.
"""

from __future__ import annotations

import optax

from wsjax.penalties.elimination import weight_elimination
from wsjax.penalties.hyperpriors import Gamma, HyperPrior
from wsjax.penalties.l2 import l2
from wsjax.penalties.mixture import Mixture
from wsjax.penalties.soft_sharing import soft_weight_sharing

METHODS = ("none", "l2", "weight_elimination", "soft_sharing")


def hyper(method: str, tau: float, beta: float) -> tuple[float, float, float, float]:
    """The :func:`penalty_chain` vector of one penalty (``'soft_sharing'`` or a name starting
    with it, e.g. ``'soft_sharing_K5'``) at strength ``tau``."""
    family = "soft_sharing" if method.startswith("soft_sharing") else method
    if family not in METHODS:
        raise ValueError(f"unknown penalty {method!r}; known: {METHODS}")
    return (tau if family == "l2" else 0.0, tau if family == "weight_elimination" else 0.0,
            tau if family == "soft_sharing" else 0.0, beta)


def penalty_chain(hyper, num_components: int, *, include=r"kernel", w0: float = 1.0, pi_zero: float = 0.5,
               mixture_learning_rate: float = 1e-2) -> optax.GradientTransformation:
    """``chain(l2, weight_elimination(w0), soft_weight_sharing(K))`` at the strengths of
    ``hyper`` (see the module docstring), on the leaves matching ``include``."""
    gamma = Gamma(1.0, hyper[3])
    return optax.chain(
        l2(hyper[0], include=include),
        weight_elimination(hyper[1], w0, include=include),
        soft_weight_sharing(
            hyper[2], num_components, init="even", include=include, zero_component=True, pi_zero=pi_zero,
            learn_pi_zero=True, hyper_prior=HyperPrior(precision=gamma, zero_precision=gamma),
            mixture_learning_rate=mixture_learning_rate,
        ),
    )


def mixture_of(state) -> Mixture:
    """The soft-sharing mixture in a :func:`penalty_chain` chain's state."""
    return state[2].mixture
