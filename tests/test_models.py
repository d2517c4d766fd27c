import chex
import jax
import jax.numpy as jnp
import pytest

from wsjax.models import MLP, LeNet5, LeNet300100
from wsjax.sharing import count_params


@pytest.mark.parametrize(
    "model, expected",
    [
        # Han et al. 2016, Table 1: 1070 KB and 1720 KB of float32.
        (LeNet300100(), 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10),
        (LeNet5(), 20 * 25 + 20 + 50 * 20 * 25 + 50 + 800 * 500 + 500 + 500 * 10 + 10),
    ],
)
def test_lenet_parameter_counts(model, expected):
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    assert count_params(params) == expected
    assert expected in (266_610, 431_080)
    logits = model.apply({"params": params}, jnp.zeros((3, 28, 28, 1)))
    chex.assert_shape(logits, (3, 10))


def test_mlp_widths():
    params = MLP((5, 3)).init(jax.random.key(0), jnp.zeros((2, 4)))["params"]
    assert jax.tree.map(jnp.shape, params) == {
        "Dense_0": {"kernel": (4, 5), "bias": (5,)},
        "Dense_1": {"kernel": (5, 3), "bias": (3,)},
    }
