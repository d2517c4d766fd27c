"""Singular-value spectra of trained kernels, and two ways to read a rank off a spectrum.

A kernel of shape ``(..., n_out)`` is viewed as a ``prod(leading axes) x n_out`` matrix
(:func:`as_matrix`, the view :mod:`wsjax.sharing.lowrank` factors): rows are inputs (for a
convolution, the ``kh * kw * c_in`` taps), columns are output units or filters.

* :func:`effective_rank` is Roy & Vetterli's continuous rank: with ``p_i = s_i / sum(s)``
  the singular values normalised to sum one and ``H = -sum p_i log p_i`` their entropy,
  ``erank = exp(H)``. It is ``n`` for ``n`` equal singular values and 1 for a rank-1 matrix.
* :func:`energy_rank` is the smallest ``k`` whose top-``k`` squared singular values hold a
  ``fraction`` of ``||W||_F^2``: by Eckart-Young the rank at which a truncated SVD keeps that
  fraction of the weights' energy.
* :func:`spectra` maps every kernel of a params pytree to its singular values.

Everything here is host-side NumPy in float64: measurements of trained weights, not a
training path.

References: Roy & Vetterli, `The effective rank: a measure of effective dimensionality
<https://infoscience.epfl.ch/record/110188>`_, EUSIPCO 2007; Eckart & Young, `The
approximation of one matrix by another of lower rank`, Psychometrika, 1936.
"""

from __future__ import annotations

import numpy as np

from wsjax import checks
from wsjax.sharing.core import flatten_paths
from wsjax.sharing.paths import KERNELS, Include, matcher

#: Relative slack when comparing a cumulative energy with its target (float rounding).
ENERGY_RTOL = 1e-12


def as_matrix(w, *, rows: int | None = None, name: str = "w") -> np.ndarray:
    """``w`` as a float64 matrix: the first ``rows`` axes (default all but the last) index rows.

    Raises ValueError for an array of fewer than 2 dimensions or a ``rows`` outside
    ``[1, ndim - 1]``.
    """
    a = np.asarray(w, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (rows x columns), got shape {a.shape}")
    rows = a.ndim - 1 if rows is None else checks.integer(rows, "rows", lo=1, hi=a.ndim - 1)
    return a.reshape(int(np.prod(a.shape[:rows])), -1)


def singular_values(w, *, rows: int | None = None) -> np.ndarray:
    """The singular values of :func:`as_matrix` ``(w, rows=rows)``, largest first (float64).

    ``rows`` is how many leading axes index the matrix's rows: the default (all but the
    last) fits Dense and Conv kernels and an attention output ``(heads, d, width)``; pass
    ``rows=1`` for a ``DenseGeneral`` query kernel ``(width, heads, d)``.
    """
    return np.linalg.svd(as_matrix(w, rows=rows), compute_uv=False)


def _spectrum(s) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"singular values must be a non-empty 1-D array, got shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("singular values must be finite and non-negative")
    if not np.any(s > 0):
        raise ValueError("singular values are all zero: the rank of a zero matrix is not defined here")
    return s


def effective_rank(s) -> float:
    """Roy & Vetterli's effective rank ``exp(-sum p_i log p_i)``, ``p = s / sum(s)``.

    ``s`` is a spectrum (e.g. :func:`singular_values`); zeros contribute nothing
    (``0 log 0 = 0``). The value lies in ``[1, count of non-zero s]``.
    """
    s = _spectrum(s)
    p = s[s > 0] / s.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def energy_rank(s, fraction: float) -> int:
    """The smallest ``k`` with ``sum(s[:k]**2) >= fraction * sum(s**2)`` (``s`` sorted first).

    ``fraction`` is in ``(0, 1]``; a cumulative energy within a relative
    :data:`ENERGY_RTOL` of its target counts as reaching it, so that a spectrum designed
    to split exactly is not pushed one rank up by rounding.
    """
    fraction = checks.number(fraction, "fraction", lo=0.0, hi=1.0, lo_open=True)
    energy = np.cumsum(np.sort(_spectrum(s))[::-1] ** 2)
    target = fraction * energy[-1] * (1.0 - ENERGY_RTOL)
    return int(min(np.searchsorted(energy, target, side="left") + 1, energy.size))


def spectra(params, include: Include = KERNELS) -> dict[str, np.ndarray]:
    """``{path: singular_values(leaf)}`` for the leaves of ``params`` that ``include`` selects.

    ``include`` is a :func:`wsjax.sharing.paths.matcher` pattern (default
    :data:`~wsjax.sharing.paths.KERNELS`); paths are '/'-joined, in the tree's leaf order.
    Raises ValueError when nothing matches, or when a selected leaf has fewer than 2 axes.
    """
    match = matcher(include)
    flat = flatten_paths(params)
    chosen = {p: x for p, x in flat.items() if match(p)}
    if not chosen:
        raise ValueError(f"spectra({include!r}) matched no leaf; paths are: {sorted(flat)}")
    out = {}
    for p, x in chosen.items():
        if np.ndim(x) < 2:
            raise ValueError(f"spectra: leaf {p!r} has shape {np.shape(x)}; only matrices and kernels "
                             "(2 or more axes) have a spectrum, narrow `include`")
        out[p] = singular_values(x)
    return out
