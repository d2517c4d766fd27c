"""Hard weight sharing as weight-space transformations ``W = T(theta)``."""

from wsjax.sharing.core import (
    SharedParams,
    Static,
    Transform,
    bind,
    chain,
    count_params,
    flatten_paths,
    free_params,
    identity,
    path_str,
    per_leaf,
    select,
    virtual_params,
)
from wsjax.sharing.local import broadcast_positions, convolution
from wsjax.sharing.hashing import HashSpec, hash_indices, hashed, hashed_take, hashing, uniform_budgets
from wsjax.sharing.lowrank import low_rank, low_rank_leaves, rank_for_budget, svd_factors
from wsjax.sharing.random_edges import random_edges, random_edges_leaves
from wsjax.sharing.tying import assignment, copies, tied, tied_in_order, tying, tying_in_order
from wsjax.sharing.predicted import (
    KernelDictionary,
    MatrixDictionary,
    denil_first_layer,
    fraction_predicted,
    predicted,
    predicted_leaves,
)
from wsjax.sharing.shared_basis import (
    equal_budget_ranks,
    joint_reconstruction_error,
    per_layer_reconstruction_error,
    shared_basis,
    shared_basis_leaves,
    shared_rank_for_budget,
)
from wsjax.sharing.mask import apply_masks, check_masks, mask_counts, masked
from wsjax.sharing.codebook import (
    CodebookFrozen,
    codebook,
    codebook_bits,
    codebook_weights,
    quantize,
    quantize_leaf,
)
from wsjax.sharing.kmeans import KMeansResult, init_centroids, kmeans_1d
from wsjax.sharing.paths import KERNELS, KERNELS_AND_BIASES, han_bits, matcher, per_layer
from wsjax.sharing.lowbit import (LowBit, binary, clip_latent, lowbit_leaves, lowbit_weights,
                                  make_spec, ternary)
