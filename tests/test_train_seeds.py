"""Many seeds trained together (wsjax.train.seeds): each seed ends where it would alone."""

import chex
import jax
import numpy as np
import optax
import pytest

from wsjax.train import fit
from wsjax.train.seeds import fit_seeds, init_seeds, seed_errors, seed_keys, stack_seeds


def _split(seed, n=48):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)


def _init(key):
    k1, k2 = jax.random.split(key)
    return {"w": 0.1 * jax.random.normal(k1, (6, 3)), "b": 0.1 * jax.random.normal(k2, (3,))}


def _logits(theta, x):
    return x @ theta["w"] + theta["b"]


def _loss(theta, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(_logits(theta, x), y).mean()


def test_stack_seeds_puts_examples_first_and_checks_shapes():
    x, y = stack_seeds([_split(0), _split(1), _split(2)])
    chex.assert_shape((x, y), ((48, 3, 6), (48, 3)))
    np.testing.assert_array_equal(x[:, 1], _split(1)[0])
    with pytest.raises(ValueError, match="differ in shape"):
        stack_seeds([_split(0), _split(1, n=40)])
    with pytest.raises(ValueError):
        stack_seeds([])


def test_init_seeds_is_one_init_per_seed_key():
    thetas = init_seeds(_init, [3, 7])
    chex.assert_shape(thetas["w"], (2, 6, 3))
    assert not np.allclose(thetas["w"][0], thetas["w"][1])
    chex.assert_trees_all_equal(init_seeds(_init, [3, 7]), thetas)  # a function of the seeds
    # threefry keys are batch-invariant: seed s gets init(key(s)); rbg's draws depend on the batch
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[1], init_seeds(_init, [3, 7], impl="threefry2x32")),
                                _init(jax.random.key(7)))
    assert jax.random.key_impl(seed_keys([0])) == jax.random.key_impl(jax.random.key(0, impl="rbg"))


def test_each_seed_trains_as_it_would_alone():
    seeds = [0, 1]
    train = stack_seeds([_split(s) for s in seeds])
    thetas = init_seeds(_init, seeds)
    kw = dict(epochs=3, batch_size=8, seed=5, progress=False, loop="python")
    together = fit_seeds(_loss, thetas, optax.adam(1e-2), train, **kw)
    for i, s in enumerate(seeds):
        alone = fit(_loss, jax.tree.map(lambda a: a[i], thetas), optax.adam(1e-2), _split(s), **kw)
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], together.theta), alone.theta, rtol=1e-5, atol=1e-6)
        assert alone.history[-1]["train_loss"] > 0
    total = sum(fit(_loss, jax.tree.map(lambda a: a[i], thetas), optax.adam(1e-2), _split(s), **kw)
                .history[-1]["train_loss"] for i, s in enumerate(seeds))
    np.testing.assert_allclose(together.history[-1]["train_loss"], total, rtol=1e-5)


def test_seed_errors_scores_each_seed_on_its_own_split():
    seeds = [0, 1]
    x, y = stack_seeds([_split(s) for s in seeds])
    thetas = init_seeds(_init, seeds)
    got = seed_errors(_logits, thetas, x, y)
    for i in range(2):
        want = np.mean(np.argmax(_logits(jax.tree.map(lambda a: a[i], thetas), x[:, i]), -1) != y[:, i])
        assert got[i] == pytest.approx(want)
    chex.assert_shape(got, (2,))
