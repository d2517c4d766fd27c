"""Tests for the codebook (trained quantization) and mask transforms."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from wsjax import storage
from wsjax.models import MLP
from wsjax.sharing import bind, flatten_paths, free_params, virtual_params
from wsjax.sharing.codebook import (
    CodebookFrozen,
    codebook,
    codebook_bits,
    codebook_weights,
    default_bits,
    quantize,
    quantize_leaf,
    resolve_bits,
)
from wsjax.sharing.mask import masked


def _layer(seed=0, shape=(12, 9), density=0.6):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.1, shape).astype(np.float32)
    keep = rng.random(shape) < density
    return jnp.asarray(w * keep), jnp.asarray(keep)


class TestCodebookWeights(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_forward_is_a_gather(self):
        c = jnp.array([-1.0, 0.5, 2.0, 3.0])
        a = jnp.array([[0, 3], [2, 1]], jnp.uint8)
        out = self.variant(codebook_weights)(c, a)
        np.testing.assert_array_equal(np.asarray(out), [[-1.0, 3.0], [2.0, 0.5]])

    def test_centroid_gradient_is_segment_sum_of_member_gradients(self):
        rng = np.random.default_rng(0)
        c = jnp.asarray(rng.normal(size=8), jnp.float32)
        a = jnp.asarray(rng.integers(0, 8, (6, 5)), jnp.uint8)
        g_w = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
        grad = jax.grad(lambda c: jnp.sum(codebook_weights(c, a) * g_w))(c)
        want = np.zeros(8)
        np.add.at(want, np.asarray(a).ravel(), np.asarray(g_w).ravel())
        np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-5, atol=1e-6)

    def test_custom_vjp_matches_autodiff_and_finite_differences(self):
        rng = np.random.default_rng(1)
        c = jnp.asarray(rng.normal(size=16), jnp.float32)
        a = jnp.asarray(rng.integers(0, 16, (7, 4)), jnp.uint8)
        f = lambda c: jnp.sum(jnp.sin(codebook_weights(c, a)))
        ref = lambda c: jnp.sum(jnp.sin(jnp.take(c, a.astype(jnp.int32))))
        np.testing.assert_allclose(np.asarray(jax.grad(f)(c)), np.asarray(jax.grad(ref)(c)), rtol=1e-5, atol=1e-6)
        check_grads(lambda c: codebook_weights(c, a), (c,), order=2, modes=["rev"])


class TestQuantize:
    def test_leaf_clusters_only_masked_in_weights_into_at_most_2_to_the_bits_values(self):
        w, keep = _layer()
        st = quantize_leaf(jax.random.key(0), w, 3, mask=keep)
        assert st.theta.shape == (8,)
        assert isinstance(st.frozen, CodebookFrozen)
        assert st.frozen.assignments.dtype == jnp.uint8
        out = np.asarray(jnp.where(keep, codebook_weights(st.theta, *st.frozen), 0.0))
        assert np.all(out[~np.asarray(keep)] == 0)
        assert not np.any(np.signbit(out[~np.asarray(keep)]))  # +0.0, not -0.0
        assert len(np.unique(out[np.asarray(keep)])) <= 8
        # each kept weight moved to its nearest centroid
        c = np.asarray(st.theta)
        kept = np.asarray(w)[np.asarray(keep)]
        np.testing.assert_allclose(
            np.abs(out[np.asarray(keep)] - kept), np.abs(kept[:, None] - c).min(1), atol=1e-6
        )

    def test_bits_above_8_use_uint16_assignments(self):
        w, _ = _layer(shape=(40, 30), density=1.0)
        st = quantize_leaf(jax.random.key(0), w, 10)
        assert st.frozen.assignments.dtype == jnp.uint16 and st.theta.shape == (1024,)

    def test_fully_pruned_layer_gets_zero_codebook(self):
        st = quantize_leaf(jax.random.key(0), jnp.zeros((4, 4)), 2, mask=jnp.zeros((4, 4), bool))
        np.testing.assert_array_equal(np.asarray(codebook_weights(st.theta, *st.frozen)), 0)

    def test_bits_resolution(self):
        conv, fc = np.zeros((5, 5, 1, 20)), np.zeros((800, 500))
        assert default_bits("Conv_0/kernel", conv) == 8 and default_bits("Dense_0/kernel", fc) == 5
        assert resolve_bits({"Dense_1": 3}, "Dense_1/kernel", fc) == 3
        assert resolve_bits({"Dense_1": 3}, "Dense_0/kernel", fc) == 5
        assert resolve_bits(lambda p, x: 6, "x", fc) == 6
        with pytest.raises(ValueError):
            resolve_bits(0, "x", fc)
        with pytest.raises(TypeError):
            resolve_bits(2.5, "x", fc)

    def test_quantize_transform_on_a_model(self):
        model = MLP((16, 10))
        params = model.init(jax.random.key(0), jnp.zeros((1, 20)))["params"]
        t = quantize(r"kernel$", {"Dense_0": 4, "Dense_1": 2})
        st = t.init(jax.random.key(1), params)
        assert codebook_bits(st) == {"Dense_0/kernel": 4, "Dense_1/kernel": 2}
        assert free_params(st) == 16 + 4 + 16 + 10  # centroids + biases
        assert virtual_params(t, st) == 20 * 16 + 16 + 16 * 10 + 10
        w = flatten_paths(t.apply(st))
        assert len(np.unique(np.asarray(w["Dense_0/kernel"]))) <= 16
        assert len(np.unique(np.asarray(w["Dense_1/kernel"]))) <= 4
        np.testing.assert_array_equal(np.asarray(w["Dense_0/bias"]), np.asarray(params["Dense_0"]["bias"]))

    def test_rejects_bad_init_and_non_float_leaves(self):
        with pytest.raises(ValueError):
            codebook(init="kmeans")
        with pytest.raises(TypeError):
            quantize_leaf(jax.random.key(0), jnp.ones((3, 3), jnp.int32), 2)
        with pytest.raises(ValueError):
            quantize_leaf(jax.random.key(0), jnp.ones((3, 3)), 2, mask=jnp.ones((2, 2), bool))


def _toy_problem():
    model = MLP((32, 4))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 10)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, 64))
    params = model.init(jax.random.key(0), x[:1])["params"]

    def loss(p):
        logits = model.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return params, loss


def _train(loss_of_theta, theta, steps=20, lr=1e-2):
    opt = optax.adam(lr)
    state = opt.init(theta)

    @jax.jit
    def step(theta, state):
        g = jax.grad(loss_of_theta)(theta)
        u, state = opt.update(g, state, theta)
        return optax.apply_updates(theta, u), state

    for _ in range(steps):
        theta, state = step(theta, state)
    return theta


def test_mask_transform_keeps_pruned_weights_zero_through_training():
    params, loss = _toy_problem()
    masks = {"Dense_0": {"kernel": jnp.asarray(np.random.default_rng(1).random((10, 32)) < 0.3), "bias": None},
             "Dense_1": {"kernel": None, "bias": None}}
    t = masked(masks)
    st = t.init(jax.random.key(0), params)
    to_w = bind(t, st)
    g = jax.grad(lambda th: loss(to_w(th)))(st.theta)
    pruned = ~np.asarray(masks["Dense_0"]["kernel"])
    assert np.all(np.asarray(g["Dense_0"]["kernel"])[pruned] == 0)
    theta = _train(lambda th: loss(to_w(th)), st.theta)
    w = to_w(theta)
    assert np.all(np.asarray(w["Dense_0"]["kernel"])[pruned] == 0)
    assert not np.any(np.signbit(np.asarray(w["Dense_0"]["kernel"])[pruned]))  # +0.0 for storage
    assert loss(w) < loss(to_w(st.theta))
    with pytest.raises(ValueError):
        masked({"Dense_0": {"kernel": jnp.ones((3, 3), bool), "bias": None},
                "Dense_1": {"kernel": None, "bias": None}}).init(jax.random.key(0), params)


def test_quantized_retraining_moves_centroids_and_keeps_the_structure():
    params, loss = _toy_problem()
    w, keep = params["Dense_0"]["kernel"], np.random.default_rng(2).random((10, 32)) < 0.5
    params = {**params, "Dense_0": {**params["Dense_0"], "kernel": w * keep}}
    t = quantize(r"kernel$", 3)
    st = t.init(jax.random.key(0), params)
    to_w = bind(t, st)
    before = to_w(st.theta)
    theta = _train(lambda th: loss(to_w(th)), st.theta)
    after = to_w(theta)
    assert loss(after) < loss(before)
    k_before, k_after = np.asarray(before["Dense_0"]["kernel"]), np.asarray(after["Dense_0"]["kernel"])
    assert np.all(k_after[~keep] == 0)
    assert len(np.unique(k_after[keep])) <= 8
    # same members share a value before and after: only the centroids moved
    a = np.asarray(st.frozen[1]["Dense_0/kernel"].assignments)  # frozen: (masks, codebook)
    for j in np.unique(a[keep]):
        assert len(np.unique(k_after[keep & (a == j)])) == 1
    assert not np.array_equal(k_before, k_after)


def test_quantized_model_round_trips_through_storage_bit_exactly(tmp_path):
    params, loss = _toy_problem()
    keep = np.random.default_rng(3).random((10, 32)) < 0.4
    params = {**params, "Dense_0": {**params["Dense_0"], "kernel": params["Dense_0"]["kernel"] * keep}}
    t = quantize(r"kernel$", 4)
    st = t.init(jax.random.key(0), params)
    w = jax.device_get(t.apply(st))
    report = storage.save(tmp_path / "model.wsjax", w)
    assert report.layers[[l.name for l in report.layers].index("Dense_0/kernel")].n_nonzero == int(keep.sum())
    loaded = storage.load(tmp_path / "model.wsjax")
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, loaded), jax.tree.map(np.asarray, w))
    assert float(loss(loaded)) == float(loss(w))
    assert report.file_bytes == (tmp_path / "model.wsjax").stat().st_size


def test_chain_of_mask_and_codebook_trains_and_stores_with_pruned_weights_exactly_zero(tmp_path):
    """``chain(masked(m), codebook())``: the codebook sees the mask around it, clusters only
    the survivors, and retraining the centroids leaves every pruned weight at +0.0."""
    from wsjax.sharing import chain, select

    params, loss = _toy_problem()
    rng = np.random.default_rng(4)
    masks = {"Dense_0": {"kernel": jnp.asarray(rng.random((10, 32)) < 0.3), "bias": None},
             "Dense_1": {"kernel": jnp.asarray(rng.random((32, 4)) < 0.6), "bias": None}}
    t = chain(masked(masks), select(r"kernel$", codebook(3)))
    st = t.init(jax.random.key(0), params)
    to_w = bind(t, st)
    before = to_w(st.theta)
    for path, m in (("Dense_0/kernel", masks["Dense_0"]["kernel"]), ("Dense_1/kernel", masks["Dense_1"]["kernel"])):
        w0 = np.asarray(flatten_paths(params)[path])
        c = np.asarray(st.theta["inner"][path])
        m = np.asarray(m)
        # the centroids are k-means of the survivors only: each lies inside their range
        assert c.min() >= w0[m].min() - 1e-6 and c.max() <= w0[m].max() + 1e-6
    theta = _train(lambda th: loss(to_w(th)), st.theta, steps=30)
    after = jax.device_get(to_w(theta))
    assert loss(after) < loss(before)
    for path, m in (("Dense_0/kernel", masks["Dense_0"]["kernel"]), ("Dense_1/kernel", masks["Dense_1"]["kernel"])):
        k = np.asarray(flatten_paths(after)[path])
        m = np.asarray(m)
        assert np.all(k[~m] == 0) and not np.any(np.signbit(k[~m]))
        assert np.count_nonzero(k[m]) == m.sum()  # no survivor collapsed onto zero
        assert len(np.unique(k[m])) <= 8
    report = storage.save(tmp_path / "chain.wsjax", after)
    loaded = storage.load(tmp_path / "chain.wsjax")
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, loaded), jax.tree.map(np.asarray, after))
    rows = {layer.name: layer for layer in report.layers}
    assert rows["Dense_0/kernel"].n_nonzero == int(np.asarray(masks["Dense_0"]["kernel"]).sum())
    assert rows["Dense_0/kernel"].encoding == "sparse"


def test_quantize_is_the_chain_of_a_nonzero_mask_and_a_codebook():
    params, _ = _toy_problem()
    keep = np.random.default_rng(5).random((10, 32)) < 0.5
    params = {**params, "Dense_0": {**params["Dense_0"], "kernel": params["Dense_0"]["kernel"] * keep}}
    from wsjax.sharing import chain, select

    a = quantize(r"kernel$", 3)
    b = select(r"kernel$", chain(masked(lambda leaves: {p: x != 0 for p, x in leaves.items()}), codebook(3)))
    sa, sb = a.init(jax.random.key(0), params), b.init(jax.random.key(0), params)
    chex.assert_trees_all_equal(jax.device_get(a.apply(sa)), jax.device_get(b.apply(sb)))
