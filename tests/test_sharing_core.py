"""wsjax.sharing.core: identity, select, chain, per_leaf, bind and counting."""

import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from flax import nnx
from jax.test_util import check_grads

from wsjax.models import MLP
from wsjax.sharing import (
    SharedParams,
    Static,
    Transform,
    bind,
    chain,
    count_params,
    flatten_paths,
    free_params,
    identity,
    per_leaf,
    select,
    virtual_params,
)

KEY = jax.random.key(0)


def _arr(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def _params():
    rng = np.random.default_rng(0)
    return {
        "Dense_0": {"kernel": _arr(rng, 3, 4), "bias": _arr(rng, 4)},
        "Dense_1": {"kernel": _arr(rng, 4, 4), "bias": _arr(rng, 4)},
    }


def scale(c: float) -> Transform:
    """Per leaf ``W = c * theta`` (theta initialised as ``W / c``)."""
    return per_leaf(
        lambda key, leaf, path: SharedParams(leaf / c, Static(c)),
        lambda state, path: state.theta * state.frozen.value,
    )


def shift(c: float) -> Transform:
    """Per leaf ``W = theta + c``."""
    return per_leaf(
        lambda key, leaf, path: SharedParams(leaf - c, Static(c)),
        lambda state, path: state.theta + state.frozen.value,
    )


def tie() -> Transform:
    """All selected leaves (same shape) are one free array: the first leaf's values."""

    def init(key, leaves):
        paths = tuple(leaves)
        shapes = {leaves[p].shape for p in paths}
        if len(shapes) != 1:
            raise ValueError(f"tie needs leaves of one shape, got {shapes}")
        return SharedParams(leaves[paths[0]], Static(paths))

    def apply(state):
        return {p: state.theta for p in state.frozen.value}

    return Transform(init, apply)


#: One transform object, used on flax.linen params and on a flax.nnx State alike.
TIE_KERNELS = select(r"kernel", tie())


# ----------------------------------------------------------------------------- combinators


def test_identity_round_trip_and_counts():
    params = _params()
    t = identity()
    state = t.init(KEY, params)
    assert state.frozen is None
    chex.assert_trees_all_equal(state.theta, params)
    chex.assert_trees_all_equal(t.apply(state), params)
    assert free_params(state) == virtual_params(t, state) == count_params(params) == 12 + 4 + 16 + 4


@pytest.mark.parametrize(
    "pattern", [r"kernel$", re.compile(r"kernel$"), lambda p: p.endswith("kernel")]
)
def test_select_by_regex_or_predicate(pattern):
    params = _params()
    t = select(pattern, scale(2.0))
    state = t.init(KEY, params)
    assert sorted(state.theta["inner"]) == ["Dense_0/kernel", "Dense_1/kernel"]
    assert state.theta["rest"]["Dense_0"]["kernel"] is None
    chex.assert_trees_all_equal(state.theta["rest"]["Dense_1"]["bias"], params["Dense_1"]["bias"])
    chex.assert_trees_all_close(
        state.theta["inner"]["Dense_1/kernel"], params["Dense_1"]["kernel"] / 2
    )
    chex.assert_trees_all_close(t.apply(state), params)
    chex.assert_trees_all_equal_structs(t.apply(state), params)


def test_select_regex_is_searched_not_matched():
    state = select(r"_1/", identity()).init(KEY, _params())
    assert sorted(state.theta["inner"]) == ["Dense_1/bias", "Dense_1/kernel"]


def test_select_without_match_raises_clear_error():
    with pytest.raises(ValueError, match=r"select\('conv'\) matched no leaf.*Dense_0/bias"):
        select("conv", identity()).init(KEY, _params())


def test_chain_applies_last_transform_first():
    params = _params()
    zeros = lambda t, s: SharedParams(jax.tree.map(jnp.zeros_like, s.theta), s.frozen)
    a_of_b = chain(scale(2.0), shift(1.0))  # W = 2 * (theta + 1)
    b_of_a = chain(shift(1.0), scale(2.0))  # W = 2 * theta + 1
    for t, want in ((a_of_b, 2.0), (b_of_a, 1.0)):
        # per_leaf is a {path: leaf} transform, so chain them on a flat dict
        flat = flatten_paths(params)
        state = t.init(KEY, flat)
        chex.assert_trees_all_close(t.apply(state), flat, rtol=1e-5, atol=1e-6)
        w = t.apply(zeros(t, state))
        chex.assert_trees_all_close(w, jax.tree.map(lambda x: jnp.full_like(x, want), flat))
    state = a_of_b.init(KEY, flatten_paths(params))
    chex.assert_trees_all_close(state.theta["Dense_0/kernel"], params["Dense_0"]["kernel"] / 2 - 1)
    with pytest.raises(ValueError, match="at least one"):
        chain()


def test_chain_of_selects_fills_each_selection():
    """Regression: an outer select's None leaves used to raise KeyError in the inner apply."""
    params = _params()
    t = chain(select("Dense_0", scale(2.0)), select("Dense_1", shift(1.0)))
    state = t.init(KEY, params)
    chex.assert_trees_all_close(t.apply(state), params, rtol=1e-5, atol=1e-6)
    theta = jax.tree.map(jnp.zeros_like, state.theta)
    w = t.apply(SharedParams(theta, state.frozen))
    chex.assert_trees_all_close(w["Dense_0"]["kernel"], jnp.zeros((3, 4)))
    chex.assert_trees_all_close(w["Dense_1"]["kernel"], jnp.ones((4, 4)))


def test_per_leaf_gets_paths_and_independent_keys():
    seen_init, seen_apply, keys = [], [], []

    def leaf_init(key, leaf, path):
        seen_init.append(path)
        keys.append(tuple(np.asarray(jax.random.key_data(key)).ravel()))
        return SharedParams(leaf, Static(path))

    def leaf_apply(state, path):
        seen_apply.append(path)
        assert state.frozen.value == path
        return state.theta

    params = _params()
    t = select(".", per_leaf(leaf_init, leaf_apply))
    state = t.init(KEY, params)
    chex.assert_trees_all_equal(t.apply(state), params)
    paths = ["Dense_0/bias", "Dense_0/kernel", "Dense_1/bias", "Dense_1/kernel"]
    assert sorted(seen_init) == sorted(seen_apply) == paths
    assert len(set(keys)) == 4


def test_counting_ignores_non_float_leaves():
    tree = {
        "w": jnp.zeros((3, 5)),
        "h": jnp.zeros((2,), jnp.bfloat16),
        "idx": jnp.zeros((7,), jnp.int32),
        "mask": np.ones((4,), bool),
        "none": None,
    }
    assert count_params(tree) == 17
    two_layers = {
        "a": {"kernel": jnp.zeros((4, 4))},
        "b": {"kernel": jnp.zeros((4, 4)), "bias": jnp.zeros(4)},
    }
    state = TIE_KERNELS.init(KEY, two_layers)
    assert free_params(state) == 16 + 4
    assert virtual_params(TIE_KERNELS, state) == 32 + 4


# ----------------------------------------------------------------------------- jit / grad / vmap

TRANSFORMS = {
    "identity": identity(),
    "select_scale": select(r"kernel$", scale(3.0)),
    "chain_selects": chain(select("Dense_0", scale(2.0)), select("Dense_1", shift(1.0))),
    "chain_per_leaf": select(".", chain(scale(2.0), shift(-0.5))),
    "tie": TIE_KERNELS,
}


def _square_params():
    """Like _params but with one 4x4 kernel in both layers (a tied net)."""
    params = _params()
    params["Dense_0"]["kernel"] = params["Dense_1"]["kernel"]
    return params


PARAMS_FOR = {"tie": _square_params}


def _loss_w(w):
    return sum(jnp.sum(jnp.sin(x) * (i + 1)) for i, x in enumerate(jax.tree.leaves(w)))


class TransformsUnderJaxTest(parameterized.TestCase):
    def _setup(self, name):
        t = TRANSFORMS[name]
        params = PARAMS_FOR.get(name, _params)()
        return t, params, t.init(KEY, params)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*TRANSFORMS)
    def test_init_and_apply(self, name):
        t, params, state = self._setup(name)
        state_v = self.variant(t.init)(KEY, params)
        chex.assert_trees_all_close(state_v.theta, state.theta)
        assert jax.tree.structure(state_v.frozen) == jax.tree.structure(state.frozen)
        chex.assert_trees_all_close(self.variant(t.apply)(state), params, rtol=1e-5, atol=1e-6)
        w = self.variant(bind(t, state))(state.theta)
        chex.assert_trees_all_close(w, params, rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*TRANSFORMS)
    def test_grad_is_transposed_jacobian(self, name):
        t, params, state = self._setup(name)
        w_of = bind(t, state)
        grad_theta = self.variant(jax.grad(lambda th: _loss_w(w_of(th))))(state.theta)
        # Reference: J_T^T dL/dW through an explicit VJP of the transform.
        _, vjp = jax.vjp(w_of, state.theta)
        (want,) = vjp(jax.grad(_loss_w)(w_of(state.theta)))
        chex.assert_trees_all_close(grad_theta, want, rtol=1e-5, atol=1e-6)

    @parameterized.parameters(*TRANSFORMS)
    def test_grad_matches_finite_differences(self, name):
        t, params, state = self._setup(name)
        w_of = bind(t, state)
        loss = jax.jit(lambda th: _loss_w(w_of(th)))
        check_grads(loss, (state.theta,), order=1, atol=1e-2, rtol=1e-2)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*TRANSFORMS)
    def test_vmap_over_theta(self, name):
        t, params, state = self._setup(name)
        thetas = jax.tree.map(lambda x: jnp.stack([x, 2 * x, -x]), state.theta)
        ws = self.variant(jax.vmap(bind(t, state)))(thetas)
        for i in range(3):
            one = t.apply(SharedParams(jax.tree.map(lambda x: x[i], thetas), state.frozen))
            chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], ws), one, rtol=1e-5, atol=1e-6)


def test_tie_gradient_sums_over_tied_leaves():
    params = _square_params()
    state = TIE_KERNELS.init(KEY, params)
    w = TIE_KERNELS.apply(state)
    g_w = jax.grad(_loss_w)(w)
    g_theta = jax.grad(lambda th: _loss_w(bind(TIE_KERNELS, state)(th)))(state.theta)
    chex.assert_trees_all_close(
        g_theta["inner"], g_w["Dense_0"]["kernel"] + g_w["Dense_1"]["kernel"], rtol=1e-6
    )


# ----------------------------------------------------------------------------- flax models


def test_flax_linen_params_through_a_transform():
    model = MLP((4, 4))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((5, 4)), jnp.float32)
    shapes = jax.eval_shape(model.init, KEY, x)["params"]
    rng = np.random.default_rng(2)
    params = jax.tree.map(lambda s: _arr(rng, *s.shape), shapes)
    state = TIE_KERNELS.init(KEY, params)
    assert free_params(state) == 16 + 8 and virtual_params(TIE_KERNELS, state) == 32 + 8
    k = state.theta["inner"]
    b0, b1 = params["Dense_0"]["bias"], params["Dense_1"]["bias"]

    @jax.jit
    def forward(theta):
        return model.apply({"params": bind(TIE_KERNELS, state)(theta)}, x)

    chex.assert_trees_all_close(forward(state.theta), nn.relu(x @ k + b0) @ k + b1, rtol=1e-5)
    g = jax.grad(lambda th: jnp.sum(forward(th) ** 2))(state.theta)
    g_ref = jax.grad(lambda k: jnp.sum((nn.relu(x @ k + b0) @ k + b1) ** 2))(k)
    chex.assert_trees_all_close(g["inner"], g_ref, rtol=1e-5)


class TwoLinear(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(4, 4, rngs=rngs)
        self.l2 = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x)))


def test_flax_nnx_model_through_split_and_merge():
    graphdef, nnx_state = nnx.split(TwoLinear(nnx.Rngs(0)))
    state = TIE_KERNELS.init(KEY, nnx_state)  # the same transform object as for linen
    assert sorted(state.frozen.value) == ["l1/kernel/value", "l2/kernel/value"]
    assert free_params(state) == 16 + 8 and virtual_params(TIE_KERNELS, state) == 32 + 8
    x = jnp.asarray(np.random.default_rng(1).standard_normal((5, 4)), jnp.float32)
    k = state.theta["inner"]
    b1, b2 = nnx_state["l1"]["bias"][...], nnx_state["l2"]["bias"][...]

    @jax.jit
    def forward(theta):
        return nnx.merge(graphdef, bind(TIE_KERNELS, state)(theta))(x)

    ref = lambda k: nnx.relu(x @ k + b1) @ k + b2
    chex.assert_trees_all_close(forward(state.theta), ref(k), rtol=1e-5)
    merged = nnx.merge(graphdef, TIE_KERNELS.apply(state))
    chex.assert_trees_all_equal(merged.l1.kernel[...], merged.l2.kernel[...])
    g = jax.grad(lambda th: jnp.sum(forward(th) ** 2))(state.theta)
    g_ref = jax.grad(lambda k: jnp.sum(ref(k) ** 2))(k)
    chex.assert_trees_all_close(g["inner"], g_ref, rtol=1e-5)
