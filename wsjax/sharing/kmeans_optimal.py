"""Exact 1-D k-means: the optimal clustering of a layer's weights, by dynamic programming.

In one dimension an optimal k-means clustering splits the sorted data into ``k`` contiguous
intervals, so it is a shortest path: with ``C(m, i)`` the weighted squared error of sorted
points ``m .. i-1`` about their mean (two lookups in prefix sums of ``w``, ``w x`` and
``w x^2``), the optimal cost of ``j`` clusters on the first ``i`` points is

    D[j][i] = min over m < i of D[j - 1][m] + C(m, i),

and the optimum is ``D[k][n]``, its clusters found by following the minimising ``m`` back
from ``(k, n)``. Wang & Song (`Ckmeans.1d.dp: Optimal k-means Clustering in One Dimension by
Dynamic Programming <https://journal.r-project.org/archive/2011-2/RJournal_2011-2_Wang+Song.pdf>`_,
The R Journal 3(2), 2011) solve this table row by row. Grønlund et al. (`Fast Exact k-Means,
k-Medians and Bregman Divergence Clustering in 1D <https://arxiv.org/abs/1701.07204>`_, 2017)
point out that ``C`` obeys the quadrangle (concave Monge) inequality, so the minimising
``m`` of each row is non-decreasing in ``i``: a row costs O(n log n) by divide and conquer
(O(n) by SMAWK), the table O(k n log n). They also show that the optimal cost is convex in
``k``, which makes a Lagrangian relaxation exact: for the right price ``lambda`` per cluster,
the unconstrained problem ``E[i] = lambda + min over m < i of E[m] + C(m, i)`` (any number
of clusters) is minimised at ``n`` by the optimal k-clustering.

This module computes ``D`` only where an optimal path can pass, and proves afterwards that
it missed nothing:

1. **A guess of the boundaries.** The data are binned into cells of equal mass in the
   ``p^(1/3)`` measure (``p`` the density: an optimal fine quantiser's cells are equal in
   it), up to 64 per cluster (8 on every further level, never more than a third of the
   points); the bins (weighted means) are clustered exactly by the same procedure,
   recursively, and the smallest problems by the full table. Sparse tail points, which an
   optimum gives clusters of their own, keep bins of their own. With fewer than 12 points
   per cluster there is nothing to bin: the guess is then the exact clustering into
   ``k // 4`` clusters, the ``k`` shared out among them by the cube root of their error.
2. **A band around the guess.** Row ``j`` is computed (divide and conquer over its
   monotone minimisers) only for ``i`` from a quarter of a cluster below the guessed start
   of cluster ``j`` to 1.25 clusters above its guessed end, plus two bins of slack, and for
   rows ``1 .. k + 1``: about 2.6 n entries instead of k n (wider for rougher guesses).
3. **A certificate.** With ``lambda = D[k][n] - D[k + 1][n]`` (nudged up by 1e-6 relative:
   the lower end of the prices at which ``k`` clusters are optimal, when both values are
   exact), the banded rows give ``E~[i] = min_j D~[j][i] + lambda j`` for every ``i``. If
   ``E~`` satisfies Bellman's equation at every ``i`` (``E~[i] <= lambda + min_m E~[m] +
   C(m, i)``), then ``E~ = E`` by induction on ``i``; and if row ``k`` attains ``E~[n]``, its
   value is the optimal k-clustering's cost. Checking the equation is one more row
   minimisation, done in O(n): the minimisers read off the bands are monotone, and by the
   Monge inequality a monotone sequence that is minimal within each window
   ``[a(i-1), a(i+1)]`` is the true row minimum. (Ties can break monotonicity; then the
   row is minimised in full, O(n log n).)

When the certificate fails, the band is widened 2.5-fold around the best path it held and
the level solved again, until the band would cost a quarter of the full table; then the
full table (O(k n log n)) is computed, which is exact without any certificate. The answer
is therefore always the optimum, up to float64 rounding of the interval costs (about
``1e-16`` times the data's total squared deviation per interval: data spanning many orders
of magnitude lose the small clusters' costs to it). On trained-layer-like weights the first
band already passes: in practice O(n log n) work for any ``k``, with ``k`` row steps of
Python overhead; 266k weights take about half a second at any ``k <= 256``, a million
about 1.5 to 2.5 s on two cores (``benchmarks/kmeans.py``). Many clusters with few points
each (``k >= 1024`` and under ~12 points per cluster) take a few tries and seconds to a
minute.

Host NumPy, not JAX: the work is a sequence of ``k`` dependent rows, each a divide and
conquer over data-dependent windows whose sizes change from level to level and row to row.
Under ``jit`` that means fixed padded shapes (several times the work) or a recompilation per
shape; the codebook quantizer runs this once per layer, outside any training step, so plain
vectorised NumPy (every level of a row's recursion is a handful of whole-array operations)
is both simpler and faster. It runs through :func:`jax.pure_callback`, inside one jitted
function that also assigns every value to its nearest centroid (as ``kmeans_1d`` does), so
it works under ``jit`` and ``vmap`` too.

Values are deduplicated first (equal values are one weighted point), zero-weight points
(e.g. pruned weights under a mask) are left out, and the data are centred on their weighted
mean before the prefix sums (accumulated in extended precision, stored in float64).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.sharing import kmeans as _kmeans

#: Bins per expected cluster (at most) on the first and on every further coarser level of the
#: guess; never more than a third of the points, and at least MIN_BINS_PER_CLUSTER.
BINS_PER_CLUSTER = (64, 8)
MIN_BINS_PER_CLUSTER = 4
#: Problems whose full table costs at most this many interval evaluations skip the bands.
FULL_TABLE_EVALS = 16_000_000
#: (below, above) band margins of the first try, in clusters; every failed try multiplies them
#: by MARGIN_GROWTH (until the band would cost a quarter of the full table).
MARGINS = (0.25, 1.25)
MARGIN_GROWTH = 2.5
#: Relative nudge of the cluster price above the lower end of its valid range.
PRICE_NUDGE = 1e-6
_TINY = np.finfo(np.float64).tiny


class _Prefix:
    """Exclusive prefix sums of ``w``, ``w x``, ``w x^2`` (float64, accumulated in long double)."""

    def __init__(self, xs: np.ndarray, ws: np.ndarray):
        ext = np.longdouble
        w = ws.astype(ext)
        wx = w * xs.astype(ext)
        self.W = np.concatenate([[0.0], np.cumsum(w).astype(np.float64)])
        self.S = np.concatenate([[0.0], np.cumsum(wx).astype(np.float64)])
        self.Q = np.concatenate([[0.0], np.cumsum(wx * xs.astype(ext)).astype(np.float64)])


def _window_minima(p: _Prefix, key0: np.ndarray, base: int, rows, starts, stops):
    """Per row ``i``: min and leftmost argmin over ``m in [starts, stops]`` (all non-empty,
    ``base <= starts``, ``stops < rows``) of ``values[m] + C(m, i)``, given
    ``key0[m - base] = values[m] - Q_m``.

    ``C(m, i) = (Q_i - Q_m) - (S_i - S_m)^2 / (W_i - W_m)``: the row's ``Q_i`` is added after
    the minimum, and every window is evaluated in one flat pass (``np.repeat`` of the row
    terms, ``np.minimum.reduceat`` over the windows).
    """
    lengths = stops - starts + 1
    offsets = np.cumsum(lengths) - lengths
    total = int(offsets[-1] + lengths[-1])
    m = np.arange(total) - np.repeat(offsets - (starts - base), lengths)  # m - base
    s = np.repeat(p.S[rows], lengths) - p.S[base:][m]
    w = np.repeat(p.W[rows], lengths) - p.W[base:][m]
    np.maximum(w, _TINY, out=w)  # weights below float64 resolution of their prefix sum
    np.square(s, out=s)
    np.divide(s, w, out=s)
    key = key0[m]
    key -= s
    low = np.minimum.reduceat(key, offsets)
    hits = np.flatnonzero(key == np.repeat(low, lengths))
    return low + p.Q[rows], m[hits[np.searchsorted(hits, offsets)]] + base


def _row(p: _Prefix, previous: np.ndarray, clo: int, chi: int, rlo: int, rhi: int):
    """``D[i] = min over m in [clo, min(chi, i - 1)] of previous[m - clo] + C(m, i)`` for
    ``i in [rlo, rhi]`` (``rlo > clo``), by divide and conquer over the monotone minimisers:
    every level of the recursion is one :func:`_window_minima` call over all its segments."""
    key0 = previous - p.Q[clo : chi + 1]
    D = np.empty(rhi - rlo + 1)
    arg = np.empty(rhi - rlo + 1, np.int64)
    r0, r1 = np.array([rlo]), np.array([rhi])  # segments of rows, inclusive
    c0, c1 = np.array([clo]), np.array([chi])  # and the windows their minimisers lie in
    while r0.size:
        mid = (r0 + r1) >> 1
        value, a = _window_minima(p, key0, clo, mid, c0, np.minimum(c1, mid - 1))
        D[mid - rlo], arg[mid - rlo] = value, a
        left, right = mid > r0, mid < r1
        r0, r1, c0, c1 = (
            np.concatenate([r0[left], mid[right] + 1]),
            np.concatenate([mid[left] - 1, r1[right]]),
            np.concatenate([c0[left], a[right]]),
            np.concatenate([a[left], c1[right]]),
        )
    return D, arg


def _rows(p: _Prefix, lo: np.ndarray, hi: np.ndarray):
    """Rows ``1 .. len(lo) - 1`` of the table, row ``j`` on ``[lo[j], hi[j]]`` and minimising
    over row ``j - 1``'s band only (row 0 is ``D[0][0] = 0``)."""
    values, args = [np.zeros(1)], [np.zeros(1, np.int64)]
    for j in range(1, len(lo)):
        D, a = _row(p, values[-1], int(lo[j - 1]), int(hi[j - 1]), int(lo[j]), int(hi[j]))
        values.append(D)
        args.append(a)
    return values, args


def _backtrack(args, lo, k: int, n: int) -> np.ndarray:
    """The ``k + 1`` boundaries (0, ..., n) of the path ending at ``(k, n)``."""
    b = np.empty(k + 1, np.int64)
    b[k] = n
    for j in range(k, 0, -1):
        b[j - 1] = args[j][b[j] - lo[j]]
    return b


def _full(p: _Prefix, n: int, k: int) -> np.ndarray:
    """The whole table (row ``j`` on ``[j, n]``): exact without a certificate."""
    lo = np.arange(k + 1)
    hi = np.full(k + 1, n)
    hi[0] = 0
    _, args = _rows(p, lo, hi)
    return _backtrack(args, lo, k, n)


def _certified(p: _Prefix, n: int, k: int, values, args, lo, hi) -> bool:
    """Whether the banded rows ``1 .. k + 1`` hold an optimal k-clustering (module docstring, 3)."""
    dk, dk1 = values[k][n - lo[k]], values[k + 1][n - lo[k + 1]]
    price = (dk - dk1) * (1.0 + PRICE_NUDGE)
    if not price > 0:
        return False
    E = np.full(n + 1, np.inf)
    E[0] = 0.0
    pred = np.zeros(n + 1, np.int64)
    for j in range(1, k + 2):
        v = values[j] + price * j
        sl = slice(int(lo[j]), int(hi[j]) + 1)
        better = v < E[sl]
        E[sl] = np.where(better, v, E[sl])
        pred[sl] = np.where(better, args[j], pred[sl])
    if not np.all(np.isfinite(E)):
        return False
    tol = 64 * np.finfo(np.float64).eps * (p.Q[n] + E[n])
    if dk + price * k > E[n] + tol:
        return False
    rows = np.arange(1, n + 1)
    a = pred[1:]
    if np.all(a[1:] >= a[:-1]):
        starts = np.concatenate([[0], a[:-1]])
        stops = np.minimum(np.concatenate([a[1:], [n - 1]]), rows - 1)
        best, _ = _window_minima(p, E[:n] - p.Q[:n], 0, rows, starts, stops)
    else:  # ties: minimise every row in full
        best, _ = _row(p, E[:n], 0, n - 1, 1, n)
    return bool(np.all(price + best >= E[1:] - tol))


def _p13_coordinate(xs: np.ndarray, ws: np.ndarray, k: int) -> np.ndarray:
    """A ``[0, 1]`` coordinate of the sorted points in which an optimal quantiser's cells
    are about equal: the normalised integral of ``p^(1/3)``, ``p`` estimated over windows
    of ``n / (16 k)`` points and interpolated linearly in ``x`` (so isolated tail points
    stay apart)."""
    n = xs.size
    step = max(1, n // (16 * k))
    t = np.arange(0, n, step)
    if t[-1] != n - 1:
        t = np.append(t, n - 1)
    cw = np.cumsum(ws)
    dx = np.diff(xs[t])
    dw = cw[t[1:]] - cw[t[:-1]]
    G = np.concatenate([[0.0], np.cumsum(dx ** (2 / 3) * dw ** (1 / 3))])
    return np.interp(xs, xs[t], G / G[-1])


def _bands(g: np.ndarray, k: int, n: int, below: float, above: float, slack: np.ndarray):
    """Bands of rows ``0 .. k + 1`` around the guessed boundaries ``g`` (``g[0] = 0``,
    ``g[k] = n``): row ``j`` from ``below`` clusters under ``g[j - 1]`` to ``above`` clusters
    over ``g[j]`` (row ``k + 1`` ends at ``n`` too), widened by ``slack`` at each boundary."""
    gg = np.concatenate([g, [n]]).astype(np.int64)
    size = np.diff(gg)  # size[t]: guessed points of cluster t + 1 (size[k] = 0)
    j = np.arange(1, k + 2)
    under = np.where(j >= 2, size[np.maximum(j - 2, 0)], 0)
    over = np.where(j <= k, size[np.minimum(j, k)], 0)
    lo = np.zeros(k + 2, np.int64)
    hi = np.zeros(k + 2, np.int64)
    lo[1:] = gg[j - 1] - np.ceil(below * under).astype(np.int64) - slack[j - 1]
    hi[1:] = gg[j] + np.ceil(above * over).astype(np.int64) + slack[np.minimum(j, k)]
    lo[1] = 1
    for r in range(1, k + 2):  # every row starts after its predecessor's start, within [r, n]
        lo[r] = min(max(lo[r], lo[r - 1] + 1, r), n - (k + 1 - r))
        hi[r] = min(n, max(hi[r], hi[r - 1] + 1, lo[r]))
    hi[k] = hi[k + 1] = n
    return lo, hi


def _guess_from_bins(xs, ws, k: int, G: np.ndarray, per_cluster: int):
    """Boundaries of the exact clustering of ``per_cluster * k`` bins of equal ``p^(1/3)``
    mass (weighted means), mapped back to the points, and two bins of slack per boundary."""
    n = xs.size
    cells = per_cluster * k
    starts = np.flatnonzero(np.diff(np.minimum((G * cells).astype(np.int64), cells - 1), prepend=-1))
    if not k < starts.size <= n // 2:
        return None, None
    bw = np.add.reduceat(ws, starts)
    coarse = _solve(np.add.reduceat(ws * xs, starts) / bw, bw, k, depth=1)
    edges = np.append(starts, n)
    sizes = np.diff(edges)
    slack = 2 * np.maximum(sizes[np.maximum(coarse - 1, 0)], sizes[np.minimum(coarse, sizes.size - 1)])
    return edges[coarse], slack


def _guess_from_fewer_clusters(xs, ws, k: int, G: np.ndarray, depth: int):
    """Too few points per cluster to bin: the exact clustering into ``k // 4`` clusters, the
    ``k`` clusters shared out among its clusters in proportion to the cube root of their
    squared error (the high-resolution optimum: a region of error ``s`` split ``j`` ways costs
    about ``s / j^2``), never more than their points, and each split at equal ``p^(1/3)`` mass."""
    n = xs.size
    k4 = max(1, k // 4)
    coarse = np.array([0, n]) if k4 == 1 else _solve(xs, ws, k4, depth + 1)
    w = np.add.reduceat(ws, coarse[:-1])
    s = np.add.reduceat(ws * xs, coarse[:-1])
    sse = np.maximum(np.add.reduceat(ws * xs * xs, coarse[:-1]) - s * s / w, 0.0)
    points = np.diff(coarse)
    share = np.cbrt(sse)
    share = share / share.sum() * k if share.sum() > 0 else points / n * k
    split = np.clip(np.floor(share).astype(np.int64), 1, points)
    while split.sum() != k:  # hand out (or take back) the rest by the largest remainders
        short = k - split.sum()
        room = split < points if short > 0 else split > 1
        order = np.argsort(np.where(room, split - share, np.inf) if short > 0 else np.where(room, share - split, np.inf))
        pick = order[: min(abs(short), int(room.sum()))]
        split[pick] += np.sign(short)
    offsets = np.concatenate([[0], np.cumsum(split)])
    Gb = np.append(G, 1.0)[coarse]
    t = np.searchsorted(coarse, np.arange(n), side="right") - 1  # coarse cluster of every point
    span = Gb[t + 1] - Gb[t]
    frac = np.where(span > 0, (G - Gb[t]) / np.where(span > 0, span, 1.0), (np.arange(n) - coarse[t]) / points[t])
    guess = np.searchsorted(offsets[t] + frac * split[t], np.arange(k + 1), side="left")
    guess[0], guess[k] = 0, n
    guess = np.maximum.accumulate(np.clip(guess, np.arange(k + 1), n - (k - np.arange(k + 1))))
    return guess, np.full(k + 1, 2, np.int64)


def _solve(xs: np.ndarray, ws: np.ndarray, k: int, depth: int = 0) -> np.ndarray:
    """Boundaries ``0 = b_0 < ... < b_k = n`` of an optimal k-clustering of the sorted,
    distinct, positively weighted, centred points ``xs`` (``1 < k < n``)."""
    n = xs.size
    p = _Prefix(xs, ws)
    full_cost = k * n * max(1.0, np.log2(n))
    if full_cost <= FULL_TABLE_EVALS:
        return _full(p, n, k)
    G = _p13_coordinate(xs, ws, k)
    per_cluster = min(BINS_PER_CLUSTER[min(depth, 1)], n // (3 * k))
    guess = slack = None
    below, above = MARGINS
    if per_cluster >= MIN_BINS_PER_CLUSTER:
        guess, slack = _guess_from_bins(xs, ws, k, G, per_cluster)
        below *= max(1.0, 16 / per_cluster)  # coarser bins, rougher guess
    if guess is None:  # a rougher guess (up to tens of clusters off): a wide first band
        guess, slack = _guess_from_fewer_clusters(xs, ws, k, G, depth)
        below = above = above * MARGIN_GROWTH**3
    while True:
        lo, hi = _bands(guess, k, n, below, above, slack)
        if np.sum(hi[1:] - lo[1:] + 1) * max(1.0, np.log2(n / k)) > full_cost / 4:
            return _full(p, n, k)  # the band would cost about as much as the full table
        values, args = _rows(p, lo, hi)
        if _certified(p, n, k, values, args, lo, hi):
            return _backtrack(args, lo, k, n)
        # Not proven: centre a wider band on the best path this one held, and try again.
        guess = _backtrack(args, lo, k, n)
        below, above = below * MARGIN_GROWTH, above * MARGIN_GROWTH


def _centroids(x: np.ndarray, w: np.ndarray | None, k: int) -> np.ndarray:
    """The ``(k,)`` float32 ascending centroids of an optimal clustering (host)."""
    x = np.asarray(x, np.float64).ravel()
    w = np.ones_like(x) if w is None else np.asarray(w, np.float64).ravel()
    keep = w > 0
    x, w = x[keep], w[keep]
    if np.all(w == 1):  # no weights, or a 0/1 mask: sort the values alone
        x = np.sort(x)
    else:
        order = np.argsort(x)
        x, w = x[order], w[order]
    first = np.flatnonzero(np.concatenate([[True], x[1:] != x[:-1]]))
    xs, ws = x[first], np.add.reduceat(w, first)  # distinct values, their total weights
    n = xs.size
    if k >= n:  # every distinct value is its own centroid; the surplus ones stay empty
        return np.concatenate([xs, np.full(k - n, xs[-1])]).astype(np.float32)
    centre = np.sum(ws * xs) / np.sum(ws)
    xc = xs - centre
    b = np.array([0, n]) if k == 1 else _solve(xc, ws, k)
    means = np.add.reduceat(ws * xc, b[:-1]) / np.add.reduceat(ws, b[:-1])
    return np.sort((means + centre).astype(np.float32))


@functools.partial(jax.jit, static_argnames=("k",))
def _optimal(flat: jax.Array, w: jax.Array | None, *, k: int) -> _kmeans.KMeansResult:
    """The host computation (:func:`_centroids`, through :func:`jax.pure_callback`) and, in
    JAX as for the other inits, the nearest-centroid assignments and the inertia."""
    out = jax.ShapeDtypeStruct((k,), jnp.float32)
    if w is None:
        c = jax.pure_callback(lambda v: _centroids(v, None, k), out, flat, vmap_method="sequential")
        sq = jnp.square(flat - c[_kmeans._assign(flat, c)])
    else:
        c = jax.pure_callback(lambda v, u: _centroids(v, u, k), out, flat, w, vmap_method="sequential")
        sq = w.astype(jnp.float32) * jnp.square(flat - c[_kmeans._assign(flat, c)])
    return _kmeans.KMeansResult(c, _kmeans._assign(flat, c), jnp.sum(sq), jnp.int32(0))


def _run(x, weights, k: int, size: int | None) -> _kmeans.KMeansResult:
    """:func:`kmeans_1d_optimal` on validated arguments (``kmeans_1d`` has checked them)."""
    shape = jnp.shape(x)
    flat, w, n = _kmeans._padded(x, weights, size)  # zero-weight padding: the host drops it
    r = _optimal(flat, w, k=int(k))
    return r._replace(assignments=r.assignments[:n].reshape(shape))


def kmeans_1d_optimal(x, k: int, *, weights=None, size: int | None = None) -> _kmeans.KMeansResult:
    """The optimal (least-inertia) clustering of the scalars of ``x`` into ``k`` centroids.

    Exact, by dynamic programming over the sorted values (see the module docstring): no
    initialisation, no randomness, no iterations. ``kmeans_1d(x, k, init='optimal')`` and
    the codebook quantizer's ``init='optimal'`` call this.

    Args:
      x: real array of any shape; every entry is one point.
      k: number of centroids.
      weights: non-negative per-point weights of ``x``'s shape, as for
        :func:`wsjax.sharing.kmeans.kmeans_1d` (zero weight: the point is ignored, so a
        0/1 pruning mask leaves the pruned weights out); default all ones.
      size: as for ``kmeans_1d``: pad to at least this length (inputs are padded to a power
        of two anyway) so that arrays of different sizes share one compilation of the
        assignment step around the host computation.

    Returns:
      :class:`wsjax.sharing.kmeans.KMeansResult` with the conventions of ``kmeans_1d``:
      ascending float32 centroids (the weighted means of the optimal clusters), every
      value's nearest centroid as its assignment (ties go to the lower one), the weighted
      inertia, and ``iterations = 0`` (no Lloyd iterations are run; the result is already
      a Lloyd fixed point). With fewer distinct (positively weighted) values than ``k``,
      each distinct value is its own centroid and the surplus centroids, empty clusters,
      repeat the largest value (the order stays non-decreasing, as ``kmeans_1d``'s empty
      clusters and duplicate initial centroids do).

    The clustering runs on the host, through :func:`jax.pure_callback`, so this also works
    under ``jit`` and ``vmap``; there (traced ``x`` or ``weights``) bad values (NaN,
    all-zero weights) are not caught.
    """
    x, weights, _ = _kmeans._validate(x, k, "optimal", None, weights)
    if size is not None:
        checks.positive_int(size, "size")
    return _run(x, weights, int(k), size)
