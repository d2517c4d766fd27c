"""Resource limits of decoding: what one file may make, checked before anything is allocated.

A storage file is small and what it decodes to can be large (that is the point of
compression), so a crafted file could ask for terabytes from a few bytes. Decoding
therefore charges every array it is about to build against a :class:`Limits` *before* it
allocates it (or runs a codec's transform), and raises :class:`StorageError` naming the
layer and the limit when a file asks for more:

* ``max_elements`` (default ``2**28``): elements decoded from one file in total, every
  layer record plus every leaf a codec builds from its records (a hashed layer's virtual
  weights, a low-rank product, each tied copy);
* ``max_layer_elements`` (default ``2**28``): elements of any one layer record or leaf
  (and the bound on any one dimension);
* ``max_bytes`` (default ``2**31``, 2 GiB): bytes of those arrays in total;
* ``max_implied`` (default ``2**24``): elements that no stored bit describes -- those of a
  layer whose symbol stream takes zero bits (a ``constant`` stream, a fixed-width stream of
  a one-symbol alphabet), and the zeros a sparse layer implies after its last stored entry.
  Every other element costs at least one stored bit, so ``max_implied`` is what bounds the
  expansion of a small file: a 28 KB file cannot decode to a 2**27-element layer.

Defaults are sized to real models (2**28 float32 elements are 1 GiB; VGG-16 has 2**27).
They can be given per call (``storage.load(path, max_elements=2**30)``, or
``limits=Limits(...)``), or changed for the process by assigning this module's
``MAX_ELEMENTS``, ``MAX_LAYER_ELEMENTS``, ``MAX_BYTES`` and ``MAX_IMPLIED``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from typing import Optional

from wsjax.storage.errors import StorageError

MAX_ELEMENTS = 1 << 28
MAX_LAYER_ELEMENTS = 1 << 28
MAX_BYTES = 1 << 31
MAX_IMPLIED = 1 << 24
_FIELDS = ("max_elements", "max_layer_elements", "max_bytes", "max_implied")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one decoded file may hold (see the module docstring). ``None`` fields take the
    module's current defaults."""

    max_elements: Optional[int] = None
    max_layer_elements: Optional[int] = None
    max_bytes: Optional[int] = None
    max_implied: Optional[int] = None

    def __post_init__(self):
        for field in _FIELDS:
            value = getattr(self, field)
            if value is None:
                continue
            if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < 0:
                raise ValueError(f"storage limit {field} must be a non-negative int, got {value!r}")
            object.__setattr__(self, field, int(value))

    def resolved(self) -> "Limits":
        """These limits with every ``None`` replaced by the module's current default."""
        defaults = {"max_elements": MAX_ELEMENTS, "max_layer_elements": MAX_LAYER_ELEMENTS,
                    "max_bytes": MAX_BYTES, "max_implied": MAX_IMPLIED}
        return Limits(**{f: defaults[f] if getattr(self, f) is None else getattr(self, f)
                         for f in _FIELDS})


def resolve(limits: Optional[Limits] = None, max_elements: Optional[int] = None) -> Limits:
    """The limits of one decode: ``limits`` (default: the module's), with ``max_elements``,
    if given, as both the file total and the per-layer bound."""
    if limits is not None and not isinstance(limits, Limits):
        raise TypeError(f"limits must be a wsjax.storage.Limits, got {type(limits).__name__}")
    limits = limits or Limits()
    if max_elements is not None:
        Limits(max_elements=max_elements)  # checks it
        limits = dataclasses.replace(limits, max_elements=max_elements,
                                     max_layer_elements=max_elements)
    return limits.resolved()


def _fail(where: str, message: str):
    raise StorageError(f"{where}: {message}")


class Budget:
    """What one decode has charged against its limits so far."""

    def __init__(self, limits: Optional[Limits] = None):
        self.limits = (limits or Limits()).resolved()
        self.elements = 0
        self.bytes = 0
        self.implied = 0
        self.group_elements = 0  # charged by a codec since the last begin_group()

    def check_shape(self, where: str, shape, field: str = "shape") -> int:
        """The element count of ``shape``; StorageError if it or a dimension is over the
        per-layer limit. Charges nothing."""
        cap = self.limits.max_layer_elements
        for d in shape:
            if d > cap:
                _fail(where, f"{field} {tuple(shape)} has a dimension of {d}, more than the "
                      f"limit max_layer_elements={cap}")
        n = math.prod(shape)
        if n > cap:
            _fail(where, f"{field} {tuple(shape)} has {n} elements, more than the limit "
                  f"max_layer_elements={cap}")
        return n

    def take(self, where: str, n: int, itemsize: int, what: str = "elements") -> None:
        """Charge ``n`` elements of ``itemsize`` bytes; StorageError past a limit."""
        n, nbytes = int(n), int(n) * int(itemsize)
        if self.elements + n > self.limits.max_elements:
            _fail(where, f"{n} {what} would make {self.elements + n} in this file, more than "
                  f"the limit max_elements={self.limits.max_elements}")
        if self.bytes + nbytes > self.limits.max_bytes:
            _fail(where, f"{nbytes} bytes of {what} would make {self.bytes + nbytes} in this "
                  f"file, more than the limit max_bytes={self.limits.max_bytes}")
        self.elements += n
        self.bytes += nbytes
        self.group_elements += n

    def take_shape(self, where: str, shape, itemsize: int) -> int:
        n = self.check_shape(where, shape)
        self.take(where, n, itemsize)
        return n

    def imply(self, where: str, n: int, field: str) -> None:
        """Charge ``n`` elements that no stored bit describes (``field`` says which)."""
        if self.implied + n > self.limits.max_implied:
            _fail(where, f"{field} implies {n} elements that no stored bit describes "
                  f"({self.implied + n} in this file), more than the limit max_implied="
                  f"{self.limits.max_implied}")
        self.implied += n

    def begin_group(self) -> None:
        self.group_elements = 0


_CURRENT: contextvars.ContextVar = contextvars.ContextVar("wsjax_storage_budget", default=None)


def current() -> Budget:
    """The budget of the decode in progress (a fresh default one outside any decode)."""
    budget = _CURRENT.get()
    return budget if budget is not None else Budget()


@contextlib.contextmanager
def active(budget: Budget):
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)
