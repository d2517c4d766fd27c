"""The versioned storage file: header, layer records (in codec groups), CRC32.

A file stores either a params pytree (its weights) or a transform's free state, through the
codec the transform names (:mod:`wsjax.storage.codecs`). Layout (integers little-endian,
``varint`` = unsigned LEB128)::

    8 bytes  magic  b"\\x89WSJAX\\r\\n"
    u16      format version: 1 (weights only) or 2 (codec groups)
    u8       flags: bit 0 = the params are a flat {path: array} dict
    u32      number of layer records (in all groups)
    u64      total file length in bytes
    ...      version 1: the layer records (see :mod:`wsjax.storage.layers`)
             version 2: varint group count, then per group:
                 varint length + codec name (UTF-8), varint length + meta (compact JSON
                 object, UTF-8), varint record count, the group's layer records
    u32      CRC-32 (``zlib.crc32``) of every byte before it

Version 1 is what a params tree (or a transform whose codec is ``None``: its weights
``W = apply(state)``) is written as, byte for byte as before codecs existed; version 2 only
where some group is not 'weights'. A group's meta is its codec's, plus ``"at"``: the
positions, in the params' flattened order, of the leaves the group decodes to (taken in
sorted path order), so that the decoded params come back in the model's own order.

Loading checks the magic, the version, the length and the checksum before it parses a
single layer, then checks every layer's internal consistency (element counts against the
shape, stream sizes against the payload size, indices against the codebook) and every
group's meta (each codec validates shapes, counts, ranks and seeds against its records,
and bounds what it decodes). Every array is charged against explicit resource limits
(:mod:`wsjax.storage.limits`: elements per file and per layer, bytes, and elements no stored
bit describes) before it is allocated or a codec's transform runs. Anything wrong raises
:class:`StorageError` naming the layer or group and the field; a wrong model is never
returned.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from wsjax.storage import layers, limits as limits_, options, tree
from wsjax.storage.bytestream import ByteReader, ByteWriter, varint_size
from wsjax.storage.errors import StorageError
from wsjax.storage.report import LayerReport, SizeReport

MAGIC = b"\x89WSJAX\r\n"
VERSION_WEIGHTS = 1  # a params tree: layer records only
VERSION_CODECS = 2  # codec groups of layer records
VERSION = VERSION_CODECS  # the newest version this wsjax reads and writes
VERSIONS = (VERSION_WEIGHTS, VERSION_CODECS)
_HEADER = struct.Struct("<8sHBIQ")  # magic, version, flags, layer count, file length
_CHECKSUM = struct.Struct("<I")
FILE_OVERHEAD_BYTES = _HEADER.size + _CHECKSUM.size  # of a version 1 file
_AT = "at"  # the meta key the file format keeps for itself


def _as_pair(obj: Any):
    """``(transform, state)`` if ``obj`` is such a pair, else ``None``."""
    if not isinstance(obj, tuple) or len(obj) != 2 or isinstance(obj, Mapping):
        return None
    from wsjax.sharing.core import SharedParams, Transform

    if isinstance(obj[0], Transform) and isinstance(obj[1], SharedParams):
        return obj
    return None


def _records(arrays: Mapping[str, np.ndarray], index_bits, encoding) -> list[bytes]:
    return [
        layers.encode_layer(
            path,
            array,
            options.encoding_for(encoding, path, array),
            options.index_bits_for(index_bits, path, array),
        )
        for path, array in arrays.items()
    ]


def _file(version: int, is_flat: bool, n_records: int, parts: list[bytes]) -> bytes:
    length = FILE_OVERHEAD_BYTES + sum(len(p) for p in parts)
    body = _HEADER.pack(MAGIC, version, int(is_flat), n_records, length) + b"".join(parts)
    return body + _CHECKSUM.pack(zlib.crc32(body))


def encode(params: Any, *, index_bits: options.LayerOption = None,
           encoding: options.LayerOption = None) -> bytes:
    """Encode a params pytree, or a ``(transform, state)`` pair, into bytes.

    Args:
      params: nested mappings of arrays (e.g. Flax ``params``), a flat mapping of arrays,
        or a ``(Transform, SharedParams)`` pair: its state is stored by the transform's
        codec (hashed layers as buckets and hash specs, low rank as factors, tied layers
        as one copy plus extras); a transform whose codec is ``None`` stores its weights
        ``transform.apply(state)``, exactly as the params tree would be.
      index_bits: relative-index width of sparse layers: an int, a ``{regex: int}`` mapping,
        or a callable ``path -> int``; default 8 for 4-D (conv) kernels, 5 otherwise.
      encoding: ``'auto'``, ``'raw'``, ``'sparse'``, ``'dense_codebook'`` or ``'sparse_raw'``, for all layers
        or per layer (mapping or callable as for ``index_bits``); default ``'auto'`` for 2-D
        and larger leaves (smallest eligible encoding), ``'raw'`` for 1-D and scalars.
        Both also apply to the records of a codec (matched on record names such as
        ``Dense_0/kernel`` for a hashed layer's buckets, ``Dense_0/kernel/u`` for a factor).
    """
    pair = _as_pair(params)
    if pair is not None:
        from wsjax.storage import codecs

        transform, state = pair
        params = transform.apply(state)
        if not codecs.stores_weights(transform.codec):
            return _encode_groups(transform.codec, state, params, index_bits, encoding)
    arrays, is_flat = tree.flatten(params)
    records = _records(arrays, index_bits, encoding)
    return _file(VERSION_WEIGHTS, is_flat, len(records), records)


def _encode_groups(codec, state, params, index_bits, encoding) -> bytes:
    """A version 2 file of the groups that store ``state`` (whose weights are ``params``)."""
    from wsjax.storage import codecs

    arrays, is_flat = tree.flatten(params)
    groups = codecs.groups_of(codec, state, {"index_bits": index_bits, "encoding": encoding})
    weights = {}
    for group in groups:
        if group.codec == codecs.weights.name:
            weights.update(group.arrays)
    groups = [g for g in groups if g.codec != codecs.weights.name]
    if weights:  # one weights group, first
        groups.insert(0, codecs.weights.encode(weights, None))
    position = {p: i for i, p in enumerate(arrays)}
    covered = [p for g in groups for p in g.paths]
    if len(covered) != len(set(covered)) or set(covered) != set(position):
        raise ValueError(
            f"codec {codec!r} stores the leaves {sorted(covered)}, but the transform's "
            f"params are {sorted(position)}"
        )
    parts = [_varint(len(groups))]
    n_records = 0
    for group in groups:
        if _AT in group.meta:
            raise ValueError(f"codec {group.codec!r}: the meta key {_AT!r} is reserved")
        meta = {_AT: [position[p] for p in sorted(group.paths)], **group.meta}
        head = ByteWriter()
        for field in (group.codec.encode("utf-8"), _meta_bytes(meta)):
            head.varint(len(field))
            head.bytes(field)
        head.varint(len(group.arrays))
        parts.append(head.getvalue())
        parts += _records(group.arrays, index_bits, encoding)
        n_records += len(group.arrays)
    return _file(VERSION_CODECS, is_flat, n_records, parts)


def _varint(value: int) -> bytes:
    out = ByteWriter()
    out.varint(value)
    return out.getvalue()


def _meta_bytes(meta: dict) -> bytes:
    return json.dumps(meta, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _check_envelope(data: bytes) -> tuple[int, int, int]:
    """Check magic, version, length and checksum; returns (version, flags, layer count)."""
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
    if version not in VERSIONS:
        raise StorageError(
            f"unsupported storage format version {version}; this wsjax reads versions "
            f"{' and '.join(map(str, VERSIONS))}"
        )
    if length != len(data):
        state = "truncated" if len(data) < length else "has trailing bytes"
        raise StorageError(f"storage file {state}: header says {length} bytes, got {len(data)}")
    (checksum,) = _CHECKSUM.unpack_from(data, len(data) - _CHECKSUM.size)
    if zlib.crc32(memoryview(data)[: -_CHECKSUM.size]) != checksum:
        raise StorageError("storage file corrupted: CRC-32 checksum mismatch")
    if flags > 1:
        raise StorageError(f"invalid file flags {flags}")
    return version, flags, n_layers


class _Group(NamedTuple):
    """A decoded group: what its codec gave back and where its bytes went."""

    group: Any  # codecs.Group (meta without "at")
    infos: list  # LayerInfo of each record
    overhead_bytes: int  # codec name, meta and record count
    params: dict  # {path: array} it decodes to
    state: Any  # its SharedParams (None for 'weights')


class _Parsed(NamedTuple):
    arrays: dict  # {path: array}, in the params' order
    is_flat: bool
    infos: list  # every record's LayerInfo, in file order
    groups: list  # [_Group] (empty for version 1)
    n_groups: int


def _parse(data, limits: limits_.Limits | None = None) -> _Parsed:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    version, flags, n_layers = _check_envelope(data)
    budget = limits_.Budget(limits)
    reader = ByteReader(data, _HEADER.size, len(data) - _CHECKSUM.size, "storage file")
    try:
        if version == VERSION_WEIGHTS:
            arrays, infos = _read_records(reader, n_layers, budget)
            reader.expect_end()
            return _Parsed(arrays, bool(flags & 1), infos, [], 0)
        raw_groups = _read_groups(reader, n_layers, budget)
        with limits_.active(budget):
            groups, arrays = _decode_groups(raw_groups, budget)
    except MemoryError:  # within the limits, but more than this machine has
        raise StorageError(
            f"storage file: decoding needs more memory than is available (it decodes "
            f"{budget.elements} elements, {budget.bytes} bytes so far; limits "
            f"{budget.limits})") from None
    infos = [info for _, _, _, group_infos, _ in raw_groups for info in group_infos]
    return _Parsed(arrays, bool(flags & 1), infos, groups, len(raw_groups))


def _read_records(reader: ByteReader, n: int, budget: limits_.Budget) -> tuple[dict, list]:
    arrays: dict[str, np.ndarray] = {}
    infos = []
    for k in range(n):
        try:
            array, info = layers.decode_layer(reader, budget)
        except StorageError as e:
            if str(e).startswith("layer "):
                raise
            raise StorageError(f"layer record {k + 1} of {n}: {e}") from None
        if info.name in arrays:
            raise StorageError(f"layer {info.name!r} stored twice")
        arrays[info.name] = array
        infos.append(info)
    return arrays, infos


def _read_groups(reader: ByteReader, n_layers: int, budget: limits_.Budget) -> list:
    """``[(codec name, meta, arrays, infos, overhead bytes)]`` of a version 2 body."""
    n_groups = reader.varint("group count")
    if n_groups > reader.remaining // 3:  # a group takes at least three bytes
        raise StorageError(f"storage file: {n_groups} groups cannot fit in "
                           f"{reader.remaining} bytes")
    out, n_records = [], 0
    for i in range(n_groups):
        start = reader.pos
        name = _text(reader.bytes(reader.varint("codec name length"), "codec name"),
                     f"group {i}: codec name")
        where = f"group {i} ({name!r})"
        meta = _meta(reader.bytes(reader.varint("meta length"), "group meta"), where)
        count = reader.varint("record count")
        if n_records + count > n_layers:
            raise StorageError(f"{where}: more layer records than the header's {n_layers}")
        overhead = reader.pos - start
        arrays, infos = _read_records(reader, count, budget)
        n_records += count
        out.append((name, meta, arrays, infos, overhead))
    reader.expect_end()
    if n_records != n_layers:
        raise StorageError(f"storage file: {n_records} layer records, header says {n_layers}")
    return out


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError(f"{where} is not valid UTF-8") from None


def _unique_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} repeated")
        out[key] = value
    return out


def _no_constant(name):
    raise ValueError(f"{name} is not a number here")


def _meta(raw: bytes, where: str) -> dict:
    try:
        meta = json.loads(_text(raw, f"{where}: meta"), object_pairs_hook=_unique_keys,
                          parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise StorageError(f"{where}: meta is not valid JSON ({e})"[:500]) from None
    if not isinstance(meta, dict):
        raise StorageError(f"{where}: meta is not a JSON object")
    return meta


def _positions(meta: dict, where: str) -> list[int]:
    at = meta.pop(_AT, None)
    if not isinstance(at, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in at
    ):
        raise StorageError(f"{where}: meta has no list of leaf positions {_AT!r}")
    return at


def _decode_groups(raw_groups, budget: limits_.Budget) -> tuple[list[_Group], dict]:
    """Decode every group by its codec; the params in their stored order."""
    from wsjax.storage import codecs

    positions = []
    for i, (name, meta, _, _, _) in enumerate(raw_groups):
        positions.append(_positions(meta, f"group {i} ({name!r})"))
    slots: list = [None] * sum(len(at) for at in positions)
    seen_at: set = set()
    for i, ((name, *_), at) in enumerate(zip(raw_groups, positions)):  # before any codec runs
        for pos in at:
            if not 0 <= pos < len(slots) or pos in seen_at:
                raise StorageError(f"group {i} ({name!r}): meta field {_AT!r} places a leaf at "
                                   f"position {pos}, {'taken' if pos in seen_at else 'out of range'}"
                                   f" (the file has {len(slots)} leaves)")
            seen_at.add(pos)
    groups, seen = [], set()
    for i, ((name, meta, arrays, infos, overhead), at) in enumerate(zip(raw_groups, positions)):
        where = f"group {i} ({name!r})"
        try:
            codec = codecs.get(name)
        except KeyError:
            raise StorageError(f"{where}: unknown codec; this wsjax knows {codecs.names()}"
                               ) from None
        group = codecs.Group(name, meta, arrays)
        budget.begin_group()
        try:
            params, state = codec.decode(group)
            if not isinstance(params, dict):
                raise TypeError(f"the codec returned {type(params).__name__}, not a dict")
            _settle(budget, where, params, arrays)
        except StorageError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError,
                ZeroDivisionError, RecursionError) as e:  # a codec's own check on its input
            raise StorageError(f"{where}: {type(e).__name__}: {e}"[:500]) from None
        if len(params) != len(at):
            raise StorageError(f"{where}: decodes to {len(params)} leaves, meta places "
                               f"{len(at)}")
        for path, pos in zip(sorted(params), at):
            if path in seen or not 0 <= pos < len(slots) or slots[pos] is not None:
                raise StorageError(f"{where}: leaf {path!r} at position {pos} clashes")
            seen.add(path)
            slots[pos] = (path, params[path])
        groups.append(_Group(group, infos, overhead, params, state))
    return groups, dict(slots)


def _settle(budget: limits_.Budget, where: str, params: dict, records: dict) -> None:
    """Charge what a codec built beyond what it charged itself (a codec that calls
    ``check_elements`` first is refused before it builds anything; one that does not is
    still held to the limits here)."""
    stored = {id(x) for x in records.values()}
    built = [x for x in params.values() if id(x) not in stored]
    n = sum(int(np.size(x)) for x in built)
    if n > budget.group_elements:
        itemsize = max((np.dtype(getattr(x, "dtype", np.float64)).itemsize for x in built),
                       default=4)
        budget.take(where, n - budget.group_elements, itemsize, "elements built")


_UNLIMITED = limits_.Limits(*(1 << 62,) * 4)


def _limits(limits, max_elements) -> limits_.Limits:
    return limits_.resolve(limits, max_elements)


def parse(data: bytes, *, max_elements: int | None = None,
          limits: limits_.Limits | None = None
          ) -> tuple[dict[str, np.ndarray], bool, list[layers.LayerInfo]]:
    """Decode a file: ``({path: array} params, is_flat, [LayerInfo] of every record)``."""
    parsed = _parse(data, _limits(limits, max_elements))
    return parsed.arrays, parsed.is_flat, parsed.infos


def _state_keys(groups: list[_Group]) -> list[str]:
    """``'hashing'``, ``'low_rank'``, ... (``'hashing:1'`` for a second hashing group)."""
    keys, counts = [], {}
    for g in groups:
        n = counts.get(g.group.codec, 0)
        counts[g.group.codec] = n + 1
        keys.append(g.group.codec if n == 0 else f"{g.group.codec}:{n}")
    return keys


def decode(data: bytes, *, with_state: bool = False, max_elements: int | None = None,
           limits: limits_.Limits | None = None, like: Any = None):
    """Decode bytes from :func:`encode` into nested dicts of NumPy arrays (bit exact).

    Decoding is bounded by :class:`~wsjax.storage.Limits` (see :mod:`wsjax.storage.limits`;
    defaults: ``2**28`` elements per file and per layer, ``2**31`` bytes, ``2**24``
    elements that no stored bit describes), checked before anything is allocated;
    ``max_elements`` sets the per-file and per-layer element bound at once, ``limits``
    any of them. A file over a limit raises :class:`StorageError` naming the layer, the
    field and the limit.

    With ``with_state=True`` returns ``(params, states)``: ``states`` maps each stored
    codec group (``'hashing'``, ``'low_rank'``, ``'tying'``; a repeated codec gets
    ``':1'``, ``':2'``, ...) to the :class:`~wsjax.sharing.SharedParams` it stored, with
    JAX arrays, so that the codec's transform gives back the params bit for bit. For a
    ``select``-ed transform that is the inner state: the whole state is
    ``SharedParams({'rest': params with None at the group's leaves, 'inner':
    s.theta}, s.frozen)``. A file of plain weights has ``states == {}``.

    ``like``: the model the file is expected to hold (a params pytree of arrays or
    ``jax.ShapeDtypeStruct``). A file whose layer paths, shapes or dtypes differ from it
    raises StorageError naming the first difference. This is the one check that catches a
    self-consistent edit with a recomputed checksum (a renamed layer, another shape): such a
    file is a valid file of another model, which no self-describing format can refuse.
    """
    parsed = _parse(data, _limits(limits, max_elements))
    if like is not None:
        tree.check_structure(parsed.arrays, parsed.is_flat, like)
    params = tree.unflatten(parsed.arrays, parsed.is_flat)
    if not with_state:
        return params
    stateful = [g for g in parsed.groups if g.state is not None]
    return params, {k: g.state for k, g in zip(_state_keys(stateful), stateful)}


def _group_rows(parsed: _Parsed) -> tuple[list[LayerReport], int]:
    """The report rows of a version 2 file, in params order, and the bytes of groups
    without rows (counted with the file's overhead)."""
    from wsjax.storage import codecs

    order = {p: i for i, p in enumerate(parsed.arrays)}
    keyed, orphan_bytes = [], 0
    for g in parsed.groups:
        records = {info.name: LayerReport.from_info(info) for info in g.infos}
        used: list[str] = []
        spec = codecs.rows(g.group, list(g.params))
        for j, row in enumerate(spec):
            if any(r not in records for r in row.records) or any(
                p not in g.params for p in row.leaves
            ):
                raise StorageError(f"{g.group.codec!r} group: report rows do not match it")
            used += row.records
            extra = {"group": g.overhead_bytes} if j == 0 else {}
            report_row = LayerReport.from_records(
                row.name, g.group.codec, [records[r] for r in row.records],
                [g.params[p] for p in row.leaves], extra,
            )
            keyed.append((min((order[p] for p in row.leaves), default=math.inf), report_row))
        if sorted(used) != sorted(records):
            raise StorageError(f"{g.group.codec!r} group: report rows do not cover its records")
        if not spec:
            orphan_bytes += g.overhead_bytes
    keyed.sort(key=lambda item: item[0])
    return [row for _, row in keyed], orphan_bytes


def size_report(params_or_bytes: Any, *, max_elements: int | None = None,
                limits: limits_.Limits | None = None, **encode_options) -> SizeReport:
    """Per-layer size report of encoded bytes (decoded under ``max_elements`` / ``limits``
    as in :func:`decode`), or of params (or a ``(transform, state)`` pair) encoded with
    ``encode_options``."""
    if isinstance(params_or_bytes, (bytes, bytearray, memoryview)):
        if encode_options:
            raise ValueError("encode options apply to params, not to already encoded bytes")
        data = bytes(params_or_bytes)
        bounds = _limits(limits, max_elements)
    else:  # the caller's own model: what it encodes to is what it decodes to
        data = encode(params_or_bytes, **encode_options)
        bounds = _UNLIMITED
    parsed = _parse(data, bounds)
    if not parsed.groups:
        return SizeReport.from_layers(parsed.infos, FILE_OVERHEAD_BYTES, len(data))
    rows, orphan_bytes = _group_rows(parsed)
    overhead = FILE_OVERHEAD_BYTES + varint_size(parsed.n_groups) + orphan_bytes
    return SizeReport.from_rows(rows, overhead, len(data))


def save(path: str | os.PathLike, params: Any, **encode_options) -> SizeReport:
    """Encode ``params`` (or a ``(transform, state)`` pair) and write them to ``path``
    atomically (:func:`wsjax.io.atomic_write`: an fsync'd temporary file renamed over
    ``path``, so a crash leaves the old file or the new one); returns the size report.

    FileNotFoundError naming ``path`` if its folder does not exist. A model larger than the
    default decoding limits saves, but loads only with those limits raised (see
    :func:`decode`).
    """
    from wsjax.io import atomic_write

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # before encoding: the mistake is the path, say so at once
        raise FileNotFoundError(f"cannot save to {path!r}: its folder {folder!r} does not exist")
    data = encode(params, **encode_options)
    # A model bigger than the default limits still saves; loading it needs those limits.
    report = size_report(data, limits=_UNLIMITED)
    atomic_write(path, data)
    return report


def load(path: str | os.PathLike, *, with_state: bool = False, max_elements: int | None = None,
         limits: limits_.Limits | None = None, like: Any = None):
    """Read a file written by :func:`save`; StorageError if it is not exactly such a file,
    if it decodes to more than the limits allow, or if it does not hold the model ``like``
    (paths, shapes, dtypes; see :func:`decode`).

    Returns the params (nested dicts of NumPy arrays, like the model's), or ``(params,
    states)`` with ``with_state=True`` (see :func:`decode`).
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return decode(data, with_state=with_state, max_elements=max_elements, limits=limits, like=like)
    except StorageError as e:
        raise StorageError(f"{os.fspath(path)}: {e}") from None
