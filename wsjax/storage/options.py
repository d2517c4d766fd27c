"""Per-layer storage options: relative-index width and encoding.

Each option may be given as a single value for every layer, a mapping from regular
expressions to values (the first pattern that ``re.search``-es the layer's '/'-joined path
wins; e.g. ``{'Conv': 8, 'Dense': 5}``), or a callable ``path -> value``; an unmatched layer
or a ``None`` value falls back to the default (:func:`wsjax.sharing.paths.per_layer`).
Defaults follow Deep Compression (:func:`wsjax.sharing.paths.han_bits`): 8-bit relative
indices for conv kernels (4-D leaves), 5-bit for everything else; encoding
``'auto'`` (the smallest eligible encoding for 2-D and larger leaves, ``'raw'`` for
biases and scalars).

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import numpy as np

from wsjax.sharing.paths import PerLayer as LayerOption, han_bits, per_layer
from wsjax.storage.layers import ENCODINGS, check_index_bits


def index_bits_for(option: LayerOption, path: str, array: np.ndarray) -> int:
    return per_layer(option, path, name="index_bits", default=han_bits(array.ndim), check=check_index_bits)


def encoding_for(option: LayerOption, path: str, array: np.ndarray) -> str:
    value = per_layer(option, path, name="encoding")
    if value is None or value == "auto":
        return "auto" if array.ndim >= 2 else "raw"
    if value not in ENCODINGS:
        raise ValueError(f"{path}: unknown encoding {value!r}; choose from {ENCODINGS + ('auto',)}")
    return value
