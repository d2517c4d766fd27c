"""Pruning: magnitude masks (per layer or global), sparsity schedules, gradual pruning as an
optax transformation, and structured neuron pruning that returns a smaller model.

Masks plug into :func:`wsjax.sharing.mask.masked` (``W = theta * M``) for retraining.

References: Han, Pool, Tran & Dally, `Learning both Weights and Connections for Efficient
Neural Networks <https://arxiv.org/abs/1506.02626>`_, 2015; Zhu & Gupta, `To prune, or not
to prune <https://arxiv.org/abs/1710.01878>`_, 2017.
"""

from wsjax.pruning.bytes_budget import kept_fraction_for_bytes
from wsjax.pruning.gradual import GradualPruningState, gradual_pruning
from wsjax.pruning.keep import keep_pruned
from wsjax.pruning import lottery
from wsjax.pruning.magnitude import (
    SCOPES,
    density,
    layer_density,
    sparsity_masks,
    threshold_masks,
)
from wsjax.pruning.rounds import PruneRound, iterative_prune
from wsjax.pruning.sensitivity import FRACTIONS, allocate_kept, sensitivity_scan, tolerated_kept
from wsjax.pruning.schedules import iterative, one_shot, polynomial, sparsity_at
from wsjax.pruning.structured import (
    METHODS,
    NeuronPruned,
    mlp_flops,
    mlp_params,
    neuron_importance,
    prune_neurons,
)
