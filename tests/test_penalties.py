"""Tests for wsjax.penalties: the mixture prior, its optax transform, post-processing, and the
weight-elimination / L2 comparisons."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads
from scipy import stats

from wsjax import penalties as P
from wsjax.sharing.kmeans import kmeans_1d


# Test inputs are built with NumPy and moved with jnp.asarray (a transfer, not a compiled op),
# and assertions compute with NumPy: every eager jnp op costs a compilation on XLA:CPU.


def _f32(x):
    return jnp.asarray(np.asarray(x, np.float32))


def _softmax(logits):
    z = np.exp(np.asarray(logits, np.float64) - np.max(logits))
    return z / z.sum()


def _small_params():
    w = [[-0.5, -0.1, 0.0, 0.2], [0.3, 0.45, -0.35, 0.05], [0.9, -0.8, 0.15, 0.6]]
    return {"Dense_0": {"kernel": _f32(w), "bias": _f32([0.1, -0.2, 0.0, 0.3])}}


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "Dense_0": {"kernel": _f32(0.3 * rng.standard_normal((6, 5))), "bias": _f32(0.1 * rng.standard_normal(5))},
        "Dense_1": {"kernel": _f32(0.3 * rng.standard_normal((5, 3))), "bias": _f32(np.zeros(3))},
    }


def _mixture(dtype=np.float32):
    return P.Mixture(
        means=jnp.asarray(np.asarray([0.0, -0.4, 0.35, 0.8], dtype)),
        log_vars=jnp.asarray(np.log(np.asarray([0.01, 0.04, 0.02, 0.09], dtype))),
        logits=jnp.asarray(np.asarray([1.0, 0.2, -0.3, 0.0], dtype)),
    )


def _np_log_density(w, mixture):
    m, lv, lg = (np.asarray(a, np.float64) for a in mixture)
    v = np.exp(lv)
    pis = np.exp(lg - lg.max())
    pis /= pis.sum()
    dens = (pis * stats.norm.pdf(np.asarray(w, np.float64)[..., None], m, np.sqrt(v))).sum(-1)
    return np.log(dens)


# ----------------------------------------------------------------------------- the density


def test_log_density_matches_scipy_mixture():
    w = _f32(np.linspace(-1.5, 1.5, 41))
    got = jax.jit(P.log_density)(w, _mixture())
    np.testing.assert_allclose(got, _np_log_density(w, _mixture()), rtol=1e-5, atol=1e-5)


def test_responsibilities_shape_and_normalisation():
    w = _f32(np.linspace(-1.0, 1.0, 12).reshape(3, 4))
    r = jax.jit(P.responsibilities)(w, _mixture())
    chex.assert_shape(r, (3, 4, 4))
    np.testing.assert_allclose(np.asarray(r).sum(-1), np.ones((3, 4)), atol=1e-6)
    m, lv, lg = (np.asarray(a, np.float64) for a in _mixture())
    v = np.exp(lv)
    pis = np.exp(lg) / np.exp(lg).sum()
    num = pis * stats.norm.pdf(np.asarray(w, np.float64)[..., None], m, np.sqrt(v))
    np.testing.assert_allclose(r, num / num.sum(-1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_log_prior_sums_selected_leaves_only():
    params = _params()
    mix = _mixture()
    expected = sum(_np_log_density(params[l]["kernel"], mix).sum() for l in ("Dense_0", "Dense_1"))
    got = jax.jit(lambda p, m: P.log_prior(p, m, include=r"kernel"))(params, mix)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="matched no"):
        P.log_prior(params, mix, include=r"nothing_like_this")


def test_weight_gradient_is_responsibility_weighted_pull():
    """d(-log p)/dw = sum_j r_j(w) (w - mu_j) / sigma_j^2 (Nowlan & Hinton)."""
    w = _f32(np.linspace(-1.2, 1.2, 25))
    mix = _mixture()
    autodiff = jax.jit(jax.grad(lambda w: -P.log_prior(w, mix)))(w)
    r, w, m, lv = (np.asarray(a) for a in (jax.jit(P.responsibilities)(w, mix), w, mix.means, mix.log_vars))
    analytic = np.sum(r * (w[:, None] - m) / np.exp(lv), axis=-1)
    chex.assert_trees_all_close(autodiff, analytic, rtol=1e-4, atol=1e-4)


def test_custom_vjp_matches_autodiff_of_the_density_including_caps_and_clips():
    """sum_log_density's closed-form VJP == autodiff of sum(log_density), weights and mixture."""
    rng = np.random.default_rng(4)
    w = np.asarray(rng.normal(0, 0.05, (40, 9)), np.float32)
    w[0, 0] = 1e5  # beyond MAX_SQUARED_Z of the narrow components: the cap's zero slope
    log_vars = rng.normal(-6, 2, 17).astype(np.float32)
    log_vars[3] = P.mixture.MIN_LOG_VAR - 5  # clipped: no gradient flows to it
    mix = P.Mixture(_f32(rng.normal(0, 0.1, 17)), _f32(log_vars), _f32(rng.normal(0, 1, 17)))
    w = _f32(w)

    def both(w, mix):
        ref = jax.value_and_grad(lambda w, m: jnp.sum(P.log_density(w, m)), argnums=(0, 1))(w, mix)
        ours = jax.value_and_grad(P.sum_log_density, argnums=(0, 1))(w, mix)
        return ref, ours

    (v_ref, g_ref), (v, g) = jax.jit(both)(w, mix)
    np.testing.assert_allclose(float(v), float(v_ref), rtol=1e-5)
    chex.assert_trees_all_close(g, g_ref, rtol=1e-4, atol=1e-6)
    assert float(g[1].log_vars[3]) == 0.0
    # Batched over weight sets, and the plain-autodiff fallback for many components.
    batched = jax.jit(jax.vmap(jax.grad(P.sum_log_density), in_axes=(0, None)))(w, mix)
    chex.assert_trees_all_close(batched, jax.vmap(jax.grad(lambda x: jnp.sum(P.log_density(x, mix))))(w),
                                rtol=1e-4, atol=1e-6)
    many = P.Mixture(*(jnp.tile(a, 3) for a in mix))
    assert 51 > P.mixture.MAX_UNROLLED_COMPONENTS
    np.testing.assert_allclose(float(jax.jit(P.sum_log_density)(w, many)),
                               float(jnp.sum(P.log_density(w, many))), rtol=1e-5)


def test_gradients_match_finite_differences():
    with jax.enable_x64(True):
        params = {"a": {"kernel": jnp.asarray(np.linspace(-1.0, 1.0, 7))}, "b": jnp.asarray(np.ones(2))}
        mix = _mixture(np.float64)
        hyper = P.HyperPrior(P.Gamma(3.0, 0.1), P.InverseGamma(4.0, 0.02), P.Beta(20.0, 2.0))
        f = lambda p, m: P.penalty_value(p, m, include="kernel", hyper_prior=hyper, zero_component=True)
        check_grads(jax.jit(f), (params, mix), order=1, modes=("rev",), eps=1e-6, rtol=1e-6, atol=1e-6)
        we = jax.jit(lambda p: P.weight_elimination_penalty(p, 0.5))
        check_grads(we, (params,), order=1, modes=("rev",), eps=1e-6, rtol=1e-6, atol=1e-6)
        check_grads(jax.jit(P.l2_penalty), (params,), order=1, modes=("rev",), eps=1e-6)
        # The closed-form elimination gradient that the transform adds is the same derivative.
        w = params["a"]["kernel"]
        check_grads(jax.jit(lambda w: jnp.sum(P.weight_elimination_grad(w, 0.5))), (w,), order=1, modes=("rev",), eps=1e-6)
        grads = jax.jit(lambda w: (jax.grad(lambda w: P.weight_elimination_penalty(w, 0.5))(w), P.weight_elimination_grad(w, 0.5)))(w)
        chex.assert_trees_all_close(*grads)


def test_hyper_priors_match_scipy():
    log_var = _f32([-4.0, -1.0, 0.5])
    lam, var = np.exp(-np.asarray(log_var, np.float64)), np.exp(np.asarray(log_var, np.float64))
    gamma, inv_gamma = jax.jit(lambda s: (P.Gamma(2.5, 0.3).log_prob(s), P.InverseGamma(2.5, 0.3).log_prob(s)))(log_var)
    np.testing.assert_allclose(gamma, stats.gamma.logpdf(lam, 2.5, scale=1 / 0.3), rtol=1e-5)
    np.testing.assert_allclose(inv_gamma, stats.invgamma.logpdf(var, 2.5, scale=0.3), rtol=1e-5)
    got = jax.jit(
        lambda m: P.hyper_log_prior(
            P.constrain(m, zero_component=True, pi_zero=0.9), P.HyperPrior(pi_zero=P.Beta(5.0, 2.0)), zero_component=True
        )
    )(_mixture())
    np.testing.assert_allclose(got, stats.beta.logpdf(0.9, 5.0, 2.0), rtol=1e-4)


def test_hyper_prior_errors():
    with pytest.raises(ValueError, match="positive"):
        P.Gamma(0.0, 1.0)
    with pytest.raises(ValueError, match="zero component"):
        P.hyper_log_prior(_mixture(), P.HyperPrior(pi_zero=P.Beta(2.0, 2.0)), zero_component=False)
    with pytest.raises(TypeError, match="HyperPrior"):
        P.hyper_log_prior(_mixture(), {"precision": 1}, zero_component=False)


def test_constrain_fixes_zero_mean_and_pi_zero_with_zero_gradient():
    mix = _mixture()
    con = jax.jit(lambda m: P.constrain(m, zero_component=True, pi_zero=0.95))(mix)
    assert float(con.means[0]) == 0.0
    np.testing.assert_allclose(_softmax(con.logits)[0], 0.95, rtol=1e-6)
    # The non-zero components keep their relative weights.
    rel = lambda lg: _softmax(np.asarray(lg)[1:])
    np.testing.assert_allclose(rel(con.logits), rel(mix.logits), atol=1e-6)
    g = jax.jit(jax.grad(lambda m: -P.log_prior(_params(), P.constrain(m, zero_component=True, pi_zero=0.95))))(mix)
    assert float(g.means[0]) == 0.0 and float(g.logits[0]) == 0.0
    assert np.abs(np.asarray(g.means)[1:]).sum() > 0.0
    with pytest.raises(ValueError, match="pi_zero"):
        P.constrain(mix, zero_component=True, pi_zero=1.0)


def test_stable_with_tiny_variances_and_huge_weights():
    """Variance 1e-30 (log-var -69), weights up to 1e6: finite values and gradients, no NaN."""
    tiny = P.Mixture(_f32([0.0, 0.5, -0.5, 2.0]), _f32(np.full(4, math.log(1e-30))), _f32(np.zeros(4)))
    w = _f32([0.0, 1e-12, 0.5, -3.0, 1e3, 1e6, -1e6])
    value_and_grad = jax.jit(jax.value_and_grad(lambda w, m: -P.log_prior(w, m), argnums=(0, 1)))
    for mix in (tiny, _mixture()):
        value, (gw, gm) = value_and_grad(w, mix)
        assert np.isfinite(value)
        chex.assert_tree_all_finite((gw, gm, P.responsibilities(w, mix)))
    params = {"kernel": w}
    tx = optax.chain(
        P.soft_weight_sharing(1e-3, init=tiny, include="kernel", zero_component=True, pi_zero=0.9),
        optax.sgd(1e-3),
    )
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(np.zeros(7, np.float32), state, params)
    chex.assert_tree_all_finite((updates, state))
    huge = {"kernel": _f32([1e6, -1e6, 1e20, 0.0])}
    for pen in (P.weight_elimination(1e-3, 0.1), P.l2(1e-3)):
        u, _ = pen.update(np.zeros(4, np.float32), pen.init(huge), huge)
        chex.assert_tree_all_finite(u)
    chex.assert_tree_all_finite(jax.jit(jax.grad(lambda p: P.weight_elimination_penalty(p, 0.1)))(huge))


# ----------------------------------------------------------------------------- initialisation


def test_init_even_spreads_means_over_the_weight_range():
    params = _params()
    mix = P.init_mixture(params, 5, include="kernel", pi_zero=0.99)
    w = np.concatenate([np.ravel(params[l]["kernel"]) for l in ("Dense_0", "Dense_1")])
    np.testing.assert_allclose(mix.means, [0.0, *np.linspace(w.min(), w.max(), 4)], rtol=1e-5, atol=1e-6)
    pis = _softmax(mix.logits)
    np.testing.assert_allclose(pis, [0.99, 0.0025, 0.0025, 0.0025, 0.0025], rtol=1e-5)
    spacing = (w.max() - w.min()) / 3
    np.testing.assert_allclose(np.exp(0.5 * np.asarray(mix.log_vars)), np.full(5, spacing), rtol=1e-5)
    no_zero = P.init_mixture(params["Dense_0"]["kernel"], 3, zero_component=False)
    np.testing.assert_allclose(_softmax(no_zero.logits), np.full(3, 1 / 3), rtol=1e-6)
    # 'even' is traceable.
    jitted = jax.jit(lambda p: P.init_mixture(p, 5, include="kernel", pi_zero=0.99))(params)
    chex.assert_trees_all_close(jitted, mix, rtol=1e-6)


def test_init_kmeans_recovers_clusters():
    rng = np.random.default_rng(0)
    centres = np.asarray([-0.6, 0.1, 0.5])
    w = np.concatenate([c + 0.01 * rng.standard_normal(n) for c, n in zip(centres, (100, 300, 200))])
    mix = P.init_mixture(_f32(w), 4, method="kmeans", pi_zero=0.5)
    np.testing.assert_allclose(mix.means[1:], centres, atol=5e-3)
    np.testing.assert_allclose(np.exp(0.5 * np.asarray(mix.log_vars)[1:]), np.full(3, 0.01), rtol=0.2)
    np.testing.assert_allclose(_softmax(mix.logits), [0.5, 1 / 12, 0.25, 1 / 6], rtol=1e-5)
    r = kmeans_1d(_f32(w), 3, init="density")  # the clustering init_mixture runs
    np.testing.assert_allclose(r.centroids, centres, atol=5e-3)
    assert np.bincount(np.asarray(r.assignments)).tolist() == [100, 300, 200]
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda x: P.init_mixture(x, 4, method="kmeans"))(w)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(num_components=1), ValueError),
        (dict(num_components=3, method="random"), ValueError),
        (dict(num_components=3, pi_zero=1.5), ValueError),
        (dict(num_components=3.0), TypeError),
        (dict(num_components=3, include="["), ValueError),
    ],
)
def test_init_rejects_bad_config(kwargs, err):
    with pytest.raises(err):
        P.init_mixture(_params(), **kwargs)


# ----------------------------------------------------------------------------- the optax transform


class SoftSharingTransformTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_update_adds_strength_times_penalty_gradient(self):
        params = _small_params()
        tau, lr = 0.05, 0.1
        mix0 = P.init_mixture(params, 4, include="kernel", pi_zero=0.9)
        hyper = P.HyperPrior(precision=P.Gamma(2.0, 0.05))
        tx = P.soft_weight_sharing(
            tau, init=mix0, include="kernel", pi_zero=0.9, hyper_prior=hyper,
            mixture_optimizer=optax.sgd(lr),
        )
        state = tx.init(params)
        grads = jax.tree.map(np.ones_like, params)
        updates, new_state = self.variant(tx.update)(grads, state, params)

        def penalty(p, m):
            con = P.constrain(m, zero_component=True, pi_zero=0.9)
            return P.penalty_value(p, con, include="kernel", hyper_prior=hyper, zero_component=True)

        value, (gw, gm) = jax.jit(jax.value_and_grad(penalty, argnums=(0, 1)))(params, state.mixture)
        expected = jax.tree.map(lambda g, p: g + tau * p, grads, gw)
        expected["Dense_0"]["bias"] = grads["Dense_0"]["bias"]  # biases are not selected
        chex.assert_trees_all_close(updates, expected, rtol=1e-5, atol=1e-6)
        stepped = jax.tree.map(lambda m, g: m - lr * tau * g, state.mixture, gm)
        chex.assert_trees_all_close(
            new_state.mixture, P.constrain(stepped, zero_component=True, pi_zero=0.9), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(new_state.penalty, value, rtol=1e-5)
        assert int(new_state.count) == 1

    @chex.variants(with_jit=True, without_jit=True)
    def test_weight_elimination_and_l2_add_their_gradients(self):
        params = _small_params()
        grads = jax.tree.map(np.ones_like, params)
        for tx, pen in (
            (P.weight_elimination(0.2, 0.5, include="kernel"),
             lambda p: P.weight_elimination_penalty(p, 0.5, include="kernel")),
            (P.l2(0.2, include="kernel"), lambda p: P.l2_penalty(p, include="kernel")),
        ):
            updates, state = self.variant(tx.update)(grads, tx.init(params), params)
            gp = jax.jit(jax.grad(pen))(params)
            expected = jax.tree.map(lambda g, d: g + 0.2 * d, grads, gp)
            chex.assert_trees_all_close(updates, expected, rtol=1e-5, atol=1e-7)
            assert int(state.count) == 1
        # L2 on every leaf is optax.add_decayed_weights.
        ref, _ = optax.add_decayed_weights(0.2).update(grads, optax.EmptyState(), params)
        mine, _ = self.variant(P.l2(0.2).update)(grads, P.l2(0.2).init(params), params)
        chex.assert_trees_all_close(mine, ref, rtol=1e-6)


def test_update_without_params_raises():
    params = _small_params()
    for tx in (P.soft_weight_sharing(1e-3, 3), P.weight_elimination(1e-3), P.l2(1e-3)):
        with pytest.raises(ValueError, match="params"):
            tx.update(params, None, None)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(strength=-1.0),
        dict(strength=1.0, init="uniform"),
        dict(strength=1.0, zero_component=False, learn_pi_zero=True),
        dict(strength=1.0, zero_component=False, hyper_prior=P.HyperPrior(zero_precision=P.Gamma(2.0, 1.0))),
        dict(strength=1.0, pi_zero=0.0),
    ],
)
def test_soft_sharing_rejects_bad_config(kwargs):
    with pytest.raises(ValueError):
        P.soft_weight_sharing(**kwargs)


def test_init_with_no_matching_leaf_raises():
    with pytest.raises(ValueError, match="matched no"):
        P.soft_weight_sharing(1e-3, include="Conv").init(_params())


@pytest.mark.parametrize("optimizer", [optax.sgd(0.05), optax.adam(0.01)])
def test_chains_with_optimisers_under_jit(optimizer):
    """Soft sharing + data loss, optimised by an optax chain inside one jitted step."""
    params = _params()
    target = jax.tree.map(lambda x: x + 0.1, params)
    loss = lambda p: sum(jnp.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(target)))
    tx = optax.chain(P.soft_weight_sharing(1e-3, 5, include="kernel", pi_zero=0.5, learn_pi_zero=True), optimizer)
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    first = loss(params)
    pi0 = _softmax(state[0].mixture.logits)[0]
    for _ in range(30):
        params, state = step(params, state)
    assert loss(params) < 0.5 * first
    assert float(state[0].mixture.means[0]) == 0.0
    assert abs(_softmax(state[0].mixture.logits)[0] - pi0) > 1e-4  # learned
    chex.assert_tree_all_finite((params, state))


def test_fixed_pi_zero_stays_fixed_and_schedule_is_used():
    params = _small_params()
    schedule = optax.linear_schedule(0.0, 1e-2, 10)
    tx = optax.chain(P.soft_weight_sharing(schedule, 4, pi_zero=0.8, mixture_learning_rate=1e-2), optax.sgd(0.1))
    state = tx.init(params)
    update = jax.jit(tx.update)
    zeros = jax.tree.map(np.zeros_like, params)
    updates, state = update(zeros, state, params)
    # Strength 0 at count 0: the weight updates are unchanged (zero).
    chex.assert_trees_all_close(updates, zeros)
    for _ in range(10):
        updates, state = update(zeros, state, params)
    np.testing.assert_allclose(_softmax(state[0].mixture.logits)[0], 0.8, rtol=1e-5)
    assert np.abs(np.asarray(updates["Dense_0"]["kernel"])).sum() > 0


# ----------------------------------------------------------------------------- post-processing


def test_merge_components_joins_near_identical_ones():
    mix = P.Mixture(
        means=_f32([0.0, 0.001, 0.5, 0.5005, -0.7]),
        log_vars=_f32(np.log([0.01, 0.01, 0.02, 0.02, 0.02])),
        logits=_f32(np.log([0.5, 0.1, 0.1, 0.2, 0.1])),
    )
    merged = P.merge_components(mix, kl_threshold=0.01, zero_component=True)
    assert merged.means.shape == (3,)
    np.testing.assert_allclose(merged.means, [0.0, (0.1 * 0.5 + 0.2 * 0.5005) / 0.3, -0.7], rtol=1e-6)
    np.testing.assert_allclose(np.exp(merged.logits), [0.6, 0.3, 0.1], rtol=1e-5)
    # Moment matching: var of the merged pair includes the spread of the means.
    np.testing.assert_allclose(np.exp(merged.log_vars[0]), (0.5 * 0.01 + 0.1 * (0.01 + 1e-6)) / 0.6, rtol=1e-5)
    assert P.merge_components(mix, kl_threshold=0.0).means.shape == (5,)
    assert P.merge_components(mix, kl_threshold=1e9).means.shape == (1,)


def test_snap_gives_at_most_k_values_and_exact_zeros():
    params = _params()
    mix = P.init_mixture(params, 5, include="kernel", pi_zero=0.6, init_std=0.05)
    snapped, st = P.snap_to_components(params, mix, include="kernel")
    w = np.concatenate([np.ravel(snapped[l]["kernel"]) for l in ("Dense_0", "Dense_1")])
    assert st.num_weights == w.size == 45
    assert st.distinct_values == np.unique(w).size <= 5
    assert set(np.unique(w)) <= set(np.asarray(mix.means).tolist())
    assert st.num_nonzero == np.count_nonzero(w) and st.component_counts.sum() == 45
    assert st.component_counts[0] == w.size - st.num_nonzero > 0
    np.testing.assert_allclose(st.nonzero_fraction, st.num_nonzero / 45)
    chex.assert_trees_all_equal(snapped["Dense_0"]["bias"], params["Dense_0"]["bias"])
    # Each weight went to its argmax-responsibility component.
    idx = P.assign_components(params["Dense_1"]["kernel"], mix)
    expected = np.where(np.asarray(idx) == 0, 0.0, np.asarray(mix.means)[np.asarray(idx)])
    chex.assert_trees_all_equal(snapped["Dense_1"]["kernel"], _f32(expected))


def _train_regression(tx, loss, params, steps=300):
    """``steps`` jitted steps of ``tx`` on ``loss`` from ``params``; returns (params, state)."""

    def step(_, carry):
        p, s = carry
        u, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, u), s

    return jax.jit(lambda p, s: jax.lax.fori_loop(0, steps, step, (p, s)))(params, tx.init(params))


def test_soft_sharing_pulls_weights_into_clusters():
    """End to end: an under-determined noisy regression whose true weights take 3 values.

    Plain fitting from a noisy start leaves the weights scattered; soft sharing pulls them into
    tight clusters at the true values, and snapping then recovers the true weights closely.
    """
    rng = np.random.default_rng(1)
    clean = rng.choice([-1.0, 0.0, 0.6], size=40)
    x = rng.standard_normal((30, 40)).astype(np.float32)
    y = x @ clean + 0.1 * rng.standard_normal(30)
    params = {"kernel": _f32(clean + 0.3 * rng.standard_normal(40))}
    loss = lambda p: 0.5 * jnp.mean((x @ p["kernel"] - y) ** 2)

    def train(tx):
        return _train_regression(tx, loss, params)

    plain, _ = train(optax.adam(1e-2))
    shared, state = train(
        optax.chain(
            P.soft_weight_sharing(3e-3, 4, init="kmeans", pi_zero=0.3, learn_pi_zero=True,
                                  mixture_learning_rate=1e-2),
            optax.adam(1e-2),
        )
    )
    mix = state[0].mixture

    def spread(w):  # mean distance to the nearest learned mean
        return float(np.mean(np.min(np.abs(np.asarray(w)[:, None] - np.asarray(mix.means)), axis=1)))

    assert spread(shared["kernel"]) < 0.1 * spread(plain["kernel"])
    snapped, st = P.snap_to_components(shared, mix)
    assert st.distinct_values <= 4
    error = lambda p: float(np.mean(np.abs(np.asarray(p["kernel"]) - clean)))
    assert error(snapped) < 0.1 * error(plain)


def test_runs_inside_the_training_engine():
    """The transform composes with wsjax.train.fit's jitted step (which passes the params)."""
    from wsjax.train import fit

    rng = np.random.default_rng(2)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    y = (x @ np.asarray([1.0, -1.0, 0.0, 1.0]) > 0).astype(np.int32)
    theta = {"Dense_0": {"kernel": _f32(0.1 * rng.standard_normal((4, 2))), "bias": _f32(np.zeros(2))}}

    def loss_fn(th, xb, yb):
        logits = xb @ th["Dense_0"]["kernel"] + th["Dense_0"]["bias"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    tx = optax.chain(P.soft_weight_sharing(1e-3, 3, include="kernel", pi_zero=0.5), optax.adam(0.05))
    result = fit(loss_fn, theta, tx, (x, y), epochs=2, batch_size=20, loop="python", progress=False)
    state = result.opt_state[0]
    assert int(state.count) == 6  # 2 epochs x 3 steps, all through the transform
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert float(state.mixture.means[0]) == 0.0 and float(state.penalty) != 0.0
    chex.assert_tree_all_finite((result.theta, state))


def test_soft_sharing_quantizes_a_pruned_net_without_reviving_pruned_weights():
    """Composition with pruning: soft sharing chained with Adam and ``pruning.keep_pruned``.

    Without ``keep_pruned`` the data gradient revives pruned weights; with it they stay exactly
    zero through training, the survivors gather at the mixture's means, and the snap keeps
    every pruned weight at zero (it can only prune more)."""
    from wsjax import pruning

    rng = np.random.default_rng(3)
    clean = rng.choice([-1.0, 0.6], size=40) * (np.arange(40) % 2)  # every other true weight is 0
    x = rng.standard_normal((15, 40)).astype(np.float32)  # under-determined: 20 survivors
    y = x @ clean + 0.1 * rng.standard_normal(15)
    masks = {"kernel": clean != 0}  # the pruning found the true zeros
    params = {"kernel": _f32((clean + 0.3 * rng.standard_normal(40)) * masks["kernel"])}
    loss = lambda p: 0.5 * jnp.mean((x @ p["kernel"] - y) ** 2)

    def train(tx):
        return _train_regression(tx, loss, params)

    def sws():
        return P.soft_weight_sharing(3e-3, 3, init="kmeans", pi_zero=0.5, mixture_learning_rate=1e-2)

    revived, _ = train(optax.chain(sws(), optax.adam(1e-2)))
    kept, state = train(optax.chain(sws(), optax.adam(1e-2), pruning.keep_pruned(masks)))
    plain, _ = train(optax.chain(optax.adam(1e-2), pruning.keep_pruned(masks)))
    pruned = ~np.asarray(masks["kernel"])
    assert np.all(np.asarray(revived["kernel"])[pruned] != 0.0)
    assert np.all(np.asarray(kept["kernel"])[pruned] == 0.0)
    assert np.all(np.asarray(plain["kernel"])[pruned] == 0.0)
    mix = state[0].mixture

    def spread(p):  # survivors' mean distance to the nearest learned mean
        w = np.asarray(p["kernel"])[~pruned]
        return float(np.mean(np.min(np.abs(w[:, None] - np.asarray(mix.means)), axis=1)))

    assert spread(kept) < 0.2 * spread(plain), (spread(kept), spread(plain))
    snapped, st = P.snap_to_components(kept, mix)
    assert np.all(np.asarray(snapped["kernel"])[pruned] == 0.0)
    assert st.num_nonzero <= int((~pruned).sum()) and st.distinct_values <= 3
