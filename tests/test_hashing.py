"""HashedNets (wsjax.sharing.hashing) and its random-edge-removal baseline."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from wsjax.models import MLP
from wsjax.sharing import bind, count_params, free_params, virtual_params
from wsjax.sharing.hashing import (
    HashSpec,
    hash_indices,
    hash_indices_numpy,
    hashed,
    hashed_take,
    hashing,
    num_buckets,
    precomputed_take,
    signed_index,
)
from wsjax.sharing.random_edges import kept_edges, random_edges

# ----------------------------------------------------------------------------- reference hash


def _np_xxhash_grid(layer, rows, cols, seed):
    """xxHash32's short-input path on the key (layer, i, j), written with NumPy uint32 wraparound."""
    M = 0xFFFFFFFF
    P2, P3, P4, P5 = 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & M

    def absorb(h, w):
        return (rotl((h + w * P3) & M, 17) * P4) & M

    def aval(h):
        h = h ^ (h >> 15)
        h = (h * P2) & M
        h = h ^ (h >> 13)
        h = (h * P3) & M
        return h ^ (h >> 16)

    h = (seed + P5 + 12) & M
    h = absorb(h, layer)
    i = np.arange(rows, dtype=np.uint64)[:, None]
    j = np.arange(cols, dtype=np.uint64)[None, :]
    pre = absorb(absorb(np.uint64(h), i), j)
    return aval(pre), aval(pre ^ 0x5BD1E995)


@pytest.mark.parametrize("seed", [12345, 2**32 - 1])
def test_hash_matches_a_numpy_uint64_reference_bit_exactly(seed):
    spec = HashSpec((37, 53), 101, layer=3, seed=seed)
    index, sign = hash_indices(spec)
    ih, sh = _np_xxhash_grid(3, 37, 53, seed)
    np.testing.assert_array_equal(np.asarray(index), (ih % 101).astype(np.int32))
    np.testing.assert_array_equal(np.asarray(sign), np.where(sh >> 31, -1.0, 1.0))


def test_hash_is_uniform_and_signs_balanced():
    spec = HashSpec((784, 300), 29400, layer=0, seed=0)
    index, sign = hash_indices(spec)
    counts = np.bincount(np.asarray(index).ravel(), minlength=29400)
    assert counts.sum() == 784 * 300
    # A uniform hash gives Poisson(8) loads: std sqrt(8) = 2.83.
    assert 7.99 < counts.mean() < 8.01 and 2.6 < counts.std() < 3.1
    assert abs(float(sign.mean())) < 0.01
    # The sign is independent of the bucket: per-bucket mean sign is centred.
    per_bucket = np.bincount(np.asarray(index).ravel(), np.asarray(sign).ravel(), 29400)
    assert abs(per_bucket.sum() / counts.sum()) < 0.01


def test_layer_and_seed_change_the_pattern():
    base = hash_indices(HashSpec((100, 100), 97, 0, 0))[0]
    for other in (HashSpec((100, 100), 97, 1, 0), HashSpec((100, 100), 97, 0, 1)):
        same = float(jnp.mean(base == hash_indices(other)[0]))
        assert same < 0.03  # chance agreement is 1/97
    np.testing.assert_array_equal(base, hash_indices(HashSpec((100, 100), 97, 0, 0))[0])


def test_signed_index_packs_index_and_sign():
    spec = HashSpec((20, 30), 17, 2, 9)
    index, sign = hash_indices(spec)
    packed = signed_index(spec)
    assert packed.dtype == jnp.int32
    np.testing.assert_array_equal(np.where(packed < 0, ~packed, packed), index)
    np.testing.assert_array_equal(np.where(packed < 0, -1.0, 1.0), sign)


# ----------------------------------------------------------------------------- the gather and its VJP


class GatherTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_forward_is_the_signed_gather(self):
        spec = HashSpec((6, 5, 4), 11, 1, 7)
        w = jax.random.normal(jax.random.key(0), (11,))
        index, sign = hash_indices(spec)
        got = self.variant(lambda w: hashed_take(w, spec))(w)
        chex.assert_shape(got, (6, 5, 4))
        np.testing.assert_array_equal(got, sign * np.asarray(w)[np.asarray(index)])
        packed = signed_index(spec)
        np.testing.assert_array_equal(self.variant(precomputed_take)(w, packed), got)

    @chex.variants(with_jit=True, without_jit=True)
    def test_custom_vjp_equals_autodiff_of_the_plain_gather(self):
        spec = HashSpec((13, 7), 10, 0, 3)
        w = jax.random.normal(jax.random.key(1), (10,))
        target = jax.random.normal(jax.random.key(2), (13, 7))
        index, sign = hash_indices(spec)

        def plain(w):
            return jnp.sum(jnp.sin(sign * w[index]) * target)

        def custom(w):
            return jnp.sum(jnp.sin(hashed_take(w, spec)) * target)

        g_custom = self.variant(jax.grad(custom))(w)
        chex.assert_trees_all_close(g_custom, jax.grad(plain)(w), rtol=1e-5, atol=1e-6)
        # Every bucket gets the signed sum of its members' gradients.
        gv = np.asarray(jnp.cos(sign * w[index]) * target)
        expect = np.zeros(10)
        np.add.at(expect, np.asarray(index).ravel(), (np.asarray(sign) * gv).ravel())
        np.testing.assert_allclose(g_custom, expect, rtol=1e-5, atol=1e-6)

    def test_check_grads_on_the_hashed_gather(self):
        spec = HashSpec((9, 4), 5, 2, 0)
        w = jax.random.normal(jax.random.key(3), (5,), jnp.float32)
        f = lambda w: jnp.tanh(hashed_take(w, spec)) ** 2  # noqa: E731
        check_grads(f, (w,), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


# ----------------------------------------------------------------------------- transforms


def _mlp_params(features=(30, 20, 10), in_dim=16, seed=0):
    """An ``MLP(features)`` params tree built with NumPy (LeCun-normal kernels, zero biases)."""
    rng = np.random.default_rng(seed)
    sizes = (in_dim,) + tuple(features)
    return {
        f"Dense_{i}": {
            "bias": np.zeros((n,), np.float32),
            "kernel": (rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32),
        }
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:]))
    }


def test_uniform_budgets_split_the_total_equally_within_each_layers_size():
    from wsjax.sharing import uniform_budgets

    # LeNet-300-100's kernels at 1/8: 33,275 buckets; the 100x10 layer can use only 1,000
    sizes = {"Dense_0": 784 * 300, "Dense_1": 300 * 100, "Dense_2": 100 * 10}
    total = num_buckets(1 / 8, sum(sizes.values()))
    assert total == 33_275
    assert uniform_budgets(sizes, total) == {"Dense_2": 1000, "Dense_1": 16_137, "Dense_0": 16_138}
    assert uniform_budgets({"a": 10, "b": 10, "c": 10}, 9) == {"a": 3, "b": 3, "c": 3}
    assert uniform_budgets({"a": 10, "b": 10}, 30) == {"a": 10, "b": 10}  # capped at the sizes
    assert uniform_budgets({"a": 10, "b": 10, "c": 10}, 2) == {"a": 1, "b": 1, "c": 1}  # at least one


def test_a_uniform_budget_hashes_each_layer_into_equal_buckets_and_stores_them():
    from wsjax import storage

    params = _mlp_params()  # kernels of 480, 600 and 200 weights: 160 buckets at 1/8
    t = hashed(1 / 8, budget="uniform")
    s = t.init(jax.random.key(1), params)
    shapes = {p: x.shape for p, x in s.theta["inner"].items()}  # the largest layer takes the remainder
    assert shapes == {"Dense_0/kernel": (53,), "Dense_1/kernel": (54,), "Dense_2/kernel": (53,)}
    assert free_params(s) == 160 + 30 + 20 + 10
    out = t.apply(s)
    chex.assert_trees_all_equal_shapes(out, params)
    chex.assert_trees_all_equal(storage.decode(storage.encode((t, s))), jax.tree.map(np.asarray, out))


@pytest.mark.parametrize("scope", ["layer", "pool"])
def test_free_and_virtual_counts_are_exact(scope):
    params = _mlp_params()
    kernels = {"Dense_0": 16 * 30, "Dense_1": 30 * 20, "Dense_2": 20 * 10}
    biases = 30 + 20 + 10
    t = hashed(1 / 8, scope=scope)
    s = t.init(jax.random.key(1), params)
    if scope == "layer":
        expect = sum(num_buckets(1 / 8, n) for n in kernels.values())
        assert [x.shape for x in s.theta["inner"].values()] == [(60,), (75,), (25,)]
    else:
        expect = num_buckets(1 / 8, sum(kernels.values()))
        chex.assert_shape(s.theta["inner"], (160,))
    assert free_params(s) == expect + biases
    assert virtual_params(t, s) == count_params(params)
    chex.assert_trees_all_equal_shapes(t.apply(s), params)


def test_hashed_biases_and_conv_kernels():
    rng = np.random.default_rng(0)
    params = {
        "Conv_0": {"bias": np.zeros(20, np.float32),
                   "kernel": rng.standard_normal((5, 5, 1, 20)).astype(np.float32)},
        "Dense_0": {"bias": np.zeros(3, np.float32),
                    "kernel": rng.standard_normal((320, 3)).astype(np.float32)},
    }
    t = hashed(1 / 16, biases=True)
    s = t.init(jax.random.key(1), params)
    assert s.theta["rest"] == jax.tree.map(lambda x: None, params)
    expect = sum(num_buckets(1 / 16, x.size) for x in jax.tree.leaves(params))
    assert free_params(s) == expect
    out = t.apply(s)
    chex.assert_trees_all_equal_shapes(out, params)
    # A conv kernel (5, 5, 1, 20) is hashed as a 25 x 20 grid.
    spec = dict(s.frozen["specs"].value)["Conv_0/kernel"]
    assert (spec.rows, spec.cols) == (25, 20)
    index, sign = hash_indices(spec)
    np.testing.assert_array_equal(
        out["Conv_0"]["kernel"], sign * np.asarray(s.theta["inner"]["Conv_0/kernel"])[index]
    )


def test_pool_ties_layers_through_one_bucket_vector():
    params = _mlp_params()
    t = hashed(1 / 4, scope="pool")
    s = t.init(jax.random.key(1), params)
    specs = dict(s.frozen["specs"].value)
    assert [specs[p].layer for p in sorted(specs)] == [0, 1, 2]
    assert len({sp.num_buckets for sp in specs.values()}) == 1
    w = bind(t, s)
    # The pool's gradient is the sum of the gradients through every layer.
    def layer_loss(theta, name):
        return jnp.sum(jnp.sin(w(theta)[name]["kernel"]))

    names = ("Dense_0", "Dense_1", "Dense_2")
    total = jax.jit(jax.grad(lambda th: sum(layer_loss(th, n) for n in names)))(s.theta)["inner"]
    parts = jax.jit(lambda th: [jax.grad(layer_loss)(th, n)["inner"] for n in names])(s.theta)
    assert all(float(jnp.abs(p).sum()) > 0 for p in parts)
    chex.assert_trees_all_close(total, sum(parts), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scope", ["layer", "pool"])
def test_precomputed_indices_give_the_same_params_and_gradients(scope):
    params = _mlp_params()
    fly, pre = hashed(1 / 8, scope=scope), hashed(1 / 8, scope=scope, precompute=True)
    s_fly, s_pre = fly.init(jax.random.key(1), params), pre.init(jax.random.key(1), params)
    chex.assert_trees_all_equal(s_fly.theta, s_pre.theta)
    chex.assert_trees_all_equal(fly.apply(s_fly), pre.apply(s_pre))
    loss = lambda f: lambda th: sum(jnp.sum(jnp.cos(x)) for x in jax.tree.leaves(f(th)))  # noqa: E731
    g_fly = jax.jit(jax.grad(loss(bind(fly, s_fly))))(s_fly.theta)
    g_pre = jax.jit(jax.grad(loss(bind(pre, s_pre))))(s_pre.theta)
    chex.assert_trees_all_close(g_fly, g_pre, rtol=1e-5, atol=1e-6)


def test_random_init_keeps_the_dense_scale_and_project_init_fits_given_weights():
    params = _mlp_params((200, 10), 50)
    s = hashed(1 / 4).init(jax.random.key(1), params)
    k = params["Dense_0"]["kernel"]
    assert abs(float(jnp.std(s.theta["inner"]["Dense_0/kernel"]) / jnp.std(k)) - 1) < 0.05
    # Weights that are exactly a hashed layer are recovered exactly by the projection.
    t = hashed(1 / 4, init="project")
    virtual = hashed(1 / 4).apply(s)
    s2 = t.init(jax.random.key(7), virtual)
    chex.assert_trees_all_close(t.apply(s2), virtual, atol=1e-6)


def test_no_virtual_size_integer_array_in_the_training_state():
    params = _mlp_params()
    virtual = 20 * 10  # the smallest hashed kernel
    opt = optax.adam(1e-3)
    for precompute in (False, True):
        t = hashed(1 / 8, precompute=precompute)
        s = t.init(jax.random.key(1), params)
        state = (s.theta, opt.init(s.theta))
        big_ints = [
            x for x in jax.tree.leaves(state)
            if jnp.issubdtype(x.dtype, jnp.integer) and x.size >= virtual
        ]
        assert big_ints == []
        assert max(x.size for x in jax.tree.leaves(state)) == num_buckets(1 / 8, 30 * 20)
        frozen_ints = [x.size for x in jax.tree.leaves(s.frozen)]
        # On the fly, frozen holds static metadata only; precomputed, one int32 per weight.
        assert frozen_ints == ([] if not precompute else [16 * 30, 30 * 20, 20 * 10])


def test_a_hashed_net_trains_under_jit():
    x = jax.random.normal(jax.random.key(0), (64, 16))
    y = jnp.argmax(x[:, :4], axis=1)
    model = MLP((32, 4))
    params = _mlp_params((32, 4), 16)
    for scope in ("layer", "pool"):
        t = hashed(1 / 4, scope=scope)
        s = t.init(jax.random.key(2), params)
        w = bind(t, s)

        def loss(th):
            logits = model.apply({"params": w(th)}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        opt = optax.adam(3e-2)

        @jax.jit
        def step(th, st):
            value, g = jax.value_and_grad(loss)(th)
            up, st = opt.update(g, st, th)
            return optax.apply_updates(th, up), st, value

        th, st = s.theta, opt.init(s.theta)
        losses = []
        for _ in range(30):
            th, st, value = step(th, st)
            losses.append(value)
        assert float(losses[-1]) < 0.3 * float(losses[0])


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"compression": 0.0}, ValueError),
        ({"compression": 1.5}, ValueError),
        ({"compression": "1/8"}, TypeError),
        ({"compression": 0.5, "scope": "global"}, ValueError),
        ({"compression": 0.5, "init": "zeros"}, ValueError),
        ({"compression": 0.5, "seed": -1}, ValueError),
        ({"compression": 0.5, "budget": "equal"}, ValueError),
        ({"compression": 0.5, "scope": "pool", "budget": "uniform"}, ValueError),
        ({"compression": 0.5, "layer_scale": True}, ValueError),
        ({"compression": 0.5, "scope": "pool", "layer_scale": 1}, TypeError),
    ],
)
def test_bad_config_raises(kwargs, error):
    with pytest.raises(error):
        hashing(**kwargs)


def test_bad_leaves_and_buckets_raise():
    with pytest.raises(TypeError, match="float"):
        hashing(0.5).init(jax.random.key(0), {"a": jnp.zeros((3, 3), jnp.int32)})
    with pytest.raises(ValueError, match="matched no leaf"):
        hashed(0.5).init(jax.random.key(0), {"w": jnp.zeros((3, 3))})
    t = hashing(0.5)
    s = t.init(jax.random.key(0), {"w": jnp.ones((4, 4))})
    with pytest.raises(ValueError, match="bucket vector"):
        t.apply(s._replace(theta={"w": jnp.ones((3,))}))


# ----------------------------------------------------------------------------- RER baseline


def test_random_edges_keeps_exactly_k_weights():
    params = _mlp_params()
    t = random_edges(1 / 8)
    s = t.init(jax.random.key(3), params)
    sizes = {"Dense_0/kernel": 480, "Dense_1/kernel": 600, "Dense_2/kernel": 200}
    assert free_params(s) == sum(kept_edges(1 / 8, n) for n in sizes.values()) + 60
    out = t.apply(s)
    for path, n in sizes.items():
        layer = path.split("/")[0]
        w, w0 = out[layer]["kernel"], params[layer]["kernel"]
        kept = np.asarray(w) != 0
        assert kept.sum() == kept_edges(1 / 8, n)
        np.testing.assert_array_equal(np.asarray(w)[kept], np.asarray(w0)[kept])
    # Gradients reach the kept weights only.
    g = jax.jit(jax.grad(lambda th: sum(jnp.sum(x) for x in jax.tree.leaves(bind(t, s)(th)))))(
        s.theta
    )
    chex.assert_trees_all_equal(g["inner"], jax.tree.map(jnp.ones_like, s.theta["inner"]))
    with pytest.raises(ValueError):
        random_edges(0.0)


def test_host_hash_and_gather_equal_the_jitted_ones_bit_for_bit():
    """Storage decodes hashed leaves with NumPy: the same indices, signs, signed indices and
    virtual weights as the jitted transform, for odd shapes, big layer ids and seeds."""
    from wsjax.sharing.hashing import (HashSpec, hash_indices, hash_indices_numpy, hashed_take,
                                       hashed_take_numpy, signed_index, signed_index_numpy)

    rng = np.random.default_rng(0)
    for shape, k, layer, seed in [((7,), 3, 0, 0), ((33, 17), 50, 1, 2**32 - 1), ((3, 3, 4, 5), 11, 2**32 - 1, 7),
                                  ((128, 300), 4801, 5, 12345), ((1, 1), 1, 0, 0)]:
        spec = HashSpec(shape, k, layer, seed)
        i_np, s_np = hash_indices_numpy(spec)
        i_jx, s_jx = hash_indices(spec)
        np.testing.assert_array_equal(i_np, np.asarray(i_jx))
        np.testing.assert_array_equal(s_np, np.asarray(s_jx))
        assert i_np.dtype == np.int32 and s_np.dtype == np.float32
        np.testing.assert_array_equal(signed_index_numpy(spec), np.asarray(signed_index(spec)))
        for dtype in (np.float32, jnp.bfloat16):
            buckets = rng.normal(size=k).astype(dtype)
            buckets[0] = 0.0
            host = hashed_take_numpy(buckets, spec)
            device = np.asarray(hashed_take(jnp.asarray(buckets), spec))
            assert host.dtype == device.dtype
            np.testing.assert_array_equal(host.view(np.uint16 if dtype != np.float32 else np.uint32),
                                          device.view(np.uint16 if dtype != np.float32 else np.uint32))


@pytest.mark.parametrize("precompute", [False, True])
def test_a_pool_with_layer_scales_multiplies_each_leaf_and_learns_the_scales(precompute):
    from wsjax import storage

    params = _mlp_params()
    plain = hashed(1 / 8, scope="pool", precompute=precompute)
    t = hashed(1 / 8, scope="pool", layer_scale=True, precompute=precompute)
    s0, s = plain.init(jax.random.key(1), params), t.init(jax.random.key(1), params)
    chex.assert_trees_all_equal(s.theta["inner"]["pool"], s0.theta["inner"])  # the same buckets
    assert free_params(s) == free_params(s0) + 3  # one scalar per hashed kernel
    kernels = {p: params[p.split("/")[0]]["kernel"] for p in s.theta["inner"]["scale"]}
    rms = np.sqrt(sum(np.sum(k.astype(np.float64) ** 2) for k in kernels.values()) / sum(k.size for k in kernels.values()))
    for p, k in kernels.items():  # each leaf starts at its own scale
        np.testing.assert_allclose(s.theta["inner"]["scale"][p], np.std(k) / rms, rtol=1e-5)
    theta = jax.tree.map(lambda x: x, s.theta)
    theta["inner"]["scale"] = {p: jnp.float32(v) for p, v in zip(sorted(kernels), (2.0, -0.5, 3.0))}
    s = s._replace(theta=theta)
    out, base = t.apply(s), plain.apply(s0)
    for (p, v) in zip(sorted(kernels), (2.0, -0.5, 3.0)):
        layer = p.split("/")[0]
        chex.assert_trees_all_equal(out[layer]["kernel"], jnp.float32(v) * base[layer]["kernel"])
    # the scales' gradient is the leaf's gradient contracted with its unscaled weights
    x = jnp.asarray(np.random.default_rng(2).standard_normal((4, 16)), jnp.float32)
    model = MLP((30, 20, 10))
    loss_w = lambda w: jnp.sum(model.apply({"params": w}, x) ** 2)
    g = jax.grad(lambda th: loss_w(bind(t, s)(th)))(s.theta)
    g_w = jax.grad(loss_w)(out)
    for p in sorted(kernels):
        layer = p.split("/")[0]
        want = jnp.sum(g_w[layer]["kernel"] * base[layer]["kernel"])
        np.testing.assert_allclose(g["inner"]["scale"][p], want, rtol=1e-4)
    data = storage.encode((t, s))  # the file: the pool, three scalars, read back bit for bit
    chex.assert_trees_all_equal(storage.decode(data), jax.tree.map(np.asarray, out))
    assert len(data) - len(storage.encode((plain, s0))) < 3 * 4 + 3 * 40  # three scalars and their names


def test_block_hashing_reads_contiguous_runs_of_buckets_per_chunk():
    from wsjax import storage

    spec = HashSpec((7, 9), 50, layer=2, seed=5, block=8)  # 63 weights: 7 chunks of 8, the last of 7
    index, sign = hash_indices(spec)
    chunk_spec = HashSpec((8, 1), 50, layer=2, seed=5)  # the chunks' own keys (layer, c, 0)
    starts, signs = (np.asarray(a).ravel() for a in hash_indices(chunk_spec))
    flat_i, flat_s = np.asarray(index).ravel(), np.asarray(sign).ravel()
    for e in range(63):
        c, o = divmod(e, 8)
        assert flat_i[e] == (starts[c] + o) % 50 and flat_s[e] == signs[c]
    np.testing.assert_array_equal(hash_indices_numpy(spec)[0], index)  # host == device, bit for bit
    np.testing.assert_array_equal(hash_indices_numpy(spec)[1], sign)
    # block 1 is the element-wise hash; a block longer than the leaf hashes the leaf as one chunk
    np.testing.assert_array_equal(hash_indices(spec._replace(block=1))[0], hash_indices(HashSpec((7, 9), 50, 2, 5))[0])
    whole = np.asarray(hash_indices(spec._replace(block=10**9))[0]).ravel()
    np.testing.assert_array_equal(whole, (whole[0] + np.arange(63)) % 50)
    # the transform: a ROAST-style global pool of blocks trains and stores like element-wise hashing
    params = _mlp_params()
    t = hashed(1 / 8, scope="pool", block=16)
    s = t.init(jax.random.key(0), params)
    check_grads(lambda b: t.apply(s._replace(theta={**s.theta, "inner": b}))["Dense_1"]["kernel"].sum() ** 2,
                (s.theta["inner"],), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
    data = storage.encode((t, s))
    chex.assert_trees_all_equal(storage.decode(data), jax.tree.map(np.asarray, t.apply(s)))
    _, states = storage.decode(data, with_state=True)
    assert {spec.block for _, spec in states["hashing"].frozen["specs"].value} == {16}


@pytest.mark.parametrize("scope", ["layer", "pool"])
def test_init_scale_multiplies_the_random_buckets(scope):
    params = _mlp_params()
    one = hashed(1 / 8, scope=scope).init(jax.random.key(3), params)
    two = hashed(1 / 8, scope=scope, init_scale=2.0).init(jax.random.key(3), params)
    chex.assert_trees_all_equal(two.theta["inner"], jax.tree.map(lambda b: 2.0 * b, one.theta["inner"]))
    with pytest.raises(ValueError, match="init='project'"):
        hashed(1 / 8, init="project", init_scale=2.0)
    with pytest.raises(ValueError):
        hashed(1 / 8, init_scale=0.0)
