"""Deep Compression storage: pruned and quantized params to bytes and back, bit exact.

A params pytree whose layers were pruned and quantized is stored as relative-index sparse
matrices with filler zeros, per-layer codebooks, and Huffman-coded cluster indices and
gaps; biases and anything else unpruned are stored plainly. The file is versioned and
checksummed, and :class:`SizeReport` accounts for every byte of it. Decoding is bounded by
explicit resource :class:`Limits` (:mod:`wsjax.storage.limits`), checked before anything is
allocated, so that a hostile file raises :class:`StorageError` instead of exhausting memory.

A transform's free state is stored by the codec its ``Transform.codec`` names
(:mod:`wsjax.storage.codecs`, one module per codec, registered by name): hashed layers as
their buckets and hash specs, low-rank layers as their factors, tied layers as one copy plus
each layer's extras; the rest of the params as weights.

>>> report = save("lenet.wsjax", params)        # doctest: +SKIP
>>> print(report.to_markdown())                  # doctest: +SKIP
>>> params2 = load("lenet.wsjax")                # doctest: +SKIP
>>> save("hashed.wsjax", (transform, state))     # doctest: +SKIP
>>> params3, states = load("hashed.wsjax", with_state=True)  # doctest: +SKIP

References: Han, Mao & Dally, `Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from wsjax.storage.errors import StorageError
from wsjax.storage.fileformat import (
    FILE_OVERHEAD_BYTES,
    MAGIC,
    VERSION,
    VERSION_CODECS,
    VERSION_WEIGHTS,
    VERSIONS,
    decode,
    encode,
    load,
    parse,
    save,
    size_report,
)
from wsjax.storage import index_width
from wsjax.storage.index_width import smallest_index_bits
from wsjax.storage.layers import ENCODINGS
from wsjax.storage.limits import Limits
from wsjax.storage.report import LayerReport, SizeReport

__all__ = [
    "ENCODINGS",
    "FILE_OVERHEAD_BYTES",
    "LayerReport",
    "Limits",
    "MAGIC",
    "SizeReport",
    "StorageError",
    "VERSION",
    "VERSION_CODECS",
    "VERSION_WEIGHTS",
    "VERSIONS",
    "decode",
    "encode",
    "load",
    "parse",
    "save",
    "size_report",
    "smallest_index_bits",
]
