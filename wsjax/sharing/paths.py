"""Choosing leaves by path, and per-layer values: the one convention used all over wsjax.

A leaf is named by its '/'-joined pytree path (:func:`wsjax.sharing.core.path_str`):
``'Dense_0/kernel'`` in Flax linen params, ``'layers/0/kernel/value'`` in a Flax NNX
``State`` (``nnx.split(model)``, ``nnx.state(model, nnx.Param)``: each ``Variable`` adds a
trailing ``value``) and ``'layers/0/kernel'`` in ``State.to_pure_dict()``.

* Every ``include`` argument (which leaves a transform, pruning rule or penalty acts on)
  goes through :func:`matcher`: a regular expression ``re.search``-ed against the path, or
  a predicate on it. The defaults :data:`KERNELS` and :data:`KERNELS_AND_BIASES` select
  kernels (and biases) in linen and NNX paths alike.
* Every per-layer setting (sparsity, codebook bits, storage index bits and encoding) goes
  through :func:`per_layer`: one value, a ``{regex: value}`` mapping (first match wins) or a
  callable of the path.
* :func:`han_bits` is Deep Compression's choice of bits per layer.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Union

#: Kernel leaves: ``.../kernel`` (linen, NNX pure dicts) or ``.../kernel/value`` (NNX State).
KERNELS = r"(^|/)kernel(/value)?$"
#: Kernel and bias leaves, in the same path forms as :data:`KERNELS`.
KERNELS_AND_BIASES = r"(^|/)(kernel|bias)(/value)?$"

Include = Union[str, re.Pattern, Callable[[str], bool]]
PerLayer = Union[None, Any, Mapping[str, Any], Callable[[str], Any]]


def _compile(pattern, name: str) -> re.Pattern:
    if isinstance(pattern, re.Pattern):
        return pattern
    if not isinstance(pattern, str):
        raise TypeError(f"{name} must be a regex string or re.Pattern, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"{name}={pattern!r} is not a valid regular expression: {e}") from e


def matcher(include: Include, *, name: str = "include") -> Callable[[str], bool]:
    """A predicate on '/'-joined leaf paths.

    ``include`` is a regular expression (a string or a compiled ``re.Pattern``), which is
    ``re.search``-ed against the path (anchor it, as :data:`KERNELS` does, to match whole
    names), or a callable ``path -> bool``, used as is. ``name`` names the argument in
    error messages: an invalid regex raises ValueError, any other type TypeError.
    """
    if isinstance(include, (str, re.Pattern)):
        rx = _compile(include, name)
        return lambda path: rx.search(path) is not None
    if callable(include):
        return include
    raise TypeError(f"{name} must be a regex string, re.Pattern or callable, got {include!r}")


def per_layer(
    value: PerLayer,
    path: str,
    *,
    name: str,
    default: Any = None,
    check: Callable[[Any, str], Any] | None = None,
) -> Any:
    """The value of a per-layer setting for the leaf at ``path``.

    Args:
      value: one value for every layer; a ``{regex: value}`` mapping, where the first
        pattern that ``re.search``-es ``path`` wins; a callable ``path -> value``; or None.
      path: the leaf's '/'-joined path.
      name: the setting's name, for error messages (an invalid regex key raises ValueError).
      default: returned when ``value`` is None, no key matches, or the value found is None.
      check: ``check(v, path) -> v`` validates (and may convert) a value found; it does not
        see ``default``.
    """
    if isinstance(value, Mapping):
        found = None
        for pattern, v in value.items():
            if _compile(pattern, f"{name} key").search(path):
                found = v
                break
    elif callable(value):
        found = value(path)
    else:
        found = value
    if found is None:
        return default
    return found if check is None else check(found, path)


def han_bits(ndim: int) -> int:
    """Han et al.'s bits for a leaf of ``ndim`` dimensions: 8 for conv kernels (4-D), else 5.

    Deep Compression uses them both for the codebook size per layer (``2**bits`` shared
    weights) and for the width of the relative indices of its sparse storage.
    """
    return 8 if ndim == 4 else 5
