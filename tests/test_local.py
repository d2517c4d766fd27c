"""LocallyConnected2D and the convolution-as-sharing transform (wsjax.sharing.local)."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from jax.test_util import check_grads

from wsjax.models.local import LocallyConnected2D, explicit_padding, output_size
from wsjax.sharing import SharedParams, count_params, free_params, virtual_params
from wsjax.sharing.local import broadcast_positions, convolution

# (input hw, in_ch, features, patch, strides, padding)
CONFIGS = [
    ((7, 7), 1, 3, (3, 3), (1, 1), "VALID"),
    ((16, 16), 1, 2, (3, 3), (2, 2), "SAME"),
    ((8, 8), 2, 4, (5, 5), (2, 2), "SAME"),
    ((9, 6), 3, 2, (2, 3), (2, 1), ((1, 2), (0, 1))),
]


def _x(seed, hw, ch, n=2):
    shape = (n,) + tuple(hw) + (ch,)
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _params(module, x, seed):
    """Random params of ``module`` from NumPy (shapes by eval_shape: no RNG compile)."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), jnp.float32), shapes
    )


def _naive_local(x, kernel, bias, patch, strides, pads):
    """Reference: an explicit loop over units in NumPy."""
    x = np.pad(np.asarray(x), ((0, 0), pads[0], pads[1], (0, 0)))
    out_h, out_w, _, f = kernel.shape
    y = np.zeros((x.shape[0], out_h, out_w, f), np.float64)
    for i in range(out_h):
        for j in range(out_w):
            r, c = i * strides[0], j * strides[1]
            p = x[:, r : r + patch[0], c : c + patch[1], :].reshape(x.shape[0], -1)
            y[:, i, j] = p @ np.asarray(kernel[i, j], np.float64)
    return y + (0.0 if bias is None else np.asarray(bias))


@pytest.mark.parametrize("hw,ch,f,patch,strides,padding", CONFIGS)
@pytest.mark.parametrize("bias", ["unit", "map", None])
def test_local_layer_matches_per_unit_loop(hw, ch, f, patch, strides, padding, bias):
    layer = LocallyConnected2D(f, patch, strides, padding, bias)
    x = _x(0, hw, ch)
    params = _params(layer, x, 1)
    out_hw = output_size(hw, patch, strides, padding)
    chex.assert_shape(params["kernel"], out_hw + (patch[0] * patch[1] * ch, f))
    if bias == "unit":
        chex.assert_shape(params["bias"], out_hw + (f,))
    elif bias == "map":
        chex.assert_shape(params["bias"], (f,))
    else:
        assert "bias" not in params
    y = layer.apply({"params": params}, x)
    chex.assert_shape(y, (2,) + out_hw + (f,))
    pads = explicit_padding(hw, patch, strides, padding)
    ref = _naive_local(x, params["kernel"], params.get("bias"), patch, strides, pads)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-5)


def test_local_kernel_init_uses_patch_fan_in():
    layer = LocallyConnected2D(64, (5, 5), (1, 1), "VALID")
    key = jax.random.key(0, impl="rbg")  # rbg keys compile fast on XLA:CPU
    params = layer.init(key, jnp.zeros((1, 20, 20, 4)))["params"]
    std = float(jnp.std(params["kernel"]))
    assert abs(std - (1.0 / 100) ** 0.5) < 0.01  # fan-in = 5*5*4, not 16*16*100


def test_local_layer_rejects_bad_configs():
    x = jnp.zeros((1, 8, 8, 1))
    with pytest.raises(ValueError, match="NHWC"):
        LocallyConnected2D(2).init(jax.random.key(0), jnp.zeros((8, 8, 1)))
    with pytest.raises(ValueError, match="bias"):
        LocallyConnected2D(2, bias="row").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="padding"):
        LocallyConnected2D(2, padding="FULL").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="does not fit"):
        LocallyConnected2D(2, (9, 9)).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="strides"):
        LocallyConnected2D(2, strides=0).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="features"):
        LocallyConnected2D(0).init(jax.random.key(0), x)


# ----------------------------------------------------------------------------- sharing


class Stack(nn.Module):
    """A locally connected layer followed by a dense readout (names as in a real net)."""

    features: int
    patch: tuple
    strides: tuple
    padding: object

    @nn.compact
    def __call__(self, x):
        h = LocallyConnected2D(self.features, self.patch, self.strides, self.padding, name="L")(x)
        return nn.Dense(3, name="out")(jnp.tanh(h).reshape((x.shape[0], -1)))


class ConvolutionSharingTest(parameterized.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*CONFIGS)
    def test_shared_local_layer_is_nn_conv(self, hw, ch, f, patch, strides, padding):
        """The shared locally connected layer computes nn.Conv's function with the same kernel."""
        x = _x(0, hw, ch)
        conv = nn.Conv(f, patch, strides, padding=padding)
        conv_params = _params(conv, x, 1)
        for biases in ("map", "unit"):
            layer = LocallyConnected2D(f, patch, strides, padding, "unit")
            params = {"L": _params(layer, x, 2)}
            t = convolution("^L$", biases=biases)
            state = t.init(jax.random.key(3), params)
            inner = dict(state.theta["inner"])
            inner["L/kernel"] = conv_params["kernel"].reshape(-1, f)
            out_hw = output_size(hw, patch, strides, padding)
            inner["L/bias"] = (
                conv_params["bias"]
                if biases == "map"
                else jnp.broadcast_to(conv_params["bias"], out_hw + (f,))
            )
            state = SharedParams({"rest": state.theta["rest"], "inner": inner}, state.frozen)

            @self.variant
            def shared_forward(theta, x):
                w = t.apply(SharedParams(theta, state.frozen))
                return layer.apply({"params": w["L"]}, x)

            y = shared_forward(state.theta, x)
            y_conv = conv.apply({"params": conv_params}, x)
            chex.assert_trees_all_close(y, y_conv, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gradient_is_sum_over_positions(self):
        """dL/dtheta = sum over positions of dL/dW (LeCun's WST with a copy map)."""
        model = Stack(2, (3, 3), (2, 2), "SAME")
        x = _x(0, (8, 8), 1)
        params = _params(model, x, 1)
        t = convolution("^L$", biases="map")
        state = t.init(jax.random.key(2), params)

        def loss_w(w):
            return jnp.sum(model.apply({"params": w}, x) ** 2)

        loss_theta = lambda th: loss_w(t.apply(SharedParams(th, state.frozen)))
        grad_theta = self.variant(jax.grad(loss_theta))(state.theta)
        grad_w = jax.grad(loss_w)(t.apply(state))
        chex.assert_trees_all_close(
            grad_theta["inner"]["L/kernel"], grad_w["L"]["kernel"].sum((0, 1)), rtol=1e-5, atol=1e-6
        )
        chex.assert_trees_all_close(
            grad_theta["inner"]["L/bias"], grad_w["L"]["bias"].sum((0, 1)), rtol=1e-5, atol=1e-6
        )
        chex.assert_trees_all_close(grad_theta["rest"]["out"], grad_w["out"], rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_vmap_over_stacked_kernels(self):
        model = Stack(2, (3, 3), (1, 1), "VALID")
        x = _x(0, (6, 6), 1)
        t = convolution("^L$")
        stacked = [t.init(jax.random.key(0), _params(model, x, s)) for s in range(3)]
        states = jax.tree.map(lambda *a: jnp.stack(a), *stacked)
        apply = lambda th: t.apply(SharedParams(th, states.frozen))
        ws = self.variant(jax.vmap(apply))(states.theta)
        chex.assert_shape(ws["L"]["kernel"], (3, 4, 4, 9, 2))
        for s in range(3):
            one = t.apply(SharedParams(jax.tree.map(lambda a: a[s], states.theta), states.frozen))
            chex.assert_trees_all_close(jax.tree.map(lambda a: a[s], ws), one)


def test_broadcast_positions_custom_vjp_matches_autodiff():
    rng = np.random.default_rng(0)
    shared = jnp.asarray(rng.standard_normal((6, 2)), jnp.float32)
    weights = jnp.asarray(rng.standard_normal((3, 4, 6, 2)), jnp.float32)

    def f(s):
        return jnp.sum(jnp.sin(broadcast_positions(s, (3, 4)) * weights))

    def f_autodiff(s):
        return jnp.sum(jnp.sin(jnp.broadcast_to(s, (3, 4) + s.shape) * weights))

    check_grads(f, (shared,), order=2, modes=("rev",))
    chex.assert_trees_all_close(
        jax.grad(f)(shared), jax.grad(f_autodiff)(shared), rtol=1e-5, atol=1e-6
    )
    chex.assert_trees_all_close(
        jax.jit(jax.vmap(jax.grad(f)))(jnp.stack([shared, 2 * shared])),
        jax.vmap(jax.grad(f_autodiff))(jnp.stack([shared, 2 * shared])),
        rtol=1e-5,
        atol=1e-6,
    )


def test_transform_gradients_check_against_finite_differences():
    model = Stack(2, (3, 3), (2, 2), "SAME")
    x = _x(0, (6, 6), 2)
    params = _params(model, x, 1)
    t = convolution("^L$", biases="map")
    state = t.init(jax.random.key(2), params)

    @jax.jit
    def loss(theta):
        return jnp.sum(model.apply({"params": t.apply(SharedParams(theta, state.frozen))}, x) ** 2)

    check_grads(loss, (state.theta,), order=1, modes=("rev",), atol=2e-2, rtol=2e-2)


def test_counts_and_initial_values():
    model = Stack(3, (3, 3), (1, 1), "VALID")
    x = jnp.zeros((1, 6, 6, 2))
    params = _params(model, x, 1)
    dense = 4 * 4 * 3 * 3 * 2 * 3 + 4 * 4 * 3 + (4 * 4 * 3 * 3 + 3)  # L kernel, L bias, out
    assert count_params(params) == dense
    for biases, bias_free in (("unit", 4 * 4 * 3), ("map", 3)):
        for init in ("first", "mean"):
            t = convolution("^L$", biases=biases, init=init)
            state = t.init(jax.random.key(0), params)
            assert free_params(state) == 18 * 3 + bias_free + 4 * 4 * 3 * 3 + 3
            assert virtual_params(t, state) == dense
            k = state.theta["inner"]["L/kernel"]
            kernel = params["L"]["kernel"]
            want = kernel[0, 0] if init == "first" else kernel.mean((0, 1))
            chex.assert_trees_all_close(k, want)
            w = t.apply(state)
            chex.assert_trees_all_close(w["L"]["kernel"], jnp.broadcast_to(k, (4, 4, 18, 3)))
            chex.assert_trees_all_close(w["out"], params["out"])


def test_transform_rejects_bad_arguments():
    params = {"L": {"kernel": jnp.zeros((2, 2, 9, 1)), "bias": jnp.zeros((2, 2, 1))}}
    with pytest.raises(ValueError, match="biases"):
        convolution("L", biases="row")
    with pytest.raises(ValueError, match="init"):
        convolution("L", init="median")
    with pytest.raises(ValueError, match="matched no leaf"):
        convolution("^H1$").init(jax.random.key(0), params)
    with pytest.raises(ValueError, match="out_h, out_w, patch, features"):
        convolution("^C$").init(jax.random.key(0), {"C": {"kernel": jnp.zeros((9, 1))}})
