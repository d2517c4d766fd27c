"""The relative-index width that makes each sparse layer's stream smallest.

Deep Compression stores a pruned layer's positions as gaps of a fixed width (8 bits for
conv, 5 for fc in the paper), inserting a filler zero whenever a gap overflows: a narrow
width costs fillers, a wide one bits per gap, and Huffman coding changes the balance. The
best width depends on the layer's sparsity pattern, so :func:`smallest_index_bits` encodes
the model at every candidate width and keeps, per layer, the width of its smallest record.
Layers are encoded independently, so the per-layer choices together give the smallest file
over all combinations. It changes no weight: only bytes.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016
(Sec. 4, relative indices with filler zeros).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from wsjax import checks
from wsjax.storage.fileformat import _UNLIMITED, encode, size_report
from wsjax.storage.layers import MAX_INDEX_BITS

CANDIDATES = tuple(range(2, 13))


def smallest_index_bits(params: Any, candidates: Sequence[int] = CANDIDATES, **encode_options) -> dict[str, int]:
    """``{'^layer name$': width}`` for every layer stored sparse at some candidate width (a
    ``(transform, state)`` pair is accepted as :func:`wsjax.storage.encode` takes it; its
    record names are the names). The keys are anchored patterns, so the result goes
    straight to ``index_bits`` of :func:`~wsjax.storage.save` / :func:`~wsjax.storage.encode`."""
    candidates = sorted({checks.integer(b, "index width") for b in candidates})
    if not candidates or candidates[0] < 1 or candidates[-1] > MAX_INDEX_BITS:
        raise ValueError(f"index widths must lie in 1..{MAX_INDEX_BITS}, got {candidates}")
    if "index_bits" in encode_options:
        raise TypeError("smallest_index_bits chooses index_bits itself")
    best: dict[str, tuple[int, int]] = {}
    for b in candidates:
        for layer in size_report(encode(params, index_bits=b, **encode_options), limits=_UNLIMITED).layers:
            if layer.index_bits is not None and (layer.name not in best or layer.stored_bytes < best[layer.name][0]):
                best[layer.name] = (layer.stored_bytes, b)
    return {f"^{re.escape(name)}$": b for name, (_, b) in best.items()}
