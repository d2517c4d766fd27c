"""Unstructured magnitude pruning: masks that keep the largest weights.

Two criteria, both returning a masks pytree (a boolean array for every pruned leaf, ``None``
for the others) for :func:`wsjax.sharing.mask.masked`:

* :func:`threshold_masks`: Han et al.'s rule, per layer prune ``|w| <= quality * std(w)``
  (the standard deviation of the layer's surviving weights);
* :func:`sparsity_masks`: prune an exact target fraction of each layer (``scope='layer'``,
  one fraction for all or one per layer) or of all pruned layers together
  (``scope='global'``), smallest magnitudes first, ties broken by position.

Passing ``current`` masks makes pruning cumulative (iterative pruning): a pruned weight never
comes back, and a sparsity target counts the weights already pruned. Masks are computed on
the host with NumPy: pruning happens between training phases, not inside a step.

References: Han, Pool, Tran & Dally, `Learning both Weights and Connections for Efficient
Neural Networks <https://arxiv.org/abs/1506.02626>`_, 2015; Han, Mao & Dally, `Deep
Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import numpy as np

from wsjax import checks
from wsjax.sharing.core import flatten_paths, path_str
from wsjax.sharing.paths import KERNELS, Include, PerLayer, matcher, per_layer

SCOPES = ("layer", "global")


def _fraction(v, path: str) -> float:
    """A ``check`` for :func:`wsjax.sharing.paths.per_layer`: a sparsity in [0, 1]."""
    return checks.number(v, "sparsity", lo=0.0, hi=1.0, path=path)


def _quality(v, path: str) -> float:
    """A ``check`` for :func:`wsjax.sharing.paths.per_layer`: a finite quality >= 0."""
    return checks.number(v, "quality", lo=0.0, path=path)


def _current(current, path: str, shape) -> np.ndarray:
    if current is None:
        return np.ones(shape, bool)
    flat = flatten_paths(current)
    if path not in flat:
        return np.ones(shape, bool)
    m = np.asarray(flat[path]).astype(bool)
    if m.shape != tuple(shape):
        raise ValueError(f"current mask for {path!r} has shape {m.shape}, leaf has {tuple(shape)}")
    return m


def _build(params, include: Include, leaf_mask: Callable[[str, np.ndarray], np.ndarray | None]):
    match = matcher(include)
    paths = flatten_paths(params)
    if not any(match(p) for p in paths):
        raise ValueError(f"include={include!r} matches no leaf; paths are {sorted(paths)}")

    def one(kp, leaf):
        path = path_str(kp)
        if not match(path):
            return None
        return leaf_mask(path, np.asarray(leaf))

    return jax.tree_util.tree_map_with_path(one, params)


def _prune_smallest(w: np.ndarray, keep: np.ndarray, n_prune_total: int) -> np.ndarray:
    """Prune the smallest-magnitude survivors until ``n_prune_total`` entries are pruned."""
    already = int(w.size - keep.sum())
    extra = n_prune_total - already
    if extra <= 0:
        return keep.copy()
    score = np.where(keep, np.abs(w), -np.inf).ravel()
    order = np.argsort(score, kind="stable")
    out = keep.copy().ravel()
    out[order[:n_prune_total]] = False
    return out.reshape(w.shape)


def sparsity_masks(
    params: Any,
    sparsity: PerLayer,
    *,
    scope: str = "layer",
    include: Include = KERNELS,
    current: Any = None,
) -> Any:
    """Masks that prune a target fraction of the weights, smallest ``|w|`` first.

    Args:
      params: the params pytree.
      sparsity: fraction pruned, in [0, 1]; with ``scope='layer'`` also a ``{path regex:
        fraction}`` dict (first match wins; included layers no key matches are not pruned).
      scope: ``'layer'`` prunes ``round(sparsity * size)`` weights of every layer;
        ``'global'`` ranks all included weights together and prunes
        ``round(sparsity * total)`` of them.
      include: regex (or predicate) on '/'-joined paths of the leaves to prune.
      current: masks of an earlier round; pruned entries stay pruned and count towards
        the target.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if sparsity is None:
        raise TypeError("sparsity must be a fraction in [0, 1] (or a {path regex: fraction} dict), got None")
    if scope == "layer":

        def leaf_mask(path, w):
            s = per_layer(sparsity, path, name="sparsity", default=0.0, check=_fraction)
            keep = _current(current, path, w.shape)
            return _prune_smallest(w, keep, int(round(s * w.size)))

        return _build(params, include, leaf_mask)

    if isinstance(sparsity, Mapping):
        raise TypeError("scope='global' takes one sparsity for all layers, not a dict")
    s = checks.number(sparsity, "sparsity", lo=0.0, hi=1.0)
    match = matcher(include)
    chosen = {p: np.asarray(x) for p, x in flatten_paths(params).items() if match(p)}
    if not chosen:
        raise ValueError(f"include={include!r} matches no leaf")
    keeps = {p: _current(current, p, w.shape) for p, w in chosen.items()}
    all_w = np.concatenate([w.ravel() for w in chosen.values()])
    all_keep = np.concatenate([k.ravel() for k in keeps.values()])
    flat_mask = _prune_smallest(all_w, all_keep, int(round(s * all_w.size)))
    out, offset = {}, 0
    for p, w in chosen.items():
        out[p] = flat_mask[offset : offset + w.size].reshape(w.shape)
        offset += w.size
    return _build(params, include, lambda path, w: out[path])


def threshold_masks(
    params: Any,
    quality: PerLayer,
    *,
    include: Include = KERNELS,
    current: Any = None,
) -> Any:
    """Han et al.'s per-layer rule: keep ``|w| > quality * std(surviving w of the layer)``.

    ``quality`` is one number or a ``{path regex: number}`` dict (included layers no key
    matches are not pruned).
    """

    def leaf_mask(path, w):
        keep = _current(current, path, w.shape)
        q = per_layer(quality, path, name="quality", check=_quality)
        if q is None or not keep.any():
            return keep
        threshold = q * float(np.std(w[keep]))
        return keep & (np.abs(w) > threshold)

    return _build(params, include, leaf_mask)


def layer_density(masks: Any) -> dict[str, float]:
    """``{path: kept fraction}`` of every masked leaf."""
    return {p: float(np.mean(np.asarray(m))) for p, m in flatten_paths(masks).items()}


def density(masks: Any) -> float:
    """Kept fraction over all masked leaves together."""
    ms = [np.asarray(m) for m in flatten_paths(masks).values()]
    total = sum(m.size for m in ms)
    if total == 0:
        raise ValueError("no masked leaves")
    return float(sum(int(m.sum()) for m in ms) / total)
