"""Tests for wsjax.pruning: magnitude masks, schedules, gradual pruning, rounds, neuron pruning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wsjax import pruning
from wsjax.models import MLP
from wsjax.sharing.mask import apply_masks, mask_counts, masked


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "Dense_0": {"kernel": jnp.asarray(rng.normal(size=(20, 30)), jnp.float32),
                    "bias": jnp.asarray(rng.normal(size=30), jnp.float32)},
        "Dense_1": {"kernel": jnp.asarray(rng.normal(size=(30, 10)), jnp.float32),
                    "bias": jnp.asarray(rng.normal(size=10), jnp.float32)},
    }


class TestMagnitude:
    def test_per_layer_sparsity_prunes_exact_counts_of_the_smallest(self):
        p = _params()
        m = pruning.sparsity_masks(p, {"Dense_0": 0.9, "Dense_1": 0.25})
        assert m["Dense_0"]["bias"] is None and m["Dense_1"]["bias"] is None
        assert mask_counts(m) == {"Dense_0/kernel": (60, 600), "Dense_1/kernel": (225, 300)}
        for layer in ("Dense_0", "Dense_1"):
            w, keep = np.abs(np.asarray(p[layer]["kernel"])), np.asarray(m[layer]["kernel"])
            assert w[keep].min() >= w[~keep].max()

    def test_unmatched_layers_of_a_dict_are_not_pruned(self):
        m = pruning.sparsity_masks(_params(), {"Dense_1": 0.5})
        assert mask_counts(m)["Dense_0/kernel"] == (600, 600)

    def test_global_scope_ranks_all_layers_together(self):
        p = _params()
        p["Dense_1"]["kernel"] = p["Dense_1"]["kernel"] * 10  # the big layer keeps more
        m = pruning.sparsity_masks(p, 0.8, scope="global")
        counts = mask_counts(m)
        assert counts["Dense_0/kernel"][0] + counts["Dense_1/kernel"][0] == 180
        all_w = np.concatenate([np.abs(np.asarray(p[l]["kernel"])).ravel() for l in ("Dense_0", "Dense_1")])
        all_k = np.concatenate([np.asarray(m[l]["kernel"]).ravel() for l in ("Dense_0", "Dense_1")])
        assert all_w[all_k].min() >= all_w[~all_k].max()
        assert counts["Dense_1/kernel"][0] > counts["Dense_0/kernel"][0]

    def test_current_masks_make_pruning_cumulative(self):
        p = _params()
        m1 = pruning.sparsity_masks(p, 0.5)
        # weights pruned earlier stay pruned even if they are large now
        p2 = jax.tree.map(lambda x: x * 1.0, p)
        p2["Dense_0"]["kernel"] = jnp.where(m1["Dense_0"]["kernel"], p["Dense_0"]["kernel"], 100.0)
        m2 = pruning.sparsity_masks(p2, 0.75, current=m1)
        assert mask_counts(m2)["Dense_0/kernel"] == (150, 600)
        assert not np.any(np.asarray(m2["Dense_0"]["kernel"]) & ~np.asarray(m1["Dense_0"]["kernel"]))
        # a lower target than already reached prunes nothing more and revives nothing
        m3 = pruning.sparsity_masks(p2, 0.1, current=m2)
        np.testing.assert_array_equal(np.asarray(m3["Dense_0"]["kernel"]), np.asarray(m2["Dense_0"]["kernel"]))

    def test_ties_are_broken_by_position_for_exact_counts(self):
        p = {"w": {"kernel": jnp.ones((4, 5))}}
        m = pruning.sparsity_masks(p, 0.35)
        np.testing.assert_array_equal(np.asarray(m["w"]["kernel"]).ravel(), [False] * 7 + [True] * 13)

    def test_han_threshold_is_quality_times_std(self):
        p = _params(1)
        m = pruning.threshold_masks(p, {"Dense_0": 0.7, "Dense_1": 1.2})
        for layer, q in (("Dense_0", 0.7), ("Dense_1", 1.2)):
            w = np.asarray(p[layer]["kernel"])
            np.testing.assert_array_equal(np.asarray(m[layer]["kernel"]), np.abs(w) > q * w.std())
        # iterated: the std is taken over the surviving weights
        m2 = pruning.threshold_masks(p, 0.7, current=m)
        w, keep = np.asarray(p["Dense_0"]["kernel"]), np.asarray(m["Dense_0"]["kernel"])
        np.testing.assert_array_equal(np.asarray(m2["Dense_0"]["kernel"]), keep & (np.abs(w) > 0.7 * w[keep].std()))

    def test_density_helpers(self):
        m = pruning.sparsity_masks(_params(), {"Dense_0": 0.9, "Dense_1": 0.5})
        assert pruning.layer_density(m) == {"Dense_0/kernel": 0.1, "Dense_1/kernel": 0.5}
        assert pruning.density(m) == pytest.approx((60 + 150) / 900)

    @pytest.mark.parametrize(
        "call, error",
        [
            (lambda p: pruning.sparsity_masks(p, 1.5), ValueError),
            (lambda p: pruning.sparsity_masks(p, "a"), TypeError),
            (lambda p: pruning.sparsity_masks(p, 0.5, scope="net"), ValueError),
            (lambda p: pruning.sparsity_masks(p, {"D": 0.5}, scope="global"), TypeError),
            (lambda p: pruning.sparsity_masks(p, 0.5, include="conv"), ValueError),
            (lambda p: pruning.threshold_masks(p, -1.0), ValueError),
        ],
    )
    def test_bad_input(self, call, error):
        with pytest.raises(error):
            call(_params())


def test_masks_plug_into_the_mask_transform():
    p = _params()
    m = pruning.sparsity_masks(p, 0.5)
    t = masked(lambda params: pruning.sparsity_masks(params, 0.5))
    st = t.init(jax.random.key(0), p)
    w = t.apply(st)
    np.testing.assert_array_equal(np.asarray(w["Dense_0"]["kernel"]), np.asarray(apply_masks(p, m)["Dense_0"]["kernel"]))
    np.testing.assert_array_equal(np.asarray(w["Dense_0"]["bias"]), np.asarray(p["Dense_0"]["bias"]))


class TestSchedules:
    def test_one_shot(self):
        assert pruning.sparsity_at(pruning.one_shot(), 0.9, 0) == pytest.approx(0.9)

    def test_iterative_geometric_keeps_a_constant_fraction_per_round(self):
        s = pruning.iterative(3)
        kept = [1 - pruning.sparsity_at(s, 0.92, r) for r in range(4)]
        np.testing.assert_allclose(kept, [1.0, 0.08 ** (1 / 3), 0.08 ** (2 / 3), 0.08], rtol=1e-6)
        lin = pruning.iterative(4, geometric=False)
        np.testing.assert_allclose([pruning.sparsity_at(lin, 0.8, r) for r in range(5)], [0, 0.2, 0.4, 0.6, 0.8], atol=1e-7)
        assert pruning.sparsity_at(s, {"a": 0.5, "b": 0.0}, 3) == pytest.approx({"a": 0.5, "b": 0.0})

    def test_polynomial_is_zhu_gupta(self):
        s = pruning.polynomial(10, 110, initial=0.1)
        assert pruning.sparsity_at(s, 0.9, 0) == 0.0
        assert pruning.sparsity_at(s, 0.9, 10) == pytest.approx(0.1)
        assert pruning.sparsity_at(s, 0.9, 60) == pytest.approx(0.9 - 0.8 * 0.5 ** 3)
        assert pruning.sparsity_at(s, 0.9, 500) == pytest.approx(0.9)
        with pytest.raises(ValueError):
            pruning.polynomial(5, 5)
        with pytest.raises(ValueError):
            pruning.iterative(0)


def test_gradual_pruning_reaches_the_target_and_keeps_pruned_weights_zero():
    p = _params(2)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(32, 20)), jnp.float32)
    model = MLP((30, 10))

    def loss(params):
        return jnp.mean(jnp.square(model.apply({"params": params}, x)))

    opt = optax.chain(optax.adam(1e-2), pruning.gradual_pruning({"Dense_0": 0.8, "Dense_1": 0.5},
                                                               pruning.polynomial(0, 40), every=10))
    state = opt.init(p)

    @jax.jit
    def step(p, state):
        g = jax.grad(loss)(p)
        u, state = opt.update(g, state, p)
        return optax.apply_updates(p, u), state

    densities, previous = [], None
    for i in range(45):
        p, state = step(p, state)
        masks = state[1].masks
        k0 = np.asarray(masks["Dense_0"]["kernel"])
        if previous is not None:
            assert not np.any(k0 & ~previous)  # monotone
        previous = k0
        assert np.all(np.asarray(p["Dense_0"]["kernel"])[~k0] == 0)
        densities.append(k0.mean())
    assert densities[0] == 1.0  # step 0: sparsity 0
    assert int(np.asarray(masks["Dense_0"]["kernel"]).sum()) == 120
    assert int(np.asarray(masks["Dense_1"]["kernel"]).sum()) == 150
    assert masks["Dense_0"]["bias"] is None  # one mask representation: None where nothing is pruned
    with pytest.raises(ValueError):
        pruning.gradual_pruning(0.5, pruning.one_shot(), every=0)


def test_iterative_prune_rounds():
    p = _params(3)
    seen = []

    def retrain(params, masks, r):
        seen.append(r)
        # pretend training: grow every weight, pruned ones included (they must be re-masked)
        return jax.tree.map(lambda w: w * 1.5 + 0.01, params)

    history = pruning.iterative_prune(p, {"Dense_0": 0.9, "Dense_1": 0.5}, retrain, rounds=3)
    assert seen == [1, 2, 3]
    assert [h.round for h in history] == [1, 2, 3]
    assert mask_counts(history[-1].masks) == {"Dense_0/kernel": (60, 600), "Dense_1/kernel": (150, 300)}
    d = [h.density for h in history]
    assert d[0] > d[1] > d[2] == pytest.approx(210 / 900)
    final = history[-1]
    k = np.asarray(final.params["Dense_0"]["kernel"])
    assert np.all(k[~np.asarray(final.masks["Dense_0"]["kernel"])] == 0)
    # resuming after round 2 reproduces round 3
    resumed = pruning.iterative_prune(history[1].params, {"Dense_0": 0.9, "Dense_1": 0.5}, retrain,
                                      rounds=3, masks=history[1].masks, start_round=3)
    np.testing.assert_array_equal(np.asarray(resumed[0].params["Dense_0"]["kernel"]), k)


class TestNeuronPruning:
    def _mlp(self):
        model = MLP((16, 12, 5))
        params = model.init(jax.random.key(0), jnp.zeros((1, 7)))["params"]
        return model, params

    def test_smaller_model_computes_the_original_with_removed_units_zeroed(self):
        model, params = self._mlp()
        x = jnp.asarray(np.random.default_rng(0).normal(size=(9, 7)), jnp.float32)
        pr = pruning.prune_neurons(model, params, [10, 4])
        assert pr.model.features == (10, 4, 5)
        assert pr.params["Dense_0"]["kernel"].shape == (7, 10)
        assert pr.params["Dense_1"]["kernel"].shape == (10, 4)
        assert pr.params["Dense_2"]["kernel"].shape == (4, 5)
        # zero the removed units' outgoing weights in the original: same outputs
        zeroed = jax.tree.map(lambda a: a, params)
        for i, kept in enumerate(pr.kept):
            out_w = np.array(params[f"Dense_{i + 1}"]["kernel"])
            drop = np.setdiff1d(np.arange(out_w.shape[0]), kept)
            out_w[drop] = 0
            zeroed[f"Dense_{i + 1}"] = {**zeroed[f"Dense_{i + 1}"], "kernel": jnp.asarray(out_w)}
        np.testing.assert_allclose(
            np.asarray(pr.model.apply({"params": pr.params}, x)),
            np.asarray(model.apply({"params": zeroed}, x)), rtol=1e-5, atol=1e-6)

    def test_weight_score_keeps_the_units_that_matter(self):
        model, params = self._mlp()
        k0 = np.array(params["Dense_0"]["kernel"])
        k0[:, [3, 7]] *= 50.0  # units 3 and 7 of layer 0 are far the most important
        params = {**params, "Dense_0": {**params["Dense_0"], "kernel": jnp.asarray(k0)}}
        pr = pruning.prune_neurons(model, params, [2, 12])
        np.testing.assert_array_equal(pr.kept[0], [3, 7])
        scores = pruning.neuron_importance(model, params)
        want = np.linalg.norm(k0, axis=0) * np.linalg.norm(np.asarray(params["Dense_1"]["kernel"]), axis=1)
        np.testing.assert_allclose(scores[0], want, rtol=1e-6)

    def test_activation_score_drops_dead_units(self):
        model, params = self._mlp()
        b = np.array(params["Dense_0"]["bias"])
        b[[0, 5, 9]] = -1e3  # these ReLU units never fire
        params = {**params, "Dense_0": {**params["Dense_0"], "bias": jnp.asarray(b)}}
        x = np.random.default_rng(1).normal(size=(50, 7)).astype(np.float32)
        scores = pruning.neuron_importance(model, params, method="activation", inputs=x)
        assert np.all(scores[0][[0, 5, 9]] == 0)
        pr = pruning.prune_neurons(model, params, 0.75, method="activation", inputs=x)
        assert pr.model.features == (12, 9, 5)
        assert not set(pr.kept[0]) & {0, 5, 9}

    def test_flops_and_param_counts(self):
        model = MLP((300, 100, 10))
        assert pruning.mlp_params(model, 784) == 266_610
        assert pruning.mlp_flops(model, 784) == 2 * (784 * 300 + 300 * 100 + 100 * 10) + 410

    def test_bad_input(self):
        model, params = self._mlp()
        with pytest.raises(ValueError):
            pruning.prune_neurons(model, params, [17, 4])
        with pytest.raises(ValueError):
            pruning.prune_neurons(model, params, [4])
        with pytest.raises(ValueError):
            pruning.prune_neurons(model, params, 0.5, method="activation")
        with pytest.raises(ValueError):
            pruning.prune_neurons(model, params, 0.5, method="taylor")
        with pytest.raises(TypeError):
            pruning.prune_neurons(object(), params, 0.5)


def test_keep_pruned_holds_pruned_weights_at_zero_under_a_penalty_and_adam():
    """Chained after Adam and a weight penalty that pulls every weight (so pruned ones would
    move), the pruned entries stay exactly 0.0 and the rest follow the plain chain."""
    import chex

    p = _params(3)
    masks = pruning.sparsity_masks(p, {"kernel$": 0.7})
    p = apply_masks(p, masks)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(16, 20)), jnp.float32)
    model = MLP((30, 10))

    def loss(params):
        return jnp.mean(jnp.square(model.apply({"params": params}, x) - 1.0))

    base = optax.chain(optax.add_decayed_weights(0.1), optax.adam(1e-2))
    kept = optax.chain(base, pruning.keep_pruned(masks))
    s_base, s_kept = base.init(p), kept.init(p)
    g = jax.grad(loss)(p)
    u_base, _ = jax.jit(base.update)(g, s_base, p)
    u_kept, _ = jax.jit(kept.update)(g, s_kept, p)
    for path in ("Dense_0", "Dense_1"):
        m = np.asarray(masks[path]["kernel"])
        k_base, k_kept = np.asarray(u_base[path]["kernel"]), np.asarray(u_kept[path]["kernel"])
        assert np.all(k_kept[~m] == 0.0) and np.any(k_base[~m] != 0.0)
        np.testing.assert_array_equal(k_kept[m], k_base[m])
    chex.assert_trees_all_equal(u_kept[path]["bias"], u_base[path]["bias"])

    @jax.jit
    def step(p, s):
        u, s = kept.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, u), s

    q, s = p, s_kept
    for _ in range(20):
        q, s = step(q, s)
    for path in ("Dense_0", "Dense_1"):
        m = np.asarray(masks[path]["kernel"])
        assert np.all(np.asarray(q[path]["kernel"])[~m] == 0.0)
        assert np.all(np.asarray(q[path]["kernel"])[m] != np.asarray(p[path]["kernel"])[m])
    # a pruned weight that is not zero yet is sent to zero by the first update
    nonzero = jax.tree.map(lambda w: w + 0.5, p)
    u, _ = kept.update(g, kept.init(nonzero), nonzero)
    after = optax.apply_updates(nonzero, u)
    m = np.asarray(masks["Dense_0"]["kernel"])
    assert np.all(np.asarray(after["Dense_0"]["kernel"])[~m] == 0.0)


def test_keep_pruned_rejects_bad_masks_and_missing_params():
    p = _params(0)
    with pytest.raises(ValueError, match="tree structure"):
        pruning.keep_pruned({"Dense_0": None}).init(p)
    masks = pruning.sparsity_masks(p, {"kernel$": 0.5})
    bad = jax.tree.map(lambda m: None if m is None else m[:1], masks, is_leaf=lambda m: m is None)
    with pytest.raises(ValueError, match="shape"):
        pruning.keep_pruned(bad).init(p)
    t = pruning.keep_pruned(masks)
    with pytest.raises(ValueError, match="needs params"):
        t.update(p, t.init(p))


def test_kept_fraction_for_bytes_fits_the_file_and_surviving_masks_read_a_round_back():
    from wsjax import storage
    from wsjax.pruning import kept_fraction_for_bytes, lottery
    params = {"a": {"kernel": jax.random.normal(jax.random.key(0), (64, 32))},
              "b": {"kernel": jax.random.normal(jax.random.key(1), (32, 10)), "bias": jnp.zeros((10,))}}
    dense_bytes = len(storage.encode(params))
    keep = kept_fraction_for_bytes(params, dense_bytes / 4)
    def size(k):
        t = masked(pruning.sparsity_masks(params, 1 - k, scope="global"))
        return len(storage.encode((t, t.init(jax.random.key(0), params))))

    assert size(keep) <= dense_bytes / 4 < size(keep + 2 ** -13)
    with pytest.raises(ValueError, match="no kept fraction"):
        kept_fraction_for_bytes(params, 10)
    rates = {r"^b/kernel$": 0.1, r"kernel$": 0.2}
    masks = lottery.prune_round(params, None, rates, 1)
    trained = apply_masks(params, masks)
    got = lottery.surviving_masks(trained, rates, 1)
    assert {p: int(m.sum()) for p, m in got.items()} == {"a/kernel": 2048 - 410, "b/kernel": 320 - 32}
    with pytest.raises(ValueError, match="nonzero weights"):
        lottery.surviving_masks(params, rates, 1)
