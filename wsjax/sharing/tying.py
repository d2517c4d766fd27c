"""Cross-layer tying: several layers use one set of weights, optionally multiplexed.

``tied(['Block_1', 'Block_2', 'Block_3'])`` makes the listed layers (path prefixes of the
params pytree, all with the same leaf names and shapes) share one copy of their weights,
initialised from the first listed layer, as ALBERT ties all its transformer layers. The
gradient of a shared weight is the sum of its layers' gradients, which autodiff of the copy
already gives.

With ``multiplex`` each layer ``l`` sees a small per-layer transformation of the shared
weights (MiniViT's weight multiplexing), applied to every leaf with two or more axes
(kernels; biases stay plainly shared), where ``cols`` is the leaf's last (output) axis:

* ``'scale_shift'``: ``W_l = W * s_l + t_l`` with ``s_l``, ``t_l`` of shape ``(cols,)``,
  initialised to 1 and 0 (a per-output-unit diagonal scale and shift);
* ``'lowrank'``: ``W_l = W + A_l @ B_l`` reshaped to the leaf's shape, ``A_l`` of shape
  ``(rows, rank)`` drawn from ``N(0, 1/rows)`` and ``B_l`` of shape ``(rank, cols)`` zero, so
  every layer starts as an exact copy.

``theta`` is ``{'shared': {leaf name: array}, 'layers': {layer: {leaf name: {...}}}}`` (the
``'layers'`` entry only with ``multiplex``).

:func:`tied_in_order` ties ``N`` positions to ``M < N`` unique layers in Takase & Kiyono's
orders: ``'sequence'`` (position ``p`` uses copy ``floor(p M / N)``: consecutive runs) or
``'cycle'`` (copy ``p mod M``); each copy used by two or more positions is a tying group as
above (stored as its own 'tying' group), a copy used once stays that layer's own weights.

References: Lan et al, `ALBERT: A Lite BERT for Self-supervised Learning of Language
Representations <https://arxiv.org/abs/1909.11942>`_, 2020; Zhang et al, `MiniViT:
Compressing Vision Transformers with Weight Multiplexing <https://arxiv.org/abs/2204.07154>`_,
2022; Takase & Kiyono, `Lessons on Parameter Sharing across Layers in Transformers
<https://arxiv.org/abs/2104.06022>`_, 2021 (sequence and cycle assignments).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.sharing.core import SharedParams, Static, Transform, select

MULTIPLEX = (None, "scale_shift", "lowrank")
ORDERS = ("sequence", "cycle")


def _split(path: str, layers: Sequence[str]) -> tuple[str, str]:
    for layer in layers:
        if path.startswith(layer + "/"):
            return layer, path[len(layer) + 1 :]
    raise ValueError(f"{path!r} is under none of the tied layers {list(layers)}")


def _under(path: str, layers) -> bool:
    return any(path.startswith(layer + "/") for layer in layers)


def _rows_cols(shape) -> tuple[int, int]:
    return int(np.prod(shape[:-1])), int(shape[-1])


def _group(leaves, layers):
    """``{layer: {leaf name: leaf}}``, checking that every layer has the same names and shapes."""
    groups = {layer: {} for layer in layers}
    for path, x in leaves.items():
        layer, name = _split(path, layers)
        groups[layer][name] = x
    first = layers[0]
    want = {n: tuple(x.shape) for n, x in groups[first].items()}
    for layer in layers[1:]:
        got = {n: tuple(x.shape) for n, x in groups[layer].items()}
        if got != want:
            raise ValueError(
                f"tied layers must have identical leaves: {first!r} has {want}, "
                f"{layer!r} has {got}"
            )
    return groups


def _multiplex_init(key, x, multiplex, rank):
    rows, cols = _rows_cols(x.shape)
    if multiplex == "scale_shift":
        return {"scale": jnp.ones((cols,), x.dtype), "shift": jnp.zeros((cols,), x.dtype)}
    r = min(rank, rows, cols)
    a = jax.random.normal(key, (rows, r), jnp.float32) / np.sqrt(rows)
    return {"a": a.astype(x.dtype), "b": jnp.zeros((r, cols), x.dtype)}


def _multiplex_apply(w, delta, multiplex):
    if multiplex == "scale_shift":
        return w * delta["scale"] + delta["shift"]
    return w + (delta["a"] @ delta["b"]).reshape(w.shape)


def tying(layers: Sequence[str], *, multiplex: str | None = None, rank: int = 4) -> Transform:
    """Tie the ``layers`` of a ``{path: leaf}`` dict (use inside :func:`~wsjax.sharing.select`).

    See the module docstring; :func:`tied` is the form that takes a whole params pytree.
    """
    layers = tuple(layers)
    if len(layers) < 2:
        raise ValueError(f"tying needs at least two layers, got {list(layers)}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"tied layers must be distinct, got {list(layers)}")
    if multiplex not in MULTIPLEX:
        raise ValueError(f"multiplex must be one of {MULTIPLEX}, got {multiplex!r}")
    rank = checks.positive_int(rank, "rank")

    def init(key, leaves):
        groups = _group(leaves, layers)
        shared = dict(groups[layers[0]])
        theta = {"shared": shared}
        if multiplex is not None:
            keys = iter(jax.random.split(key, len(layers) * max(len(shared), 1)))
            theta["layers"] = {
                layer: {
                    name: _multiplex_init(next(keys), x, multiplex, rank)
                    for name, x in sorted(shared.items())
                    if x.ndim >= 2
                }
                for layer in layers
            }
        paths = tuple(sorted(leaves))
        return SharedParams(theta, Static((layers, paths)))

    def apply(state):
        _, paths = state.frozen.value
        shared = state.theta["shared"]
        per_layer = state.theta.get("layers")
        out = {}
        for path in paths:
            layer, name = _split(path, layers)
            w = shared[name]
            if per_layer is not None and name in per_layer[layer]:
                w = _multiplex_apply(w, per_layer[layer][name], multiplex)
            out[path] = w
        return out

    return Transform(init, apply, codec="tying")


def tied(layers: Sequence[str], *, multiplex: str | None = None, rank: int = 4) -> Transform:
    """Tie the named layers of a model's params pytree (all leaves under ``layer/``).

    Example: ``tied(['Dense_1', 'Dense_2', 'Dense_3'], multiplex='scale_shift')`` on
    ``MLP((100, 100, 100, 100, 10))`` keeps one 100x100 hidden layer plus a scale and shift
    per layer.
    """
    prefixes = tuple(layers)
    return select(lambda path: _under(path, prefixes), tying(prefixes, multiplex=multiplex, rank=rank))


def assignment(positions: int, unique: int, order: str = "cycle") -> tuple[int, ...]:
    """The copy (0 .. ``unique - 1``) each of ``positions`` layers uses: ``'sequence'``
    ``p * unique // positions``, ``'cycle'`` ``p % unique`` (Takase & Kiyono 2021)."""
    positions = checks.positive_int(positions, "positions")
    unique = checks.positive_int(unique, "unique")
    if unique > positions:
        raise ValueError(f"unique must be at most the {positions} positions, got {unique}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return tuple(p * unique // positions if order == "sequence" else p % unique for p in range(positions))


def copies(layers: Sequence[str], unique: int, order: str = "cycle") -> list[tuple[str, ...]]:
    """The layers of each copy, in copy order: ``copies(['a', 'b', 'c', 'd'], 2, 'cycle')`` is
    ``[('a', 'c'), ('b', 'd')]``, with ``'sequence'`` ``[('a', 'b'), ('c', 'd')]``."""
    layers = tuple(layers)
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct, got {list(layers)}")
    which = assignment(len(layers), unique, order)
    return [tuple(l for l, c in zip(layers, which) if c == i) for i in range(unique)]


def tying_in_order(layers: Sequence[str], unique: int, order: str = "cycle", *,
                   multiplex: str | None = None, rank: int = 4) -> Transform:
    """``unique`` copies for the ``layers`` of a ``{path: leaf}`` dict in ``order`` (see
    :func:`copies`); each copy of two or more layers is :func:`tying` of them, with its
    ``multiplex``. ``theta`` is a tuple, one entry per copy: the tying theta, or a single
    layer's ``{path: leaf}``. Use inside :func:`~wsjax.sharing.select`, or :func:`tied_in_order`."""
    groups = copies(layers, unique, order)
    inner = [tying(g, multiplex=multiplex, rank=rank) if len(g) > 1 else None for g in groups]

    def init(key, leaves):
        outside = sorted(p for p in leaves if not _under(p, layers))
        if outside:
            raise ValueError(f"{outside[0]!r} is under none of the layers {list(layers)}")
        thetas, frozen = [], []
        for i, (g, t) in enumerate(zip(groups, inner)):
            mine = {p: x for p, x in leaves.items() if _under(p, g)}
            if t is None:
                thetas.append(mine)
                frozen.append(Static(None))
            else:
                s = t.init(jax.random.fold_in(key, i), mine)
                thetas.append(s.theta)
                frozen.append(s.frozen)
        return SharedParams(tuple(thetas), tuple(frozen))

    def apply(state):
        out = {}
        for t, theta, frozen in zip(inner, state.theta, state.frozen):
            out.update(theta if t is None else t.apply(SharedParams(theta, frozen)))
        return out

    return Transform(init, apply, codec="tying_in_order")


def tied_in_order(layers: Sequence[str], unique: int, order: str = "cycle", *,
                  multiplex: str | None = None, rank: int = 4) -> Transform:
    """:func:`tying_in_order` on a model's params pytree (all leaves under ``layer/``).

    Example: on the deep MLP's seven 256x256 hidden layers, ``tied_in_order([f'Dense_{i}' for
    i in range(1, 8)], 3, 'cycle')`` keeps three hidden layers, used in the order 1 2 3 1 2 3 1.
    """
    prefixes = tuple(layers)
    return select(lambda path: _under(path, prefixes),
                  tying_in_order(prefixes, unique, order, multiplex=multiplex, rank=rank))
