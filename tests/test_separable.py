"""Exact counting (wsjax.models.counting) and depthwise separable convolutions
(wsjax.models.separable)."""

from fractions import Fraction

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wsjax.models import LeNet5, LocallyConnected2D, MLP, SeparableConv, SmallCNN
from wsjax.models import counting as C
from wsjax.models import factored
from wsjax.models import separable as S


def _normal(seed, shape, scale=1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _size(tree):
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def _params(model, x, seed=0):
    """LeCun-normal-like params drawn with numpy from eval_shape's shapes (no init compile)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) / np.sqrt(max(1, np.prod(s.shape[:-1]))),
                                              jnp.float32), shapes)


# ----------------------------------------------------------------------------- counting: arithmetic


@pytest.mark.parametrize("k,n,m", [(3, 32, 64), (3, 1, 8), (5, 16, 16), (1, 4, 6), (7, 3, 10)])
def test_separable_costs_1_over_m_plus_1_over_k2_of_standard(k, n, m):
    shape = (11, 9, n)
    std = C.count([C.Conv(k, n, m, bias=False)], shape)
    sep = C.count([C.depthwise(k, n, bias=False), C.pointwise(n, m, bias=False)], shape)
    assert std.params == k * k * n * m
    assert sep.params == k * k * n + n * m
    assert Fraction(sep.params, std.params) == Fraction(1, m) + Fraction(1, k * k)  # MobileNet Sec. 3.1
    assert std.macs == 11 * 9 * k * k * n * m and sep.macs == 11 * 9 * (k * k * n + n * m)
    assert Fraction(sep.macs, std.macs) == Fraction(1, m) + Fraction(1, k * k)
    assert std.out_shape == sep.out_shape == (11, 9, m)
    # with biases: m for the standard conv; n (depthwise) + m (pointwise) for the separable one
    assert C.count([C.Conv(k, n, m)], shape).params == std.params + m
    assert C.count([C.depthwise(k, n), C.pointwise(n, m)], shape).params == sep.params + n + m


def test_seed_002_shared_vs_locally_connected_first_layer():
    """Seed 002: a 3x3x32 first layer on a 192x192 grayscale image has 3*3*32 = 288 shared
    weights; without sharing it says "192*192*32, about 1.2 million". That number,
    1,179,648, counts one weight per output unit (it leaves out the 9 taps of each unit's
    3x3 filter). Unshared 3x3 filters give it exactly only with stride 3 (non-overlapping
    patches: 64*64 positions * 288); with stride 1 they give 9x more: 192^2 * 288 =
    10,616,832 ('SAME', 36,864x the shared count) or 190^2 * 288 = 10,396,800 ('VALID').
    The seed's "500,000 times 288" matches none of these (1,179,648 / 288 = 4,096)."""
    shape = (192, 192, 1)
    conv = C.count([C.Conv(3, 1, 32, bias=False)], shape)
    assert conv.params == 288 and conv.macs == 192 * 192 * 288
    expect = {("SAME", 1): 10_616_832, ("VALID", 1): 10_396_800, ("VALID", 3): 1_179_648}
    for (padding, stride), weights in expect.items():
        spec = C.Local(3, 1, 32, stride, padding, bias=None)
        local = C.count([spec], shape)
        assert local.params == local.macs == weights
        # the linen layer, traced, counts the same (and its params tree agrees: count checks it)
        layer = C.count(LocallyConnected2D(32, (3, 3), stride, padding, bias=None), shape)
        assert (layer.params, layer.macs, layer.out_shape) == (local.params, local.macs, local.out_shape)
        # sharing costs no multiply-adds: the conv and the locally connected layer on the same grid
        shared = C.count([C.Conv(3, 1, 32, stride, padding, bias=False)], shape)
        assert shared.params == 288 and shared.macs == local.macs
    assert expect[("VALID", 3)] == 192 * 192 * 32 and expect[("SAME", 1)] == 192 * 192 * 288
    assert expect[("SAME", 1)] // 288 == 192 * 192 and 1_179_648 // 288 == 4096
    # per-unit biases of the 'SAME' layer alone are the seed's 192*192*32
    unit = C.count(LocallyConnected2D(32, (3, 3), 1, "SAME", bias="unit"), shape)
    assert unit.params - 10_616_832 == 192 * 192 * 32
    assert C.count(LocallyConnected2D(32, (3, 3), 1, "SAME", bias="map"), shape).params == 10_616_832 + 32


def test_count_of_lenets_agrees_with_factored_count():
    for model, ref in ((LeNet5(), factored.count()), (MLP(), factored.count(kind="mlp"))):
        c = C.count(model, (28, 28, 1))
        assert (c.params, c.macs) == (ref.params, ref.macs)
        assert {k: (v.params, v.macs) for k, v in c.per_layer.items()} == ref.layers
    c = C.count(LeNet5(), (28, 28, 1))
    assert c.params == 431_080 and c.macs == 24 * 24 * 20 * 25 + 8 * 8 * 50 * 500 + 800 * 500 + 500 * 10
    assert c.per_layer["Conv_1"].in_shape == (12, 12, 20) and c.out_shape == (10,)
    # the same net as a spec list
    specs = [C.Conv(5, 1, 20, padding="VALID"), C.Pool(2), C.Conv(5, 20, 50, padding="VALID"), C.Pool(2),
             C.Flatten(), C.Dense(800, 500), C.Dense(500, 10)]
    assert C.count(specs, (28, 28, 1))[:2] == (c.params, c.macs)


class _Grouped(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), strides=2, padding="VALID", feature_group_count=2)(x)
        x = nn.Conv(6, (2, 3), padding=((1, 0), (2, 1)), use_bias=False)(x)
        return nn.Dense(5)(x)  # on the last axis, at every position


class _Twice(nn.Module):  # one layer called twice: weights shared across depth
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(7, name="inp")(x)
        tied = nn.Dense(7, name="tied")
        return tied(nn.relu(tied(x)))


def test_count_traces_flax_layers_exactly():
    c = C.count(_Grouped(), (9, 11, 4))
    l0, l1, l2 = c.per_layer.values()
    assert l0.out_shape == (4, 5, 8) and l0.params == 3 * 3 * 2 * 8 + 8 and l0.macs == 4 * 5 * 3 * 3 * 2 * 8
    assert l1.out_shape == (4, 6, 6) and l1.params == 2 * 3 * 8 * 6 and l1.macs == 4 * 6 * 2 * 3 * 8 * 6
    assert l2.params == 6 * 5 + 5 and l2.macs == 4 * 6 * 6 * 5 and c.out_shape == (4, 6, 5)
    assert c.params == _size(jax.eval_shape(_Grouped().init, jax.random.key(0), jnp.zeros((1, 9, 11, 4))))
    t = C.count(_Twice(), (3,))
    assert t.params == (3 * 7 + 7) + (7 * 7 + 7) and t.macs == 3 * 7 + 2 * 7 * 7
    assert t.per_layer["tied"].calls == 2 and t.per_layer["tied"].params == 56


class _Unknown(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(x) * self.param("scale", nn.initializers.ones, (3,))


def test_count_bad_inputs():
    with pytest.raises(ValueError, match="expects 3 input channels"):
        C.count([C.Conv(3, 3, 8)], (8, 8, 1))
    with pytest.raises(ValueError, match="does not fit"):
        C.count([C.Conv(5, 1, 8, padding="VALID")], (4, 4, 1))
    with pytest.raises(ValueError, match="groups 3 must divide"):
        C.count([C.Conv(3, 4, 8, groups=3)], (8, 8, 4))
    with pytest.raises(ValueError, match="Flatten or GlobalPool"):
        C.count([C.Dense(64, 10)], (8, 8, 1))
    with pytest.raises(ValueError, match="not a layer spec"):
        C.count([("conv", 3)], (8, 8, 1))
    with pytest.raises(ValueError, match="padding"):
        C.count([C.Conv(3, 1, 2, padding="FULL")], (8, 8, 1))
    with pytest.raises(ValueError, match="input_shape"):
        C.count([C.Flatten()], (8, 0, 1))
    with pytest.raises(ValueError, match="layers must be"):
        C.count("conv", (8, 8, 1))
    with pytest.raises(ValueError, match=r"not counted: \['scale'\]"):
        C.count(_Unknown(), (4,))


# ----------------------------------------------------------------------------- the depthwise op


@pytest.mark.parametrize("padding,strides", [("SAME", (1, 1)), (((2, 0), (1, 1)), (2, 3))])
def test_depthwise_conv_is_flax_grouped_conv(padding, strides):
    x, k = _normal(0, (2, 9, 8, 3)), _normal(1, (3, 3, 1, 3))
    ref = nn.Conv(3, (3, 3), strides, padding, feature_group_count=3, use_bias=False)
    pads = S._pads(x.shape[1:3], (3, 3), strides, padding)
    loss = lambda f: lambda x, k, g: jnp.sum(f(x, k, strides, pads) * g)  # noqa: E731

    @jax.jit  # one compile instead of many eager ones
    def run(x, k, g):
        want = ref.apply({"params": {"kernel": k}}, x)
        # the CPU (shifted sums) and portable (grouped conv) versions, and their gradients
        grads = [jax.grad(loss(f), (0, 1))(x, k[:, :, 0], g) for f in (S._depthwise_shifted, S._depthwise_grouped)]
        return want, S.depthwise_conv2d(x, k, padding, strides), S.depthwise_conv2d(x, k[:, :, 0], padding, strides), grads

    g = _normal(2, jax.eval_shape(ref.apply, {"params": {"kernel": k}}, x).shape)
    want, got4, got3, (g_shift, g_group) = run(x, k, g)
    chex.assert_trees_all_close(got4, want, atol=1e-5)
    chex.assert_trees_all_close(got3, want, atol=1e-5)
    chex.assert_trees_all_close(g_shift, g_group, atol=1e-4)


def test_separable_conv_is_depthwise_relu_pointwise():
    x = _normal(0, (2, 6, 6, 4))
    layer = SeparableConv(10, (3, 3), width_multiplier=0.5)  # 5 output maps
    p = _params(layer, x)
    assert jax.tree.map(jnp.shape, p) == {"depthwise": {"kernel": (3, 3, 1, 4), "bias": (4,)},
                                          "pointwise": {"kernel": (1, 1, 4, 5), "bias": (5,)}}
    p = jax.tree.map(lambda a: a + 0.1, p)  # non-zero biases

    @jax.jit
    def run(p, x):
        dw = nn.Conv(4, (3, 3), padding="SAME", feature_group_count=4).apply({"params": p["depthwise"]}, x)
        pw = lambda h: nn.Conv(5, (1, 1)).apply({"params": p["pointwise"]}, h)  # noqa: E731
        return (layer.apply({"params": p}, x), pw(nn.relu(dw)),
                SeparableConv(5, relu_between=False).apply({"params": p}, x), pw(dw))

    got, want, got_linear, want_linear = run(p, x)
    chex.assert_trees_all_close(got, want, atol=1e-5)
    chex.assert_trees_all_close(got_linear, want_linear, atol=1e-5)
    c = C.count(layer, (6, 6, 4))
    assert c.params == 9 * 4 + 4 + 4 * 5 + 5 == _size(p) and c.macs == 36 * (9 * 4 + 4 * 5)


# ----------------------------------------------------------------------------- SmallCNN


def _hand(block, widths, side=28, classes=10):
    """(params, macs) of SmallCNN(block, widths, depth=1) on side x side x 1, by hand."""
    params, macs = 9 * widths[0] + widths[0], side * side * 9 * widths[0]
    c = widths[0]
    for s, w in enumerate(widths):
        hw = (side >> s) ** 2
        if block == "standard":
            params, macs = params + 9 * c * w + w, macs + hw * 9 * c * w
        else:
            params, macs = params + 9 * c + c + c * w + w, macs + hw * (9 * c + c * w)
        c = w
    return params + c * classes + classes, macs + c * classes


@pytest.mark.parametrize("block", S.BLOCKS)
@pytest.mark.parametrize("alpha,widths", [(1.0, (32, 64, 128)), (0.5, (16, 32, 64)), (0.3, (10, 19, 38))])
def test_small_cnn_counts(block, alpha, widths):
    model = SmallCNN(block, width_multiplier=alpha)
    c = C.count(model, (28, 28, 1))
    assert (c.params, c.macs) == _hand(block, widths)
    assert C.count(S.small_cnn_specs(model), (28, 28, 1))[:2] == (c.params, c.macs)
    assert c.params == _size(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1))))
    if alpha == 1.0:
        assert (c.params, c.macs) == ((103_210, 14_677_760) if block == "standard" else (14_378, 2_143_168))


def test_small_cnn_counts_with_depth_and_5x5():
    model = SmallCNN("separable", widths=(8, 16), depth=2, kernel_size=5, num_classes=3)
    c = C.count(model, (12, 12, 1))
    want_p = (25 + 1) * 8 + (25 * 8 + 8 + 8 * 8 + 8) * 2 + (25 * 8 + 8 + 8 * 16 + 16) + (25 * 16 + 16 + 16 * 16 + 16) + 16 * 3 + 3
    want_m = 144 * 25 * 8 + 144 * 2 * (25 * 8 + 64) + 36 * (25 * 8 + 8 * 16 + 25 * 16 + 16 * 16) + 48
    assert (c.params, c.macs) == (want_p, want_m)
    assert C.count(S.small_cnn_specs(model, (12, 12, 1)), (12, 12, 1))[:2] == (want_p, want_m)


def test_small_cnn_forward_gradients_and_a_training_step():
    x = _normal(0, (16, 12, 12, 1))
    y = jnp.asarray(np.arange(16) % 10)
    chex.assert_shape(jax.eval_shape(SmallCNN("standard", widths=(6, 12)).apply,
                                     {"params": _params(SmallCNN("standard", widths=(6, 12)), x[:1])}, x), (16, 10))
    for block in ("separable",):  # the standard block is wsjax.nn.Conv, trained elsewhere
        model = SmallCNN(block, widths=(6, 12))
        params = _params(model, x[:1], seed=1)

        def loss(p):
            out = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(out, y).mean(), out

        grad = jax.jit(jax.value_and_grad(loss, has_aux=True))  # the only compile per model
        (before, out), g = grad(params)
        chex.assert_shape(out, (16, 10))
        leaves = [np.asarray(a) for a in jax.tree.leaves(g)]  # host checks: no eager compiles
        assert all(np.isfinite(a).all() and np.abs(a).max() > 0 for a in leaves)
        stepped = jax.tree.map(lambda w, d: jnp.asarray(np.asarray(w) - 0.5 * np.asarray(d)), params, g)
        (after, _), _ = grad(stepped)  # one SGD step, the same compiled function
        assert float(after) < float(before), (block, float(before), float(after))


def test_small_cnn_bad_inputs():
    x = jnp.zeros((1, 28, 28, 1))
    with pytest.raises(ValueError, match="block must be one of"):
        jax.eval_shape(SmallCNN("dense").init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="widths"):
        jax.eval_shape(SmallCNN(widths=()).init, jax.random.key(0), x)
    for alpha in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="width_multiplier"):
            jax.eval_shape(SmallCNN(width_multiplier=alpha).init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="at least 4x4"):
        jax.eval_shape(SmallCNN().init, jax.random.key(0), jnp.zeros((1, 3, 3, 1)))
    with pytest.raises(ValueError, match="NHWC"):
        S.depthwise_conv2d(jnp.zeros((4, 4, 1)), jnp.zeros((3, 3, 1)))
    with pytest.raises(ValueError, match="channels"):
        S.depthwise_conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="padding"):
        S.depthwise_conv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2)), padding="FULL")
    with pytest.raises(ValueError, match="does not fit"):
        S.depthwise_conv2d(jnp.zeros((1, 2, 4, 2)), jnp.zeros((3, 3, 2)), padding="VALID")
