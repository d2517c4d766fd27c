"""How alike two layers are: representations (CKA), subspaces (principal angles), filters.

* :func:`linear_cka` compares two representations of the same ``n`` examples, ``X`` (n x p)
  and ``Y`` (n x q). With both centred over the examples,

      CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),

  which is invariant to orthogonal transforms and isotropic scaling of either side (not
  to arbitrary invertible linear maps), equals 1 for ``X = Y`` and tends to 0 for
  independent features as ``n`` grows. :func:`cka_matrix` fills the layer-by-layer table.
* :func:`principal_angles` compares the top-``k`` left singular subspaces of two matrices
  with the same number of rows: the cosines of the principal angles are the singular values
  of ``Qa^T Qb`` (Bjorck & Golub), ``Qa``, ``Qb`` orthonormal bases. :func:`subspace_overlap`
  is their mean squared cosine, ``||Qa^T Qb||_F^2 / k``, in ``[0, 1]``; a random ``k``-dim
  subspace of ``R^n`` gives ``k / n`` in expectation.
* :func:`matched_filter_cosine` compares two layers unit by unit: the columns (units,
  filters) of the two kernels are paired one-to-one to maximise the total ``|cosine|`` (the
  Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`), so that a permutation
  of hidden units and sign flips (which an odd activation, or a weight symmetry, leaves
  unchanged) do not hide an identity.

Host-side NumPy in float64.

References: Kornblith, Norouzi, Lee & Hinton, `Similarity of Neural Network Representations
Revisited <https://arxiv.org/abs/1905.00414>`_, 2019; Bjorck & Golub, `Numerical methods for
computing angles between linear subspaces`, Math. Comp., 1973; Kuhn, `The Hungarian method
for the assignment problem`, 1955.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from wsjax import checks
from wsjax.analysis.spectra import as_matrix


def _representation(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be an (examples x features) array, got shape {a.shape}")
    if a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 examples and 1 feature, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite values")
    return a - a.mean(axis=0, keepdims=True)


def _cross(x: np.ndarray, y: np.ndarray) -> float:
    """``||Y^T X||_F^2`` for centred x, y: in feature space or as ``<XX^T, YY^T>``, the cheaper."""
    n, p = x.shape
    q = y.shape[1]
    if n * p * q <= n * n * (p + q):
        return float(np.sum((y.T @ x) ** 2))
    return float(np.sum((x @ x.T) * (y @ y.T)))


def _self_norm(x: np.ndarray, name: str) -> float:
    norm = np.sqrt(_cross(x, x))
    if norm == 0.0:
        raise ValueError(f"{name} is constant over the examples: its CKA is not defined")
    return norm


def _same_examples(x: np.ndarray, y: np.ndarray, names: str) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{names} must hold the same examples, got {x.shape[0]} and {y.shape[0]} rows")


def linear_cka(x, y) -> float:
    """Linear CKA of ``x`` (n x p) and ``y`` (n x q), rows the same ``n`` examples.

    A 1-D input is one feature. Raises ValueError for a different number of examples, fewer
    than 2 examples, non-finite values or a representation that is constant over the
    examples (its CKA would be 0/0).
    """
    x, y = _representation(x, "x"), _representation(y, "y")
    _same_examples(x, y, "x and y")
    return _cross(x, y) / (_self_norm(x, "x") * _self_norm(y, "y"))


def cka_matrix(reps: Sequence | Mapping) -> np.ndarray:
    """The symmetric ``(L x L)`` matrix of :func:`linear_cka` between ``L`` representations.

    ``reps`` is a sequence of (examples x features) arrays, or a mapping (such as
    :func:`wsjax.analysis.hidden_representations`'s output) whose values are taken in order.
    Every representation is centred and normalised once; the diagonal is 1.
    """
    names = list(reps) if isinstance(reps, Mapping) else list(range(len(reps)))
    arrays = list(reps.values()) if isinstance(reps, Mapping) else list(reps)
    if not arrays:
        raise ValueError("cka_matrix needs at least one representation")
    xs = [_representation(a, f"reps[{k!r}]") for k, a in zip(names, arrays)]
    for k, x in zip(names[1:], xs[1:]):
        _same_examples(xs[0], x, f"reps[{names[0]!r}] and reps[{k!r}]")
    norms = [_self_norm(x, f"reps[{k!r}]") for k, x in zip(names, xs)]
    out = np.eye(len(xs))
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            out[i, j] = out[j, i] = _cross(xs[i], xs[j]) / (norms[i] * norms[j])
    return out


def _top_left_basis(a: np.ndarray, k: int, name: str) -> np.ndarray:
    if k > min(a.shape):
        raise ValueError(f"k={k} exceeds the smaller side of {name} (shape {a.shape})")
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    tol = max(a.shape) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0)
    if s[k - 1] <= tol:
        raise ValueError(f"{name} has rank below k={k}: its top-{k} subspace is not defined")
    return u[:, :k]


def principal_angles(a, b, k: int) -> np.ndarray:
    """Cosines of the ``k`` principal angles between the top-``k`` left singular subspaces
    of ``a`` (n x p) and ``b`` (n x q), largest cosine (smallest angle) first, in ``[0, 1]``.

    Both are read as matrices by :func:`wsjax.analysis.spectra.as_matrix` (a Dense kernel's
    rows are its inputs: the subspace lives in input space). ``k`` must not exceed either
    matrix's rank. ``np.arccos`` of the result gives the angles.
    """
    a, b = as_matrix(a, name="a"), as_matrix(b, name="b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of rows, got shapes {a.shape} and {b.shape}")
    k = checks.positive_int(k, "k")
    qa, qb = _top_left_basis(a, k, "a"), _top_left_basis(b, k, "b")
    return np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0.0, 1.0)


def subspace_overlap(a, b, k: int) -> float:
    """Mean squared cosine of :func:`principal_angles` ``(a, b, k)``: 1 for equal subspaces,
    0 for orthogonal ones, ``k / n`` expected for a random pair in ``R^n``."""
    return float(np.mean(principal_angles(a, b, k) ** 2))


class MatchedFilters(NamedTuple):
    """The one-to-one pairing of :func:`matched_filter_cosine`.

    ``rows[i]`` (a unit of ``a``) is paired with ``cols[i]`` (a unit of ``b``) at signed
    cosine ``cosines[i]``; ``mean`` is the mean of ``|cosines|``. There are ``min(p, q)``
    pairs, ``rows`` sorted.
    """

    mean: float
    rows: np.ndarray
    cols: np.ndarray
    cosines: np.ndarray


def matched_filter_cosine(a, b) -> MatchedFilters:
    """Pair the units (columns) of ``a`` and ``b`` to maximise the summed ``|cosine|``.

    ``a`` (d x p) and ``b`` (d x q) are kernels read by
    :func:`wsjax.analysis.spectra.as_matrix` (a conv kernel's columns are its filters) with
    the same number of rows ``d``. A zero column has cosine 0 with everything. Returns
    :class:`MatchedFilters`: the mean ``|cosine|`` of the pairs and the assignment.
    """
    a, b = as_matrix(a, name="a"), as_matrix(b, name="b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of rows, got shapes {a.shape} and {b.shape}")

    def unit(m):
        norm = np.linalg.norm(m, axis=0, keepdims=True)
        return m / np.where(norm > 0, norm, 1.0)

    cos = unit(a).T @ unit(b)
    rows, cols = linear_sum_assignment(np.abs(cos), maximize=True)
    matched = cos[rows, cols]
    return MatchedFilters(float(np.mean(np.abs(matched))), rows, cols, matched)
