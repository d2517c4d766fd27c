"""Is a trained layer predictable from part of itself, or from the other layers?

**Within a layer** (Denil et al. 2013): the weights of a trained layer are often smooth
over its inputs (a first layer's rows are image pixels), so a few rows predict the rest.
With ``alpha`` the indices of the observed rows, ``W_alpha`` their values and ``K`` an
``(n x n)`` kernel over the rows, kernel ridge regression predicts every row as

    W_hat = K[:, alpha] (K[alpha, alpha] + ridge I)^{-1} W_alpha.

:func:`within_layer_predictability` is the relative error
``||W_held - W_hat_held||_F / ||W_held||_F`` on the rows left out of a random ``fraction``;
the formula and the squared-exponential kernel Denil et al. use for pixel positions are those
of the trainable transform, :mod:`wsjax.sharing.predicted` (``ridge_dictionary``,
``se_kernel``, ``pixel_coordinates``).

**Between layers, at equal parameters**: take ``m`` layers of one shape, ``W_1 .. W_m``
(``n x c``). A rank-``r`` subspace costs the same whether it comes from the layer itself or
from the others, so compare, as a fraction of ``||W_l||_F^2``:

* :func:`explained_by_self`: the energy of ``W_l``'s own best rank-``r`` approximation
  (Eckart-Young: the most any rank-``r`` projection can keep);
* :func:`explained_by_others`: the energy kept by projecting ``W_l`` onto the top-``r``
  left singular subspace of the *other* layers' kernels stacked side by side (``side='in'``:
  the input directions they use), or onto the top-``r`` right singular subspace of them
  stacked on top of each other (``side='out'``: the output directions);
* the random baseline: a uniformly random ``r``-dim subspace keeps ``r / n`` of the energy
  in expectation on the input side (``r / c`` on the output side).

Reading :func:`redundancy_table`: ``others <= self`` always. Between-layer redundancy exists
to the extent that ``others`` approaches ``self`` *and* exceeds the random baseline: then a
basis shared across layers (one subspace for all) loses little against per-layer low rank.
``others`` near the baseline means the layers use unrelated directions; ``self`` near the
baseline means the layer is not low-rank to begin with.

Host-side NumPy in float64.

References: Denil, Shakibi, Dinh, Ranzato & de Freitas, `Predicting Parameters in Deep
Learning <https://arxiv.org/abs/1306.0543>`_, 2013; Eckart & Young, `The approximation of
one matrix by another of lower rank`, Psychometrika, 1936.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import numpy as np

from wsjax import checks
from wsjax.analysis.spectra import as_matrix
from wsjax.sharing.predicted import ridge_dictionary

SIDES = ("in", "out")


# ------------------------------------------------------------------- within a layer


def within_layer_predictability(w, fraction: float, kernel, ridge: float, key) -> float:
    """Relative error of predicting the held-out rows of ``w`` from a random ``fraction``.

    ``w`` is read by :func:`wsjax.analysis.spectra.as_matrix` (rows: inputs). A random
    ``round(fraction * n)`` of its ``n`` rows (at least 1, at most ``n - 1``; the subset
    drawn by ``jax.random.permutation(key, n)``) are observed, the rest predicted as
    ``U @ w[alpha]`` with ``U`` the ridge dictionary of
    :func:`wsjax.sharing.predicted.ridge_dictionary` (the one implementation of the formula,
    in float64: a smooth kernel's block is badly conditioned for a small ridge); the result
    is ``||W_held - W_hat_held||_F / ||W_held||_F``: 0 is perfect, 1 is no better than
    predicting zeros (above 1: worse, as for noise with a small ridge).
    """
    w = as_matrix(w)
    n = w.shape[0]
    if n < 2:
        raise ValueError(f"w needs at least 2 rows to hold some out, got shape {w.shape}")
    fraction = checks.number(fraction, "fraction", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    ridge = checks.number(ridge, "ridge", lo=0.0)
    k = np.asarray(kernel, dtype=np.float64)
    if k.shape != (n, n):
        raise ValueError(f"kernel must be ({n}, {n}) for a matrix of {n} rows, got shape {k.shape}")
    m = min(max(int(round(fraction * n)), 1), n - 1)
    order = np.asarray(jax.random.permutation(key, n))
    alpha, held = np.sort(order[:m]), np.sort(order[m:])
    pred = (ridge_dictionary(k, alpha, ridge) @ w[alpha])[held]
    norm = np.linalg.norm(w[held])
    if norm == 0.0:
        raise ValueError("the held-out rows of w are all zero: the relative error is not defined")
    return float(np.linalg.norm(w[held] - pred) / norm)


# ------------------------------------------------------------------- between layers


def _energy(w: np.ndarray) -> float:
    e = float(np.sum(w**2))
    if e == 0.0:
        raise ValueError("a layer's weights are all zero: the fraction explained is not defined")
    return e


def explained_by_self(w, r: int) -> float:
    """``sum(s[:r]**2) / sum(s**2)``: the energy of ``w``'s best rank-``r`` approximation.

    ``r`` above the matrix's smaller side gives 1.
    """
    w = as_matrix(w)
    r = checks.positive_int(r, "r")
    s = np.linalg.svd(w, compute_uv=False)
    return float(np.sum(s[:r] ** 2) / _energy(w))


def _layers(ws) -> tuple[list, list[np.ndarray]]:
    names = list(ws) if isinstance(ws, Mapping) else list(range(len(ws)))
    mats = [as_matrix(w, name=f"ws[{k!r}]") for k, w in zip(names, ws.values() if isinstance(ws, Mapping) else ws)]
    if len(mats) < 2:
        raise ValueError(f"between-layer redundancy needs at least 2 layers, got {len(mats)}")
    for k, m in zip(names, mats):
        if m.shape != mats[0].shape:
            raise ValueError(f"every layer must have one shape; ws[{names[0]!r}] is {mats[0].shape}, "
                             f"ws[{k!r}] is {m.shape}")
    return names, mats


def _others_basis(mats: list[np.ndarray], l: int, side: str, normalize: bool) -> np.ndarray:
    """Orthonormal singular directions (columns, by decreasing singular value) of the other
    layers, truncated to their numerical rank: left ones for 'in', right ones for 'out'."""
    others = [m for j, m in enumerate(mats) if j != l]
    if normalize:
        others = [m / np.linalg.norm(m) if np.any(m) else m for m in others]
    stacked = np.concatenate(others, axis=1 if side == "in" else 0)
    u, s, vt = np.linalg.svd(stacked, full_matrices=False)
    basis = u if side == "in" else vt.T
    tol = max(stacked.shape) * np.finfo(np.float64).eps * s[0]
    return basis[:, s > tol]


def _captured(w: np.ndarray, basis: np.ndarray, side: str) -> np.ndarray:
    """Cumulative energy fractions of ``w`` kept by the first 1, 2, ... basis directions."""
    proj = basis.T @ w if side == "in" else w @ basis
    per_direction = np.sum(proj**2, axis=1 if side == "in" else 0)
    return np.cumsum(per_direction) / _energy(w)


def _fraction_at(cumulative: np.ndarray, r: int) -> float:
    return float(cumulative[min(r, cumulative.size) - 1]) if cumulative.size else 0.0


def _side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return side


def _index(names: list, l) -> int:
    if checks.is_int(l) and 0 <= int(l) < len(names):
        return int(l)
    if l in names:
        return names.index(l)
    raise ValueError(f"layer {l!r} is not among the layers {names}")


def explained_by_others(ws: Sequence | Mapping, l, r: int, *, side: str = "in",
                        normalize: bool = True) -> float:
    """Fraction of ``||W_l||_F^2`` kept by the top-``r`` singular subspace of the others.

    Args:
      ws: ``m >= 2`` layers of one shape (a sequence, or a mapping such as a
        :func:`wsjax.sharing.flatten_paths` selection), each read by ``as_matrix`` (n x c).
      l: the layer: an index into ``ws``, or a key of the mapping.
      r: the subspace's dimension; capped at the others' numerical rank (directions with a
        zero singular value are not used, so the fraction stops growing there).
      side: ``'in'``, the left singular subspace of ``[W_j for j != l]`` side by side
        (``n x c(m-1)``), projected as ``||P W_l||^2``; or ``'out'``, the right singular
        subspace of them stacked (``n(m-1) x c``), projected as ``||W_l P||^2``.
      normalize: scale every other layer to unit Frobenius norm first, so that each one
        counts equally (otherwise a layer with larger weights dominates the subspace).
    """
    names, mats = _layers(ws)
    l, r, side = _index(names, l), checks.positive_int(r, "r"), _side(side)
    return _fraction_at(_captured(mats[l], _others_basis(mats, l, side, normalize), side), r)


def redundancy_table(ws: Sequence | Mapping, ranks: Sequence[int], *, normalize: bool = True) -> list[dict]:
    """One row per layer and rank: ``{layer, rank, self, others_in, others_out,
    random_baseline, random_baseline_out}``.

    ``layer`` is the index (or mapping key), ``self`` :func:`explained_by_self`,
    ``others_in`` / ``others_out`` :func:`explained_by_others` on each side,
    ``random_baseline`` ``min(r, n) / n`` (a random input subspace) and
    ``random_baseline_out`` ``min(r, c) / c`` (a random output subspace; the same number for
    square layers). See the module docstring for how to read it.
    """
    names, mats = _layers(ws)
    ranks = [checks.positive_int(r, "ranks entry") for r in ranks]
    if not ranks:
        raise ValueError("ranks must hold at least one rank")
    n, c = mats[0].shape
    rows = []
    for l, (name, w) in enumerate(zip(names, mats)):
        s2 = np.linalg.svd(w, compute_uv=False) ** 2
        own = np.cumsum(s2) / _energy(w)
        cum = {side: _captured(w, _others_basis(mats, l, side, normalize), side) for side in SIDES}
        for r in ranks:
            rows.append({
                "layer": name,
                "rank": r,
                "self": _fraction_at(own, r),
                "others_in": _fraction_at(cum["in"], r),
                "others_out": _fraction_at(cum["out"], r),
                "random_baseline": min(r, n) / n,
                "random_baseline_out": min(r, c) / c,
            })
    return rows
