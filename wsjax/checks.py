"""The one place that validates the numbers and seeds given to wsjax's public functions.

Every public boundary that takes a number (a sparsity, a quality, a penalty strength, a
learning rate, a compression ratio), an integer (codebook bits, a rank, a count) or a seed
checks it here, so that all of them accept and reject the same things:

* Python and NumPy scalars alike (``0.125``, ``np.float32(0.125)``, ``np.int64(3)``) and
  0-d arrays; the checked value comes back as a Python ``float`` or ``int``;
* never a bool (``True`` is not the number 1 here, nor the seed 1), a string or None, nor
  a float where an int is needed: :class:`ArgumentTypeError`, a :class:`TypeError` (that
  is also a :class:`ValueError`, as some of these checks raised before they met here);
* never NaN, nor infinity unless ``finite=False``, nor a value out of range:
  :class:`ValueError`.

Every message names the argument and the offending value, e.g.
``sparsity must be a number in [0, 1], got nan``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type: a bool, string or None for a number, a float for an int."""


def _is_bool(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and np.ndim(value) == 0 and dtype == np.bool_


def _scalar_kind(value) -> str | None:
    """'int', 'float' or None (not a real scalar)."""
    if _is_bool(value):
        return None
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    dtype = getattr(value, "dtype", None)
    if dtype is None or np.ndim(value) != 0:
        return None
    if jnp.issubdtype(dtype, jnp.integer):
        return "int"
    if jnp.issubdtype(dtype, jnp.floating):
        return "float"
    return None


def _interval(lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi}"
    return ""


def _in_range(v, lo, hi, lo_open, hi_open) -> bool:
    if lo is not None and (v <= lo if lo_open else v < lo):
        return False
    if hi is not None and (v >= hi if hi_open else v > hi):
        return False
    return True


def _where(name: str, path: str | None) -> str:
    return name if path is None else f"{name} for {path!r}"


def number(
    value: Any,
    name: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    finite: bool = True,
    traced: bool = False,
    path: str | None = None,
) -> float:
    """``value`` as a Python float, or a clear error.

    Args:
      value: a Python or NumPy real scalar, or a 0-d array.
      name: the argument's name, for the message (``path`` adds ``for 'Dense_0/kernel'``).
      lo, hi: bounds (inclusive unless ``lo_open`` / ``hi_open``).
      finite: reject infinities (NaN is always rejected).
      traced: pass a JAX tracer through unchecked (a value ``vmap``-ped over a grid).

    Raises:
      ArgumentTypeError (a TypeError): a bool, string, None or other non-number (the
        message names ``value``).
      ValueError: NaN, an infinity (with ``finite``) or a value out of range.
    """
    if traced and isinstance(value, jax.core.Tracer):
        return value
    bounds = _interval(lo, hi, lo_open, hi_open)
    what = f"a {'finite ' if finite and not bounds else ''}number{' ' + bounds if bounds else ''}"
    if hi is None and lo == 0:
        what = f"a {'finite ' if finite else ''}{'positive' if lo_open else 'non-negative'} number"
    if _scalar_kind(value) is None:
        raise ArgumentTypeError(f"{_where(name, path)} must be {what}, got {value!r}")
    v = float(value)
    if math.isnan(v) or (finite and math.isinf(v)) or not _in_range(v, lo, hi, lo_open, hi_open):
        raise ValueError(f"{_where(name, path)} must be {what}, got {value!r}")
    return v


def integer(value: Any, name: str, *, lo: int | None = None, hi: int | None = None,
            hi_open: bool = False, path: str | None = None) -> int:
    """``value`` as a Python int, or a clear error.

    Accepts Python and NumPy integers (and 0-d integer arrays). A bool, string, None or
    float (``2.5``, ``3.0``, NaN) is an :class:`ArgumentTypeError`; an int out of
    ``[lo, hi]`` (``[lo, hi)`` with ``hi_open``) a ValueError. Messages name ``value``.
    """
    bounds = _interval(lo, hi, False, hi_open)
    what = f"an int{' ' + bounds if bounds else ''}"
    if hi is None and lo in (0, 1):
        what = "a positive int" if lo == 1 else "a non-negative int"
    if _scalar_kind(value) != "int":
        raise ArgumentTypeError(f"{_where(name, path)} must be {what}, got {value!r}")
    if not _in_range(int(value), lo, hi, False, hi_open):
        raise ValueError(f"{_where(name, path)} must be {what}, got {value!r}")
    return int(value)


def seed(value: Any, name: str = "seed", *, hi: int | None = None) -> int:
    """A non-negative int seed (below ``hi`` if given); ``seed=True`` is a TypeError."""
    return integer(value, name, lo=0, hi=hi, hi_open=hi is not None)


def positive_int(value: Any, name: str, *, path: str | None = None) -> int:
    """An int >= 1."""
    return integer(value, name, lo=1, path=path)


def is_int(value: Any) -> bool:
    """True for a Python or NumPy integer (or 0-d integer array), False for a bool."""
    return _scalar_kind(value) == "int"


def positive_pair(value: Any, name: str) -> tuple[int, int]:
    """``(a, b)`` from a positive int (``(v, v)``) or a pair of positive ints (a kernel size,
    strides, a window); ValueError naming ``name`` otherwise."""
    if is_int(value):
        value = (value, value)
    try:
        value = tuple(value)
    except TypeError:
        value = (value,)
    if len(value) != 2 or not all(is_int(v) and v > 0 for v in value):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value!r}")
    return int(value[0]), int(value[1])
