"""Jitted 1-D k-means (Lloyd) for weight clustering, sort-based and O(k log n) per iteration.

In one dimension the clusters of any set of ordered centroids are contiguous intervals of
the sorted data, split at the midpoints between neighbouring centroids. So the data are
sorted once (O(n log n), as int32 keys: faster to sort than floats; NumPy sorts them on
CPU); compensated prefix sums of the weights ``w``, ``w x`` and ``w x^2`` turn every
interval statistic (count, mean, cost) into two lookups; and one Lloyd iteration is
``k - 1`` binary searches of the midpoints in the sorted data plus ``O(k)`` arithmetic,
independent of ``n``. Because iterations are this cheap, each one also tries an
over-relaxed step and keeps it when it lowers the cost (1-D Lloyd otherwise creeps towards
its fixed point), and the loop runs until the exact fixed point (the interval boundaries
no longer move) or ``max_iter``. The final assignment of the data in their original order
is one ``searchsorted`` of every value among the ``k - 1`` midpoints (O(n log k)).

Centroid initialisations (Han et al. 2016, Sec. 3.2, compare the first three):

* ``'linear'``: ``k`` points evenly spaced over ``[min, max]`` of the (weighted-in) data;
  keeps centroids at the rare large-magnitude weights;
* ``'density'``: the ``(i + 1/2) / k`` quantiles of the data (equal spacing on the CDF's
  y axis, read off on its x axis);
* ``'random'``: Forgy, ``k`` distinct data points drawn with probability proportional to
  their weight;
* ``'kmeans++'``: greedy D^2 seeding (Arthur & Vassilvitskii 2007; ``2 + ln k`` candidates
  per step, as scikit-learn does), computed per interval from the prefix sums, so seeding
  costs O(k^2 log n) rather than O(nk);
* ``'optimal'``: not a start for Lloyd but the exact optimum, by dynamic programming on the
  host (:mod:`wsjax.sharing.kmeans_optimal`; Wang & Song 2011, Grønlund et al. 2017): the
  least inertia any clustering of the data can have, the floor the heuristics above are
  measured against (``benchmarks/kmeans.py``).

``weights`` (e.g. a pruning mask) make masked-out values invisible to the clustering while
keeping every shape static under ``jit``.

References: Han, Mao & Dally, `Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding <https://arxiv.org/abs/1510.00149>`_, 2016;
Arthur & Vassilvitskii, `k-means++: The Advantages of Careful Seeding
<https://theory.stanford.edu/~sergei/papers/kMeansPP-soda.pdf>`_, 2007; Lloyd, `Least squares
quantization in PCM <https://doi.org/10.1109/TIT.1982.1056489>`_, 1982.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from wsjax import checks

INITS = ("linear", "density", "random", "kmeans++", "optimal")


class KMeansResult(NamedTuple):
    """The outcome of :func:`kmeans_1d`.

    Attributes:
      centroids: ``(k,)`` float32, ascending.
      assignments: int32 array of ``x``'s shape; ``centroids[assignments]`` is the nearest
        centroid of every value (ties at a midpoint go to the lower centroid).
      inertia: ``sum(weights * (x - centroids[assignments])**2)``.
      iterations: the number of Lloyd iterations run (of the best run when ``n_init > 1``;
        0 for ``init='optimal'``, which runs none).
    """

    centroids: jax.Array
    assignments: jax.Array
    inertia: jax.Array
    iterations: jax.Array


# ----------------------------------------------------------------------------- sorting


def _sortable_int(x: jax.Array) -> jax.Array:
    """An int32 key whose order is the float32 order of ``x`` (XLA sorts ints much faster)."""
    i = lax.bitcast_convert_type(x, jnp.int32)
    return jnp.where(i < 0, i ^ jnp.int32(0x7FFFFFFF), i)


def _host_sort(keys: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(keys), axis=-1)


def _sort_keys(keys: jax.Array) -> jax.Array:
    """Ascending sort of int32 keys along the last axis.

    On CPU this calls NumPy's sort through ``jax.pure_callback`` (it runs on the same host
    memory, and XLA:CPU's comparison sort is several times slower: 1M keys take ~7 ms
    against ~50 ms on two cores); on GPU and TPU it is XLA's own sort.
    """
    shape = jax.ShapeDtypeStruct(keys.shape, keys.dtype)

    def on_cpu(k):
        return jax.pure_callback(_host_sort, shape, k, vmap_method="broadcast_all")

    return lax.platform_dependent(keys, cpu=on_cpu, default=lambda k: lax.sort(k, is_stable=False))


def _from_sortable_int(key: jax.Array) -> jax.Array:
    i = jnp.where(key < 0, key ^ jnp.int32(0x7FFFFFFF), key)
    return lax.bitcast_convert_type(i, jnp.float32)


# ----------------------------------------------------------------------------- compensated prefix sums


def _two_sum(a, b):
    """``a + b = s + err`` exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _prefix(values: jax.Array):
    """Exclusive prefix sums along the last axis as pairs ``(g, d)`` with ``g + d`` the exact sum.

    ``g`` is the float32 cumulative sum; ``d`` accumulates, exactly enough, the rounding error
    that each step of ``g`` made (recovered error-free with TwoSum), so the difference of two
    prefix sums is as accurate as summing the interval directly, even deep into a long
    array. Shapes: ``(m, n)`` in, two ``(m, n + 1)`` arrays out, starting at 0.
    """
    g = jnp.cumsum(values, axis=-1)
    previous = jnp.concatenate([jnp.zeros_like(values[..., :1]), g[..., :-1]], axis=-1)
    s, err = _two_sum(previous, values)
    d = jnp.cumsum((s - g) + err, axis=-1)
    pad = [(0, 0)] * (values.ndim - 1) + [(1, 0)]
    return jnp.pad(g, pad), jnp.pad(d, pad)


def _interval(prefix, start, stop):
    """``sum(values[..., start:stop])`` from :func:`_prefix` pairs (float32)."""
    g, d = prefix
    s, e = _two_sum(jnp.take(g, stop, axis=-1), -jnp.take(g, start, axis=-1))
    return s + (e + (jnp.take(d, stop, axis=-1) - jnp.take(d, start, axis=-1)))


class _Sorted(NamedTuple):
    xs: jax.Array  # (n,) centred values, ascending
    ws: jax.Array  # (n,) their weights
    prefix: tuple  # compensated prefix sums (g, d) of (w, w x, w x^2), each (3, n + 1)
    total: jax.Array  # sum of weights


def _edges(xs: jax.Array, centroids: jax.Array) -> jax.Array:
    """``(k + 1,)`` interval boundaries in the sorted data of ascending ``centroids``."""
    mids = 0.5 * (centroids[:-1] + centroids[1:])
    inner = jnp.searchsorted(xs, mids, side="right").astype(jnp.int32)
    n = jnp.int32(xs.shape[0])
    return jnp.concatenate([jnp.zeros((1,), jnp.int32), inner, n[None]])


def _stats(s: _Sorted, edges: jax.Array):
    """Per interval ``(weight, weighted sum)``, each ``(k,)``."""
    w, sx = _interval(s.prefix, edges[:-1], edges[1:])[:2]
    return w, sx


# ----------------------------------------------------------------------------- initialisation


def _quantile_positions(s: _Sorted, levels: jax.Array) -> jax.Array:
    """Indices into the sorted data where the cumulative weight first reaches ``levels * total``."""
    cum = s.prefix[0][0, 1:] + s.prefix[1][0, 1:]
    idx = jnp.searchsorted(cum, levels * s.total, side="left")
    return jnp.clip(idx, 0, s.xs.shape[0] - 1)


def _weighted_min_max(s: _Sorted):
    first = jnp.argmax(s.ws > 0)
    last = s.xs.shape[0] - 1 - jnp.argmax(s.ws[::-1] > 0)
    return s.xs[first], s.xs[last]


def _init_linear(s: _Sorted, k: int, key) -> jax.Array:
    del key
    lo, hi = _weighted_min_max(s)
    return jnp.linspace(lo, hi, k, dtype=jnp.float32)


def _init_density(s: _Sorted, k: int, key) -> jax.Array:
    del key
    levels = (jnp.arange(k, dtype=jnp.float32) + 0.5) / k
    return s.xs[_quantile_positions(s, levels)]


def _init_random(s: _Sorted, k: int, key) -> jax.Array:
    # Forgy: k distinct points, chosen with probability proportional to their weight
    # (Gumbel top-k; zero-weight points come last).
    g = jax.random.gumbel(key, s.xs.shape, jnp.float32)
    logits = jnp.where(s.ws > 0, jnp.log(jnp.maximum(s.ws, 1e-30)) + g, -jnp.inf)
    _, idx = lax.top_k(logits, k)
    return jnp.sort(s.xs[idx])


def _sse(s: _Sorted, centres, start, stop):
    """``sum w (x - centre)^2`` over sorted positions ``[start, stop)`` (any broadcast shape).

    Written as the interval's own scatter plus the offset of its mean,
    ``(Q - S^2/W) + W (S/W - centre)^2``, which is far better conditioned in float32 than
    ``Q - 2 c S + c^2 W`` for narrow intervals away from zero.
    """
    w, sx, sxx = _interval(s.prefix, start, stop)
    safe_w = jnp.where(w > 0, w, 1.0)
    mean = sx / safe_w
    scatter = jnp.maximum(sxx - sx * mean, 0.0)
    offset = w * jnp.square(mean - jnp.where(jnp.isfinite(centres), centres, 0.0))
    return jnp.where(w > 0, scatter + offset, 0.0)


def _potential(s: _Sorted, centroids: jax.Array) -> jax.Array:
    """k-means cost of ascending ``centroids`` (``+inf`` entries are unused slots)."""
    edges = _edges(s.xs, centroids)
    return jnp.sum(_sse(s, centroids, edges[:-1], edges[1:]))


def _init_kmeanspp(s: _Sorted, k: int, key) -> jax.Array:
    """Greedy k-means++: D^2-sample ``2 + ln k`` candidates, keep the one that lowers the cost most.

    Each cluster interval is split at its centroid into two halves in which D^2 grows
    monotonically away from the centroid, so a D^2 draw is: pick a half by its mass, then
    bisect the half's cumulative mass (from the prefix sums) for the point.
    """
    n = s.xs.shape[0]
    trials = 2 + int(np.log(k))
    keys = jax.random.split(key, k)
    first = _quantile_positions(s, jax.random.uniform(keys[0], (1,), jnp.float32))[0]
    centroids = jnp.full((k,), jnp.inf, jnp.float32).at[0].set(s.xs[first])
    steps = int(np.ceil(np.log2(n + 1))) + 1

    def draw(key, starts, stops, centres, cum):
        u = jax.random.uniform(key, (), jnp.float32, 1e-7, 1.0) * cum[-1]
        h = jnp.clip(jnp.searchsorted(cum, u, side="left"), 0, cum.shape[0] - 1)
        remainder = u - jnp.where(h > 0, cum[h - 1], 0.0)
        start, stop, centre = starts[h], stops[h], centres[h]

        def bisect(_, lohi):
            lo, hi = lohi  # the answer lies in [lo, hi]
            mid = (lo + hi) // 2
            enough = _sse(s, centre, start, mid + 1) >= remainder
            return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

        lo, _ = lax.fori_loop(0, steps, bisect, (start, jnp.maximum(stop - 1, start)))
        return jnp.clip(lo, 0, n - 1)

    def body(t, centroids):
        edges = _edges(s.xs, centroids)
        c = jnp.where(jnp.isfinite(centroids), centroids, 0.0)
        at = jnp.clip(jnp.searchsorted(s.xs, c, side="left"), edges[:-1], edges[1:])
        starts = jnp.stack([edges[:-1], at], 1).ravel()
        stops = jnp.stack([at, edges[1:]], 1).ravel()
        centres = jnp.repeat(centroids, 2)
        cum = jnp.cumsum(_sse(s, centres, starts, stops))
        trial_keys = jax.random.split(keys[t], trials)
        picks = jax.vmap(lambda kk: draw(kk, starts, stops, centres, cum))(trial_keys)
        # Every remaining point already sits on a centroid (zero mass): any kept point will do.
        fallback = _quantile_positions(s, jax.random.uniform(keys[t], (trials,), jnp.float32))
        picks = jnp.where(cum[-1] > 0, picks, fallback)
        candidates = jax.vmap(lambda v: jnp.sort(centroids.at[t].set(v)))(s.xs[picks])
        costs = jax.vmap(lambda cand: _potential(s, cand))(candidates)
        return candidates[jnp.argmin(costs)]

    return lax.fori_loop(1, k, body, centroids)


_INIT_FNS = {
    "linear": _init_linear,
    "density": _init_density,
    "random": _init_random,
    "kmeans++": _init_kmeanspp,
}


# ----------------------------------------------------------------------------- the algorithm


def _prepare(x: jax.Array, weights: jax.Array | None):
    """Sort and centre the data and build the prefix sums of ``(w, w x, w x^2)``.

    XLA sorts int32 keys several times faster than floats, and a key-only sort faster than a
    (key, payload) sort, so: no weights or a boolean mask sort the keys alone (masked-out
    values get the largest key and so land after the ``m`` kept ones, and the count prefix
    is ``min(i, m)``); float weights ride along as a payload. Values are centred on their
    weighted mean first, which keeps the ``w x^2`` prefix sums well conditioned.
    """
    xf = x.ravel().astype(jnp.float32)
    n = xf.shape[0]
    keys = _sortable_int(xf)
    if weights is None or weights.dtype == jnp.bool_:
        if weights is None:
            m = jnp.int32(n)
        else:
            kept = weights.ravel()
            m = jnp.sum(kept, dtype=jnp.int32)
            keys = jnp.where(kept, keys, jnp.iinfo(jnp.int32).max)
        keys = _sort_keys(keys)
        idx = jnp.arange(n, dtype=jnp.int32)
        ws = (idx < m).astype(jnp.float32)
        xs = _from_sortable_int(keys)
        xs = jnp.where(idx < m, xs, xs[jnp.maximum(m - 1, 0)])  # finite, still ascending
        counts = jnp.minimum(jnp.arange(n + 1, dtype=jnp.int32), m).astype(jnp.float32)
        count_prefix = (counts, jnp.zeros_like(counts))
    else:
        wf = weights.ravel().astype(jnp.float32)
        keys, ws = lax.sort((keys, wf), num_keys=1, is_stable=False)
        xs = _from_sortable_int(keys)
        count_prefix = None
    total = jnp.sum(ws)
    centre = jnp.sum(ws * xs) / jnp.maximum(total, 1e-30)
    xs = xs - centre
    rows = [ws * xs, ws * xs * xs]
    if count_prefix is None:
        rows = [ws] + rows
    g, d = _prefix(jnp.stack(rows))
    if count_prefix is not None:
        g = jnp.concatenate([count_prefix[0][None], g])
        d = jnp.concatenate([count_prefix[1][None], d])
    return xf - centre, centre, _Sorted(xs, ws, (g, d), total)


OVER_RELAXATION = 1.9


def _lloyd(s: _Sorted, centroids: jax.Array, max_iter, tol):
    """Lloyd's iterations with safeguarded over-relaxation, until the partition stops moving.

    Near a minimum, 1-D Lloyd creeps: each step moves the centroids only a fraction of the
    way. Each iteration therefore also tries the over-relaxed step ``c + omega (m - c)``
    (``m`` the plain Lloyd update) and keeps it only if its cost is no higher than the plain
    step's; a rejection halves ``omega - 1``, so the iteration falls back to plain Lloyd and
    ends at an exact fixed point (the interval boundaries no longer move).

    With ``tol > 0`` it also stops, as scikit-learn's ``KMeans`` does, once an iteration moves
    the centroids by at most ``tol`` times the data's variance in summed squared shift.
    """
    variance = _interval(s.prefix, jnp.int32(0), jnp.int32(s.xs.shape[0]))[2] / jnp.maximum(s.total, 1e-30)
    threshold = tol * variance

    def cond(state):
        it, _, _, moved, _, shift = state
        return jnp.logical_and(jnp.logical_and(it < max_iter, moved), shift > threshold)

    def body(state):
        it, c, edges, _, omega, _ = state
        w, sx = _stats(s, edges)
        plain = jnp.sort(jnp.where(w > 0, sx / jnp.where(w > 0, w, 1.0), c))
        relaxed = jnp.sort(c + omega * (plain - c))
        plain_edges, relaxed_edges = _edges(s.xs, plain), _edges(s.xs, relaxed)
        plain_cost = jnp.sum(_sse(s, plain, plain_edges[:-1], plain_edges[1:]))
        relaxed_cost = jnp.sum(_sse(s, relaxed, relaxed_edges[:-1], relaxed_edges[1:]))
        # Converged when the plain step keeps the partition: its means are then a fixed point.
        moved = jnp.any(plain_edges != edges)
        accept = jnp.logical_and(relaxed_cost <= plain_cost, moved)
        new_c = jnp.where(accept, relaxed, plain)
        new_edges = jnp.where(accept, relaxed_edges, plain_edges)
        omega = jnp.where(accept, omega, 1.0 + 0.5 * (omega - 1.0))
        shift = jnp.sum(jnp.square(new_c - c))
        return it + 1, new_c, new_edges, moved, omega, shift

    edges = _edges(s.xs, centroids)
    init = (jnp.int32(0), centroids, edges, jnp.bool_(True), jnp.float32(OVER_RELAXATION), jnp.float32(jnp.inf))
    it, c, _, _, _, _ = lax.while_loop(cond, body, init)
    return c, it


def _assign(x: jax.Array, centroids: jax.Array) -> jax.Array:
    """Nearest-centroid index (int32) of the flat ``x``; ties at a midpoint go lower."""
    mids = 0.5 * (centroids[:-1] + centroids[1:])
    # Comparing against every midpoint is fastest for few centroids; a binary search
    # (log2 k gathers per value) for many, and it needs no (n, k) temporary.
    small = centroids.shape[0] <= 64 and x.size * centroids.shape[0] <= 2**26
    method = "compare_all" if small else "scan"
    return jnp.searchsorted(mids, x, side="left", method=method).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("k", "init", "n_init"))
def _kmeans_1d(x, weights, key, max_iter, tol, *, k: int, init: str, n_init: int) -> KMeansResult:
    restarts = n_init > 1
    xc, centre, s = _prepare(x, weights)

    def run(key):
        c0 = jnp.sort(_INIT_FNS[init](s, k, key).astype(jnp.float32))
        return _lloyd(s, c0, max_iter, tol)

    if restarts:
        cs, its = jax.vmap(run)(jax.random.split(key, n_init))
        best = jnp.argmin(jax.vmap(lambda c: _potential(s, c))(cs))
        c, iterations = cs[best], its[best]
    else:
        c, iterations = run(key)
    assignments = _assign(xc, c)
    wf = 1.0 if weights is None else weights.ravel().astype(jnp.float32)
    inertia = jnp.sum(wf * jnp.square(xc - c[assignments]))
    return KMeansResult(c + centre, assignments.reshape(x.shape), inertia, iterations)


# ----------------------------------------------------------------------------- public API


def _validate(x, k, init, key, weights, max_iter=1):
    checks.positive_int(k, "k")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    checks.integer(max_iter, "max_iter", lo=0)
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating) and not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(f"x must be a real array, got dtype {x.dtype}")
    if x.size == 0:
        raise ValueError("kmeans_1d needs at least one value")
    if x.size >= 2**31 - 1:
        raise ValueError(f"kmeans_1d handles fewer than 2**31 - 1 values, got {x.size}")
    if weights is not None:
        if not hasattr(weights, "shape"):
            weights = np.asarray(weights)
        if weights.shape != x.shape:
            raise ValueError(f"weights shape {weights.shape} != x shape {x.shape}")
    if init in ("random", "kmeans++") and key is None:
        raise ValueError(f"init={init!r} is random: pass key=jax.random.key(seed)")
    if key is None:
        key = jax.random.key(0)
    if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError("kmeans_1d: x holds NaN or infinite values")
    if weights is not None and not isinstance(weights, jax.core.Tracer):
        w = np.asarray(weights, np.float32)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("kmeans_1d: weights must be finite and >= 0")
        if not np.any(w > 0):
            raise ValueError("kmeans_1d: every weight is zero; nothing to cluster")
    return x, weights, key


def _bucket(n: int) -> int:
    """Pad lengths to powers of two (at least 256) so layers of similar size share a compile."""
    return max(256, 1 << max(0, int(n - 1).bit_length()))


def _padded(x, weights, size=None):
    """Flatten and pad with zero-weight copies of the first value to a bucketed length."""
    flat = jnp.ravel(jnp.asarray(x)).astype(jnp.float32)
    n = flat.shape[0]
    size = _bucket(n) if size is None else _bucket(max(size, n))
    if weights is None:
        w = None if size == n else jnp.arange(size) < n
    else:
        w = jnp.ravel(jnp.asarray(weights))
        w = w.astype(jnp.bool_) if w.dtype == jnp.bool_ else w.astype(jnp.float32)
    if size != n:
        flat = jnp.concatenate([flat, jnp.full((size - n,), flat[0])])
        if weights is not None:
            w = jnp.concatenate([w, jnp.zeros((size - n,), w.dtype)])
    return flat, w, n


def kmeans_1d(
    x,
    k: int,
    *,
    init: str = "linear",
    key: jax.Array | None = None,
    weights=None,
    max_iter: int = 300,
    tol: float = 0.0,
    n_init: int = 1,
    size: int | None = None,
) -> KMeansResult:
    """Cluster the scalars of ``x`` (any shape) into ``k`` centroids with Lloyd's algorithm.

    Args:
      x: real array of any shape; every entry is one point.
      k: number of centroids (static under ``jit``).
      init: one of :data:`INITS`. ``'optimal'`` returns the exact optimum instead
        (:func:`wsjax.sharing.kmeans_optimal.kmeans_1d_optimal`, on the host; ``key``,
        ``max_iter``, ``tol`` and ``n_init`` are checked but play no part).
      key: PRNG key, required for ``'random'`` and ``'kmeans++'``.
      weights: non-negative per-point weights of ``x``'s shape (a 0/1 pruning mask leaves
        the pruned points out of the clustering); default all ones.
      max_iter: the most Lloyd iterations; it stops earlier at an exact fixed point.
      tol: with ``tol > 0``, also stop once an iteration's summed squared centroid shift is
        at most ``tol`` times the data's (weighted) variance, scikit-learn's criterion
        (its default is ``1e-4``). The default 0 runs to the exact fixed point.
      n_init: runs from independent random initialisations (``'random'``, ``'kmeans++'``);
        the one with the lowest cost is returned. Deterministic inits run once.
      size: pad the flattened input (with zero-weight entries) to at least this length.
        Inputs are padded to a power of two anyway; passing the largest of several arrays'
        sizes lets all of them share one compilation.

    Returns:
      :class:`KMeansResult`. Clusters that end up empty keep their initial centroid.
    """
    x, weights, key = _validate(x, k, init, key, weights, max_iter)
    shape = jnp.shape(x)
    if size is not None:
        checks.positive_int(size, "size")
    n_init = checks.positive_int(n_init, "n_init")
    n_init = n_init if init in ("random", "kmeans++") else 1
    tol = checks.number(tol, "tol", lo=0.0)
    if init == "optimal":
        from wsjax.sharing import kmeans_optimal  # it builds on this module

        return kmeans_optimal._run(x, weights, int(k), size)
    flat, w, n = _padded(x, weights, size)
    r = _kmeans_1d(flat, w, key, jnp.int32(max_iter), jnp.float32(tol), k=int(k), init=init, n_init=n_init)
    return r._replace(assignments=r.assignments[:n].reshape(shape))


def init_centroids(x, k: int, *, init: str = "linear", key=None, weights=None) -> jax.Array:
    """The ``(k,)`` ascending initial centroids that :func:`kmeans_1d` would start from
    (for ``init='optimal'``: the optimal centroids, which Lloyd would not move)."""
    # Zero Lloyd iterations: the same compiled function as the clustering itself.
    return kmeans_1d(x, k, init=init, key=key, weights=weights, max_iter=0).centroids


def assign(x, centroids) -> jax.Array:
    """Index of the nearest of the ascending ``centroids`` for every entry of ``x`` (int32)."""
    x = jnp.asarray(x, jnp.float32)
    return _assign(x.ravel(), jnp.asarray(centroids, jnp.float32)).reshape(x.shape)
