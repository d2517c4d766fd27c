"""wsjax.pruning.lottery: the per-round rate schedule, masks that only shrink, rewinding, the
two controls, the in-memory procedure; and the study's on-device early stopping."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wsjax import pruning
from wsjax.models import LeNet300100
from wsjax.pruning import lottery
from wsjax.sharing import flatten_paths, mask_counts

RATES = lottery.LENET300100_RATES


@functools.lru_cache(maxsize=None)
def _init():
    return jax.jit(lambda key: LeNet300100().init(key, jnp.zeros((1, 28, 28, 1)))["params"])


def _params(seed=0):
    """LeNet-300-100-shaped params, drawn with NumPy (no initialiser to compile)."""
    shapes = jax.eval_shape(_init(), jax.random.key(0))
    rng = np.random.default_rng(1000 + seed)
    return jax.tree.map(lambda s: 0.05 * rng.standard_normal(s.shape, np.float32), shapes)


def _trained(seed):
    """Stand-in for a trained net: other values of the same shapes each round."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: np.asarray(a) + 0.05 * rng.standard_normal(a.shape, np.float32), _params(seed))


def test_rate_schedule_exact_per_layer_densities():
    masks = None
    for r in range(1, 8):
        masks = lottery.prune_round(_trained(r), masks, RATES, r)
        for path, (kept, size) in mask_counts(masks).items():
            rate = 0.1 if path == "Dense_2/kernel" else 0.2
            assert kept == size - round((1 - (1 - rate) ** r) * size), (path, r)
            assert abs(kept / size - (1 - rate) ** r) <= 0.5 / size
    assert set(mask_counts(masks)) == {"Dense_0/kernel", "Dense_1/kernel", "Dense_2/kernel"}  # biases stay dense
    assert lottery.sparsity_after(RATES, 0) == {r"^Dense_2/kernel$": 0.0, r"kernel$": 0.0}
    assert lottery.sparsity_after(0.2, 2) == pytest.approx(0.36)
    with pytest.raises(ValueError):
        lottery.sparsity_after(RATES, -1)


def test_masks_only_shrink_and_prune_the_smallest_survivors():
    masks = None
    for r in range(1, 6):
        trained = _trained(100 + r)
        new = lottery.prune_round(trained, masks, RATES, r)
        for path, m in flatten_paths(new).items():
            m = np.asarray(m)
            if masks is not None:
                old = np.asarray(flatten_paths(masks)[path])
                assert not np.any(m & ~old), path  # nothing comes back
                w = np.abs(np.asarray(flatten_paths(trained)[path]))
                removed, kept = old & ~m, m
                assert w[removed].max() <= w[kept].min()  # the smallest survivors went
        masks = new
    assert lottery.prune_round(_trained(105), masks, RATES, 5) is not masks  # pure: a new tree each call
    chex.assert_trees_all_equal(lottery.prune_round(_trained(105), None, RATES, 1),
                                lottery.prune_round(_trained(105), None, RATES, 1))


@pytest.mark.parametrize("target", ["theta_0", "theta_k"])
def test_rewinding_restores_the_target_on_survivors_and_zero_elsewhere(target):
    theta0 = _params(0)
    rewind_to = theta0 if target == "theta_0" else _trained(7)  # theta_k: values after k steps
    masks = lottery.prune_round(_trained(1), None, RATES, 3)
    expected = jax.tree.map(lambda w, m: w if m is None else np.where(m, w, 0.0), rewind_to, masks,
                            is_leaf=lambda x: x is None)
    chex.assert_trees_all_equal(lottery.rewind(rewind_to, masks), expected)
    params, same = lottery.arm("ticket").start(masks, rewind_to, lambda k: _params(99), jax.random.key(3))
    chex.assert_trees_all_equal(params, expected)
    chex.assert_trees_all_equal(same, masks)


def test_random_mask_control_keeps_every_layer_count():
    masks = lottery.prune_round(_trained(1), None, RATES, 4)
    params, rand = lottery.arm("random_mask").start(masks, _params(0), lambda k: _params(99), jax.random.key(5))
    assert mask_counts(rand) == mask_counts(masks)
    assert jax.tree.structure(rand, is_leaf=lambda x: x is None) == jax.tree.structure(masks, is_leaf=lambda x: x is None)
    for path, m in flatten_paths(rand).items():
        assert not np.array_equal(m, flatten_paths(masks)[path])  # other positions
    chex.assert_trees_all_equal(params, lottery.rewind(_params(0), rand))  # the rewound values
    chex.assert_trees_all_equal(lottery.random_masks(masks, jax.random.key(1)), lottery.random_masks(masks, jax.random.key(1)))


def test_reinit_control_keeps_the_mask_and_draws_from_the_same_initialiser():
    init = _init()
    theta0 = init(jax.random.key(0))
    masks = lottery.prune_round(_trained(1), None, RATES, 2)
    key = jax.random.key(11)
    params, same = lottery.arm("reinit").start(masks, theta0, init, key)
    chex.assert_trees_all_equal(same, masks)
    chex.assert_trees_all_equal(params, lottery.rewind(init(jax.random.split(key)[1]), masks))
    for path, w in flatten_paths(params).items():
        w0, m = np.asarray(flatten_paths(theta0)[path]), flatten_paths(masks).get(path)
        if m is None:
            continue
        m = np.asarray(m)
        assert np.all(np.asarray(w)[~m] == 0) and not np.array_equal(np.asarray(w)[m], w0[m])
        assert np.std(np.asarray(w)[m]) == pytest.approx(np.std(w0[m]), rel=0.05)  # same distribution
    with pytest.raises(ValueError, match="unknown lottery arm"):
        lottery.arm("winning")
    assert sorted(lottery.ARMS) == ["random_mask", "reinit", "ticket"]


def test_find_tickets_rewinds_before_every_training():
    theta0, seen = _params(0), []

    def train(params, masks, r):
        seen.append((r, params, masks))
        return _trained(r)

    rounds = lottery.find_tickets(_trained(0), theta0, RATES, train, rounds=3)
    assert [x.round for x in rounds] == [1, 2, 3]
    for (r, params, masks), rec in zip(seen, rounds):
        chex.assert_trees_all_equal(params, lottery.rewind(theta0, masks))
        chex.assert_trees_all_equal(masks, rec.masks)
    assert rounds[0].density == pruning.density(lottery.prune_round(_trained(0), None, RATES, 1))
    assert rounds[0].density > rounds[1].density > rounds[2].density
    chex.assert_trees_all_equal(rounds[2].masks, lottery.prune_round(_trained(2), rounds[1].masks, RATES, 3))


def test_early_stopping_tracks_the_best_loss_accuracy_and_theta_k():
    from wsjax.train import early_stopping as tracking
    # theta climbs 0.5 per step; loss is lowest at 3, accuracy highest at 1
    val_fn = lambda th: ((th["w"] - 3.0) ** 2, -((th["w"] - 1.0) ** 2))
    opt = optax.chain(optax.sgd(0.5), tracking.early_stopping(val_fn, every=2, total=9, snapshot_at=3))
    theta = {"w": jnp.zeros(())}
    state = opt.init(theta)
    step = jax.jit(lambda th, st: (lambda u, s: (optax.apply_updates(th, u), s))(*opt.update({"w": -jnp.ones(())}, st, th)))
    for _ in range(9):
        theta, state = step(theta, state)
    tr = state[1]
    assert list(tracking.eval_steps(2, 9)) == [2, 4, 6, 8, 9]
    assert tr.best_step.tolist() == [6, 2]  # w = 3.0 after 6 steps, w = 1.0 after 2
    assert float(tr.best_theta[0]["w"]) == 3.0 and float(tr.best_theta[1]["w"]) == 1.0
    assert float(tr.snapshot["w"]) == 1.5 and int(tr.count) == 9
    np.testing.assert_allclose(tr.curve[:, 0], [(w - 3) ** 2 for w in (1.0, 2.0, 3.0, 4.0, 4.5)])
    assert tracking.early_stopping(val_fn, 2, 9).init(theta).snapshot is None
    with pytest.raises(ValueError):
        tracking.early_stopping(val_fn, 2, 9, snapshot_at=10)
