"""wsjax.nn: the CPU convolution and pooling equal the plain lax/flax ops, values and gradients,
inside and outside a scan, for plain, hashed and codebook kernels, and are what runs on CPU."""

from __future__ import annotations

import re

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax
from jax.test_util import check_grads

from wsjax import sharing
from wsjax import nn as wnn
from wsjax.models import LeNet5
from wsjax.nn import conv as conv_module

DN = ("NHWC", "HWIO", "NHWC")


def _normal(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def _plain_conv(x, k, padding="VALID", strides=(1, 1)):
    return lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=DN)


PADDINGS = ["VALID", "SAME", ((1, 2), (0, 3))]


class ConvTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_values_and_both_gradients_equal_lax(self):
        x, k = _normal(0, 3, 11, 9, 4), _normal(1, 3, 5, 4, 6)
        for padding in PADDINGS:
            y = self.variant(lambda x, k: wnn.conv2d(x, k, padding))(x, k)
            chex.assert_trees_all_close(y, _plain_conv(x, k, padding), rtol=1e-5, atol=1e-5)
            target = _normal(2, *y.shape)
            loss = lambda f: (lambda x, k: jnp.sum(jnp.sin(f(x, k, padding)) * target))  # noqa: E731
            got = self.variant(jax.grad(loss(wnn.conv2d), argnums=(0, 1)))(x, k)
            want = jax.grad(loss(_plain_conv), argnums=(0, 1))(x, k)
            chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-4)

    def test_check_grads_against_finite_differences(self):
        x, k = _normal(3, 2, 7, 6, 3), _normal(4, 3, 3, 3, 2)
        check_grads(lambda x, k: jnp.tanh(wnn.conv2d(x, k, "SAME")), (x, k), order=1, modes=["rev"],
                    atol=2e-2, rtol=2e-2, eps=1e-2)

    def test_gradients_inside_a_scan_equal_those_outside(self):
        x, k = _normal(5, 4, 12, 12, 2), _normal(6, 5, 5, 2, 3)
        loss = lambda k, x: jnp.sum(wnn.conv2d(x, k) ** 2)  # noqa: E731

        def scanned(k, xs):
            return lax.scan(lambda c, xb: (c + jax.grad(loss)(k, xb), None), jnp.zeros_like(k), xs)[0]

        xs = jnp.stack([x, 2 * x])
        want = jax.grad(loss)(k, x) + jax.grad(loss)(k, 2 * x)
        chex.assert_trees_all_close(jax.jit(scanned)(k, xs), want, rtol=1e-5, atol=1e-4)

    def test_strided_convolution_uses_lax(self):
        x, k = _normal(7, 2, 9, 9, 3), _normal(8, 3, 3, 3, 4)
        chex.assert_trees_all_close(wnn.conv2d(x, k, "VALID", (2, 2)), _plain_conv(x, k, "VALID", (2, 2)),
                                    rtol=1e-6, atol=1e-6)

    def test_bad_inputs_are_refused_with_the_value(self):
        x, k = _normal(11, 1, 6, 6, 2), _normal(12, 3, 3, 2, 1)
        with pytest.raises(ValueError, match=r"\(6, 6, 2\)"):
            wnn.conv2d(x[0], k)
        with pytest.raises(ValueError, match="3 channels"):
            wnn.conv2d(jnp.zeros((1, 6, 6, 3)), k)
        with pytest.raises(ValueError, match="'FULL'"):
            wnn.conv2d(x, k, "FULL")
        with pytest.raises(ValueError, match="does not fit"):
            wnn.conv2d(jnp.zeros((1, 2, 2, 2)), k)


def test_the_cpu_path_is_the_hand_written_backward(monkeypatch):
    calls = []
    original = conv_module._kernel_grad
    monkeypatch.setattr(conv_module, "_kernel_grad", lambda *a: calls.append(1) or original(*a))
    x, k = _normal(9, 1, 6, 6, 1), _normal(10, 3, 3, 1, 1)
    jax.grad(lambda k: jnp.sum(wnn.conv2d(x, k)))(k)
    assert calls, "conv2d's gradient did not go through the custom VJP on CPU"


def test_conv_layer_has_flax_conv_parameters_and_output():
    x = _normal(13, 2, 10, 10, 3)
    for padding in PADDINGS:
        ours, theirs = wnn.Conv(4, (3, 3), padding=padding), nn.Conv(4, (3, 3), padding=padding)
        params = theirs.init(jax.random.key(0), x)
        chex.assert_trees_all_equal(ours.init(jax.random.key(0), x), params)
        chex.assert_trees_all_close(ours.apply(params, x), theirs.apply(params, x), rtol=1e-5, atol=1e-5)


class PoolTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_values_and_gradient_equal_flax_max_pool(self):
        for shape in [(2, 8, 6, 3), (1, 7, 9, 2)]:  # odd sides drop the last row / column
            x = _normal(14, *shape)
            got = self.variant(wnn.max_pool_2x2)(x)
            chex.assert_trees_all_equal(got, nn.max_pool(x, (2, 2), strides=(2, 2)))
            target = _normal(15, *got.shape)
            loss = lambda f: (lambda x: jnp.sum(jnp.sin(f(x)) * target))  # noqa: E731
            chex.assert_trees_all_close(self.variant(jax.grad(loss(wnn.max_pool_2x2)))(x),
                                        jax.grad(loss(lambda z: nn.max_pool(z, (2, 2), strides=(2, 2))))(x))

    def test_ties_route_the_gradient_to_the_first_maximum_like_reduce_window(self):
        x = jnp.array([[1., 1., 2., 0.], [1., 1., 2., 2.], [3., 0., 0., 0.], [0., 3., 0., 0.]]).reshape(1, 4, 4, 1)
        weights = jnp.arange(1.0, 5.0).reshape(1, 2, 2, 1)
        ours = jax.grad(lambda z: jnp.sum(wnn.max_pool_2x2(z) * weights))(x)
        plain = jax.grad(lambda z: jnp.sum(nn.max_pool(z, (2, 2), strides=(2, 2)) * weights))(x)
        chex.assert_trees_all_equal(ours, plain)
        assert float(ours.sum()) == 10.0 and int((ours != 0).sum()) == 4

    def test_no_scatter_or_reduce_window_in_the_compiled_cpu_gradient(self):
        x = _normal(16, 2, 8, 8, 3)
        ops = lambda f: set(re.findall(r" ([a-z-]+)\(", jax.jit(jax.grad(  # noqa: E731
            lambda z: jnp.sum(f(z) ** 2))).lower(x).compile().as_text()))
        assert not {"scatter", "select-and-scatter", "reduce-window"} & ops(wnn.max_pool_2x2)
        assert "scatter" in ops(lambda z: nn.max_pool(z, (2, 2), (2, 2)))  # the check sees it when there

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"\(8, 8\)"):
            wnn.max_pool_2x2(jnp.zeros((8, 8)))
        with pytest.raises(TypeError, match="int32"):
            wnn.max_pool_2x2(jnp.zeros((1, 4, 4, 1), jnp.int32))


class _FlaxLeNet5(nn.Module):
    """LeNet-5 written with flax's own ops: the reference wsjax's LeNet5 must equal."""

    @nn.compact
    def __call__(self, x):
        x = nn.max_pool(nn.Conv(20, (5, 5), padding="VALID", name="Conv_0")(x), (2, 2), strides=(2, 2))
        x = nn.max_pool(nn.Conv(50, (5, 5), padding="VALID", name="Conv_1")(x), (2, 2), strides=(2, 2))
        x = nn.relu(nn.Dense(500, name="Dense_0")(x.reshape((x.shape[0], -1))))
        return nn.Dense(10, name="Dense_1")(x)


@pytest.mark.parametrize("transform", ["dense", "hashed", "codebook"])
def test_lenet5_gradients_equal_flax_ops_for_plain_hashed_and_codebook_kernels(transform):
    x, y = _normal(17, 8, 28, 28, 1), jnp.arange(8) % 10
    params = _FlaxLeNet5().init(jax.random.key(0), x)["params"]
    chex.assert_trees_all_equal_structs(params, LeNet5().init(jax.random.key(0), x)["params"])
    t = {"dense": sharing.identity(), "hashed": sharing.hashed(1 / 8),
         "codebook": sharing.quantize(bits=4, max_iter=20)}[transform]
    state = t.init(jax.random.key(1), params)
    theta, apply = state.theta, sharing.bind(t, state)

    def loss(model):
        def f(th):
            logits = model.apply({"params": apply(th)}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return f

    v_ours, g_ours = jax.jit(jax.value_and_grad(loss(LeNet5())), compiler_options=wnn.compiler_options())(theta)
    v_ref, g_ref = jax.value_and_grad(loss(_FlaxLeNet5()))(theta)
    np.testing.assert_allclose(v_ours, v_ref, rtol=1e-5)
    chex.assert_trees_all_close(g_ours, g_ref, rtol=1e-3, atol=1e-5)


def test_compiler_options_turn_off_ynnpack_convolutions_on_cpu_only():
    opts = wnn.compiler_options("cpu")
    assert opts is None or opts == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
    if jax.default_backend() == "cpu":
        assert opts is not None, "this jaxlib knows the option: the engine should use it"
    assert wnn.compiler_options("gpu") is None and wnn.compiler_options("tpu") is None
