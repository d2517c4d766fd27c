"""Tests for the jitted sort-based 1-D k-means (wsjax.sharing.kmeans).

Most tests share one compiled function (4096-value buckets, k = 8) to keep compile time low.
"""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsjax.sharing import kmeans_optimal
from wsjax.sharing.kmeans import INITS, assign, init_centroids, kmeans_1d

K = 8


def _reference_lloyd(x, c, w=None, max_iter=10_000):
    """Plain float64 weighted Lloyd on sorted data from the given centroids (the oracle)."""
    x = np.asarray(x, np.float64)
    w = np.ones_like(x) if w is None else np.asarray(w, np.float64)
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cw, cs = np.concatenate([[0], np.cumsum(ws)]), np.concatenate([[0], np.cumsum(ws * xs)])
    c = np.sort(np.asarray(c, np.float64))
    for _ in range(max_iter):
        e = np.concatenate([[0], np.searchsorted(xs, (c[1:] + c[:-1]) / 2, side="right"), [xs.size]])
        cnt, tot = cw[e[1:]] - cw[e[:-1]], cs[e[1:]] - cs[e[:-1]]
        new = np.where(cnt > 0, tot / np.where(cnt > 0, cnt, 1), c)
        if np.array_equal(new, c):
            break
        c = new
    a = np.searchsorted((c[1:] + c[:-1]) / 2, x)
    return c, float(np.sum(w * (x - c[a]) ** 2))


def _mixture(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    parts = [rng.normal(-0.3, 0.05, n // 2), rng.normal(0.2, 0.1, n - n // 2)]
    return rng.permutation(np.concatenate(parts)).astype(np.float32)


@pytest.mark.parametrize("init", INITS)
def test_ends_at_a_lloyd_fixed_point_no_worse_than_plain_lloyd(init):
    x = _mixture()
    key = jax.random.key(3)
    c0 = np.asarray(init_centroids(x, K, init=init, key=key))
    _, plain_inertia = _reference_lloyd(x, c0)
    r = kmeans_1d(x, K, init=init, key=key, max_iter=10_000)
    assert int(r.iterations) < 10_000  # stopped because the partition no longer moved
    c = np.asarray(r.centroids, np.float64)
    one_more, inertia = _reference_lloyd(x, c, max_iter=1)
    np.testing.assert_allclose(c, one_more, rtol=0, atol=2e-6)  # a fixed point in float64 too
    np.testing.assert_allclose(float(r.inertia), inertia, rtol=1e-5)
    assert inertia <= plain_inertia * (1 + 1e-6)


def test_assignments_are_nearest_centroids_and_inertia_consistent():
    x = _mixture(seed=1).reshape(8, 500)
    r = kmeans_1d(x, K, init="kmeans++", key=jax.random.key(0))
    c = np.asarray(r.centroids, np.float64)
    assert r.assignments.shape == x.shape and r.assignments.dtype == jnp.int32
    dist = np.abs(x[..., None] - c)
    chosen = np.take_along_axis(dist, np.asarray(r.assignments)[..., None], -1)[..., 0]
    np.testing.assert_allclose(chosen, dist.min(-1), atol=1e-6)
    assert np.all(np.diff(c) >= 0)
    np.testing.assert_allclose(float(r.inertia), np.sum((x - c[np.asarray(r.assignments)]) ** 2), rtol=1e-4)


def test_linear_and_density_initialisations():
    x = _mixture(seed=2)
    lin = np.asarray(init_centroids(x, K, init="linear"))
    np.testing.assert_allclose(lin, np.linspace(x.min(), x.max(), K), rtol=1e-5, atol=1e-7)
    dens = np.asarray(init_centroids(x, K, init="density"))
    xs = np.sort(x)
    # (i + 1/2)/k quantiles: the first sorted value whose cumulative count reaches level * n
    want = xs[np.ceil((np.arange(K) + 0.5) / K * x.size).astype(int) - 1]
    np.testing.assert_allclose(dens, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("init", ["random", "kmeans++"])
def test_random_initialisations_pick_distinct_data_points_deterministically(init):
    x = _mixture(seed=3)
    a = np.asarray(init_centroids(x, K, init=init, key=jax.random.key(1)))
    b = np.asarray(init_centroids(x, K, init=init, key=jax.random.key(1)))
    c = np.asarray(init_centroids(x, K, init=init, key=jax.random.key(2)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a[:, None] - x[None]).min(1).max() < 1e-6  # every centroid is a data point
    assert len(np.unique(a)) == K


def test_kmeanspp_seeds_one_centroid_per_separated_cluster():
    rng = np.random.default_rng(4)
    centres = np.arange(K) * 10.0
    x = (np.repeat(centres, 500) + rng.normal(0, 0.01, K * 500)).astype(np.float32)
    for seed in range(3):
        c = np.asarray(init_centroids(x, K, init="kmeans++", key=jax.random.key(seed)))
        np.testing.assert_array_equal(np.round(c / 10), np.arange(K))


def test_mask_and_float_weights():
    x = _mixture(seed=5)
    rng = np.random.default_rng(0)
    keep = rng.random(x.shape) < 0.3
    results = []
    for fill, w in ((100.0, keep), (-50.0, keep), (100.0, keep.astype(np.float32))):
        x_masked = np.where(keep, x, fill).astype(np.float32)  # pruned values must not matter
        results.append(kmeans_1d(x_masked, K, init="linear", weights=w))
    for r in results[1:]:
        np.testing.assert_allclose(np.asarray(r.centroids), np.asarray(results[0].centroids), atol=1e-7)
        np.testing.assert_array_equal(np.asarray(r.assignments)[keep], np.asarray(results[0].assignments)[keep])
    r = results[0]
    c = np.asarray(r.centroids, np.float64)
    assert c[0] >= x[keep].min() - 1e-7 and c[-1] <= x[keep].max() + 1e-7
    one_more, inertia = _reference_lloyd(x[keep], c, max_iter=1)  # a fixed point of the kept data
    np.testing.assert_allclose(one_more, c, atol=2e-6)
    np.testing.assert_allclose(float(r.inertia), inertia, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(r.assignments)[keep], np.searchsorted((c[1:] + c[:-1]) / 2, x[keep]))
    # integer float weights act as repeated points
    counts = rng.integers(0, 4, x.shape).astype(np.float32)
    r = kmeans_1d(x, K, init="linear", weights=counts)
    c = np.asarray(r.centroids, np.float64)
    one_more, inertia = _reference_lloyd(np.repeat(x, counts.astype(int)), c, max_iter=1)
    np.testing.assert_allclose(one_more, c, atol=2e-6)
    np.testing.assert_allclose(float(r.inertia), inertia, rtol=1e-5)


def test_large_offset_and_long_input_keep_precision():
    # 65k values around 1000: plain float32 prefix sums would be off by units here.
    rng = np.random.default_rng(6)
    n = 65_536
    x = (1000.0 + rng.choice(np.linspace(-0.7, 0.7, K), n) + rng.normal(0, 0.01, n)).astype(np.float32)
    r = kmeans_1d(x, K, init="linear")
    a = np.asarray(r.assignments)
    means = np.array([x[a == j].astype(np.float64).mean() for j in range(K)])
    np.testing.assert_allclose(np.asarray(r.centroids), means, atol=1e-4)


def test_more_clusters_than_distinct_values():
    x = np.repeat(np.array([1.0, 2.0, 4.0], np.float32), [1000, 2000, 1000])
    r = kmeans_1d(x, K, init="linear")
    c = np.asarray(r.centroids)
    np.testing.assert_array_equal(c[np.asarray(r.assignments)], x)
    assert float(r.inertia) == 0.0


def test_restarting_from_a_fixed_point_moves_nothing():
    x = _mixture(seed=7)
    r = kmeans_1d(x, K, init="density", max_iter=10_000)
    assert int(r.iterations) < 10_000
    r0 = kmeans_1d(x, K, init="density", max_iter=0)
    assert int(r0.iterations) == 0
    np.testing.assert_array_equal(np.asarray(r0.centroids), np.asarray(init_centroids(x, K, init="density")))
    again = _reference_lloyd(x, np.asarray(r.centroids), max_iter=1)[0]
    np.testing.assert_allclose(again, np.asarray(r.centroids), atol=2e-6)


def test_runs_under_jit_with_traced_inputs():
    x = _mixture(seed=8)
    f = jax.jit(lambda v: kmeans_1d(v, K, init="density").centroids)
    np.testing.assert_allclose(np.asarray(f(x)), np.asarray(kmeans_1d(x, K, init="density").centroids), atol=1e-7)


def test_inertia_not_worse_than_sklearn():
    # Both seed with greedy k-means++; ours runs Lloyd to its fixed point, so on average over
    # seeds it ends no higher than scikit-learn's KMeans (which stops at a tolerance).
    from sklearn import cluster as sklearn_cluster
    rng = np.random.default_rng(9)
    x = np.concatenate([_mixture(3000, seed=9), rng.laplace(0, 0.1, 1000)]).astype(np.float32)
    ours = [float(kmeans_1d(x, K, init="kmeans++", key=jax.random.key(s)).inertia) for s in range(5)]
    theirs = [
        sklearn_cluster.KMeans(K, n_init=1, random_state=s).fit(x[:, None].astype(np.float64)).inertia_
        for s in range(5)
    ]
    assert np.mean(ours) <= np.mean(theirs)
    best_of_3 = float(kmeans_1d(x, K, init="kmeans++", key=jax.random.key(0), n_init=3).inertia)
    assert best_of_3 <= min(ours[:1]) + 1e-6
    assert best_of_3 <= min(theirs) * (1 + 1e-6)


def test_tolerance_stops_like_sklearn_and_stays_near_the_fixed_point():
    x = _mixture(seed=11)
    exact = kmeans_1d(x, K, init="linear")
    loose = kmeans_1d(x, K, init="linear", tol=1e-4)
    assert 0 < int(loose.iterations) < int(exact.iterations)
    # Stopping early can only cost inertia, and with sklearn's tolerance only a little.
    assert float(exact.inertia) <= float(loose.inertia) * (1 + 1e-6)
    assert float(loose.inertia) <= 1.05 * float(exact.inertia)
    # tol so large that one step satisfies it: exactly one iteration.
    assert int(kmeans_1d(x, K, init="linear", tol=1e9).iterations) == 1


def test_sort_of_keys_matches_numpy_also_batched():
    from wsjax.sharing.kmeans import _sort_keys
    keys = np.random.default_rng(12).integers(-2**31, 2**31 - 1, (3, 1000), dtype=np.int64).astype(np.int32)
    np.testing.assert_array_equal(np.asarray(jax.jit(_sort_keys)(keys[0])), np.sort(keys[0]))
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(_sort_keys))(keys)), np.sort(keys, axis=-1))


def test_assign_matches_kmeans_assignments():
    x = _mixture(seed=10)
    r = kmeans_1d(x, K)
    np.testing.assert_array_equal(np.asarray(assign(x, r.centroids)), np.asarray(r.assignments))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(k=0), ValueError),
        (dict(k=2.5), ValueError),
        (dict(k=3, init="kmeans"), ValueError),
        (dict(k=3, init="random"), ValueError),  # no key
        (dict(k=3, max_iter=-1), ValueError),
        (dict(k=3, n_init=0), ValueError),
        (dict(k=3, tol=-1e-4), ValueError),
        (dict(k=3, tol=float("nan")), ValueError),
        (dict(k=3, weights=np.ones(4)), ValueError),
        (dict(k=3, weights=np.zeros(5)), ValueError),
        (dict(k=3, weights=-np.ones(5)), ValueError),
    ],
)
def test_bad_arguments_raise(kwargs, error):
    with pytest.raises(error):
        kmeans_1d(np.arange(5, dtype=np.float32), **kwargs)


def test_bad_values_raise():
    with pytest.raises(ValueError, match="NaN"):
        kmeans_1d(np.array([0.0, np.nan], np.float32), 2)
    with pytest.raises(ValueError, match="at least one"):
        kmeans_1d(np.zeros((0,), np.float32), 2)
    with pytest.raises(TypeError):
        kmeans_1d(np.array(["a", "b"]), 2)


# ----------------------------------------------------------------------------- exact k-means (init='optimal')


def _sse(x, w, bounds):
    """Weighted squared error of the contiguous clusters ``[bounds[t], bounds[t + 1])`` (float64)."""
    total = 0.0
    for a, b in zip(bounds[:-1], bounds[1:]):
        mean = np.sum(w[a:b] * x[a:b]) / np.sum(w[a:b])
        total += np.sum(w[a:b] * (x[a:b] - mean) ** 2)
    return total


def _exhaustive(x, w, k):
    """Least cost over every split of the sorted ``(x, w)`` into ``k`` contiguous non-empty clusters."""
    order = np.argsort(x, kind="stable")
    x, w = np.asarray(x, np.float64)[order], np.asarray(w, np.float64)[order]
    return min(_sse(x, w, (0,) + cuts + (x.size,)) for cuts in itertools.combinations(range(1, x.size), k - 1))


def _inertia(x, w, result):
    """``sum(w (x - c[a])^2)`` in float64 from a result's centroids and assignments."""
    c = np.asarray(result.centroids, np.float64)
    return float(np.sum(w * (np.asarray(x, np.float64) - c[np.asarray(result.assignments)]) ** 2))


def _brute_force_cases(count, seed):
    rng = np.random.default_rng(seed)
    for t in range(count):
        n = int(rng.integers(2, 10))
        k = int(rng.integers(1, n + 1))
        draw = (rng.normal(size=n), rng.standard_t(2, n), rng.integers(0, 4, n) + 0.01 * rng.random(n))[t % 3]
        w = rng.random(n) + 0.05 if t % 2 else np.ones(n)
        yield draw.astype(np.float32), w.astype(np.float32), k


@pytest.mark.parametrize("seed", range(3))
def test_optimal_inertia_equals_the_exhaustive_minimum(seed):
    for x, w, k in _brute_force_cases(12, seed):
        weights = None if np.all(w == 1) else w
        r = kmeans_1d(x, k, init="optimal", weights=weights)
        chex.assert_shape(r.centroids, (k,))
        chex.assert_type(r.assignments, jnp.int32)
        want = _exhaustive(x, w, k)
        np.testing.assert_allclose(_inertia(x, w, r), want, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(float(r.inertia), want, rtol=1e-4, atol=1e-6)
        assert int(r.iterations) == 0 and np.all(np.diff(np.asarray(r.centroids)) >= 0)


def test_banded_dp_with_its_certificate_equals_the_exhaustive_minimum(monkeypatch):
    # Small inputs normally take the full table; with its budget at 0 every level guesses,
    # bands and certifies (falling back to the full table only when the certificate fails).
    monkeypatch.setattr(kmeans_optimal, "FULL_TABLE_EVALS", 0)
    rng = np.random.default_rng(0)
    for t in range(150):
        n = int(rng.integers(3, 12))
        k = int(rng.integers(2, n))
        x = np.sort((rng.normal(size=n), rng.standard_t(2, n), rng.uniform(size=n))[t % 3])
        w = rng.random(n) + 0.05 if t % 2 else np.ones(n)
        x = x - np.sum(w * x) / np.sum(w)
        bounds = kmeans_optimal._solve(x, w, k)
        assert bounds[0] == 0 and bounds[-1] == n and np.all(np.diff(bounds) > 0)
        np.testing.assert_allclose(_sse(x, w, tuple(bounds)), _exhaustive(x, w, k), rtol=1e-9, atol=1e-12)


def test_banded_dp_equals_the_full_table_on_larger_inputs(monkeypatch):
    monkeypatch.setattr(kmeans_optimal, "FULL_TABLE_EVALS", 0)
    rng = np.random.default_rng(1)
    draws = (lambda n: rng.standard_t(3, n), lambda n: rng.lognormal(0, 1, n),
             lambda n: np.concatenate([rng.normal(0, 0.01, n // 2), rng.normal(1, 0.3, n - n // 2)]),
             lambda n: rng.integers(0, 30, n) + 1e-3 * rng.normal(size=n))
    # (1200, 150): under 12 points per cluster, the guess from k // 4 clusters; the rest bin
    for t, (n, k) in enumerate([(400, 7), (1500, 24), (1200, 150), (2500, 5)] * 2):
        x = np.sort(draws[t % 4](n))
        x = np.unique(x)  # distinct, as _solve expects
        w = rng.random(x.size) + 0.1 if t >= 4 else np.ones(x.size)
        x = x - np.sum(w * x) / np.sum(w)
        got = _sse(x, w, tuple(kmeans_optimal._solve(x, w, k)))
        full = _sse(x, w, tuple(kmeans_optimal._full(kmeans_optimal._Prefix(x, w), x.size, k)))
        np.testing.assert_allclose(got, full, rtol=1e-9)


def test_the_certificate_never_passes_a_band_that_misses_the_optimum():
    # Bands around a deliberately wrong guess, without margins: whenever the certificate
    # accepts the band's answer, that answer is the exhaustive optimum.
    rng = np.random.default_rng(2)
    accepted = rejected = 0
    for _ in range(200):
        n = int(rng.integers(6, 12))
        k = int(rng.integers(2, n - 2))
        x = np.sort(rng.normal(size=n))
        w = rng.random(n) + 0.05
        x = x - np.sum(w * x) / np.sum(w)
        guess = np.concatenate([[0], np.sort(rng.choice(np.arange(1, n), k - 1, replace=False)), [n]])
        lo, hi = kmeans_optimal._bands(guess, k, n, 0.0, 0.0, np.zeros(k + 1, np.int64))
        p = kmeans_optimal._Prefix(x, w)
        values, args = kmeans_optimal._rows(p, lo, hi)
        if kmeans_optimal._certified(p, n, k, values, args, lo, hi):
            accepted += 1
            bounds = kmeans_optimal._backtrack(args, lo, k, n)
            np.testing.assert_allclose(_sse(x, w, tuple(bounds)), _exhaustive(x, w, k), rtol=1e-9, atol=1e-12)
        else:
            rejected += 1
    assert accepted > 10 and rejected > 10  # both outcomes were exercised


def test_failed_certificates_fall_back_to_the_full_table(monkeypatch):
    monkeypatch.setattr(kmeans_optimal, "FULL_TABLE_EVALS", 0)
    monkeypatch.setattr(kmeans_optimal, "_certified", lambda *args: False)
    x = _mixture(600, seed=12).astype(np.float64)
    x = np.unique(x) - np.mean(np.unique(x))
    w = np.ones(x.size)
    got = kmeans_optimal._solve(x, w, K)
    np.testing.assert_array_equal(got, kmeans_optimal._full(kmeans_optimal._Prefix(x, w), x.size, K))


def test_optimal_inertia_is_a_floor_for_lloyd_from_every_init():
    rng = np.random.default_rng(13)
    x = np.concatenate([_mixture(3000, seed=13), 0.05 * rng.standard_t(4, 1000)]).astype(np.float32)
    floor = _inertia(x, 1.0, kmeans_1d(x, K, init="optimal"))
    for init in INITS:
        for seed in range(3 if init in ("random", "kmeans++") else 1):
            r = kmeans_1d(x, K, init=init, key=jax.random.key(seed))
            assert _inertia(x, 1.0, r) >= floor * (1 - 1e-6), init


def test_optimal_inertia_is_a_floor_on_a_larger_layer():
    # 60k heavy-tailed weights, 32 centroids (the banded DP and its certificate at work):
    # below every Lloyd fixed point reached from the inits' kinds of start, and scikit-learn.
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(14)
    x = (0.05 * rng.standard_t(5, 60_000)).astype(np.float32)
    r = kmeans_optimal.kmeans_1d_optimal(x, 32)
    floor = _inertia(x, 1.0, r)
    np.testing.assert_allclose(float(r.inertia), floor, rtol=1e-5)
    starts = [np.linspace(x.min(), x.max(), 32), np.quantile(x, (np.arange(32) + 0.5) / 32)]
    starts += [np.sort(rng.choice(x, 32, replace=False)) for _ in range(3)]
    for c0 in starts:
        assert _reference_lloyd(x, c0)[1] >= floor * (1 - 1e-6)
    km = KMeans(32, n_init=1, random_state=0).fit(x[:, None].astype(np.float64))
    assert float(np.sum((x - km.cluster_centers_[km.labels_, 0]) ** 2)) >= floor * (1 - 1e-6)


def test_optimal_is_a_lloyd_fixed_point_with_nearest_centroid_assignments():
    x = _mixture(seed=14).reshape(40, 100)
    r = kmeans_1d(x, K, init="optimal")
    c = np.asarray(r.centroids, np.float64)
    one_more, inertia = _reference_lloyd(x.ravel(), c, max_iter=1)
    np.testing.assert_allclose(one_more, c, atol=2e-6)
    np.testing.assert_allclose(float(r.inertia), inertia, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(r.assignments), np.asarray(assign(x, r.centroids)))
    np.testing.assert_array_equal(np.asarray(init_centroids(x, K, init="optimal")), np.asarray(r.centroids))


def test_optimal_masks_and_float_weights():
    x = _mixture(seed=15)
    rng = np.random.default_rng(15)
    keep = rng.random(x.shape) < 0.3
    ref = kmeans_1d(x[keep], K, init="optimal")
    for fill, w in ((100.0, keep), (-50.0, keep), (0.0, keep.astype(np.float32))):
        r = kmeans_1d(np.where(keep, x, fill).astype(np.float32), K, init="optimal", weights=w)
        np.testing.assert_array_equal(np.asarray(r.centroids), np.asarray(ref.centroids))
        np.testing.assert_array_equal(np.asarray(r.assignments)[keep], np.asarray(ref.assignments))
        np.testing.assert_allclose(float(r.inertia), float(ref.inertia), rtol=1e-5)
    # integer float weights act as repeated points
    counts = rng.integers(0, 4, x.shape)
    r = kmeans_1d(x, K, init="optimal", weights=counts.astype(np.float32))
    rep = kmeans_1d(np.repeat(x, counts), K, init="optimal")
    np.testing.assert_allclose(np.asarray(r.centroids), np.asarray(rep.centroids), rtol=1e-6, atol=1e-7)


def test_optimal_with_more_clusters_than_distinct_values_and_tiny_inputs():
    x = np.repeat(np.array([1.0, 2.0, 4.0], np.float32), [1000, 2000, 1000])
    r = kmeans_1d(x, K, init="optimal")
    c = np.asarray(r.centroids)
    np.testing.assert_array_equal(c, [1, 2, 4, 4, 4, 4, 4, 4])  # the surplus: empty, at the largest value
    np.testing.assert_array_equal(c[np.asarray(r.assignments)], x)
    assert float(r.inertia) == 0.0
    one = kmeans_1d(np.array([[-0.5]], np.float32), 4, init="optimal")
    np.testing.assert_array_equal(np.asarray(one.centroids), [-0.5] * 4)
    assert one.assignments.shape == (1, 1) and float(one.inertia) == 0.0
    np.testing.assert_allclose(np.asarray(kmeans_1d(x, 1, init="optimal").centroids), [x.mean()], rtol=1e-6)
    # exactly as many clusters as values; and mirror-symmetric data (two optima, tied)
    np.testing.assert_array_equal(np.asarray(kmeans_1d(np.array([3.0, -1.0, 2.0], np.float32), 3, init="optimal").centroids), [-1, 2, 3])
    sym = np.repeat(np.array([-2.0, -1.0, 1.0, 2.0], np.float32), 50)
    np.testing.assert_allclose(_inertia(sym, 1.0, kmeans_1d(sym, 3, init="optimal")), _exhaustive(np.array([-2.0, -1, 1, 2]), np.full(4, 50.0), 3))


def test_optimal_rejects_what_kmeans_1d_rejects():
    with pytest.raises(ValueError, match="NaN"):
        kmeans_1d(np.array([0.0, np.nan], np.float32), 2, init="optimal")
    with pytest.raises(ValueError, match="every weight is zero"):
        kmeans_1d(np.arange(5, dtype=np.float32), 2, init="optimal", weights=np.zeros(5))
    with pytest.raises(ValueError, match="at least one"):
        kmeans_optimal.kmeans_1d_optimal(np.zeros((0,), np.float32), 2)
    with pytest.raises(ValueError):
        kmeans_optimal.kmeans_1d_optimal(np.arange(5, dtype=np.float32), 0)


class TestOptimalUnderTransformations(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_traced_inputs_give_the_eager_answer(self):
        x = _mixture(seed=16)
        keep = jnp.asarray(np.random.default_rng(16).random(x.shape) < 0.5)
        f = self.variant(lambda v, m: kmeans_1d(v, K, init="optimal", weights=m))
        want = kmeans_1d(x, K, init="optimal", weights=np.asarray(keep))
        chex.assert_trees_all_close(f(x, keep), want, rtol=1e-6)

    def test_vmap(self):
        x = _mixture(seed=17).reshape(4, 1000)
        got = jax.vmap(lambda v: kmeans_1d(v, K, init="optimal").centroids)(x)
        chex.assert_trees_all_close(got, jnp.stack([kmeans_1d(v, K, init="optimal").centroids for v in x]))


def test_codebook_with_the_optimal_init_quantizes_stores_and_reloads_exactly(tmp_path):
    from wsjax import storage
    from wsjax.models import MLP
    from wsjax.sharing import flatten_paths
    from wsjax.sharing.codebook import codebook_bits, quantize, quantize_leaf

    model = MLP((24, 6))
    params = model.init(jax.random.key(0), jnp.zeros((1, 12)))["params"]
    keep = np.random.default_rng(18).random((12, 24)) < 0.5
    params = {**params, "Dense_0": {**params["Dense_0"], "kernel": params["Dense_0"]["kernel"] * keep}}
    t = quantize(r"kernel$", {"Dense_0": 3, "Dense_1": 2}, init="optimal")
    st = t.init(jax.random.key(1), params)
    assert codebook_bits(st) == {"Dense_0/kernel": 3, "Dense_1/kernel": 2}
    w = jax.device_get(t.apply(st))
    k0 = np.asarray(flatten_paths(w)["Dense_0/kernel"])
    assert np.all(k0[~keep] == 0) and len(np.unique(k0[keep])) <= 8
    # the kept weights' quantization error is the exact optimum's, no more than Lloyd's from 'linear'
    w0 = np.asarray(params["Dense_0"]["kernel"])[keep]
    linear = quantize_leaf(jax.random.key(1), params["Dense_0"]["kernel"], 3, mask=keep)
    lin = np.asarray(linear.theta)[np.asarray(linear.frozen.assignments)][keep]
    np.testing.assert_allclose(np.sum((w0 - k0[keep]) ** 2), _exhaustive_or_dp(w0, 8), rtol=1e-5)
    assert np.sum((w0 - k0[keep]) ** 2) <= np.sum((w0 - lin) ** 2) * (1 + 1e-6)
    storage.save(tmp_path / "optimal.wsjax", w)
    loaded = storage.load(tmp_path / "optimal.wsjax")
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, loaded), jax.tree.map(np.asarray, w))


def _exhaustive_or_dp(x, k):
    """The optimal cost of ``x`` by the full table (exact without any certificate)."""
    xs, counts = np.unique(np.asarray(x, np.float64), return_counts=True)
    xs = xs - np.sum(counts * xs) / counts.sum()
    bounds = kmeans_optimal._full(kmeans_optimal._Prefix(xs, counts.astype(np.float64)), xs.size, k)
    return _sse(xs, counts.astype(np.float64), tuple(bounds))
