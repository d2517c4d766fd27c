"""Relative-index sparse positions with filler zeros (Deep Compression's CSR variant).

A matrix is flattened in C (row-major) order; for a Flax ``Dense`` kernel of shape
``(in, out)`` that walks along each input unit's outgoing weights, for an ``HWIO`` conv
kernel along the output channels first. Instead of absolute positions, each stored entry
keeps its *gap*: the number of zeros skipped since the previous stored entry (for the first
entry, since the start). A gap lies in ``[0, 2**index_bits - 1]``; a longer run of zeros is
bridged by *filler* entries -- stored entries whose value is zero -- each skipping
``2**index_bits - 1`` zeros and then occupying one zero position itself. So a run of ``g``
zeros before a nonzero needs ``g // 2**index_bits`` fillers, and the nonzero then keeps the
gap ``g % 2**index_bits``. Zeros after the last nonzero are implied by the shape.

Deep Compression stores the difference of positions in the index field; storing the number
of skipped zeros instead (difference minus one) uses all ``2**index_bits`` codes.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016,
Section 2 and Figure 2.
"""

from __future__ import annotations

import numpy as np

from wsjax.storage.errors import StorageError


def encode_positions(positions, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaps (int64) and filler flags (bool) of the stored entries for sorted ``positions``.

    The returned arrays have one element per stored entry: fillers and nonzeros in position
    order, ``is_filler[k]`` telling which is which.
    """
    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    if positions.size and (positions[0] < 0 or (np.diff(positions) <= 0).any()):
        raise ValueError("positions must be non-negative and strictly increasing")
    span = 1 << index_bits
    skipped = np.diff(positions, prepend=-1) - 1
    n_fillers = skipped // span
    remainder = skipped % span
    per_nonzero = n_fillers + 1
    owner = np.repeat(np.arange(positions.size), per_nonzero)
    first = np.cumsum(per_nonzero) - per_nonzero
    rank = np.arange(owner.size) - first[owner]
    is_filler = rank < n_fillers[owner]
    gaps = np.where(is_filler, span - 1, remainder[owner])
    return gaps, is_filler


def decode_positions(gaps, is_filler, index_bits: int, n_elements: int) -> np.ndarray:
    """Positions of the nonzero entries; checks the gaps against the encoder's rules."""
    gaps = np.asarray(gaps, dtype=np.int64)
    is_filler = np.asarray(is_filler, dtype=bool)
    span = 1 << index_bits
    if gaps.size and (gaps.min() < 0 or gaps.max() >= span):
        raise StorageError(f"sparse index: gap outside [0, {span - 1}]")
    if is_filler.any():
        if is_filler[-1]:
            raise StorageError("sparse index: the last stored entry is a filler")
        if (gaps[is_filler] != span - 1).any():
            raise StorageError("sparse index: a filler entry with a short gap")
    positions = np.cumsum(gaps + 1) - 1
    if positions.size and positions[-1] >= n_elements:
        raise StorageError(
            f"sparse index: position {int(positions[-1])} beyond the layer's "
            f"{n_elements} element(s)"
        )
    return positions[~is_filler]
