"""Low-rank factorisation W = U @ V (wsjax.sharing.lowrank), the LRD baseline."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from wsjax.models import MLP
from wsjax.sharing import bind, count_params, free_params, virtual_params
from wsjax.sharing.lowrank import (
    low_rank,
    low_rank_leaves,
    rank_for_budget,
    rank_for_compression,
    svd_factors,
)


def test_svd_factors_give_the_best_rank_r_approximation():
    w = jax.random.normal(jax.random.key(0), (12, 9))
    u, v = svd_factors(w, 3)
    chex.assert_shape((u, v), ((12, 3), (3, 9)))
    a, s, bt = np.linalg.svd(np.asarray(w, np.float64), full_matrices=False)
    best = (a[:, :3] * s[:3]) @ bt[:3]
    np.testing.assert_allclose(np.asarray(u @ v), best, atol=1e-5)
    # Balanced split: both factors carry sqrt of the singular values.
    np.testing.assert_allclose(np.linalg.norm(np.asarray(u), axis=0), np.sqrt(s[:3]), rtol=1e-5)
    u, v = svd_factors(w, 9)
    np.testing.assert_allclose(np.asarray(u @ v), np.asarray(w), atol=1e-5)


def test_rank_for_budget_is_the_largest_rank_that_fits():
    shapes = [(784, 1000), (1000, 10)]
    r = rank_for_budget(shapes, 99250)
    cost = lambda r: sum(min(r, *s) * sum(s) for s in shapes)  # noqa: E731
    assert r == 49 and cost(49) <= 99250 < cost(50)
    assert rank_for_budget(shapes, 12406) == 4  # both layers at rank 4
    assert rank_for_budget(shapes, 10) == 1
    assert rank_for_compression(1 / 8, (784, 1000)) == round(784000 / 8 / 1784)


class LowRankTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_counts_and_shapes(self):
        params = MLP((40, 30, 10)).init(jax.random.key(0), jnp.zeros((1, 20)))["params"]
        t = low_rank(rank=5)
        s = t.init(jax.random.key(1), params)
        assert free_params(s) == 5 * (20 + 40) + 5 * (40 + 30) + 5 * (30 + 10) + 40 + 30 + 10
        assert virtual_params(t, s) == count_params(params)
        out = self.variant(bind(t, s))(s.theta)
        chex.assert_trees_all_equal_shapes(out, params)
        np.testing.assert_allclose(
            out["Dense_0"]["bias"], params["Dense_0"]["bias"]
        )

    def test_compression_picks_one_common_rank(self):
        params = MLP((200, 10)).init(jax.random.key(0), jnp.zeros((1, 100)))["params"]
        # 22,000 weights; at 1/16 the budget 1375 buys rank 2 for both (2 * 300 + 2 * 210).
        s = low_rank(compression=1 / 16).init(jax.random.key(1), params)
        shapes = {p: x["u"].shape[1] for p, x in s.theta["inner"].items()}
        assert shapes == {"Dense_0/kernel": 2, "Dense_1/kernel": 2}
        # At 1/2 (11,000): the output layer is capped at its 10 columns, 29 * 300 + 2100 fits.
        s = low_rank(compression=1 / 2).init(jax.random.key(1), params)
        shapes = {p: x["u"].shape[1] for p, x in s.theta["inner"].items()}
        assert shapes == {"Dense_0/kernel": 29, "Dense_1/kernel": 10}
        assert free_params(s) == 29 * 300 + 10 * 210 + 210


class TinyCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(20, (5, 5), padding="VALID", name="Conv_0")(x))
        x = nn.Conv(50, (5, 5), padding="VALID", name="Conv_1")(x)
        return nn.Dense(3, name="Dense_0")(x.reshape((x.shape[0], -1)))


def test_conv_kernels_and_per_path_ranks():
    params = TinyCNN().init(jax.random.key(0), jnp.zeros((1, 9, 9, 1)))["params"]
    ranks = {"Conv_1/kernel": 8}
    t = low_rank(rank=ranks, include=r"Conv_1/kernel$")
    s = t.init(jax.random.key(1), params)
    chex.assert_shape(s.theta["inner"]["Conv_1/kernel"]["u"], (5 * 5 * 20, 8))
    out = t.apply(s)
    chex.assert_shape(out["Conv_1"]["kernel"], (5, 5, 20, 50))


def test_gradients_through_the_factors():
    w = jax.random.normal(jax.random.key(0), (6, 5))
    t = low_rank_leaves(2)
    s = t.init(jax.random.key(1), {"w": w})
    f = lambda th: jnp.sin(t.apply(s._replace(theta=th))["w"])  # noqa: E731
    check_grads(f, (s.theta,), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize(
    "call",
    [
        lambda: low_rank(),
        lambda: low_rank(rank=2, compression=0.5),
        lambda: low_rank(compression=0.0),
        lambda: low_rank_leaves(0).init(jax.random.key(0), {"w": jnp.ones((3, 3))}),
        lambda: low_rank_leaves(2).init(jax.random.key(0), {"b": jnp.ones((3,))}),
        lambda: low_rank_leaves({"x": 2}).init(jax.random.key(0), {"w": jnp.ones((3, 3))}),
    ],
)
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
