"""Redundancy in trained nets: spectra, similarity within and between layers, predictability.

* :mod:`~wsjax.analysis.spectra`: singular values of kernels, effective and energy ranks.
* :mod:`~wsjax.analysis.similarity`: linear CKA, principal angles, matched filters.
* :mod:`~wsjax.analysis.representations`: every layer's output of a linen model on a dataset.
* :mod:`~wsjax.analysis.predictability`: Denil's within-layer prediction by kernel ridge
  regression, and how much of a layer the other layers' subspaces explain at equal rank.
* :mod:`~wsjax.analysis.collisions`: how many virtual weights each hash bucket serves, by layer.
"""

from wsjax.analysis.collisions import collision_load

from wsjax.analysis.spectra import as_matrix, effective_rank, energy_rank, singular_values, spectra
from wsjax.analysis.similarity import (
    MatchedFilters,
    cka_matrix,
    linear_cka,
    matched_filter_cosine,
    principal_angles,
    subspace_overlap,
)
from wsjax.analysis.representations import DEFAULT_MODULES, hidden_representations
from wsjax.analysis.predictability import (
    explained_by_others,
    explained_by_self,
    redundancy_table,
    within_layer_predictability,
)
