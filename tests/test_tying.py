"""Cross-layer tying (wsjax.sharing.tying) and the tied-depth DynamicNet (wsjax.models.dynamic)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wsjax.models import MLP
from wsjax.models.dynamic import DynamicNet
from wsjax.sharing import bind, count_params, free_params, virtual_params
from wsjax.sharing.tying import tied, tying

HIDDEN = ("Dense_1", "Dense_2", "Dense_3")


def _params(seed=0, width=8, in_dim=5, out=3):
    """``MLP((width,) * 4 + (out,))`` params made with NumPy: three identical hidden layers."""
    rng = np.random.default_rng(seed)
    sizes = (in_dim,) + (width,) * 4 + (out,)
    return {
        f"Dense_{i}": {
            "bias": (0.1 * rng.standard_normal(n)).astype(np.float32),
            "kernel": (rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32),
        }
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:]))
    }


class TiedTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_tied_layers_share_the_first_layers_weights(self):
        params = _params()
        t = tied(HIDDEN)
        s = t.init(jax.random.key(0), params)
        out = self.variant(bind(t, s))(s.theta)
        for layer in HIDDEN:
            chex.assert_trees_all_equal(out[layer], params["Dense_1"])
        chex.assert_trees_all_equal(out["Dense_0"], params["Dense_0"])
        assert free_params(s) == count_params(params) - 2 * (8 * 8 + 8)
        assert virtual_params(t, s) == count_params(params)

    def test_gradient_of_a_tied_weight_is_the_sum_over_its_layers(self):
        params = _params()
        t = tied(HIDDEN)
        s = t.init(jax.random.key(0), params)
        x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 5)), jnp.float32)
        model = MLP((8, 8, 8, 8, 3))

        def loss_of_params(p):
            return jnp.sum(jnp.tanh(model.apply({"params": p}, x)))

        g_tied = jax.grad(lambda th: loss_of_params(bind(t, s)(th)))(s.theta)
        g_untied = jax.grad(loss_of_params)(t.apply(s))
        expect = jax.tree.map(lambda *g: sum(g), *[g_untied[layer] for layer in HIDDEN])
        chex.assert_trees_all_close(g_tied["inner"]["shared"], expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("multiplex", ["scale_shift", "lowrank"])
def test_multiplexed_layers_start_as_copies_and_follow_the_formula(multiplex):
    params = _params()
    t = tied(HIDDEN, multiplex=multiplex, rank=2)
    s = t.init(jax.random.key(0), params)
    out = t.apply(s)
    for layer in HIDDEN:
        chex.assert_trees_all_close(out[layer], params["Dense_1"], atol=1e-6)
    per_layer = s.theta["inner"]["layers"]
    assert set(per_layer) == set(HIDDEN) and set(per_layer["Dense_2"]) == {"kernel"}
    extra = 3 * (8 + 8) if multiplex == "scale_shift" else 3 * (8 * 2 + 2 * 8)
    assert free_params(s) == count_params(params) - 2 * (8 * 8 + 8) + extra
    # Move one layer's transformation and check the weights it sees.
    rng = np.random.default_rng(3)
    moved = jax.tree.map(lambda a: a + rng.standard_normal(a.shape).astype(a.dtype), per_layer)
    theta = {**s.theta, "inner": {**s.theta["inner"], "layers": moved}}
    out = bind(t, s)(theta)
    w = params["Dense_1"]["kernel"]
    d = moved["Dense_3"]["kernel"]
    if multiplex == "scale_shift":
        expect = w * np.asarray(d["scale"]) + np.asarray(d["shift"])
    else:
        expect = w + np.asarray(d["a"]) @ np.asarray(d["b"])
    np.testing.assert_allclose(out["Dense_3"]["kernel"], expect, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_equal(out["Dense_3"]["bias"], params["Dense_1"]["bias"])


def test_tying_rejects_bad_input():
    params = _params()
    with pytest.raises(ValueError, match="at least two"):
        tied(["Dense_1"])
    with pytest.raises(ValueError, match="multiplex"):
        tied(HIDDEN, multiplex="film")
    with pytest.raises(ValueError, match="rank"):
        tied(HIDDEN, multiplex="lowrank", rank=0)
    with pytest.raises(ValueError, match="identical leaves"):
        tied(["Dense_0", "Dense_1"]).init(jax.random.key(0), params)
    with pytest.raises(ValueError, match="matched no leaf"):
        tied(["Block_0", "Block_1"]).init(jax.random.key(0), params)
    with pytest.raises(ValueError, match="distinct"):
        tying(["Dense_1", "Dense_1"])


# ----------------------------------------------------------------------------- DynamicNet


def _dynamic(hidden=8, out=3, in_dim=5):
    model = DynamicNet(hidden=hidden, out=out)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((6, in_dim)), jnp.float32)
    params = model.init({"params": jax.random.key(0), "depth": jax.random.key(1)}, x)["params"]
    return model, params, x


def _as_mlp_params(p, repeats):
    """DynamicNet params laid out as ``MLP`` params with ``repeats`` copies of the middle layer."""
    out = {"Dense_0": p["input_linear"]}
    for k in range(repeats):
        out[f"Dense_{k + 1}"] = p["middle_linear"]
    out[f"Dense_{repeats + 1}"] = p["output_linear"]
    return out


def test_dynamic_net_equals_an_mlp_with_tied_copies_and_sums_their_gradients():
    model, params, x = _dynamic()
    for repeats in range(4):
        mlp = MLP((8,) * (repeats + 1) + (3,))
        mlp_params = _as_mlp_params(params, repeats)
        y = model.apply({"params": params}, x, repeats=repeats)
        chex.assert_trees_all_close(y, mlp.apply({"params": mlp_params}, x), atol=1e-6)

        g = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x, repeats=repeats) ** 2))(params)
        g_mlp = jax.grad(lambda p: jnp.sum(mlp.apply({"params": p}, x) ** 2))(mlp_params)
        expect = jax.tree.map(
            lambda *a: sum(a), *[g_mlp[f"Dense_{k + 1}"] for k in range(repeats)]
        ) if repeats else jax.tree.map(jnp.zeros_like, params["middle_linear"])
        chex.assert_trees_all_close(g["middle_linear"], expect, rtol=1e-5, atol=1e-6)


def test_dynamic_net_equals_a_tied_transform_at_full_depth():
    model, params, x = _dynamic()
    mlp = MLP((8, 8, 8, 8, 3))
    t = tied(HIDDEN)
    s = t.init(jax.random.key(0), _as_mlp_params(params, 3))
    chex.assert_trees_all_close(
        mlp.apply({"params": t.apply(s)}, x),
        model.apply({"params": params}, x, repeats=3),
        atol=1e-6,
    )


def test_random_depth_trains_under_jit_without_retracing():
    model, params, x = _dynamic(hidden=16, in_dim=10)
    y = jnp.asarray(np.random.default_rng(1).standard_normal((6, 3)), jnp.float32)
    opt = optax.adam(1e-2)
    traces = []

    @jax.jit
    def step(p, st, key):
        traces.append(1)
        depth_key, = jax.random.split(key, 1)

        def loss(p):
            pred = model.apply({"params": p}, x, rngs={"depth": depth_key})
            return jnp.mean((pred - y) ** 2)

        value, g = jax.value_and_grad(loss)(p)
        up, st = opt.update(g, st, p)
        return optax.apply_updates(p, up), st, value

    st = opt.init(params)
    full_depth = lambda p: float(jnp.mean((model.apply({"params": p}, x, repeats=3) - y) ** 2))  # noqa: E731
    before = full_depth(params)
    p = params
    depths = []
    for i in range(80):
        key = jax.random.key(i)
        depths.append(int(jax.random.randint(jax.random.split(key, 1)[0], (), 0, 4)))
        p, st, _ = step(p, st, key)
    assert len(traces) == 1
    assert set(depths) == {0, 1, 2, 3}
    assert full_depth(p) < 0.5 * before
    # The middle layer moved, so the tied weights were trained.
    assert float(jnp.abs(p["middle_linear"]["kernel"] - params["middle_linear"]["kernel"]).max()) > 0


# ----------------------------------------------------------------------------- M unique layers in order

SEVEN = tuple(f"Dense_{i}" for i in range(1, 8))


def _seven(seed=0):
    """``MLP((32,) * 8 + (3,))`` params: seven 32x32 hidden layers Dense_1 .. Dense_7."""
    rng = np.random.default_rng(seed)
    sizes = (5,) + (32,) * 8 + (3,)
    return {f"Dense_{i}": {"bias": (0.1 * rng.standard_normal(n)).astype(np.float32),
                           "kernel": (rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32)}
            for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:]))}


def test_sequence_and_cycle_assignments():
    from wsjax.sharing import assignment, copies

    assert assignment(6, 3, "sequence") == (0, 0, 1, 1, 2, 2)
    assert assignment(6, 3, "cycle") == (0, 1, 2, 0, 1, 2)
    assert assignment(7, 3, "sequence") == (0, 0, 0, 1, 1, 2, 2)
    assert assignment(7, 3, "cycle") == (0, 1, 2, 0, 1, 2, 0)
    assert assignment(4, 1) == (0, 0, 0, 0) and assignment(4, 4, "sequence") == (0, 1, 2, 3)
    assert copies("abcd", 2, "cycle") == [("a", "c"), ("b", "d")]
    assert copies("abcd", 2, "sequence") == [("a", "b"), ("c", "d")]
    for bad, match in (((3, 4, "cycle"), "at most"), ((3, 2, "random"), "order"), ((3, 0, "cycle"), "unique")):
        with pytest.raises(ValueError, match=match):
            assignment(*bad)
    with pytest.raises(ValueError, match="distinct"):
        copies(["a", "a"], 1)


@pytest.mark.parametrize("order", ["sequence", "cycle"])
def test_m_unique_layers_follow_their_copy_and_store_one_copy_each(order):
    from wsjax import storage
    from wsjax.sharing import copies, tied_in_order

    params = _seven()
    t = tied_in_order(SEVEN, 3, order)
    s = t.init(jax.random.key(0), params)
    out = jax.jit(bind(t, s))(s.theta)
    for group in copies(SEVEN, 3, order):  # every layer is its copy's first layer
        for layer in group:
            chex.assert_trees_all_equal(out[layer], params[group[0]])
    chex.assert_trees_all_equal(out["Dense_0"], params["Dense_0"])
    chex.assert_trees_all_equal(out["Dense_8"], params["Dense_8"])
    hidden = 32 * 32 + 32
    assert free_params(s) == count_params(params) - 4 * hidden  # 7 hidden layers kept as 3
    # gradients: a copy's gradient is the sum of its layers' gradients
    x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 5)), jnp.float32)
    model = MLP((32,) * 8 + (3,))
    loss_w = lambda w: jnp.sum(model.apply({"params": w}, x) ** 2)
    g_theta = jax.grad(lambda th: loss_w(bind(t, s)(th)))(s.theta)
    g_w = jax.grad(loss_w)(out)
    for i, group in enumerate(copies(SEVEN, 3, order)):
        want = sum(g_w[layer]["kernel"] for layer in group)
        chex.assert_trees_all_close(g_theta["inner"][i]["shared"]["kernel"], want, rtol=1e-5, atol=1e-6)
    # the file: one 'tying' group per copy, read back bit for bit
    data = storage.encode((t, s))
    back = storage.decode(data)
    chex.assert_trees_all_equal(back, jax.tree.map(np.asarray, out))
    _, states = storage.decode(data, with_state=True)
    assert sorted(states) == ["tying", "tying:1", "tying:2"]
    plain = storage.encode(jax.tree.map(np.asarray, out))
    # 3 hidden copies of 4 bytes a weight instead of 7, less the three groups' meta (names, paths)
    assert 4 * 4 * hidden - 600 < len(plain) - len(data) < 4 * 4 * hidden, (len(plain), len(data))


def test_a_copy_used_once_stays_its_layers_own_weights():
    from wsjax import storage
    from wsjax.sharing import tied_in_order

    params = _seven()
    layers = SEVEN[:3]  # sequence over 3 positions with 2 copies: (Dense_1, Dense_2), (Dense_3)
    t = tied_in_order(layers, 2, "sequence", multiplex="scale_shift")
    s = t.init(jax.random.key(0), params)
    assert set(s.theta["inner"][1]) == {"Dense_3/bias", "Dense_3/kernel"}
    out = t.apply(s)
    chex.assert_trees_all_equal(out["Dense_2"], params["Dense_1"])  # scale 1, shift 0 at init
    chex.assert_trees_all_equal(out["Dense_3"], params["Dense_3"])
    _, states = storage.decode(storage.encode((t, s)), with_state=True)
    assert sorted(states) == ["tying"]  # Dense_3 is among the plain weights
    chex.assert_trees_all_equal(storage.decode(storage.encode((t, s))), jax.tree.map(np.asarray, out))
