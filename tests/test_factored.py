"""Denton et al. 2014 decompositions (wsjax.sharing.decompose) and the models that run them
factored (wsjax.models.factored)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wsjax import nn as wnn
from wsjax.models import MLP, FactoredLeNet5, FactoredMLP, LeNet5, factor_params
from wsjax.models import factored as fm
from wsjax.sharing import decompose as dec

FULL = {"Conv_0": 20, "Conv_1": (20, 50), "Dense_0": 500}
SMALL = {"Conv_0": 8, "Conv_1": (10, 16), "Dense_0": 64}


def _normal(seed, shape):  # numpy: no compile per shape
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _size(tree):
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def lenet():
    """An input, LeNet-5 params (LeCun-normal draws made with numpy: jitting LeNet5().init
    costs seconds of compilation) and the jitted dense forward pass."""
    x = _normal(1, (4, 28, 28, 1))
    shapes = jax.eval_shape(LeNet5().init, jax.random.key(0), x)["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1])),
                                                jnp.float32), shapes)
    return x, params, jax.jit(LeNet5().apply)


# ----------------------------------------------------------------------------- decompositions


def test_svd_dense_is_the_eckart_young_approximation():
    w = _normal(0, (30, 20))
    s = np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)
    errors = []
    for r in (1, 3, 8, 20):
        u, v = dec.svd_dense(w, r)
        chex.assert_shape((u, v), ((30, r), (r, 20)))
        errors.append(dec.relative_error(w, dec.reconstruct_dense(u, v)))
        np.testing.assert_allclose(errors[-1], np.sqrt((s[r:] ** 2).sum() / (s ** 2).sum()), atol=1e-5)
    assert all(a > b for a, b in zip(errors, errors[1:])) and errors[-1] < 1e-5


def test_filter_basis_is_the_best_rank_r_filter_matrix():
    w = _normal(2, (5, 5, 2, 12))
    m = np.asarray(w, np.float64).reshape(50, 12)
    a, s, bt = np.linalg.svd(m, full_matrices=False)
    errors = []
    for r in (1, 4, 8, 12):
        f = dec.filter_basis(w, r)
        chex.assert_shape((f.basis, f.combine), ((5, 5, 2, r), (r, 12)))
        approx = dec.reconstruct_filter_basis(f)
        np.testing.assert_allclose(np.asarray(approx).reshape(50, 12), (a[:, :r] * s[:r]) @ bt[:r], atol=1e-5)
        errors.append(dec.relative_error(w, approx))
    assert all(a > b for a, b in zip(errors, errors[1:])) and errors[-1] < 1e-5


def test_tucker2_hosvd_then_hooi():
    w = _normal(3, (3, 3, 6, 8))
    x = np.asarray(w, np.float64)
    t = dec.tucker2(w, 6, 8, iterations=0)  # full ranks: exact
    assert dec.relative_error(w, dec.reconstruct_tucker2(t)) < 1e-5
    t0 = dec.tucker2(w, 3, 4, iterations=0)
    chex.assert_shape((t0.core, t0.a_in, t0.a_out), ((3, 3, 3, 4), (6, 3), (8, 4)))
    for a in (t0.a_in, t0.a_out):
        np.testing.assert_allclose(np.asarray(a).T @ np.asarray(a), np.eye(a.shape[1]), atol=1e-5)
    # HOSVD: the leading left singular subspace of the mode-3 unfolding (numpy, by hand).
    lead = np.linalg.svd(np.moveaxis(x, 2, 0).reshape(6, -1))[0][:, :3]
    np.testing.assert_allclose(np.asarray(t0.a_in) @ np.asarray(t0.a_in).T, lead @ lead.T, atol=1e-5)
    errors = [dec.relative_error(w, dec.reconstruct_tucker2(dec.tucker2(w, 3, 4, iterations=i)))
              for i in range(6)]
    assert all(b <= a + 1e-7 for a, b in zip(errors, errors[1:]))  # HOOI never increases the error
    assert errors[-1] < errors[0]  # and here it strictly improves on the HOSVD
    by_rank = [dec.relative_error(w, dec.reconstruct_tucker2(dec.tucker2(w, ri, ro, 5)))
               for ri, ro in ((1, 1), (2, 3), (4, 5), (5, 7), (6, 8))]
    assert all(a > b for a, b in zip(by_rank, by_rank[1:])) and by_rank[-1] < 1e-5


def test_kmeans_vectors_finds_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    labels = rng.permutation(np.repeat(np.arange(3), 10))
    x = centres[labels] + 0.1 * rng.normal(size=(30, 3))
    km = dec.kmeans_vectors(x, 3, seed=1)
    # the same partition (up to renaming) and the inertia computed by hand
    assert len({(a, b) for a, b in zip(labels, km.assignments)}) == 3
    means = np.stack([x[km.assignments == j].mean(0) for j in range(3)])
    np.testing.assert_allclose(km.centroids, means, atol=1e-12)
    np.testing.assert_allclose(km.inertia, ((x - means[km.assignments]) ** 2).sum(), rtol=1e-12)
    assert dec.kmeans_vectors(x, 30).inertia < 1e-10


def test_monochromatic():
    w = _normal(4, (5, 5, 3, 16))
    x = np.asarray(w, np.float64)
    # C' = cout: every filter keeps its own colour, i.e. its rank-1 approximation (numpy).
    m = dec.monochromatic(w, 16)
    chex.assert_shape((m.colours, m.assignments, m.spatial), ((16, 3), (16,), (5, 5, 16)))
    for f in range(16):
        mat = x[:, :, :, f].reshape(25, 3).T  # cin x (kh kw)
        a, s, bt = np.linalg.svd(mat)
        np.testing.assert_allclose(np.asarray(dec.reconstruct_monochromatic(m))[:, :, :, f].reshape(25, 3).T,
                                   s[0] * np.outer(a[:, 0], bt[0]), atol=1e-5)
    e1 = dec.relative_error(w, dec.reconstruct_monochromatic(dec.monochromatic(w, 1)))
    assert e1 > dec.relative_error(w, dec.reconstruct_monochromatic(m))
    # Filters that are rank 1 in 3 colours (signs flipped at random) are recovered exactly.
    colours = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    pick, sign = np.arange(16) % 3, np.where(np.arange(16) % 2, 1.0, -1.0)
    planted = np.einsum("fc,hwf->hwcf", colours[pick] * sign[:, None], np.asarray(_normal(5, (5, 5, 16))))
    p = dec.monochromatic(planted, 3)
    assert len(np.unique(np.asarray(p.assignments))) == 3
    assert dec.relative_error(planted, dec.reconstruct_monochromatic(p)) < 1e-5
    # Grayscale (cin = 1): one colour, exact, nothing saved.
    gray = _normal(6, (5, 5, 1, 20))
    g = dec.monochromatic(gray, 1)
    assert dec.relative_error(gray, dec.reconstruct_monochromatic(g)) < 1e-6
    # Run factored, it is the conv with the reconstructed kernel.
    xs = _normal(7, (2, 10, 10, 3))
    bias = _normal(8, (16,))
    chex.assert_trees_all_close(fm.monochromatic_conv(xs, p, bias),
                                wnn.conv2d(xs, jnp.asarray(dec.reconstruct_monochromatic(p))) + bias, atol=1e-4)


# ----------------------------------------------------------------------------- the factored models


def test_no_ranks_is_lenet5(lenet):
    x, params, dense_apply = lenet
    shapes = jax.eval_shape(FactoredLeNet5({"Conv_1": None}).init, jax.random.key(0), x)["params"]
    chex.assert_trees_all_equal_shapes(shapes, params)
    out = jax.jit(FactoredLeNet5().apply)({"params": params}, x)
    chex.assert_trees_all_equal(out, dense_apply({"params": params}, x))


def test_full_rank_is_exact(lenet):
    x, params, dense_apply = lenet
    full = factor_params(LeNet5(), {"params": params}, FULL)
    assert set(full) == {"params"}
    chex.assert_trees_all_equal(full["params"]["Conv_0"]["bias"], params["Conv_0"]["bias"])
    rebuilt = jax.jit(fm.reconstruct_params)(full)
    chex.assert_trees_all_close(rebuilt["params"], params, atol=1e-5)
    got = jax.jit(FactoredLeNet5(FULL).apply)(full, x)
    chex.assert_trees_all_close(got, dense_apply(rebuilt, x), atol=1e-4)
    chex.assert_trees_all_close(got, dense_apply({"params": params}, x), atol=1e-4)


def test_factored_lenet5_is_its_reconstruction_and_trains(lenet):
    x, params, dense_apply = lenet
    labels = jnp.arange(4) % 10
    model = FactoredLeNet5(SMALL)
    theta = factor_params("lenet5", params, SMALL)

    def loss(t):
        logits = model.apply({"params": t}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

    @jax.jit
    def step(t):  # one SGD step and the loss after it, in one compiled program
        (value, logits), grads = jax.value_and_grad(loss, has_aux=True)(t)
        return value, logits, grads, loss(jax.tree.map(lambda p, g: p - 0.05 * g, t, grads))[0]

    value, logits, grads, after = step(theta)
    # the factored chain computes the dense net of the rebuilt kernels, a different net at these ranks
    chex.assert_trees_all_close(logits, dense_apply({"params": fm.reconstruct_params(theta)}, x), atol=1e-4)
    assert float(jnp.abs(logits - dense_apply({"params": params}, x)).max()) > 1e-2
    chex.assert_trees_all_equal_shapes(grads, theta)
    grads = jax.tree.map(np.asarray, grads)
    assert all(np.isfinite(g).all() and g.any() for g in jax.tree.leaves(grads))
    assert float(after) < float(value)


def test_factored_gradients_are_those_through_the_rebuilt_kernels():
    """Each chain's gradient w.r.t. its factors equals autodiff through ``W = product``."""
    x4, x2 = _normal(10, (2, 9, 9, 3)), _normal(11, (5, 7))
    theta = {"basis": _normal(12, (3, 3, 3, 4)), "combine": _normal(13, (4, 6)),
             "a_in": _normal(14, (3, 2)), "core": _normal(15, (3, 3, 2, 5)), "a_out": _normal(16, (6, 5)),
             "u": _normal(17, (7, 2)), "v": _normal(18, (2, 4)), "bias": _normal(19, (6,))}

    def chained(t):
        return (jnp.sin(fm.filter_basis_conv(x4, t["basis"], t["combine"], t["bias"])).sum()
                + jnp.sin(fm.tucker2_conv(x4, t["a_in"], t["core"], t["a_out"], t["bias"])).sum()
                + jnp.sin(fm.low_rank_dense(x2, t["u"], t["v"])).sum())

    def rebuilt(t):
        w1 = dec.reconstruct_filter_basis(dec.FilterBasis(t["basis"], t["combine"]))
        w2 = dec.reconstruct_tucker2(dec.Tucker2(t["core"], t["a_in"], t["a_out"]))
        return (jnp.sin(wnn.conv2d(x4, w1) + t["bias"]).sum() + jnp.sin(wnn.conv2d(x4, w2) + t["bias"]).sum()
                + jnp.sin(x2 @ dec.reconstruct_dense(t["u"], t["v"])).sum())

    got, want = jax.jit(lambda t: (jax.grad(chained)(t), jax.grad(rebuilt)(t)))(theta)
    chex.assert_trees_all_close(got, want, atol=1e-3, rtol=1e-3)


def test_factored_mlp_bottleneck():
    x = _normal(9, (3, 12))
    feats = (10, 8, 4)
    model = FactoredMLP(feats, ranks=(None, 3, None))
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    chex.assert_shape((shapes["Dense_1"]["u"], shapes["Dense_1"]["v"]), ((10, 3), (3, 8)))
    params = jax.tree.map(lambda s: _normal(21, s.shape), shapes)
    assert _size(params) == fm.count((None, 3, None), "mlp", features=feats, input_shape=(12,)).params
    dense_apply = jax.jit(MLP(feats).apply)
    got = jax.jit(model.apply)({"params": params}, x)
    chex.assert_trees_all_close(got, dense_apply({"params": fm.reconstruct_params(params)}, x), atol=1e-5)
    dense = jax.tree.map(lambda a: _normal(20, a.shape), fm.reconstruct_params(params))
    full = {"Dense_0": 10, "Dense_1": 8, "Dense_2": 4}
    out = jax.jit(FactoredMLP(feats, full).apply)({"params": factor_params("mlp", dense, full)}, x)
    chex.assert_trees_all_close(out, dense_apply({"params": dense}, x), atol=1e-4)


def test_a_bottleneck_from_scratch_starts_like_a_dense_layer():
    """Each factor LeCun-normal over its own fan-in: ``u @ v`` has the variance ``1 / n``
    of a LeCun-normal dense kernel."""
    params = jax.jit(FactoredMLP((300,), ranks=(20,)).init)(jax.random.key(0), jnp.zeros((1, 784)))["params"]
    w = np.asarray(params["Dense_0"]["u"] @ params["Dense_0"]["v"], np.float64)
    assert abs(w.var() * 784 - 1) < 0.05 and abs(w.mean()) < 1e-3
    assert not np.asarray(params["Dense_0"]["bias"]).any()


def test_counts_are_exact():
    dense = fm.count()
    assert dense.params == 431_080
    assert dense.layers["Conv_0"] == (5 * 5 * 20 + 20, 24 * 24 * 20 * 25)
    assert dense.macs == 24 * 24 * 20 * 25 + 8 * 8 * 50 * 25 * 20 + 800 * 500 + 500 * 10
    small = fm.count(SMALL)
    assert small.layers["Conv_0"] == (25 * 8 + 8 * 20 + 20, 24 * 24 * (25 * 8 + 8 * 20))
    assert small.layers["Conv_1"] == (20 * 10 + 25 * 10 * 16 + 16 * 50 + 50,
                                      12 * 12 * 20 * 10 + 8 * 8 * 25 * 10 * 16 + 8 * 8 * 16 * 50)
    assert small.layers["Dense_0"] == (64 * 1300 + 500, 64 * 1300)
    assert small.macs < dense.macs / 2
    x = jnp.zeros((1, 28, 28, 1))
    for ranks in ({}, SMALL, FULL, {"Conv_1": (3, 7)}, {"Conv_0": 1, "Dense_0": 2}):
        tree = jax.eval_shape(FactoredLeNet5(ranks).init, jax.random.key(0), x)
        assert _size(tree) == fm.count(ranks).params, ranks
    big = jnp.zeros((1, 32, 36, 3))
    tree = jax.eval_shape(FactoredLeNet5(SMALL).init, jax.random.key(0), big)
    assert _size(tree) == fm.count(SMALL, input_shape=(32, 36, 3)).params
    for feats, ranks in (((300, 100, 10), None), ((300, 100, 10), {"Dense_0": 20}), ((50, 10), (5, 2))):
        tree = jax.eval_shape(FactoredMLP(feats, ranks).init, jax.random.key(0), jnp.zeros((1, 784)))
        c = fm.count(ranks, "mlp", features=feats)
        assert _size(tree) == c.params
    assert fm.count({"Dense_0": 20}, "mlp").layers["Dense_0"] == (20 * (784 + 300) + 300, 20 * (784 + 300))


def test_bad_ranks_raise(lenet):
    x, params, _ = lenet
    bad = [
        {"Conv_0": 21},  # > min(25, 20)
        {"Conv_1": (21, 5)},  # > cin
        {"Conv_1": (5, 51)},  # > cout
        {"Conv_1": 5},  # Tucker-2 needs a pair
        {"Dense_0": 501},
        {"Dense_0": 0},
        {"Dense_1": 5},  # the classifier stays dense
        {"Conv_2": 3},  # no such layer
    ]
    for ranks in bad:
        with pytest.raises(ValueError):
            factor_params("lenet5", params, ranks)
        with pytest.raises(ValueError):
            fm.count(ranks)
        with pytest.raises(ValueError):
            jax.eval_shape(FactoredLeNet5(ranks).init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="Conv_2"):
        fm.count({"Conv_2": 3})
    with pytest.raises(ValueError, match="exceeds"):
        fm.count({"Conv_0": 21})
    with pytest.raises(ValueError):
        fm.count((1, 2), "mlp")  # three layers, two ranks
    with pytest.raises(ValueError):
        factor_params("resnet", params, {})
    with pytest.raises(ValueError, match="exceeds"):
        dec.svd_dense(_normal(0, (4, 3)), 4)
    with pytest.raises(ValueError, match="rank_in"):
        dec.tucker2(_normal(0, (3, 3, 4, 5)), 5, 2)
    with pytest.raises(ValueError, match="HWIO"):
        dec.filter_basis(_normal(0, (4, 3)), 2)
    with pytest.raises(ValueError, match="num_colours"):
        dec.monochromatic(_normal(0, (3, 3, 3, 4)), 5)


def test_forward_seconds_runs():
    t = fm.forward_seconds(lambda p, x: jnp.tanh(x @ p), np.eye(3, dtype=np.float32), np.ones((2, 3), np.float32),
                           repeats=3)
    assert isinstance(t, float) and t >= 0  # no assertion on speed
