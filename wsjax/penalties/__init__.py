"""Soft weight sharing (a learned Gaussian-mixture prior), weight elimination and L2, as optax
transformations and as pure penalty functions.

References: Nowlan & Hinton, `Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, 1992; Ullrich, Meeds & Welling,
`Soft Weight-Sharing for Neural Network Compression <https://arxiv.org/abs/1702.04008>`_, 2017;
Weigend, Rumelhart & Huberman, `Generalization by Weight-Elimination
<https://papers.nips.cc/paper/323>`_, 1991.
"""

from wsjax.penalties.additive import AdditivePenaltyState, additive_penalty
from wsjax.penalties.elimination import (
    weight_elimination,
    weight_elimination_grad,
    weight_elimination_penalty,
)
from wsjax.penalties.hyperpriors import Beta, Gamma, HyperPrior, InverseGamma, hyper_log_prior
from wsjax.penalties.init import init_mixture
from wsjax.penalties.l2 import l2, l2_penalty
from wsjax.penalties.leaves import selected_leaves
from wsjax.penalties.mixture import (
    MAX_LOG_VAR,
    MIN_LOG_VAR,
    Mixture,
    component_log_probs,
    constrain,
    log_density,
    log_prior,
    mixing_log_probs,
    responsibilities,
    sum_log_density,
    variances,
)
from wsjax.penalties.postprocess import (
    SnapStats,
    assign_components,
    gaussian_kl,
    merge_components,
    snap_to_components,
)
from wsjax.penalties.soft_sharing import (
    SoftWeightSharingState,
    penalty_value,
    soft_weight_sharing,
)
