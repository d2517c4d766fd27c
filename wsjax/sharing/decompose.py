"""Low-rank decompositions of trained layers whose factors are evaluated as a chain of
smaller layers (Denton et al. 2014), not multiplied back into ``W``.

Kernels are HWIO, ``(kh, kw, cin, cout)``; dense kernels ``(n_in, n_out)``. Each function
takes a trained kernel and returns its factors; :mod:`wsjax.models.factored` runs them.

* :func:`svd_dense`: ``W ~ U V``, ``U`` ``(n, r)``, ``V`` ``(r, c)``, the best rank-``r``
  approximation (Eckart-Young), from :func:`wsjax.sharing.lowrank.svd_factors`. A layer
  ``x W`` becomes ``(x U) V``: ``r (n + c)`` multiply-adds instead of ``n c``.
* :func:`filter_basis`: the conv kernel seen as the ``(kh kw cin) x cout`` matrix (each
  output filter a column), approximated at rank ``r``: a conv into ``r`` basis maps
  ``(kh, kw, cin, r)``, then a 1x1 combination ``(r, cout)`` (Denton Sec. 3.2's SVD of the
  flattened filters; Jaderberg et al. 2014's filter basis without their separability).
* :func:`tucker2`: ``W[h, w, c, o] ~ sum_ij A_in[c, i] core[h, w, i, j] A_out[o, j]``, a
  1x1 conv ``cin -> r_in``, a ``kh x kw`` conv ``r_in -> r_out``, a 1x1 conv ``r_out -> cout``
  (Kim et al. 2016). Initialised by the truncated HOSVD (the leading left singular
  vectors of the mode-3 and mode-4 unfoldings), then refined by HOOI: each step sets one
  factor to the leading singular subspace of the kernel projected on the other, which
  maximises the core's norm given the other factor, so the error never increases.
* :func:`monochromatic`: Denton Sec. 3.2.1, for a first layer on ``cin > 1`` colour
  channels. Each output filter's ``cin x (kh kw)`` matrix is approximated at rank 1,
  ``W_f ~ a_f b_f^T`` (a colour ``a_f``, unit norm, and a spatial filter ``b_f``); the
  colours are clustered into ``C'`` groups by :func:`kmeans_vectors`, and every filter's
  spatial part is refit by least squares to its cluster's colour (with ``C' = cout`` this is
  the per-filter rank-1 approximation itself). Evaluation: a 1x1 colour transform
  ``cin -> C'``, then one single-channel ``kh x kw`` filter per output map on its colour:
  ``H W cin C' + H' W' kh kw cout`` multiply-adds instead of ``H' W' kh kw cin cout``.
  **On a grayscale input (cin = 1, e.g. LeNet-5 on Fashion-MNIST) it is exact and saves
  nothing**: every filter already is ``1 x (kh kw)``, its colour is the scalar 1, and the
  "colour transform" is the identity; the layer's only redundancy there is across output
  filters, which :func:`filter_basis` takes.

:mod:`wsjax.sharing.kmeans` is one-dimensional (scalar weights), so the colour vectors are
clustered by the small Lloyd k-means on vectors in this module (:func:`kmeans_vectors`,
k-means++ seeding from an explicit seed). Tucker-2 and the monochromatic approximation run
on the host in float64 (trained kernels are concrete arrays) and return arrays of the
kernel's dtype.

References: Denton, Zaremba, Bruna, LeCun & Fergus, `Exploiting Linear Structure Within
Convolutional Networks for Efficient Evaluation <https://arxiv.org/abs/1404.0736>`_, 2014;
Jaderberg, Vedaldi & Zisserman, `Speeding up Convolutional Neural Networks with Low Rank
Expansions <https://arxiv.org/abs/1405.3866>`_, 2014; Kim et al., `Compression of Deep
Convolutional Neural Networks for Fast and Low Power Mobile Applications
<https://arxiv.org/abs/1511.06530>`_, 2016; De Lathauwer, De Moor & Vandewalle, `On the
Best Rank-1 and Rank-(R1, ..., RN) Approximation of Higher-Order Tensors
<https://doi.org/10.1137/S0895479898346995>`_, 2000 (HOOI); Arthur & Vassilvitskii,
`k-means++ <https://theory.stanford.edu/~sergei/papers/kMeansPP-soda.pdf>`_, 2007.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.sharing.lowrank import svd_factors

# One compiled program per (shape, rank) instead of a dozen eager ops.
_svd_factors = jax.jit(svd_factors, static_argnums=1)


class FilterBasis(NamedTuple):
    """``basis`` ``(kh, kw, cin, r)`` conv kernel, ``combine`` ``(r, cout)`` 1x1 combination."""

    basis: jax.Array
    combine: jax.Array


class Tucker2(NamedTuple):
    """``core`` ``(kh, kw, r_in, r_out)``, ``a_in`` ``(cin, r_in)`` and ``a_out``
    ``(cout, r_out)``, both with orthonormal columns."""

    core: jax.Array
    a_in: jax.Array
    a_out: jax.Array


class Monochromatic(NamedTuple):
    """``colours`` ``(C', cin)`` (unit rows), ``assignments`` ``(cout,)`` int32 (each output
    filter's colour) and ``spatial`` ``(kh, kw, cout)`` (each output filter's spatial part)."""

    colours: jax.Array
    assignments: jax.Array
    spatial: jax.Array


class KMeansVectors(NamedTuple):
    """``centroids`` ``(k, d)``, ``assignments`` ``(n,)`` int32, ``inertia`` (sum of squared
    distances to the assigned centroid) and the Lloyd ``iterations`` run."""

    centroids: np.ndarray
    assignments: np.ndarray
    inertia: float
    iterations: int


# ----------------------------------------------------------------------------- checks


def _kernel(w, name: str = "w") -> tuple[int, int, int, int]:
    if np.ndim(w) != 4:
        raise ValueError(f"{name} must be an HWIO conv kernel (kh, kw, cin, cout), got shape {np.shape(w)}")
    return tuple(int(d) for d in np.shape(w))


def _rank(rank, name: str, bound: int, what: str) -> int:
    r = checks.positive_int(rank, name)
    if r > bound:
        raise ValueError(f"{name} {r} exceeds {what} ({bound})")
    return r


# ----------------------------------------------------------------------------- dense and filter basis


def svd_dense(w: jax.Array, rank: int) -> tuple[jax.Array, jax.Array]:
    """``(U, V)``, ``(n, r)`` and ``(r, c)``: the best rank-``rank`` approximation ``U V`` of
    a dense kernel ``w`` ``(n, c)``, the singular values split evenly between the factors."""
    if np.ndim(w) != 2:
        raise ValueError(f"svd_dense needs a dense kernel (n_in, n_out), got shape {np.shape(w)}")
    n, c = np.shape(w)
    r = _rank(rank, "rank", min(n, c), f"min(n_in, n_out) of a {n}x{c} kernel")
    return _svd_factors(jnp.asarray(w), r)


def filter_basis(w: jax.Array, rank: int) -> FilterBasis:
    """Rank-``rank`` approximation of the ``(kh kw cin) x cout`` filter matrix of ``w``:
    a conv kernel into ``rank`` basis maps and their 1x1 combination into ``cout`` maps."""
    kh, kw, cin, cout = _kernel(w)
    r = _rank(rank, "rank", min(kh * kw * cin, cout), f"min(kh*kw*cin, cout) of a kernel of shape {np.shape(w)}")
    u, v = _svd_factors(jnp.asarray(w), r)
    return FilterBasis(u.reshape(kh, kw, cin, r), v)


# ----------------------------------------------------------------------------- Tucker-2


def _leading(m: np.ndarray, r: int) -> np.ndarray:
    """The ``r`` leading left singular vectors of the wide ``m`` (``rows <= cin`` or ``cout``),
    as the leading eigenvectors of its small Gram matrix ``m m^T``, signs fixed (largest
    entry > 0)."""
    u = np.linalg.eigh(m @ m.T)[1][:, ::-1][:, :r]
    big = np.argmax(np.abs(u), axis=0)
    return u * np.sign(u[big, np.arange(r)])


def _unfold_in(w: np.ndarray) -> np.ndarray:
    """Mode-3 (input channel) unfolding: ``(cin, kh kw cout_or_r)``."""
    return np.moveaxis(w, 2, 0).reshape(w.shape[2], -1)


def _unfold_out(w: np.ndarray) -> np.ndarray:
    """Mode-4 (output channel) unfolding: ``(cout, kh kw cin_or_r)``."""
    return np.moveaxis(w, 3, 0).reshape(w.shape[3], -1)


def tucker2(w: jax.Array, rank_in: int, rank_out: int, iterations: int = 10) -> Tucker2:
    """Tucker-2 of a conv kernel over its channel modes: HOSVD, then ``iterations`` HOOI steps.

    ``iterations=0`` returns the truncated HOSVD. Full ranks (``cin``, ``cout``) are exact.
    """
    kh, kw, cin, cout = _kernel(w)
    r_in = _rank(rank_in, "rank_in", cin, f"cin of a kernel of shape {np.shape(w)}")
    r_out = _rank(rank_out, "rank_out", cout, f"cout of a kernel of shape {np.shape(w)}")
    iterations = checks.integer(iterations, "iterations", lo=0)
    x = np.asarray(w, np.float64)
    a_in = _leading(_unfold_in(x), r_in)
    a_out = _leading(_unfold_out(x), r_out)
    for _ in range(iterations):
        a_in = _leading(_unfold_in(np.einsum("hwco,oj->hwcj", x, a_out)), r_in)
        a_out = _leading(_unfold_out(np.einsum("hwco,ci->hwio", x, a_in)), r_out)
    core = np.einsum("hwco,ci,oj->hwij", x, a_in, a_out)
    dtype = jnp.asarray(w).dtype
    return Tucker2(*(jnp.asarray(a, dtype) for a in (core, a_in, a_out)))


# ----------------------------------------------------------------------------- k-means on vectors


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None], 0.0)


def kmeans_vectors(x, k: int, *, seed: int = 0, max_iter: int = 100) -> KMeansVectors:
    """Lloyd's k-means of the rows of ``x`` ``(n, d)`` into ``k`` clusters (host, float64).

    Seeding is k-means++ (each next centre drawn with probability proportional to the
    squared distance to the nearest chosen one) from ``numpy.random.default_rng(seed)``;
    Lloyd iterations run until the assignments stop changing or ``max_iter``. A cluster
    left empty takes the point farthest from its centre. ``k = n`` gives every point its
    own cluster.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans_vectors needs a non-empty (n, d) array, got shape {x.shape}")
    n = x.shape[0]
    k = _rank(k, "k", n, "the number of vectors")
    max_iter = checks.positive_int(max_iter, "max_iter")
    rng = np.random.default_rng(checks.seed(seed))
    chosen = [int(rng.integers(n))]
    d2 = _sq_dist(x, x[chosen])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        if total > 0:
            nxt = int(rng.choice(n, p=d2 / total))
        else:  # every point sits on a chosen centre: take any point not chosen yet
            nxt = int(np.setdiff1d(np.arange(n), chosen)[0])
        chosen.append(nxt)
        d2 = np.minimum(d2, _sq_dist(x, x[nxt:nxt + 1])[:, 0])
    centroids = x[chosen].copy()
    assign = np.argmin(_sq_dist(x, centroids), axis=1)
    it = 0
    for it in range(1, max_iter + 1):
        for j in range(k):
            members = assign == j
            if members.any():
                centroids[j] = x[members].mean(0)
            else:  # the point worst served by its centre starts this cluster again
                far = int(np.argmax(_sq_dist(x, centroids)[np.arange(n), assign]))
                centroids[j] = x[far]
                assign[far] = j
        new = np.argmin(_sq_dist(x, centroids), axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
    inertia = float(_sq_dist(x, centroids)[np.arange(n), assign].sum())
    return KMeansVectors(centroids, assign.astype(np.int32), inertia, it)


# ----------------------------------------------------------------------------- monochromatic


def monochromatic(w: jax.Array, num_colours: int, *, seed: int = 0, max_iter: int = 100) -> Monochromatic:
    """Denton's monochromatic approximation of a first-layer kernel ``w`` (kh, kw, cin, cout).

    ``num_colours`` (``C'``, at most ``cout``): how many colour vectors the ``cout`` filters
    share. Each filter's rank-1 colour ``a_f`` is made unit-norm with its largest entry
    positive (``a`` and ``-a`` are one colour), the colours are clustered by
    :func:`kmeans_vectors` (``seed``, ``max_iter``), and each spatial part is refit as
    ``b_f = W_f^T c / |c|^2`` for its cluster's centre ``c``, kept at unit norm. Meant for
    ``cin > 1``; with ``cin = 1`` it is exact and saves nothing (module docstring).
    """
    kh, kw, cin, cout = _kernel(w)
    k = _rank(num_colours, "num_colours", cout, f"cout of a kernel of shape {np.shape(w)}")
    x = np.asarray(w, np.float64)
    mats = np.transpose(x, (3, 2, 0, 1)).reshape(cout, cin, kh * kw)  # W_f: cin x (kh kw)
    u = np.linalg.svd(mats, full_matrices=False)[0][:, :, 0]  # (cout, cin) unit colours
    big = np.argmax(np.abs(u), axis=1)
    u = u * np.sign(u[np.arange(cout), big])[:, None]
    km = kmeans_vectors(u, k, seed=seed, max_iter=max_iter)
    colours = km.centroids / np.maximum(np.linalg.norm(km.centroids, axis=1, keepdims=True), 1e-30)
    c = colours[km.assignments]  # (cout, cin)
    spatial = np.einsum("fcp,fc->fp", mats, c)  # least squares for a unit colour
    dtype = jnp.asarray(w).dtype
    return Monochromatic(jnp.asarray(colours, dtype), jnp.asarray(km.assignments),
                         jnp.asarray(spatial.T.reshape(kh, kw, cout), dtype))


# ----------------------------------------------------------------------------- reconstructions


def reconstruct_dense(u: jax.Array, v: jax.Array) -> jax.Array:
    """``U V``."""
    return jnp.matmul(u, v)


def reconstruct_filter_basis(f: FilterBasis) -> jax.Array:
    """The HWIO kernel ``basis @ combine``."""
    kh, kw, cin, r = f.basis.shape
    return jnp.matmul(f.basis.reshape(-1, r), f.combine).reshape(kh, kw, cin, f.combine.shape[1])


def reconstruct_tucker2(t: Tucker2) -> jax.Array:
    """The HWIO kernel ``core x_3 a_in x_4 a_out``."""
    return jnp.einsum("hwij,ci,oj->hwco", t.core, t.a_in, t.a_out)


def reconstruct_monochromatic(m: Monochromatic) -> jax.Array:
    """The HWIO kernel ``W[h, w, c, f] = colours[assign[f], c] * spatial[h, w, f]``."""
    return jnp.einsum("fc,hwf->hwcf", m.colours[m.assignments], m.spatial)


def relative_error(w, approx) -> float:
    """``|w - approx|_F / |w|_F`` (float64 on the host)."""
    w = np.asarray(w, np.float64)
    approx = np.asarray(approx, np.float64)
    if w.shape != approx.shape:
        raise ValueError(f"relative_error: shapes {w.shape} and {approx.shape} differ")
    norm = np.linalg.norm(w)
    if norm == 0:
        raise ValueError("relative_error: w is all zeros")
    return float(np.linalg.norm(w - approx) / norm)
