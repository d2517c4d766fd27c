"""Low-bit weights (wsjax.sharing.lowbit) and their 'lowbit' codec: binary, ternary, k-bit."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from test_codecs import edited
from wsjax import compress, storage
from wsjax.models import MLP, LeNet300100
from wsjax.sharing import (SharedParams, Static, count_params, flatten_paths, free_params,
                           virtual_params)
from wsjax.sharing import lowbit as lb
from wsjax.storage import StorageError, codecs
from wsjax.storage.codecs import lowbit as codec

THETA = np.array([[0.5, -0.2], [0.0, -1.5], [0.3, 0.8]], np.float32)


SPECS = {
    "binary": lb.make_spec("binary"),
    "binary_layer": lb.make_spec("binary", scale="layer"),
    "binary_channel": lb.make_spec("binary", scale="channel"),
    "binary_stochastic": lb.make_spec("binary", scale="layer", stochastic=True),
    "ternary": lb.make_spec("ternary"),
    "ternary_channel": lb.make_spec("ternary", scale="channel"),
    "ternary_none": lb.make_spec("ternary", scale="none", threshold=0.5),
    "uniform2": lb.make_spec("uniform", bits=2),
    "uniform5_channel": lb.make_spec("uniform", bits=5, scale="channel"),
    "uniform8": lb.make_spec("uniform", bits=8),
    "lsq3_channel": lb.make_spec("lsq", bits=3, scale="channel"),
    "lsq8": lb.make_spec("lsq", bits=8),
}


def leaf_state(spec, theta=THETA, key=1):
    t = lb.lowbit_leaves(spec)
    return t, t.init(jax.random.key(key), {"w": jnp.asarray(theta)})


def forward(spec, theta=THETA):
    t, s = leaf_state(spec, theta)
    return np.asarray(t.apply(s)["w"])


# ----------------------------------------------------------------------------- forward values


def test_binary_forward_values():
    signs = np.array([[1, -1], [1, -1], [1, 1]], np.float32)  # sgn(0) = +1
    np.testing.assert_array_equal(forward(lb.make_spec("binary")), signs)
    alpha = (0.5 + 0.2 + 0.0 + 1.5 + 0.3 + 0.8) / 6
    np.testing.assert_allclose(forward(lb.make_spec("binary", scale="layer")), alpha * signs,
                               rtol=1e-6)
    per_channel = np.array([(0.5 + 0.0 + 0.3) / 3, (0.2 + 1.5 + 0.8) / 3])
    np.testing.assert_allclose(forward(lb.make_spec("binary", scale="channel")),
                               per_channel * signs, rtol=1e-6)
    # -0.0 is >= 0: +1 as well
    assert forward(lb.make_spec("binary"), np.array([-0.0, -1e-30], np.float32)).tolist() == [1, -1]


def test_ternary_forward_values():
    # per layer: mean|theta| = 0.55, delta = 0.385 keeps 0.5, -1.5, 0.8
    t = np.array([[1, 0], [0, -1], [0, 1]], np.float32)
    np.testing.assert_allclose(forward(lb.make_spec("ternary")), (0.5 + 1.5 + 0.8) / 3 * t,
                               rtol=1e-6)
    np.testing.assert_array_equal(forward(lb.make_spec("ternary", scale="none")), t)
    # per channel: delta_0 = 0.7 * 0.8 / 3 keeps 0.5, 0.3; delta_1 = 0.7 * 2.5 / 3 keeps -1.5, 0.8
    t = np.array([[1, 0], [0, -1], [1, 1]], np.float32)
    np.testing.assert_allclose(forward(lb.make_spec("ternary", scale="channel")),
                               np.array([0.4, 1.15]) * t, rtol=1e-6)
    # a threshold of 0.5 (delta = 0.275) keeps 0.3 too
    w = forward(lb.make_spec("ternary", threshold=0.5))
    np.testing.assert_allclose(w, (0.5 + 0.3 + 1.5 + 0.8) / 4 * np.array([[1, 0], [0, -1], [1, 1]]),
                               rtol=1e-6)


def test_uniform_forward_values():
    # k = 2: codes in [-2, 1], s = 1.5 / 1
    np.testing.assert_allclose(forward(lb.make_spec("uniform", bits=2)),
                               [[0, 0], [0, -1.5], [0, 1.5]], rtol=1e-6)
    # k = 3 per channel: s = (0.5 / 3, 1.5 / 3); codes (3, 0, 2) and (0, -3, 2)
    np.testing.assert_allclose(forward(lb.make_spec("uniform", bits=3, scale="channel")),
                               [[0.5, 0.0], [0.0, -1.5], [1 / 3, 1.0]], rtol=1e-6)
    # rounding is half to even, and a zero code is +0, never -0
    w = forward(lb.make_spec("uniform", bits=4), np.array([3.5, 2.5, -0.5, -0.2, 7.0], np.float32))
    np.testing.assert_array_equal(w, [4, 2, 0, 0, 7])
    assert not np.signbit(w).any()
    # LSQ's step at init: 2 mean|theta| / sqrt(Qp)
    _, s = leaf_state(lb.make_spec("lsq", bits=4))
    np.testing.assert_allclose(s.theta["w"]["step"], 2 * 0.55 / math.sqrt(7), rtol=1e-6)


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("scale", ["layer", "channel"])
def test_k_bit_codes_are_in_range_and_weights_on_the_grid(bits, scale):
    theta = np.random.default_rng(bits).normal(0, 0.3, (12, 13)).astype(np.float32)
    t, s = leaf_state(lb.make_spec("uniform", bits=bits, scale=scale), theta)
    w = np.asarray(t.apply(s)["w"])
    qn, qp = 2 ** (bits - 1), 2 ** (bits - 1) - 1
    axes = None if scale == "layer" else 0
    step = np.abs(theta).max(axis=axes) / qp
    np.testing.assert_allclose(s.frozen["w"].scale, step, rtol=1e-6)
    q = w / np.asarray(s.frozen["w"].scale)
    np.testing.assert_allclose(q, np.round(q), atol=1e-4)  # on the grid
    assert q.min() >= -qn - 1e-4 and q.max() <= qp + 1e-4
    assert np.all(np.abs(w - theta) <= step / 2 * (1 + 1e-5))  # nothing clipped: max-based step
    # the codes the codec stores are q + Qn, in [0, 2**bits)
    symbols, _ = lb.quantizers.codes_and_scale(s.frozen["w"].spec.value, s.theta["w"],
                                               s.frozen["w"].scale)
    np.testing.assert_array_equal(np.asarray(symbols), np.round(q).astype(int) + qn)
    assert len(np.unique(symbols)) <= 2**bits


# ----------------------------------------------------------------------------- gradients

G = np.random.default_rng(7).normal(size=(5, 4)).astype(np.float32)
LATENT = np.array([[0.5, -0.2, 0.0, 1.0], [-1.0, 1.5, -2.0, 0.7], [0.05, -0.9, 1.2, -0.3],
                   [0.4, 0.4, -0.6, 0.1], [-1.1, 0.25, 0.6, -0.05]], np.float32)


def grad_of(spec, theta=LATENT, scale=None):
    t, s = leaf_state(spec, theta)
    frozen = s.frozen if scale is None else {"w": s.frozen["w"]._replace(scale=jnp.asarray(scale))}
    loss = lambda th: jnp.sum(t.apply(SharedParams(th, frozen))["w"] * G)  # noqa: E731
    return jax.grad(loss)(s.theta)["w"], s


@pytest.mark.parametrize("scale", ["none", "layer", "channel"])
def test_binary_straight_through_gradient_is_the_documented_formula(scale):
    d, _ = grad_of(lb.make_spec("binary", scale=scale))
    x = LATENT.astype(np.float64)
    b = np.where(x >= 0, 1.0, -1.0)
    gate = np.abs(x) <= 1
    if scale == "none":
        want = G * gate
    else:
        axes = None if scale == "layer" else 0
        alpha = np.abs(x).mean(axis=axes)
        n = x.size if scale == "layer" else x.shape[0]
        want = alpha * G * gate + b / n * (G * b).sum(axis=axes)
    np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-6)
    assert d[1, 2] != 0 or scale == "none"  # |theta| > 1: only alpha's own gradient is left


def test_binary_gradient_with_a_given_scale_has_no_scale_term():
    d, _ = grad_of(lb.make_spec("binary", scale="layer"), scale=np.float32(0.3))
    np.testing.assert_allclose(d, 0.3 * G * (np.abs(LATENT) <= 1), rtol=1e-6)


@pytest.mark.parametrize("name", ["binary_channel", "lsq3_channel"])
def test_vmap_over_theta(name):
    t, s = leaf_state(SPECS[name], LATENT)
    thetas = jax.tree.map(lambda x: jnp.stack([x, 0.5 * x, -x]), s.theta)
    ws = jax.vmap(lambda th: t.apply(SharedParams(th, s.frozen))["w"])(thetas)
    for i in range(3):
        one = t.apply(SharedParams(jax.tree.map(lambda x: x[i], thetas), s.frozen))["w"]
        np.testing.assert_allclose(ws[i], one, rtol=1e-6)
    g = jax.vmap(jax.grad(lambda th: jnp.sum(t.apply(SharedParams(th, s.frozen))["w"] * G)))(thetas)
    one = jax.grad(lambda th: jnp.sum(t.apply(SharedParams(th, s.frozen))["w"] * G))(
        jax.tree.map(lambda x: x[2], thetas))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[2], g), one, rtol=1e-6)


@pytest.mark.parametrize("scale", ["none", "layer", "channel"])
def test_ternary_gradient_is_the_identity(scale):
    d, _ = grad_of(lb.make_spec("ternary", scale=scale))
    np.testing.assert_array_equal(d, G)


@pytest.mark.parametrize("scale", ["layer", "channel"])
def test_uniform_gradient_passes_inside_the_range_only(scale):
    step = np.float32(0.25) if scale == "layer" else np.array([0.25, 0.5, 0.1, 1.0], np.float32)
    d, _ = grad_of(lb.make_spec("uniform", bits=3, scale=scale), scale=step)
    r = LATENT / step
    inside = (r >= -4) & (r <= 3)
    assert 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(d, np.where(inside, G, 0))


@pytest.mark.parametrize("scale", ["layer", "channel"])
@pytest.mark.parametrize("bits", [2, 4])
def test_lsq_step_gradient_is_lsqs_formula(scale, bits):
    t, s = leaf_state(lb.make_spec("lsq", bits=bits, scale=scale), LATENT)
    theta = {"w": {"latent": s.theta["w"]["latent"], "step": 0.4 * s.theta["w"]["step"]}}
    loss = lambda th: jnp.sum(t.apply(SharedParams(th, s.frozen))["w"] * G)  # noqa: E731
    d = jax.grad(loss)(theta)["w"]
    step = np.asarray(theta["w"]["step"], np.float64)
    qn, qp = 2 ** (bits - 1), 2 ** (bits - 1) - 1
    r = LATENT / step
    q = np.clip(np.round(r), -qn, qp)
    inside = (r >= -qn) & (r <= qp)
    assert 0 < inside.sum() < inside.size  # both branches are exercised
    axes = None if scale == "layer" else 0
    n = LATENT.size if scale == "layer" else LATENT.shape[0]
    want_step = (G * np.where(inside, q - r, q)).sum(axis=axes) / np.sqrt(n * qp)
    np.testing.assert_allclose(d["step"], want_step, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(d["latent"], np.where(inside, G, 0))


# ----------------------------------------------------------------------------- clipping


def test_clip_latent_keeps_binary_latents_in_bounds_through_optax_steps():
    params = {"Dense_0": {"kernel": jax.random.normal(jax.random.key(0), (5, 8)) * 0.5,
                          "bias": jnp.zeros(8)}}
    t = lb.binary(scale="layer")
    state = t.init(jax.random.key(1), params)
    mask = lb.binary_latents(state)
    assert mask == {"rest": {"Dense_0": {"bias": False, "kernel": None}},
                    "inner": {"Dense_0/kernel": True}}
    tx = optax.chain(optax.sgd(0.5), lb.clip_latent(state))
    x = jax.random.normal(jax.random.key(2), (32, 5))
    y = jax.random.normal(jax.random.key(3), (32, 8))

    def loss(theta):
        p = t.apply(SharedParams(theta, state.frozen))["Dense_0"]
        return -jnp.sum(jnp.tanh(x @ p["kernel"]) * y) - jnp.sum(p["bias"])  # large gradients

    @jax.jit
    def step(theta, opt):
        updates, opt = tx.update(jax.grad(loss)(theta), opt, theta)
        return optax.apply_updates(theta, updates), opt

    theta, opt = state.theta, tx.init(state.theta)
    assert isinstance(opt[1], lb.ClipLatentState)
    for _ in range(8):
        theta, opt = step(theta, opt)
    latents = np.asarray(theta["inner"]["Dense_0/kernel"])
    assert latents.min() >= -1 and latents.max() <= 1
    assert np.sum(np.abs(latents) == 1) > 0  # some were clipped to the bounds exactly
    # the bias is not a latent: never clipped (its gradient is -1 per step)
    np.testing.assert_allclose(theta["rest"]["Dense_0"]["bias"], 8 * 0.5, rtol=1e-6)


def test_clip_latent_is_exact_in_floating_point():
    rng = np.random.default_rng(0)
    n = 100_000
    p = jnp.asarray(rng.uniform(-4, 4, n).astype(np.float32))  # latents that start outside too
    u = jnp.asarray(np.where(rng.random(n) < 0.5, 1, -1) * rng.uniform(0, 6, n), jnp.float32)
    for lo, hi in [(-1.0, 1.0), (-0.3, 0.7)]:
        naive = p + (jnp.clip(p + u, lo, hi) - p)
        assert bool(jnp.any((naive > hi) | (naive < lo)))  # the plain rewrite overshoots by an ulp
        tx = lb.clip_latent(True, lo, hi)
        out, _ = jax.jit(tx.update)(u, tx.init(p), p)
        new = np.asarray(optax.apply_updates(p, out))
        assert new.min() >= lo and new.max() <= hi
        np.testing.assert_allclose(new, np.clip(p + u, lo, hi), atol=1e-6)
    # one bool for every leaf of a tree; unmasked leaves pass unchanged; arrays select elements
    tree, _ = lb.clip_latent(True).update({"a": u, "b": None}, None, {"a": p, "b": None})
    np.testing.assert_array_equal(tree["a"], lb.clip_latent(True).update(u, None, p)[0])
    assert tree["b"] is None
    same, _ = lb.clip_latent(False).update(u, None, p)
    assert same is u
    half = jnp.arange(p.size) % 2 == 0
    mixed, _ = lb.clip_latent(half).update(u, None, p)
    np.testing.assert_array_equal(np.asarray(mixed)[1::2], np.asarray(u)[1::2])


def test_clip_latent_bad_arguments():
    with pytest.raises(ValueError, match="lo < hi"):
        lb.clip_latent(True, lo=1.0, hi=-1.0)
    with pytest.raises(ValueError, match="needs params"):
        lb.clip_latent(True).update(jnp.ones(3), lb.ClipLatentState())
    with pytest.raises(ValueError, match="lowbit"):
        lb.binary_latents(SharedParams({"w": jnp.ones(3)}, None))


# ----------------------------------------------------------------------------- stochastic


def test_stochastic_binarisation_has_the_hard_sigmoid_expectation():
    values = np.array([-1.5, -1.0, -0.6, -0.2, 0.0, 0.3, 0.9, 1.0, 2.0], np.float32)
    theta = np.tile(values, (3000, 1))  # 3000 independent draws of each value
    t, s = leaf_state(lb.make_spec("binary", stochastic=True), theta)
    key = jax.random.key(4)
    draws = np.asarray(lb.stochastic_apply(t, s, key)["w"])
    assert set(np.unique(draws)) == {-1.0, 1.0}
    p = np.clip((values + 1) / 2, 0, 1)
    np.testing.assert_allclose(draws.mean(axis=0), 2 * p - 1, atol=0.09)  # ~5 sigma of 3000
    assert np.all(draws[:, values >= 1] == 1) and np.all(draws[:, values <= -1] == -1)
    # apply is a pure function of the state (its key); resample puts another key in
    again = jax.jit(lb.stochastic_apply, static_argnums=0)(t, s, key)["w"]
    np.testing.assert_array_equal(again, draws)
    assert not np.array_equal(lb.stochastic_apply(t, s, jax.random.key(5))["w"], draws)
    # the straight-through gradient uses the drawn signs: alpha = 1, gate |theta| <= 1
    g = jax.grad(lambda th: jnp.sum(t.apply(SharedParams(th, s.frozen))["w"] * 2.0))(s.theta)
    np.testing.assert_array_equal(g["w"], 2.0 * (np.abs(theta) <= 1))
    with pytest.raises(ValueError, match="no stochastic"):
        lb.resample(leaf_state(lb.make_spec("binary"))[1], key)


# ----------------------------------------------------------------------------- the transform contract

SHAPES = (12, 13, 10)  # 156 kernel weights: every packing has padding


class NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(SHAPES[:-1], SHAPES[1:])])

    def __call__(self, x):
        return self.layers[1](nnx.relu(self.layers[0](x)))


@functools.cache
def nets():
    model = MLP(SHAPES[1:])
    params = model.init(jax.random.key(0), jnp.zeros((1, SHAPES[0])))["params"]
    return {"linen": compress.from_linen(model, params), "nnx": compress.from_nnx(NNXNet(nnx.Rngs(0)))}


def trained(t, params, seed=1):
    """A state whose float leaves moved off their initial values (as after training)."""
    state = t.init(jax.random.key(seed), params)
    rng = np.random.default_rng(seed)
    theta = jax.tree.map(lambda x: jnp.asarray(np.asarray(x) + rng.normal(0, 0.01, x.shape)
                                               .astype(x.dtype)), state.theta)
    return SharedParams(theta, state.frozen)


def bits_of(a):
    return np.asarray(a).reshape(-1).view(np.uint8)


@functools.cache
def round_trip(name, kind):
    net = nets()[kind]
    t = lb.lowbit_weights(SPECS[name])
    state = trained(t, net.params)
    data = storage.encode((t, state))
    return net, t, state, data


def deterministic(state):
    """``state`` with its stochastic binary leaves made deterministic (what a file stores)."""
    frozen = {p: f._replace(spec=Static(f.spec.value._replace(stochastic=False)), key=None)
              for p, f in state.frozen.items()}
    return SharedParams(state.theta, frozen)


CASES = [(n, "linen") for n in sorted(SPECS)] + [
    (n, "nnx") for n in ("binary_stochastic", "ternary_channel", "lsq3_channel", "uniform8")]


@pytest.mark.parametrize("name,kind", CASES)
def test_jit_eval_shape_counts_and_a_bit_exact_storage_round_trip(name, kind):
    net, t, state, data = round_trip(name, kind)
    chex.assert_trees_all_equal(jax.device_get(t.apply(state)), jax.device_get(jax.jit(t.apply)(state)))
    chex.assert_trees_all_equal_shapes_and_dtypes(jax.eval_shape(t.apply, state), net.params)
    assert virtual_params(t, state) == count_params(net.params)
    steps = sum(x["step"].size for x in state.theta["inner"].values()) if SPECS[name].kind == "lsq" else 0
    assert free_params(state) == count_params(net.params) + steps  # LSQ adds its steps
    want = flatten_paths(jax.device_get(t.apply(deterministic(state))))
    if SPECS[name].stochastic:  # the draw itself is not what is stored
        assert not all(np.array_equal(want[p], w) for p, w in
                       flatten_paths(jax.device_get(t.apply(state))).items())
    loaded, states = storage.decode(data, with_state=True)
    got = flatten_paths(loaded)
    assert set(got) == set(want)
    for p in want:
        assert got[p].dtype == want[p].dtype and np.array_equal(bits_of(got[p]), bits_of(want[p])), p
    chex.assert_trees_all_equal(net.apply(jax.tree.map(jnp.asarray, loaded), np.ones((2, 12))),
                                net.apply(t.apply(deterministic(state)), np.ones((2, 12))))
    # the decoded state: theta reproduces W (codes mapped back), and its apply is the file's
    decoded = states["lowbit"]
    spec = SPECS[name]
    for p, th in decoded.theta.items():
        w = lb.leaf_weights(th, decoded.frozen[p])
        assert np.array_equal(bits_of(w), bits_of(got[p])), p
        latent = np.asarray(th["latent"] if spec.kind == "lsq" else th)
        allowed = {"binary": {-1.0, 1.0}, "ternary": {-1.0, 0.0, 1.0}}.get(spec.kind)
        if allowed is not None:
            assert set(np.unique(latent)) <= allowed
        else:
            assert np.array_equal(latent, np.asarray(got[p]))
    # re-encoding the decoded state gives the same group back
    inner = deterministic(SharedParams(state.theta["inner"], state.frozen))
    again, first = codec.encode(decoded, None), codec.encode(inner, None)
    assert again.meta == first.meta and list(again.arrays) == list(first.arrays)
    for r in first.arrays:
        assert np.array_equal(bits_of(again.arrays[r]), bits_of(first.arrays[r])), r
    # the codes take exactly their bit width
    for p, entry in zip(first.paths, first.meta["leaves"]):
        n = math.prod(entry["shape"])
        want_bytes = {"binary": -(-n // 8), "ternary": -(-n // 5)}.get(spec.kind, -(-n * spec.bits // 8))
        assert first.arrays[f"{p}/codes"].nbytes == want_bytes


@pytest.mark.parametrize("name", ["ternary_channel", "uniform8"])
def test_bfloat16_leaves_round_trip_with_float32_scales(name):
    theta = jnp.asarray(np.random.default_rng(0).normal(0, 0.3, (12, 13)), jnp.bfloat16)
    t, s = leaf_state(SPECS[name], theta)
    want = np.asarray(t.apply(s)["w"])
    group = codec.encode(s, None)
    assert group.arrays["w/scale"].dtype == np.float32 and want.dtype == jnp.bfloat16
    got = storage.decode(storage.encode((t, s)))["w"]
    assert got.dtype == want.dtype and np.array_equal(bits_of(got), bits_of(want))


def test_lenet_300_100_binary_is_stored_at_one_bit_per_kernel_weight(tmp_path):
    shapes = jax.eval_shape(LeNet300100().init, jax.random.key(0), jnp.zeros((1, 784)))["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.1, s.shape).astype(s.dtype)), shapes)
    t = lb.binary(scale="layer")
    state = t.init(jax.random.key(0), params)
    report = storage.save(tmp_path / "lenet.wsjax", (t, state))
    size = (tmp_path / "lenet.wsjax").stat().st_size
    assert report.file_bytes == size
    kernels = 784 * 300 + 300 * 100 + 100 * 10
    assert kernels == 266_200
    payload = kernels // 8 + 4 * 410 + 4 * 3  # codes, float32 biases, one float32 alpha per layer
    assert 0 < size - payload <= 700, size - payload  # header, record headers, group metas
    dense = 4 * (kernels + 410)
    assert dense / size >= 25
    sizes = codec.leaf_sizes(report)
    assert set(sizes) == {"Dense_0/kernel", "Dense_1/kernel", "Dense_2/kernel"}
    big = sizes["Dense_0/kernel"]
    assert big.n_weights == 235_200 and 1.0 < big.bits_per_weight < 1.02
    assert big.float32_ratio == pytest.approx(4 * 235_200 / big.stored_bytes)
    assert sizes["Dense_1/kernel"].bits_per_weight < 1.02
    loaded = storage.load(tmp_path / "lenet.wsjax")
    alpha = np.abs(np.asarray(params["Dense_1"]["kernel"])).mean()
    np.testing.assert_allclose(np.abs(loaded["Dense_1"]["kernel"]), alpha, rtol=1e-6)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call", [
    lambda: lb.uniform(1),
    lambda: lb.uniform(9),
    lambda: lb.uniform(2.5),
    lambda: lb.uniform(True),
    lambda: lb.uniform(4, learned=1),
    lambda: lb.binary(scale="row"),
    lambda: lb.uniform(4, scale="none"),
    lambda: lb.ternary(threshold=1.0),
    lambda: lb.ternary(threshold=-0.1),
    lambda: lb.make_spec("quaternary"),
    lambda: lb.make_spec("ternary", stochastic=True),
    lambda: lb.make_spec("binary", bits=3),
    lambda: lb.make_spec("lsq"),
    lambda: lb.lowbit_leaves(lb.LowBit("binary", "none", 7)),
    lambda: lb.lowbit_leaves(lb.make_spec("binary")).init(jax.random.key(0),
                                                          {"w": jnp.ones((3, 3), jnp.int32)}),
    lambda: lb.lowbit_leaves(lb.make_spec("binary", scale="channel")).init(
        jax.random.key(0), {"b": jnp.ones((3,))}),
    lambda: lb.lowbit_leaves({"kernel": lb.make_spec("binary")}).init(
        jax.random.key(0), {"bias": jnp.ones((3,))}),
])
def test_bad_arguments_raise_value_errors(call):
    with pytest.raises(ValueError):
        call()


def test_a_non_float_leaf_is_named():
    with pytest.raises(TypeError, match="float leaf; 'w' is int32"):
        leaf_state(lb.make_spec("ternary"), np.ones((2, 2), np.int32))


def test_encode_refuses_a_bad_step():
    t, s = leaf_state(lb.make_spec("uniform", bits=4))
    bad = SharedParams(s.theta, {"w": s.frozen["w"]._replace(scale=jnp.float32(0.0))})
    with pytest.raises(ValueError, match="positive"):
        storage.encode((t, bad))


def _set(i, key, value):
    def edit(meta):
        if value is _DROP:
            del meta["leaves"][i][key]
        else:
            meta["leaves"][i][key] = value
    return edit


_DROP = object()
BAD_METAS = {
    "kind": ("binary_layer", _set(0, "kind", "quaternary")),
    "kind changes records": ("binary_layer", _set(0, "kind", "ternary")),
    "bits too small": ("uniform5_channel", _set(0, "bits", 1)),
    "bits too large": ("uniform5_channel", _set(0, "bits", 9)),
    "bits as a string": ("uniform5_channel", _set(0, "bits", "5")),
    "bits as a bool": ("uniform2", _set(0, "bits", True)),
    "other bits": ("uniform5_channel", _set(0, "bits", 6)),
    "missing bits": ("lsq8", _set(0, "bits", _DROP)),
    "bits on binary": ("binary", _set(0, "bits", 1)),
    "scale": ("binary", _set(0, "scale", "row")),
    "scale none with a record": ("binary_layer", _set(0, "scale", "none")),
    "scale layer without one": ("binary", _set(0, "scale", "layer")),
    "layer vs channel": ("ternary", _set(0, "scale", "channel")),
    "dtype": ("binary", _set(0, "dtype", "int8")),
    "dtype not a string": ("binary", _set(0, "dtype", 32)),
    "threshold 1": ("ternary", _set(0, "threshold", 1.0)),
    "threshold string": ("ternary", _set(0, "threshold", "0.7")),
    "missing threshold": ("ternary", _set(0, "threshold", _DROP)),
    "shape": ("binary", _set(0, "shape", [5, 17])),
    "negative dim": ("binary", _set(0, "shape", [-5, 16])),
    "path": ("ternary_channel", _set(0, "path", "Dense_9/kernel")),
    "duplicate path": ("ternary_channel", _set(1, "path", "Dense_0/kernel")),
    "unknown field": ("lsq3_channel", _set(0, "extra", 1)),
    "entry not an object": ("binary", lambda meta: meta["leaves"].__setitem__(0, [1, 2])),
    "no leaves": ("binary", lambda meta: meta.__setitem__("leaves", [])),
    "leaves not a list": ("binary", lambda meta: meta.__setitem__("leaves", {})),
}


@pytest.mark.parametrize("case", sorted(BAD_METAS))
def test_corrupted_metas_raise_storage_errors(case):
    name, edit = BAD_METAS[case]
    with pytest.raises(StorageError, match="lowbit group"):
        storage.decode(edited(round_trip(name, "linen")[3], "lowbit", edit))


def group_of(name):
    _, _, state, _ = round_trip(name, "linen")
    return codec.encode(deterministic(SharedParams(state.theta["inner"], state.frozen)), None)


def _records(group, **changes):
    arrays = dict(group.arrays)
    for k, v in changes.items():
        name = "Dense_0/kernel/" + k
        if v is None:
            del arrays[name]
        else:
            arrays[name] = v
    return codecs.Group(group.codec, group.meta, arrays)


def _codes(g):
    return g.arrays["Dense_0/kernel/codes"]


BAD_RECORDS = {
    "short codes": ("binary", lambda g: _records(g, codes=_codes(g)[:-1])),
    "codes as floats": ("binary", lambda g: _records(g, codes=_codes(g).astype(np.float32))),
    "codes as int16": ("binary", lambda g: _records(g, codes=_codes(g).astype(np.int16))),
    "padding bits": ("binary", lambda g: _records(g, codes=_codes(g) | np.uint8(1))),
    "padding bits k-bit": ("uniform5_channel", lambda g: _records(g, codes=_codes(g) | np.uint8(1))),
    "trit byte over 242": ("ternary", lambda g: _records(g, codes=np.full_like(_codes(g), 250))),
    "padding trits": ("ternary", lambda g: _records(g, codes=np.full_like(_codes(g), 242))),
    "negative alpha": ("binary_layer", lambda g: _records(g, scale=np.float32(-0.5))),
    "nan alpha": ("ternary", lambda g: _records(g, scale=np.float32(np.nan))),
    "zero step": ("uniform2", lambda g: _records(g, scale=np.float32(0.0))),
    "inf step": ("uniform2", lambda g: _records(g, scale=np.float32(np.inf))),
    "step that loses the codes": ("uniform8", lambda g: _records(g, scale=np.float32(1e-44))),
    "scale shape": ("binary_channel", lambda g: _records(g, scale=np.ones(4, np.float32))),
    "scale shape layer": ("binary_layer", lambda g: _records(g, scale=np.ones(1, np.float32))),
    "scale dtype": ("binary_layer", lambda g: _records(g, scale=np.float16(0.5))),
    "missing scale": ("lsq8", lambda g: _records(g, scale=None)),
    "extra record": ("binary", lambda g: _records(g, scale=np.float32(1.0))),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_corrupted_records_raise_storage_errors(case):
    name, corrupt = BAD_RECORDS[case]
    group = group_of(name)
    codec.decode(codecs.Group(group.codec, group.meta, group.arrays))  # the intact group decodes
    with pytest.raises(StorageError, match="lowbit group"):
        codec.decode(corrupt(group))


def test_trit_packing_is_five_per_byte():
    symbols = np.array([2, 0, 1, 1, 2, 1, 2])
    data = codec.pack_trits(symbols)
    assert list(data) == [2 * 81 + 0 * 27 + 1 * 9 + 1 * 3 + 2, 1 * 81 + 2 * 27]
    np.testing.assert_array_equal(codec.unpack_trits(data, 7), symbols)
    assert codec.code_bytes(lb.make_spec("ternary"), 7) == 2
    assert codec.code_bytes(lb.make_spec("uniform", bits=3), 7) == 3


@pytest.mark.parametrize("name", ["lsq8", "uniform5_channel", "lsq3_channel"])
def test_latents_on_the_rounding_boundary_store_the_weights_the_transform_computed(name):
    """Latents at (k + 1/2) steps, and one ulp either side: where ``theta / s`` can round
    either way depending on how the division is compiled, the file holds the transform's
    own ``W`` bit for bit (a training run once stored the neighbouring code)."""
    rng = np.random.default_rng(0)
    t, s = leaf_state(SPECS[name], rng.normal(0, 0.3, (64, 3)).astype(np.float32))
    th = s.theta["w"]
    step = np.asarray(th["step"] if SPECS[name].kind == "lsq" else s.frozen["w"].scale, np.float32)
    qn, qp = lb.code_range(SPECS[name].bits)
    k = rng.integers(-qn, qp, (64, 3)).astype(np.float32) + np.float32(0.5)
    base = (k * step).astype(np.float32)
    latent = np.where(rng.random((64, 3)) < 1 / 3, np.nextafter(base, np.float32(np.inf)),
                      np.where(rng.random((64, 3)) < 1 / 2, np.nextafter(base, np.float32(-np.inf)), base))
    theta = {"latent": jnp.asarray(latent), "step": th["step"]} if SPECS[name].kind == "lsq" else jnp.asarray(latent)
    s = SharedParams({"w": theta}, s.frozen)
    r = latent * (np.float32(1) / step)  # the documented r, in IEEE float32
    codes = np.clip(np.round(r), -qn, qp) + np.float32(0)  # numpy rounds half to even too
    formula = (step * codes).astype(np.float32)
    assert np.sum(r != latent / step) > 0  # the ties a true division would round elsewhere
    eager = np.asarray(t.apply(s)["w"])
    jitted = np.asarray(jax.jit(lambda st: t.apply(st)["w"])(s))
    in_grad = np.asarray(jax.jit(jax.grad(lambda st: jnp.sum(t.apply(st)["w"] ** 2) / 2))(s).theta["w"]
                         ["latent"] if SPECS[name].kind == "lsq" else
                         jax.jit(jax.grad(lambda st: jnp.sum(t.apply(st)["w"] ** 2) / 2))(s).theta["w"])
    got = storage.decode(storage.encode((t, s)))["w"]
    for w in (eager, jitted, got):
        assert np.array_equal(bits_of(w), bits_of(formula))
    inside = (r >= -qn) & (r <= qp)  # the gradient of sum W^2 / 2 is W where the STE passes
    assert np.array_equal(bits_of(in_grad), bits_of(np.where(inside, formula, np.float32(0))))
