"""The versioned storage file: header, layer records, CRC32.

Layout (integers little-endian)::

    8 bytes  magic  b"\\x89WSJAX\\r\\n"
    u16      format version (1)
    u8       flags: bit 0 = the params were a flat {path: array} dict
    u32      number of layer records
    u64      total file length in bytes
    ...      layer records (see :mod:`wsjax.storage.layers`)
    u32      CRC-32 (``zlib.crc32``) of every byte before it

Loading checks the magic, the version, the length and the checksum before it parses a
single layer, then checks every layer's internal consistency (element counts against the
shape, stream sizes against the payload size, indices against the codebook). Anything wrong
raises :class:`StorageError`; a wrong model is never returned.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from typing import Any

import numpy as np

from wsjax.storage import layers, options, tree
from wsjax.storage.bytestream import ByteReader
from wsjax.storage.errors import StorageError
from wsjax.storage.report import SizeReport

MAGIC = b"\x89WSJAX\r\n"
VERSION = 1
_HEADER = struct.Struct("<8sHBIQ")  # magic, version, flags, layer count, file length
_CHECKSUM = struct.Struct("<I")
FILE_OVERHEAD_BYTES = _HEADER.size + _CHECKSUM.size


def encode(params: Any, *, index_bits: options.LayerOption = None,
           encoding: options.LayerOption = None) -> bytes:
    """Encode a pruned/quantized params pytree (or flat ``{path: array}`` dict) into bytes.

    Args:
      params: nested mappings of arrays (e.g. Flax ``params``) or a flat mapping of arrays.
      index_bits: relative-index width of sparse layers: an int, a ``{regex: int}`` mapping,
        or a callable ``path -> int``; default 8 for 4-D (conv) kernels, 5 otherwise.
      encoding: ``'auto'``, ``'raw'``, ``'sparse'`` or ``'dense_codebook'``, for all layers
        or per layer (mapping or callable as for ``index_bits``); default ``'auto'`` for 2-D
        and larger leaves (smallest eligible encoding), ``'raw'`` for 1-D and scalars.
    """
    arrays, is_flat = tree.flatten(params)
    records = [
        layers.encode_layer(
            path,
            array,
            options.encoding_for(encoding, path, array),
            options.index_bits_for(index_bits, path, array),
        )
        for path, array in arrays.items()
    ]
    length = FILE_OVERHEAD_BYTES + sum(len(r) for r in records)
    body = _HEADER.pack(MAGIC, VERSION, int(is_flat), len(records), length) + b"".join(records)
    return body + _CHECKSUM.pack(zlib.crc32(body))


def _check_envelope(data: bytes) -> tuple[int, int]:
    """Check magic, version, length and checksum; returns (flags, layer count)."""
    if len(data) < len(MAGIC):
        if MAGIC.startswith(bytes(data)):
            raise StorageError(f"truncated storage file: {len(data)} byte(s)")
        raise StorageError("not a wsjax storage file (bad magic bytes)")
    if bytes(data[: len(MAGIC)]) != MAGIC:
        raise StorageError(
            f"not a wsjax storage file (bad magic bytes {bytes(data[:len(MAGIC)])!r}, "
            f"expected {MAGIC!r})"
        )
    if len(data) < FILE_OVERHEAD_BYTES:
        raise StorageError(f"truncated storage file: {len(data)} byte(s), header alone needs "
                           f"{FILE_OVERHEAD_BYTES}")
    _, version, flags, n_layers, length = _HEADER.unpack_from(data)
    if version != VERSION:
        raise StorageError(
            f"unsupported storage format version {version}; this wsjax reads version {VERSION}"
        )
    if length != len(data):
        state = "truncated" if len(data) < length else "has trailing bytes"
        raise StorageError(f"storage file {state}: header says {length} bytes, got {len(data)}")
    (checksum,) = _CHECKSUM.unpack_from(data, len(data) - _CHECKSUM.size)
    if zlib.crc32(memoryview(data)[: -_CHECKSUM.size]) != checksum:
        raise StorageError("storage file corrupted: CRC-32 checksum mismatch")
    if flags > 1:
        raise StorageError(f"invalid file flags {flags}")
    return flags, n_layers


def parse(data: bytes) -> tuple[dict[str, np.ndarray], bool, list[layers.LayerInfo]]:
    """Decode every layer: ``({path: array}, is_flat, [LayerInfo])``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    flags, n_layers = _check_envelope(data)
    reader = ByteReader(data, _HEADER.size, len(data) - _CHECKSUM.size, "storage file")
    arrays: dict[str, np.ndarray] = {}
    infos = []
    for _ in range(n_layers):
        array, info = layers.decode_layer(reader)
        if info.name in arrays:
            raise StorageError(f"layer {info.name!r} stored twice")
        arrays[info.name] = array
        infos.append(info)
    reader.expect_end()
    return arrays, bool(flags & 1), infos


def decode(data: bytes) -> dict:
    """Decode bytes from :func:`encode` into nested dicts of NumPy arrays (bit exact)."""
    arrays, is_flat, _ = parse(data)
    return tree.unflatten(arrays, is_flat)


def size_report(params_or_bytes: Any, **encode_options) -> SizeReport:
    """Per-layer size report of encoded bytes, or of params encoded with ``encode_options``."""
    if isinstance(params_or_bytes, (bytes, bytearray, memoryview)):
        if encode_options:
            raise ValueError("encode options apply to params, not to already encoded bytes")
        data = bytes(params_or_bytes)
    else:
        data = encode(params_or_bytes, **encode_options)
    _, _, infos = parse(data)
    return SizeReport.from_layers(infos, FILE_OVERHEAD_BYTES, len(data))


def save(path: str | os.PathLike, params: Any, **encode_options) -> SizeReport:
    """Encode ``params`` and write them to ``path`` atomically; returns the size report."""
    data = encode(params, **encode_options)
    report = size_report(data)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".wsjax-storage-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return report


def load(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`save`; StorageError if it is not exactly such a file."""
    with open(path, "rb") as f:
        return decode(f.read())
