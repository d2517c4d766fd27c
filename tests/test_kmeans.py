"""Tests for the jitted sort-based 1-D k-means (wsjax.sharing.kmeans).

Most tests share one compiled function (4096-value buckets, k = 8) to keep compile time low.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
