"""Han's pruning-only ("P") storage count: CSR with float32 values and relative indices.

Deep Compression (Han, Mao & Dally 2016, Sec. 2 and Table 1's "P" column) stores a pruned
layer in compressed sparse form: each stored entry is a 32-bit value plus its relative index
(the gap to the previous entry) in a few bits; a gap larger than the index width can hold
takes filler zeros. :mod:`wsjax.storage` writes only quantized layers sparsely (its sparse
records hold codebook indices), so this pruned-but-unquantized size is counted, not written.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import math

import numpy as np

from wsjax.sharing import flatten_paths, han_bits
from wsjax.storage.sparse import encode_positions


def csr_float32_bytes(params, index_bits=None) -> int:
    """Bytes of ``params`` as Han's "P" storage.

    Every stored entry of a leaf with 2 or more dimensions (nonzero or filler zero) costs 32
    value bits plus the relative index (``index_bits(ndim)``; default
    :func:`wsjax.sharing.han_bits`: 8 for conv kernels, 5 for the rest, as in
    :mod:`wsjax.storage`); 1-D leaves are raw float32. Headers are not counted (a few
    bytes per layer).
    """
    width = han_bits if index_bits is None else index_bits
    bits = 0
    for w in flatten_paths(params).values():
        w = np.asarray(w)
        if w.ndim < 2:
            bits += 32 * w.size
            continue
        b = width(w.ndim)
        gaps, _ = encode_positions(np.flatnonzero(w.ravel()), b)
        bits += gaps.size * (32 + b)
    return math.ceil(bits / 8)
