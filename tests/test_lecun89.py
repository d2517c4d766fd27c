"""LeCun (1989) Net-1..Net-5: exact link/free counts, sharing structure, conv equivalence, the
sum-of-squares loss; the 16x16 data."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsjax.models.lecun89 import (
    INPUT_SHAPE,
    LocalNet,
    architecture,
    counts,
    free_count,
    init_net,
    lecun89_net,
    link_count,
    logits_fn,
    net_name,
    sum_of_squares,
)
from wsjax.sharing import SharedParams

#: LeCun 1989, Table 1: (links, free weights) of Net-1 .. Net-5.
PAPER_COUNTS = {1: (2570, 2570), 2: (3214, 3214), 3: (1226, 1226), 4: (2266, 1132), 5: (5194, 1060)}


def _x(n=4, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(size=(n,) + INPUT_SHAPE), jnp.float32)


def _random_state(n, seed=0):
    """Net-n's model, transform and a state with random NumPy values (no RNG compile)."""
    model, transform = lecun89_net(n)
    shapes = jax.eval_shape(
        lambda k: transform.init(k, model.init(k, jnp.zeros((1,) + INPUT_SHAPE))["params"]),
        jax.random.key(0),
    )
    rng = np.random.default_rng(seed)
    draw = lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), jnp.float32)
    theta = jax.tree.map(draw, shapes.theta)
    return model, transform, SharedParams(theta, shapes.frozen)


@pytest.mark.parametrize("n", sorted(PAPER_COUNTS))
def test_links_and_free_parameters_are_the_papers(n):
    assert counts(n) == PAPER_COUNTS[n]
    model, transform, state = _random_state(n)
    assert (link_count(transform.apply(state)), free_count(state)) == PAPER_COUNTS[n]


@pytest.mark.parametrize("n, links", [(4, 2266), (5, 5194)])
def test_sharing_control_keeps_the_architecture_and_frees_every_link(n, links):
    assert counts(n, shared=False) == (links, links)
    model, transform = lecun89_net(n, shared=False)
    shared_model, _ = lecun89_net(n)
    assert model == shared_model
    params = model.init(jax.random.key(0), jnp.zeros((1,) + INPUT_SHAPE))["params"]
    chex.assert_trees_all_equal(transform.apply(transform.init(jax.random.key(1), params)), params)


def test_unshared_nets_use_the_identity_and_shared_nets_share_h1():
    for n in (1, 2, 3):
        _, transform, state = _random_state(n)
        assert transform.apply(state) is state.theta
        assert free_count(state) == link_count(transform.apply(state))
    for n, shared_h2 in ((4, False), (5, True)):
        _, transform, state = _random_state(n)
        inner = state.theta["inner"]
        chex.assert_shape(inner["H1/kernel"], (9, 2))
        chex.assert_shape(inner["H1/bias"], (8, 8, 2))  # one bias per unit
        params = transform.apply(state)
        k1 = params["H1"]["kernel"]
        chex.assert_trees_all_equal(k1, jnp.broadcast_to(k1[0, 0], k1.shape))
        k2 = params["H2"]["kernel"]
        chex.assert_shape(k2, (4, 4, 50, 4 if shared_h2 else 1))
        assert bool(jnp.all(k2 == k2[0, 0])) == shared_h2
        if shared_h2:
            chex.assert_shape(inner["H2/kernel"], (50, 4))
            chex.assert_shape(inner["H2/bias"], (4, 4, 4))


@pytest.mark.parametrize("n", sorted(PAPER_COUNTS))
def test_forward_and_gradients(n):
    model, transform, state = _random_state(n)

    @jax.jit
    def loss(theta, x):
        z = model.apply({"params": transform.apply(SharedParams(theta, state.frozen))}, x)
        return jnp.sum(jax.nn.sigmoid(z) ** 2), z

    (value, z), g = jax.value_and_grad(loss, has_aux=True)(state.theta, _x())
    chex.assert_shape(z, (4, 10))
    chex.assert_tree_all_finite((value, g))
    chex.assert_trees_all_equal_shapes(g, state.theta)
    assert all(float(jnp.abs(leaf).sum()) > 0 for leaf in jax.tree.leaves(g))


def test_net5_is_a_convolutional_net():
    """Net-5 (locally connected + sharing) equals the same net built from nn.Conv layers."""
    model, transform, state = _random_state(5)
    inner, rest = state.theta["inner"], state.theta["rest"]
    x = _x()

    def conv(h, kernel, bias_per_unit, patch):
        k = kernel.reshape(patch + (h.shape[-1], kernel.shape[-1]))
        layer = nn.Conv(k.shape[-1], patch, (2, 2), padding="SAME", use_bias=False)
        y = layer.apply({"params": {"kernel": k}}, h)
        return jnp.tanh(y + bias_per_unit)

    h = conv(x, inner["H1/kernel"], inner["H1/bias"], (3, 3))
    h = conv(h, inner["H2/kernel"], inner["H2/bias"], (5, 5))
    want = h.reshape(4, -1) @ rest["out"]["kernel"] + rest["out"]["bias"]
    forward = lambda th: model.apply({"params": transform.apply(SharedParams(th, state.frozen))}, x)
    got = jax.jit(forward)(state.theta)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-5)


def test_init_net_draws_a_real_initialisation():
    model, transform, state = init_net(4, jax.random.key(0, impl="rbg"))  # rbg: fast compile
    assert isinstance(model, LocalNet) and (model.h1_maps, model.h2_maps) == (2, 1)
    assert free_count(state) == 1132
    assert float(jnp.std(state.theta["inner"]["H1/kernel"])) > 0.1  # fan-in 9: std ~ 1/3
    chex.assert_trees_all_equal(state.theta["inner"]["H1/bias"], jnp.zeros((8, 8, 2)))


@pytest.mark.parametrize("bad", [0, 6, True, "3", 2.0])
def test_unknown_net_raises(bad):
    with pytest.raises(ValueError, match="Net-1 .. Net-5"):
        lecun89_net(bad)


def test_lecun89_data_puts_each_drawing_at_four_horizontal_positions():
    from wsjax import data
    from wsjax.data.lecun89 import GLYPH_WIDTH

    (xt, yt), (xs, ys) = data.load("lecun89", "train", seed=3), data.load("lecun89", "test", seed=3)
    chex.assert_shape(xt, (320, 16, 16, 1))
    chex.assert_shape(xs, (160, 16, 16, 1))
    np.testing.assert_array_equal(np.bincount(yt), np.full(10, 32))
    np.testing.assert_array_equal(np.bincount(ys), np.full(10, 16))
    x, y = np.concatenate([xt, xs])[..., 0], np.concatenate([yt, ys])
    glyphs = {}  # (label, drawing without its blank columns) -> its leftmost inked columns
    for image, label in zip(x, y):
        cols = np.flatnonzero(image.any(axis=0))
        assert cols.max() - cols.min() < GLYPH_WIDTH
        glyphs.setdefault(_drawing(image, label), []).append(int(cols.min()))
    # 12 drawings per digit, each at 4 consecutive horizontal positions: 480 images
    assert len(glyphs) == 120
    for lefts in glyphs.values():
        assert sorted(lefts) == list(range(min(lefts), min(lefts) + 4))
    other, _ = data.load("lecun89", "train", seed=4)
    assert not np.array_equal(other, xt)


def _drawing(image, label):
    """A placed drawing's identity: its label and its pixels without the blank columns."""
    cols = np.flatnonzero(image.any(axis=0))
    return int(label), image[:, cols.min():cols.max() + 1].tobytes()


@pytest.mark.parametrize("name, seen_at_least, seen_at_most", [("lecun89", 0.9, 1.0), ("lecun89_new_drawings", 0.0, 0.0)])
def test_how_many_test_drawings_the_training_set_holds(name, seen_at_least, seen_at_most):
    from wsjax import data

    (xt, yt), (xs, ys) = data.load(name, "train", seed=5), data.load(name, "test", seed=5)
    train = {_drawing(im[..., 0], lab) for im, lab in zip(xt, yt)}
    seen = np.mean([_drawing(im[..., 0], lab) in train for im, lab in zip(xs, ys)])
    assert seen_at_least <= seen <= seen_at_most, seen
    np.testing.assert_array_equal(np.bincount(ys), np.full(10, 16))


def test_lecun89_splits_reject_an_unknown_split():
    from wsjax.data import lecun89

    for split_fn in (lecun89.positions_split, lecun89.centred_split):
        with pytest.raises(ValueError, match="split"):
            split_fn("val", 0)
    x, _ = lecun89.centred_split("train", 0)
    with pytest.raises(ValueError):
        x[0, 0, 0, 0] = 1.0  # read-only, like every data set


def test_sum_of_squares_is_lecuns_loss():
    z = jnp.asarray([[0.0, 2.0, -1.0], [1.0, -3.0, 0.5]])
    labels = jnp.asarray([1, 0])
    s = 1 / (1 + np.exp(-np.asarray(z, np.float64)))
    t = np.eye(3)[[1, 0]]
    want = 0.5 * np.mean(np.sum((s - t) ** 2, axis=-1))
    np.testing.assert_allclose(float(sum_of_squares(z, labels)), want, rtol=1e-6)
    g = jax.grad(sum_of_squares)(z, labels)  # d/dz = (s - t) s (1 - s) / batch
    np.testing.assert_allclose(np.asarray(g), (s - t) * s * (1 - s) / 2, rtol=1e-5, atol=1e-7)
    assert float(sum_of_squares(jnp.asarray([[-30.0, 30.0]]), jnp.asarray([1]))) < 1e-12


def test_logits_fn_applies_the_transform_then_the_model():
    for n in (3, 5):
        model, transform, state = _random_state(n)
        x = _x()
        want = model.apply({"params": transform.apply(state)}, x)
        chex.assert_trees_all_close(logits_fn(n, state.frozen)(state.theta, x), want)


def test_names_and_architectures():
    assert [net_name(n) for n in range(1, 6)] == [f"Net-{n}" for n in range(1, 6)]
    assert net_name(3, shared=False) == "Net-3" and net_name(5, shared=False) == "Net-5 (no sharing)"
    assert architecture(5).startswith("2 shared") and architecture(5, shared=False).startswith("2 local")
