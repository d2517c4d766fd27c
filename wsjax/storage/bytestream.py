"""Byte-level writing and bounds-checked reading: fixed-width little-endian integers, varints.

Unsigned varints are LEB128: seven value bits per byte, least significant group first, the
high bit set on every byte but the last. Every read checks that the bytes exist, so a
truncated or corrupted buffer raises :class:`StorageError` instead of an ``IndexError`` or
``struct.error`` deep inside a decoder.
"""

from __future__ import annotations

import struct

from wsjax.storage.errors import StorageError

_MAX_VARINT_BYTES = 10  # enough for any value below 2**64

_FORMATS = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def varint_size(value: int) -> int:
    """Bytes taken by ``value`` as an unsigned varint."""
    return max(1, (int(value).bit_length() + 6) // 7)


class ByteWriter:
    """Appends fields to a growing byte buffer."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def bytes(self, data: bytes) -> None:
        self._parts.append(bytes(data))
        self._size += len(data)

    def uint(self, value: int, size: int) -> None:
        """``value`` as a ``size``-byte little-endian unsigned integer."""
        if not 0 <= value < 1 << (8 * size):
            raise ValueError(f"{value} does not fit in {size} byte(s)")
        self.bytes(struct.pack(_FORMATS[size], value))

    def varint(self, value: int) -> None:
        value = int(value)
        if not 0 <= value < 1 << 64:
            raise ValueError(f"varint out of range: {value}")
        out = bytearray()
        while True:
            low, value = value & 0x7F, value >> 7
            out.append(low | (0x80 if value else 0))
            if not value:
                break
        self.bytes(bytes(out))

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class ByteReader:
    """Reads fields from ``data[start:end]``; any read past ``end`` raises StorageError."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None, what: str = "data"):
        self._data = memoryview(data)
        self.pos = start
        self.end = len(data) if end is None else end
        self.what = what

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def bytes(self, n: int, field: str = "bytes") -> bytes:
        if n < 0 or n > self.remaining:
            raise StorageError(
                f"{self.what}: truncated while reading {field} "
                f"({n} byte(s) needed at offset {self.pos}, {self.remaining} left)"
            )
        out = bytes(self._data[self.pos : self.pos + n])
        self.pos += n
        return out

    def uint(self, size: int, field: str = "integer") -> int:
        return struct.unpack(_FORMATS[size], self.bytes(size, field))[0]

    def varint(self, field: str = "varint") -> int:
        value = 0
        for i in range(_MAX_VARINT_BYTES):
            byte = self.bytes(1, field)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise StorageError(f"{self.what}: non-canonical varint in {field}")
                if value >= 1 << 64:
                    raise StorageError(f"{self.what}: varint {field} out of range")
                return value
        raise StorageError(f"{self.what}: varint {field} longer than {_MAX_VARINT_BYTES} bytes")

    def sub(self, n: int, what: str) -> ByteReader:
        """A reader over the next ``n`` bytes (which this reader skips)."""
        if n < 0 or n > self.remaining:
            raise StorageError(
                f"{self.what}: {what} claims {n} byte(s) but only {self.remaining} remain"
            )
        reader = ByteReader(self._data, self.pos, self.pos + n, what)
        self.pos += n
        return reader

    def expect_end(self) -> None:
        if self.remaining:
            raise StorageError(f"{self.what}: {self.remaining} unexplained trailing byte(s)")
