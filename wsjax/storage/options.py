"""Per-layer storage options: relative-index width and encoding.

Each option may be given as a single value for every layer, a mapping from regular
expressions to values (the first pattern that ``re.search``-es the layer's '/'-joined path
wins; e.g. ``{'Conv': 8, 'Dense': 5}``), or a callable ``path -> value``; an unmatched layer
or a ``None`` value falls back to the default. Defaults follow Deep Compression: 8-bit
relative indices for conv kernels (4-D leaves), 5-bit for everything else; encoding
``'auto'`` (the smallest eligible encoding for 2-D and larger leaves, ``'raw'`` for
biases and scalars).

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Union

import numpy as np

from wsjax.storage.layers import ENCODINGS, check_index_bits

LayerOption = Union[None, Any, Mapping[str, Any], Callable[[str], Any]]


def default_index_bits(array: np.ndarray) -> int:
    """8 bits for conv kernels (4-D), 5 bits otherwise."""
    return 8 if array.ndim == 4 else 5


def _lookup(option: LayerOption, path: str):
    if option is None:
        return None
    if callable(option):
        return option(path)
    if isinstance(option, Mapping):
        for pattern, value in option.items():
            if re.search(pattern, path):
                return value
        return None
    return option


def index_bits_for(option: LayerOption, path: str, array: np.ndarray) -> int:
    value = _lookup(option, path)
    if value is None:
        return default_index_bits(array)
    return check_index_bits(value, path)


def encoding_for(option: LayerOption, path: str, array: np.ndarray) -> str:
    value = _lookup(option, path)
    if value is None or value == "auto":
        return "auto" if array.ndim >= 2 else "raw"
    if value not in ENCODINGS:
        raise ValueError(f"{path}: unknown encoding {value!r}; choose from {ENCODINGS + ('auto',)}")
    return value
