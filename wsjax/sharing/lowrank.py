"""Low-rank factorisation ``W = U @ V`` with both factors trained (the LRD baseline).

A leaf of shape ``(..., n_out)`` is viewed as a ``rows x cols`` matrix (``cols`` the last
axis) and replaced by ``U`` (``rows x r``) times ``V`` (``r x cols``): ``r * (rows + cols)``
free parameters instead of ``rows * cols``. ``init`` factors the given weights by a truncated
SVD, splitting the singular values evenly (``U = U_r sqrt(S_r)``, ``V = sqrt(S_r) V_r^T``),
so ``U @ V`` starts as the best rank-``r`` approximation of the given leaf. Autodiff through
the product is already the right backward pass.

References: Denil et al, `Predicting Parameters in Deep Learning
<https://arxiv.org/abs/1306.0543>`_, 2013; the LRD baseline of Chen et al, `Compressing
Neural Networks with the Hashing Trick <https://arxiv.org/abs/1504.04788>`_, 2015.
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.sharing.core import SharedParams, Static, Transform, per_leaf, select
from wsjax.sharing.paths import KERNELS, Include

Rank = int | Mapping[str, int] | Callable[[str, tuple], int]


def rank_for_compression(compression: float, shape: tuple) -> int:
    """The rank whose factors hold about ``compression * size`` parameters (at least 1)."""
    compression = checks.number(compression, "compression", lo=0.0, hi=1.0, lo_open=True)
    rows, cols = _matrix_shape(shape)
    return max(1, int(round(compression * rows * cols / (rows + cols))))


def rank_for_budget(shapes, budget: int) -> int:
    """The largest common rank ``r`` whose factors fit in ``budget`` parameters.

    Each matrix of ``shapes`` gets rank ``min(r, rows, cols)`` (a rank above a matrix's
    smaller side buys nothing), holding ``rank * (rows + cols)`` parameters; at least 1.
    One rank for every layer keeps a small output layer from being squeezed to rank 1
    when the budget is spread in proportion to the layers' sizes.
    """
    mats = [_matrix_shape(s) for s in shapes]
    if not mats:
        raise ValueError("rank_for_budget needs at least one shape")

    def cost(r):
        return sum(min(r, m, n) * (m + n) for m, n in mats)

    lo, hi = 1, max(min(m, n) for m, n in mats)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _matrix_shape(shape) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"low rank needs a leaf with >= 2 axes, got shape {tuple(shape)}")
    return int(np.prod(shape[:-1])), int(shape[-1])


def _rank_of(rank: Rank, path: str, shape: tuple) -> int:
    if callable(rank):
        r = rank(path, shape)
    elif isinstance(rank, Mapping):
        if path not in rank:
            raise ValueError(f"no rank given for {path!r}; ranks are given for {sorted(rank)}")
        r = rank[path]
    else:
        r = rank
    return min(checks.positive_int(r, "rank", path=path), *_matrix_shape(shape))


def svd_factors(w: jax.Array, rank: int) -> tuple[jax.Array, jax.Array]:
    """``(U, V)`` with ``U @ V`` the best rank-``rank`` approximation of ``w`` (as a matrix)."""
    rows, cols = _matrix_shape(w.shape)
    if rank > min(rows, cols):
        raise ValueError(f"rank {rank} exceeds min{(rows, cols)} of a leaf of shape {w.shape}")
    u, s, vt = jnp.linalg.svd(w.reshape(rows, cols).astype(jnp.float32), full_matrices=False)
    root = jnp.sqrt(s[:rank])
    return (u[:, :rank] * root).astype(w.dtype), (root[:, None] * vt[:rank]).astype(w.dtype)


def low_rank_leaves(rank: Rank) -> Transform:
    """Factor every leaf of a ``{path: leaf}`` dict (use inside :func:`~wsjax.sharing.select`).

    ``rank`` is one int for all leaves, a ``{path: rank}`` mapping, or a function
    ``(path, shape) -> rank`` (e.g. ``lambda p, s: rank_for_compression(1/8, s)``); a rank
    above a leaf's smaller side is lowered to it.
    ``theta`` is ``{path: {'u': U, 'v': V}}``.
    """
    if not callable(rank) and not isinstance(rank, Mapping):
        checks.positive_int(rank, "rank")

    def leaf_init(key, leaf, path):
        del key
        u, v = svd_factors(leaf, _rank_of(rank, path, tuple(leaf.shape)))
        return SharedParams({"u": u, "v": v}, Static(tuple(leaf.shape)))

    return per_leaf(leaf_init, _product)._replace(codec="low_rank")


def _product(state: SharedParams, path: str) -> jax.Array:
    """One leaf's ``U @ V`` in the leaf's shape (the rank is read off the factors)."""
    del path
    return jnp.matmul(state.theta["u"], state.theta["v"]).reshape(state.frozen.value)


def low_rank(rank: Rank | None = None, *, compression: float | None = None,
             include: Include = KERNELS) -> Transform:
    """LRD on a model's params pytree: factor the leaves matching ``include``.

    Give either ``rank`` (see :func:`low_rank_leaves`) or ``compression``: one common rank,
    from :func:`rank_for_budget`, for ``compression`` times the selected leaves' size.
    """
    if (rank is None) == (compression is None):
        raise ValueError("give exactly one of rank and compression")
    if compression is None:
        return select(include, low_rank_leaves(rank))
    compression = checks.number(compression, "compression", lo=0.0, hi=1.0, lo_open=True)

    def init(key, leaves):
        shapes = [tuple(x.shape) for x in leaves.values()]
        budget = compression * sum(int(np.prod(s)) for s in shapes)
        common = rank_for_budget(shapes, int(round(budget)))
        return low_rank_leaves(common).init(key, leaves)

    apply = per_leaf(lambda key, leaf, path: None, _product).apply
    return select(include, Transform(init, apply, codec="low_rank"))
