"""Deep Compression storage: pruned and quantized params to bytes and back, bit exact.

A params pytree whose layers were pruned and quantized is stored as relative-index sparse
matrices with filler zeros, per-layer codebooks, and Huffman-coded cluster indices and
gaps; biases and anything else unpruned are stored plainly. The file is versioned and
checksummed, and :class:`SizeReport` accounts for every byte of it.

>>> report = save("lenet.wsjax", params)        # doctest: +SKIP
>>> print(report.to_markdown())                  # doctest: +SKIP
>>> params2 = load("lenet.wsjax")                # doctest: +SKIP

References: Han, Mao & Dally, `Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from wsjax.storage.errors import StorageError
from wsjax.storage.fileformat import (
    FILE_OVERHEAD_BYTES,
    MAGIC,
    VERSION,
    decode,
    encode,
    load,
    parse,
    save,
    size_report,
)
from wsjax.storage.layers import ENCODINGS
from wsjax.storage.report import LayerReport, SizeReport

__all__ = [
    "ENCODINGS",
    "FILE_OVERHEAD_BYTES",
    "LayerReport",
    "MAGIC",
    "SizeReport",
    "StorageError",
    "VERSION",
    "decode",
    "encode",
    "load",
    "parse",
    "save",
    "size_report",
]
