"""Size report of a storage file, per layer, in the style of Deep Compression's Tables 2-3.

Every byte of the file is attributed: each layer's ``stored_bytes`` is its whole record
(header, codebook, code tables, codes, raw values; broken down in ``parts``), and the file
adds ``file_overhead_bytes`` (magic, version, flags, counts, length, checksum). So
``sum(layer.stored_bytes) + file_overhead_bytes == file_bytes`` exactly.

Columns: ``kept_fraction`` is the share of nonzero weights; weight bits are bits per stored
cluster index (per stored entry, fillers included, for sparse layers; per element for dense
codebooks; the element width for raw layers), index bits are bits per relative index, each
*fixed* (before Huffman) and as stored (*huffman*: the mean codeword length when the stream
is Huffman coded, the fixed width when fixed-width coding was smaller, 0 for a constant
stream). ``dense_bytes`` counts 4 bytes (float32) per float element (the element size for
integer and bool leaves), ``compression = dense_bytes / stored_bytes``, and
``compression_fixed`` uses the size the layer would take with every stream at fixed width
(the paper's "P+Q" column against "P+Q+H").

A file that stores transforms (version 2, see :mod:`wsjax.storage.codecs`) has one row per
params layer as well, with the ``codec`` that stores it: a hashed layer's row holds its
bucket record while ``n_weights``, ``n_nonzero`` and ``dense_bytes`` count the virtual
weights the model sees (one row ``'pool'`` for all the leaves of a hashing pool); a low-rank
layer's row holds its two factors; a tied leaf's row (``{Block_1,Block_2}/kernel``) holds
the shared copy and every layer's extras for it. The weight and index columns describe the
stored records, ``n_stored`` counts their values. A group's codec name and meta are counted
in ``parts['group']`` of its first row and the group count in ``file_overhead_bytes``, so
the sum above still holds.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016,
Tables 2-3.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np

from wsjax.storage import dtypes
from wsjax.storage.bytestream import varint_size


@dataclasses.dataclass(frozen=True)
class LayerReport:
    """One row of the size report."""

    name: str
    shape: tuple
    dtype: str
    n_weights: int
    n_nonzero: int
    kept_fraction: float
    encoding: str
    codebook_size: Optional[int]
    index_bits: Optional[int]
    weight_stream_mode: Optional[str]
    index_stream_mode: Optional[str]
    n_entries: Optional[int]  # stored entries of a sparse layer (nonzeros + fillers)
    bits_per_weight_fixed: float
    bits_per_weight_huffman: float
    bits_per_index_fixed: Optional[float]
    bits_per_index_huffman: Optional[float]
    stored_bytes: int
    stored_bytes_fixed: int
    dense_bytes: int
    compression: float
    compression_fixed: float
    parts: dict
    codec: str = "weights"  # how the row's params are stored (see wsjax.storage.codecs)
    n_stored: int = 0  # values in the row's records: stored entries of sparse ones, else elements

    @classmethod
    def from_info(cls, info) -> "LayerReport":
        """Build a row from a :class:`wsjax.storage.layers.LayerInfo`."""
        n_weights = math.prod(info.shape)
        element_bits = 8 * info.dtype.itemsize
        streams_ = [s for s in (info.weight_stream, info.index_stream) if s is not None]
        delta = sum(s.fixed_total_bytes - s.total_bytes for s in streams_)
        stored_fixed = (
            info.stored_bytes + delta
            + varint_size(info.payload_bytes + delta) - varint_size(info.payload_bytes)
        )
        dense = _dense_bytes(info.dtype, n_weights)
        weight, index = info.weight_stream, info.index_stream
        return cls(
            name=info.name,
            shape=tuple(info.shape),
            dtype=str(info.dtype),
            n_weights=n_weights,
            n_nonzero=info.n_nonzero,
            kept_fraction=info.n_nonzero / n_weights if n_weights else 0.0,
            encoding=info.encoding,
            codebook_size=info.codebook_size,
            index_bits=info.index_bits,
            weight_stream_mode=weight.mode if weight else None,
            index_stream_mode=index.mode if index else None,
            n_entries=index.n_symbols if index else None,
            bits_per_weight_fixed=float(weight.fixed_bits if weight else element_bits),
            bits_per_weight_huffman=float(weight.bits_per_symbol if weight else element_bits),
            bits_per_index_fixed=float(index.fixed_bits) if index else None,
            bits_per_index_huffman=float(index.bits_per_symbol) if index else None,
            stored_bytes=info.stored_bytes,
            stored_bytes_fixed=stored_fixed,
            dense_bytes=dense,
            compression=dense / info.stored_bytes,
            compression_fixed=dense / stored_fixed,
            parts=dict(info.parts),
            n_stored=index.n_symbols if index else n_weights,
        )

    @classmethod
    def from_records(cls, name: str, codec: str, records: Sequence["LayerReport"],
                     leaves: Sequence[np.ndarray], extra_parts: dict) -> "LayerReport":
        """A row of params ``leaves`` that the ``records`` (rows of their own) hold.

        The weight and index columns describe the stored records (means weighted by stored
        values and entries); the counts, dense size and kept fraction describe the leaves
        the model sees (the virtual weights of a hashed layer, the product of low-rank
        factors). ``extra_parts`` (a group's name and meta) are added to the bytes.
        """
        if codec == "weights" and len(records) == len(leaves) == 1:
            row = records[0]  # a plain layer: exactly its record's row
        else:
            row = _combined(name, records, leaves)
        parts = dict(row.parts)
        for part, n in extra_parts.items():
            parts[part] = parts.get(part, 0) + n
        extra = sum(extra_parts.values())
        stored, stored_fixed = row.stored_bytes + extra, row.stored_bytes_fixed + extra
        return dataclasses.replace(
            row, codec=codec, parts=parts, stored_bytes=stored, stored_bytes_fixed=stored_fixed,
            compression=row.dense_bytes / stored, compression_fixed=row.dense_bytes / stored_fixed,
        )


def _dense_bytes(dtype: np.dtype, n_weights: int) -> int:
    """4 bytes (float32) per float element, the element size for other dtypes."""
    return n_weights * (4 if dtypes.is_float(dtype) else dtype.itemsize)


def _joined(values) -> Optional[str]:
    distinct = list(dict.fromkeys(str(v) for v in values if v is not None))
    return "+".join(distinct) if distinct else None


def _combined(name: str, records: Sequence[LayerReport], leaves) -> LayerReport:
    """The row of several records (or of one record for other leaves than its own)."""
    shapes = {tuple(x.shape) for x in leaves}
    if len(leaves) == 1:
        shape = tuple(leaves[0].shape)
    elif len(shapes) == 1:
        shape = (len(leaves),) + shapes.pop()
    else:
        shape = (sum(int(x.size) for x in leaves),)
    n_weights = sum(int(x.size) for x in leaves)
    n_nonzero = sum(int(np.count_nonzero(dtypes.to_patterns(x))) for x in leaves)
    dense = sum(_dense_bytes(x.dtype, int(x.size)) for x in leaves)
    sparse = [r for r in records if r.n_entries is not None]

    def mean(values, weights):
        if len(values) == 1:
            return values[0]
        return _mean(values, weights)

    stored_values = [r.n_stored for r in records]
    entries = [r.n_entries for r in sparse]
    stored = sum(r.stored_bytes for r in records)
    stored_fixed = sum(r.stored_bytes_fixed for r in records)
    parts: dict = {}
    for r in records:
        for part, n in r.parts.items():
            parts[part] = parts.get(part, 0) + n
    return LayerReport(
        name=name,
        shape=shape,
        dtype=_joined(x.dtype for x in leaves) or "",
        n_weights=n_weights,
        n_nonzero=n_nonzero,
        kept_fraction=n_nonzero / n_weights if n_weights else 0.0,
        encoding=_joined(r.encoding for r in records) or "",
        codebook_size=max((r.codebook_size for r in records if r.codebook_size), default=None),
        index_bits=max((r.index_bits for r in sparse), default=None),
        weight_stream_mode=_joined(r.weight_stream_mode for r in records),
        index_stream_mode=_joined(r.index_stream_mode for r in records),
        n_entries=sum(entries) if sparse else None,
        bits_per_weight_fixed=mean([r.bits_per_weight_fixed for r in records], stored_values),
        bits_per_weight_huffman=mean(
            [r.bits_per_weight_huffman for r in records], stored_values),
        bits_per_index_fixed=mean([r.bits_per_index_fixed for r in sparse], entries)
        if sparse else None,
        bits_per_index_huffman=mean([r.bits_per_index_huffman for r in sparse], entries)
        if sparse else None,
        stored_bytes=stored,
        stored_bytes_fixed=stored_fixed,
        dense_bytes=dense,
        compression=dense / stored if stored else math.inf,
        compression_fixed=dense / stored_fixed if stored_fixed else math.inf,
        parts=parts,
        n_stored=sum(stored_values),
    )


def _mean(values: Sequence[float], weights: Sequence[int]) -> Optional[float]:
    total = sum(weights)
    return sum(v * w for v, w in zip(values, weights)) / total if total else None


@dataclasses.dataclass(frozen=True)
class SizeReport:
    """Per-layer rows plus the file-level totals."""

    layers: tuple
    file_overhead_bytes: int
    file_bytes: int

    @classmethod
    def from_layers(cls, infos, file_overhead_bytes: int, file_bytes: int) -> "SizeReport":
        """The report of a plain file: one row per layer record."""
        return cls.from_rows([LayerReport.from_info(info) for info in infos],
                             file_overhead_bytes, file_bytes)

    @classmethod
    def from_rows(cls, rows, file_overhead_bytes: int, file_bytes: int) -> "SizeReport":
        """The report of given rows; AssertionError unless they account for every byte."""
        report = cls(tuple(rows), file_overhead_bytes, file_bytes)
        if report.layer_bytes + file_overhead_bytes != file_bytes:
            raise AssertionError("size report does not account for every byte of the file")
        return report

    def _total(self, field: str) -> int:
        return sum(getattr(layer, field) for layer in self.layers)

    layer_bytes = property(lambda self: self._total("stored_bytes"), doc="Bytes of every layer row.")
    dense_bytes = property(lambda self: self._total("dense_bytes"), doc="Dense float32 bytes of every row.")
    n_weights = property(lambda self: self._total("n_weights"), doc="Weights the model sees.")
    n_nonzero = property(lambda self: self._total("n_nonzero"), doc="Nonzero weights the model sees.")

    @property
    def compression(self) -> float:
        """Dense float32 bytes over the whole file's bytes."""
        return self.dense_bytes / self.file_bytes

    @property
    def compression_fixed(self) -> float:
        """Same, with every stream at fixed width (before Huffman coding)."""
        fixed = self.file_overhead_bytes + sum(layer.stored_bytes_fixed for layer in self.layers)
        return self.dense_bytes / fixed

    def to_rows(self) -> list[dict]:
        """One flat dict per layer; ``parts`` become ``bytes_<part>`` columns."""
        rows = []
        for layer in self.layers:
            row = {k: v for k, v in dataclasses.asdict(layer).items() if k != "parts"}
            row["shape"] = list(layer.shape)
            row.update({f"bytes_{part}": n for part, n in layer.parts.items()})
            rows.append(row)
        return rows

    def totals(self) -> dict:
        """File-level numbers: bytes (whole file), dense bytes, compression, kept fraction."""
        coded = [layer for layer in self.layers if layer.weight_stream_mode is not None]
        sparse = [layer for layer in self.layers if layer.index_stream_mode is not None]
        weight_symbols = [layer.n_stored for layer in coded]
        index_symbols = [layer.n_entries for layer in sparse]
        return {
            "n_weights": self.n_weights,
            "n_nonzero": self.n_nonzero,
            "kept_fraction": self.n_nonzero / self.n_weights if self.n_weights else 0.0,
            "layer_bytes": self.layer_bytes,
            "file_overhead_bytes": self.file_overhead_bytes,
            "stored_bytes": self.file_bytes,
            "dense_bytes": self.dense_bytes,
            "compression": self.compression,
            "compression_fixed": self.compression_fixed,
            "bits_per_weight_fixed": _mean(
                [layer.bits_per_weight_fixed for layer in coded], weight_symbols),
            "bits_per_weight_huffman": _mean(
                [layer.bits_per_weight_huffman for layer in coded], weight_symbols),
            "bits_per_index_fixed": _mean(
                [layer.bits_per_index_fixed for layer in sparse], index_symbols),
            "bits_per_index_huffman": _mean(
                [layer.bits_per_index_huffman for layer in sparse], index_symbols),
        }

    def to_markdown(self) -> str:
        """A table like Deep Compression's Tables 2-3, with a total row."""
        def bits(value):
            return "-" if value is None else f"{value:.2f}"

        header = (
            "| layer | codec | shape | #weights | weights kept | encoding | codebook "
            "| weight bits (fixed) | weight bits (Huffman) | index bits (fixed) "
            "| index bits (Huffman) | bytes | compression (fixed) | compression |"
        )
        lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
        for row in self.layers:
            lines.append(
                f"| {row.name} | {row.codec} | {'x'.join(map(str, row.shape)) or 'scalar'} | {row.n_weights:,} "
                f"| {100 * row.kept_fraction:.1f}% | {row.encoding} | {row.codebook_size or '-'} "
                f"| {bits(row.bits_per_weight_fixed)} | {bits(row.bits_per_weight_huffman)} "
                f"| {bits(row.bits_per_index_fixed)} | {bits(row.bits_per_index_huffman)} "
                f"| {row.stored_bytes:,} | {row.compression_fixed:.1f}x | {row.compression:.1f}x |"
            )
        t = self.totals()
        lines.append(
            f"| file header + checksum | | | | | | | | | | | {self.file_overhead_bytes:,} | | |"
        )
        lines.append(
            f"| **total** | | | {t['n_weights']:,} | {100 * t['kept_fraction']:.1f}% | | "
            f"| {bits(t['bits_per_weight_fixed'])} | {bits(t['bits_per_weight_huffman'])} "
            f"| {bits(t['bits_per_index_fixed'])} | {bits(t['bits_per_index_huffman'])} "
            f"| {self.file_bytes:,} | {t['compression_fixed']:.1f}x | {t['compression']:.1f}x |"
        )
        return "\n".join(lines)
