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


@pytest.mark.parametrize("features", [(20, 50, 500), (7, 17, 174), (2, 6, 60), (1, 1, 1)])
def test_lenet5_widths_and_their_parameter_count(features):
    from wsjax.models import lenet5_params

    params = jax.eval_shape(lambda: LeNet5(features=features).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1))))
    assert count_params(params["params"]) == lenet5_params(features)
    assert params["params"]["Conv_1"]["kernel"].shape == (5, 5, features[0], features[1])


def test_lenet5_narrow_widths_bracket_their_target():
    from wsjax.models import equal_size_lenet5, lenet5_params

    for target in (6_735, 13_471, 53_885, 215_540):
        got = lenet5_params(equal_size_lenet5(target))
        assert abs(got - target) < 0.01 * target
    with pytest.raises(ValueError, match="conv channels, conv channels, dense width"):
        LeNet5(features=(20, 50)).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
