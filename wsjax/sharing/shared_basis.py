"""Basis sharing: same-shape layers share one low-rank basis, each with its own coefficients.

Leaves ``W_1 .. W_m`` of one shape ``(..., c)`` are each viewed as an ``n x c`` matrix (``n``
the product of the leading axes, ``c`` the last, output, axis) and written as

    W_l = B @ C_l,    B: (n, r) shared by the whole group,    C_l: (r, c) per leaf,

which holds ``n*r + m*r*c`` free parameters, against ``m*r'*(n + c)`` for a separate rank-``r'``
factorisation of every leaf (:mod:`wsjax.sharing.lowrank`).

``init`` factors the given (e.g. trained) weights by the truncated SVD of their horizontal
stack ``[W_1 | ... | W_m]`` (``n x m*c``): with ``U_r S_r V_r^T`` its top ``r`` singular
triplets, ``B = U_r sqrt(S_r)`` and ``C = sqrt(S_r) V_r^T``, split column-wise into the ``m``
blocks ``C_l``. By the Eckart-Young theorem ``[B C_1 | ... | B C_m]`` is then the best rank-``r``
approximation of the stack in the Frobenius norm, i.e. the ``B, C_l`` minimise
``sum_l ||W_l - B C_l||_F^2`` over all shared bases of rank ``r``. Autodiff through the
products is the right backward pass (the gradient of ``B`` sums over the group's leaves).

Whether a shared basis pays depends on how much the layers' column spaces overlap: for
equal leaves the shared rank-``r`` basis is exactly as good as per-layer rank ``r`` at
fewer parameters, for leaves with orthogonal column spaces it is worse at equal parameters.
:func:`equal_budget_ranks`, :func:`joint_reconstruction_error` and
:func:`per_layer_reconstruction_error` measure both directions.

The paper factors activation-whitened weights (an SVD-LLM style scaling by the inputs'
statistics) and shares bases across transformer layers; here the plain weights are
factored (the Frobenius norm of the weights themselves). ``theta`` is ``{'bases': (B_0, B_1,
...) one per group, 'coefs': {path: C_l}}``.

References: Wang et al, `Basis Sharing: Cross-Layer Parameter Sharing for Large Language
Model Compression <https://arxiv.org/abs/2410.03765>`_, 2024.
"""

from __future__ import annotations

import functools
import math
from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.sharing.core import SharedParams, Static, Transform, select
from wsjax.sharing.lowrank import rank_for_budget, svd_factors

Rank = int | Mapping[int, int]


class Layout(NamedTuple):
    """The frozen structure of a shared-basis state: each group's leaf paths and leaf shape."""

    groups: tuple  # tuple of tuples of paths, one per basis
    shapes: tuple  # the leaf shape of each group


class BudgetRanks(NamedTuple):
    """A shared rank and a per-layer rank of (at most) equal parameter counts."""

    shared: int
    per_layer: int
    shared_params: int
    per_layer_params: int


class ReconstructionError(NamedTuple):
    """Relative Frobenius errors ``||W_l - A_l||_F / ||W_l||_F`` of an approximation ``A_l``.

    ``total`` is ``sqrt(sum_l ||W_l - A_l||^2) / sqrt(sum_l ||W_l||^2)``; a zero leaf's own
    error is 0 (its best approximation is zero). ``rank`` is the rank used (after lowering
    to the matrix's smaller side), ``params`` the approximation's parameter count.
    """

    per_layer: tuple
    total: float
    rank: int
    params: int


# ----------------------------------------------------------------------------- counting


def _dims(n, c, m) -> tuple[int, int, int]:
    return (checks.positive_int(n, "n"), checks.positive_int(c, "c"),
            checks.positive_int(m, "m"))


def max_shared_rank(n: int, c: int, m: int) -> int:
    """``min(n, m*c)``: the rank of the ``n x m*c`` stack; a larger basis buys nothing."""
    n, c, m = _dims(n, c, m)
    return min(n, m * c)


def shared_basis_params(n: int, c: int, m: int, rank: int) -> int:
    """``n*r + m*r*c``: one ``n x r`` basis and ``m`` coefficient blocks of ``r x c``."""
    n, c, m = _dims(n, c, m)
    rank = checks.positive_int(rank, "rank")
    return n * rank + m * rank * c


def per_layer_params(n: int, c: int, m: int, rank: int) -> int:
    """``m*r*(n + c)``: a separate rank-``r`` factorisation of each of ``m`` leaves."""
    n, c, m = _dims(n, c, m)
    rank = checks.positive_int(rank, "rank")
    return m * rank * (n + c)


def shared_rank_for_budget(n: int, c: int, m: int, budget: int) -> int:
    """The largest ``r <= min(n, m*c)`` with ``n*r + m*r*c <= budget``.

    ValueError if not even rank 1 fits (``budget < n + m*c``).
    """
    n, c, m = _dims(n, c, m)
    budget = checks.integer(budget, "budget", lo=0)
    rank = min(budget // (n + m * c), min(n, m * c))
    if rank < 1:
        raise ValueError(f"a budget of {budget} parameters buys no shared basis: rank 1 of "
                         f"an {n} x {c} group of {m} needs n + m*c = {n + m * c}")
    return rank


def per_layer_rank_for_budget(n: int, c: int, m: int, budget: int) -> int:
    """The largest common per-layer rank for ``m`` leaves of ``n x c`` within ``budget``:
    :func:`wsjax.sharing.lowrank.rank_for_budget` of ``m`` copies of the shape."""
    n, c, m = _dims(n, c, m)
    return rank_for_budget([(n, c)] * m, checks.integer(budget, "budget", lo=0))


def equal_budget_ranks(n: int, c: int, m: int, per_layer_rank: int) -> BudgetRanks:
    """The shared rank whose parameters match per-layer rank ``per_layer_rank`` best.

    ``per_layer_rank`` is first lowered to ``min(n, c)`` (as :func:`~wsjax.sharing.low_rank`
    does). The shared rank is :func:`shared_rank_for_budget` of the per-layer arm's count
    ``m*r'*(n + c)``: rounded down, so the shared arm never has more parameters than the
    per-layer one (it has fewer by less than ``n + m*c``, unless capped at ``min(n, m*c)``).
    It is always >= 1, since ``m*(n + c) >= n + m*c``.
    """
    n, c, m = _dims(n, c, m)
    r_layer = min(checks.positive_int(per_layer_rank, "per_layer_rank"), n, c)
    budget = per_layer_params(n, c, m, r_layer)
    r_shared = shared_rank_for_budget(n, c, m, budget)
    return BudgetRanks(r_shared, r_layer, shared_basis_params(n, c, m, r_shared), budget)


# ----------------------------------------------------------------------------- factoring


def _group_shape(ws, where: str) -> tuple[tuple, int, int]:
    """``(shape, n, c)`` of a non-empty sequence of same-shape, same-dtype float leaves."""
    if isinstance(ws, Mapping) or not isinstance(ws, Sequence) or not ws:
        raise ValueError(f"{where}: needs a non-empty sequence of arrays, got {ws!r}"[:300])
    shapes = {tuple(np.shape(w)) for w in ws}
    dtypes = {jnp.result_type(w) for w in ws}
    if len(shapes) != 1 or len(dtypes) != 1:
        raise ValueError(f"{where}: leaves sharing a basis need one shape and dtype, got "
                         f"shapes {sorted(shapes)} and dtypes {sorted(map(str, dtypes))}")
    shape = shapes.pop()
    if len(shape) < 2:
        raise ValueError(f"{where}: a shared basis needs leaves of >= 2 axes, got shape {shape}")
    if not jnp.issubdtype(dtypes.pop(), jnp.floating):
        raise ValueError(f"{where}: a shared basis needs float leaves")
    n, c = math.prod(shape[:-1]), shape[-1]
    if n * c == 0:
        raise ValueError(f"{where}: leaves of shape {shape} are empty")
    return shape, n, c


def joint_factors(ws: Sequence[jax.Array], rank: int) -> tuple[jax.Array, tuple]:
    """``(B, (C_1, ..., C_m))`` with ``[B C_1 | ... | B C_m]`` the best rank-``rank``
    approximation (Frobenius) of ``[W_1 | ... | W_m]``, each ``W_l`` viewed as ``n x c``.

    The SVD runs in float32 (the factors come back in the leaves' dtype), with the singular
    values split evenly: ``B = U_r sqrt(S_r)``, ``C = sqrt(S_r) V_r^T``. ValueError if
    ``rank`` exceeds ``min(n, m*c)``.
    """
    shape, n, c = _group_shape(ws, "joint_factors")
    rank = checks.positive_int(rank, "rank")
    m = len(ws)
    if rank > min(n, m * c):
        raise ValueError(f"rank {rank} exceeds min(n, m*c) = {min(n, m * c)} for {m} leaves "
                         f"of shape {shape}")
    return _joint_factors(tuple(jnp.asarray(w) for w in ws), n, c, rank)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _joint_factors(ws: tuple, n: int, c: int, rank: int):
    """One compiled program per (shapes, rank): eager, every slice would compile on its own."""
    stack = jnp.concatenate([w.reshape(n, c).astype(jnp.float32) for w in ws], axis=1)
    u, s, vt = jnp.linalg.svd(stack, full_matrices=False)
    root = jnp.sqrt(s[:rank])
    basis = (u[:, :rank] * root).astype(ws[0].dtype)
    coefs = (root[:, None] * vt[:rank]).astype(ws[0].dtype)
    return basis, tuple(coefs[:, l * c:(l + 1) * c] for l in range(len(ws)))


def _errors(ws, approx, n, c, rank, params) -> ReconstructionError:
    per, res_sq, norm_sq = [], 0.0, 0.0
    for w, a in zip(ws, approx):
        w = np.asarray(w, np.float64).reshape(n, c)
        r2 = float(np.sum((w - np.asarray(a, np.float64)) ** 2))
        w2 = float(np.sum(w ** 2))
        per.append(math.sqrt(r2 / w2) if w2 > 0 else 0.0)
        res_sq, norm_sq = res_sq + r2, norm_sq + w2
    total = math.sqrt(res_sq / norm_sq) if norm_sq > 0 else 0.0
    return ReconstructionError(tuple(per), total, rank, params)


def joint_reconstruction_error(ws: Sequence[jax.Array], rank: int) -> ReconstructionError:
    """Relative errors of the shared rank-``rank`` basis of ``ws`` (:func:`joint_factors`;
    ``rank`` lowered to ``min(n, m*c)``), with ``params = n*r + m*r*c``."""
    _, n, c = _group_shape(ws, "joint_reconstruction_error")
    m = len(ws)
    rank = min(checks.positive_int(rank, "rank"), n, m * c)
    basis, coefs = joint_factors(ws, rank)
    b = np.asarray(basis, np.float64)
    approx = [b @ np.asarray(cl, np.float64) for cl in coefs]
    return _errors(ws, approx, n, c, rank, shared_basis_params(n, c, m, rank))


def per_layer_reconstruction_error(ws: Sequence[jax.Array], rank: int) -> ReconstructionError:
    """Relative errors of a separate rank-``rank`` SVD of every leaf
    (:func:`wsjax.sharing.lowrank.svd_factors`; ``rank`` lowered to ``min(n, c)``), with
    ``params = m*r*(n + c)``."""
    _, n, c = _group_shape(ws, "per_layer_reconstruction_error")
    m = len(ws)
    rank = min(checks.positive_int(rank, "rank"), n, c)
    approx = []
    for w in ws:
        u, v = svd_factors(jnp.asarray(w), rank)
        approx.append(np.asarray(u, np.float64) @ np.asarray(v, np.float64))
    return _errors(ws, approx, n, c, rank, per_layer_params(n, c, m, rank))


# ----------------------------------------------------------------------------- transform


def _check_groups(groups) -> tuple:
    def is_seq(x):
        return isinstance(x, Sequence) and not isinstance(x, (str, bytes))

    if not is_seq(groups) or not groups:
        raise ValueError(f"groups must be a non-empty list of lists of leaf paths, got "
                         f"{groups!r}"[:300])
    out, seen = [], set()
    for g, group in enumerate(groups):
        if not is_seq(group) or not group:
            raise ValueError(f"group {g} must be a non-empty list of leaf paths, got {group!r}")
        for path in group:
            if not isinstance(path, str):
                raise ValueError(f"group {g}: leaf paths are strings, got {path!r}")
            if path in seen:
                raise ValueError(f"leaf {path!r} is listed twice in groups (groups must be "
                                 f"disjoint)")
            seen.add(path)
        out.append(tuple(group))
    return tuple(out)


def _check_rank(rank, n_groups: int, name: str):
    if isinstance(rank, Mapping):
        keys = list(rank)
        if any(not checks.is_int(k) for k in keys) or sorted(int(k) for k in keys) != list(
                range(n_groups)):
            raise ValueError(f"{name} as a mapping needs one rank for each group index "
                             f"0..{n_groups - 1}, got keys {keys}")
        return {int(k): checks.positive_int(v, name) for k, v in rank.items()}
    return checks.positive_int(rank, name)


def _rank_of(spec, g: int):
    return spec[g] if isinstance(spec, dict) else spec


def shared_basis_leaves(groups: Sequence[Sequence[str]], rank: Rank | None = None, *,
                        per_layer_rank: Rank | None = None) -> Transform:
    """Share one basis per group of a ``{path: leaf}`` dict (use inside
    :func:`~wsjax.sharing.select`; :func:`shared_basis` takes a whole params pytree).

    ``groups``: lists of leaf paths, disjoint, each of one shape and dtype; every leaf of
    the dict must be in a group. Give exactly one of ``rank`` (the shared rank) and
    ``per_layer_rank`` (the shared rank of :func:`equal_budget_ranks`: at most the
    parameters of ``low_rank(rank=per_layer_rank)`` on the same leaves), each one int for
    every group or a ``{group index: rank}`` mapping. A rank above ``min(n, m*c)`` is
    lowered to it (then the group is reproduced exactly, up to float32 rounding).
    """
    groups = _check_groups(groups)
    if (rank is None) == (per_layer_rank is None):
        raise ValueError("give exactly one of rank and per_layer_rank")
    spec = _check_rank(rank if per_layer_rank is None else per_layer_rank, len(groups),
                       "rank" if per_layer_rank is None else "per_layer_rank")

    def init(key, leaves):
        del key
        members = [p for group in groups for p in group]
        missing = [p for p in members if p not in leaves]
        if missing:
            raise ValueError(f"shared basis: group paths {missing} are not among the leaves "
                             f"{sorted(leaves)}")
        strays = [p for p in leaves if p not in set(members)]
        if strays:
            raise ValueError(f"shared basis: leaves {strays} are in no group; groups are "
                             f"{[list(g) for g in groups]}")
        bases, coefs, shapes = [], {}, []
        for g, paths in enumerate(groups):
            ws = [leaves[p] for p in paths]
            shape, n, c = _group_shape(ws, f"shared basis group {g} {list(paths)}")
            m = len(paths)
            r = _rank_of(spec, g)
            r = min(r, n, m * c) if per_layer_rank is None else equal_budget_ranks(
                n, c, m, r).shared
            basis, cs = joint_factors(ws, r)
            bases.append(basis)
            coefs.update(zip(paths, cs))
            shapes.append(tuple(int(d) for d in shape))
        layout = Layout(groups, tuple(shapes))
        return SharedParams({"bases": tuple(bases), "coefs": coefs}, Static(layout))

    return Transform(init, _apply, codec="shared_basis")


def _apply(state: SharedParams) -> dict:
    """``{path: B_g @ C_l}`` in each leaf's shape (the ranks are read off the factors)."""
    layout = state.frozen.value
    bases, coefs = state.theta["bases"], state.theta["coefs"]
    out = {}
    for basis, paths, shape in zip(bases, layout.groups, layout.shapes):
        for path in paths:
            out[path] = jnp.matmul(basis, coefs[path]).reshape(shape)
    return out


def shared_basis(groups: Sequence[Sequence[str]], rank: Rank | None = None, *,
                 per_layer_rank: Rank | None = None) -> Transform:
    """Basis sharing on a model's params pytree: the leaves named in ``groups`` (full
    '/'-joined paths, e.g. ``[['Dense_1/kernel', 'Dense_2/kernel']]``) share one basis per
    group; every other leaf stays a free parameter. See :func:`shared_basis_leaves`.
    """
    inner = shared_basis_leaves(groups, rank, per_layer_rank=per_layer_rank)
    members = frozenset(p for group in groups for p in group)
    return select(lambda path: path in members, inner)
