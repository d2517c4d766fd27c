"""Codecs: how the free state of a transform is stored, one module per codec, by name.

A :class:`~wsjax.sharing.Transform`'s ``codec`` names one of these (``None`` stores the
weights ``W = apply(state)``). A codec is any object (a module will do) with

* ``name``: the string a transform's ``codec`` and a file's group header carry;
* ``encode(state, options) -> Group | list[Group]``: the state as JSON-able ``meta`` plus
  named arrays (``options`` are :func:`wsjax.storage.encode`'s keyword options);
* ``decode(group) -> (params, state)``: ``{path: np.ndarray}`` equal bit for bit to
  ``transform.apply(state)``, and the :class:`~wsjax.sharing.SharedParams` that
  ``encode`` saw (its arrays as JAX arrays). It checks every meta field first and raises
  :class:`~wsjax.storage.StorageError` for anything inconsistent;
* optionally ``rows(group) -> [Row]``: the size-report rows (which records hold which
  params leaves); by default one row for the whole group.

Adding a codec is one module and one :func:`register` call. ``('select', inner)`` is not a
codec but how :func:`wsjax.sharing.select` says "the unselected leaves as weights, the
selected ones by ``inner``" (:func:`groups_of`).
"""

from __future__ import annotations

from typing import Any

from wsjax.sharing.core import SharedParams, flatten_paths
from wsjax.storage.codecs.base import Group, Row

_REGISTRY: dict[str, Any] = {}


def register(codec):
    """Register ``codec`` under ``codec.name``; returns it (usable as a decorator)."""
    name = getattr(codec, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"a codec needs a non-empty string name, got {name!r}")
    for attr in ("encode", "decode"):
        if not callable(getattr(codec, attr, None)):
            raise TypeError(f"codec {name!r} has no {attr}() function")
    if _REGISTRY.get(name, codec) is not codec:
        raise ValueError(f"another codec is already registered as {name!r}")
    _REGISTRY[name] = codec
    return codec


def unregister(name: str) -> None:
    """Remove the codec registered as ``name`` (files that use it no longer load)."""
    _REGISTRY.pop(name, None)


def get(name: str):
    """The codec registered as ``name``; KeyError naming the registered ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown codec {name!r}; registered codecs: {names()}") from None


def names() -> tuple[str, ...]:
    """The registered codec names, in registration order."""
    return tuple(_REGISTRY)


def rows(group: Group, paths) -> list[Row]:
    """The size-report rows of a decoded group whose params are ``paths``."""
    codec_rows = getattr(get(group.codec), "rows", None)
    if codec_rows is None:
        return [Row(group.codec, tuple(group.arrays), tuple(paths))]
    return list(codec_rows(group))


def stores_weights(codec) -> bool:
    """Whether a transform with this ``codec`` is stored as its weights alone."""
    if codec is None:
        return True
    if isinstance(codec, tuple) and len(codec) == 2 and codec[0] == "select":
        return stores_weights(codec[1])
    return False


def groups_of(codec, state: SharedParams, options: dict) -> list[Group]:
    """The groups that store ``state`` of a transform whose codec is ``codec``.

    ``('select', inner)``: the non-``None`` leaves of ``state.theta['rest']`` go to a
    'weights' group, the rest to ``inner``'s groups for ``SharedParams(theta['inner'],
    frozen)``.
    """
    if isinstance(codec, tuple):
        if len(codec) != 2 or codec[0] != "select":
            raise ValueError(f"a codec tuple must be ('select', inner codec), got {codec!r}")
        theta = state.theta
        if not isinstance(theta, dict) or set(theta) != {"rest", "inner"}:
            raise ValueError("a ('select', ...) codec needs a select state {'rest', 'inner'}")
        inner = SharedParams(theta["inner"], state.frozen)
        rest = weights.encode(flatten_paths(theta["rest"]), options)
        if codec[1] is None:
            raise ValueError("('select', None) stores weights; encode transform.apply(state)")
        return ([rest] if rest.arrays else []) + groups_of(codec[1], inner, options)
    if not isinstance(codec, str):
        raise ValueError(f"codec must be None, a registered name or ('select', inner), "
                         f"got {codec!r}")
    try:
        found = get(codec)
    except KeyError as e:
        raise ValueError(str(e.args[0])) from None
    out = found.encode(state, options)
    return [out] if isinstance(out, Group) else list(out)


# The built-in codecs: one module and one registration each.
from wsjax.storage.codecs import hashing, low_rank, tying, weights  # noqa: E402

register(weights)
register(hashing)
register(low_rank)
register(tying)
from wsjax.storage.codecs import tying_in_order  # noqa: E402
register(tying_in_order)
from wsjax.storage.codecs import shared_basis  # noqa: E402
register(shared_basis)
from wsjax.storage.codecs import predicted  # noqa: E402
register(predicted)
from wsjax.storage.codecs import lowbit  # noqa: E402
register(lowbit)

__all__ = ["Group", "Row", "get", "groups_of", "names", "register", "rows", "stores_weights",
           "unregister"]
