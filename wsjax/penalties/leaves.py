"""Which weights a penalty applies to: float leaves selected by a '/'-joined path regex.

A penalty sees the selected leaves as a flat ``{path: leaf}`` dict (the same convention as
:func:`wsjax.sharing.select`), so one mixture prior can cover several layers at once.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from wsjax.sharing.core import flatten_paths, path_str
from wsjax.sharing.paths import Include, matcher


def _is_float_array(x) -> bool:
    return hasattr(x, "dtype") and hasattr(x, "shape") and jnp.issubdtype(x.dtype, jnp.floating)


def selected_leaves(params: Any, include: Include, *, require: bool = True) -> dict[str, Any]:
    """``{path: leaf}`` for the float leaves of ``params`` whose path matches ``include``.

    Raises ValueError when nothing matches and ``require`` is set, listing the paths.
    """
    if params is None:
        raise ValueError("params is None: a weight penalty needs the current parameters")
    match = matcher(include)
    flat = flatten_paths(params)
    chosen = {p: x for p, x in flat.items() if _is_float_array(x) and match(p)}
    if require and not chosen:
        raise ValueError(
            f"include={include!r} matched no floating-point leaf; paths are: {sorted(flat)}"
        )
    return chosen


def add_to_selected(updates: Any, additions: Mapping[str, jax.Array]) -> Any:
    """``updates`` with ``additions[path]`` added to the leaf at each path (others unchanged)."""

    def add(keypath, u):
        p = path_str(keypath)
        if u is None or p not in additions:
            return u
        return u + additions[p].astype(u.dtype)

    return jax.tree_util.tree_map_with_path(add, updates, is_leaf=lambda x: x is None)


def replace_selected(params: Any, replacements: Mapping[str, Any]) -> Any:
    """``params`` with the leaf at each path of ``replacements`` swapped for the new value."""
    return jax.tree_util.tree_map_with_path(
        lambda kp, x: replacements.get(path_str(kp), x), params, is_leaf=lambda x: x is None
    )
