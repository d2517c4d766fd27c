"""The contract every registered transform and storage codec keeps, on linen and NNX models.

Parameterised over ``wsjax.sharing.registry.TRANSFORMS``: registering a transform adds it
here. For each, on a linen MLP and on a user-defined Flax NNX model of the same shapes:
``apply`` jits (same bits as eager) and ``eval_shape`` gives the params' shapes; gradients
through ``apply`` match finite differences (``jax.test_util.check_grads``); free <= virtual
parameters; storing the ``(transform, state)`` pair and loading it back gives ``apply(state)``
bit for bit, with the size report's byte count equal to the file's; and every codec that
the registered transforms use is exercised.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

from wsjax import compress, storage
from wsjax.models import MLP
from wsjax.sharing import count_params, flatten_paths, free_params, registry, virtual_params
from wsjax.sharing.core import SharedParams
from wsjax.storage import codecs

SHAPES = (12, 16, 16, 16, 10)  # equal hidden layers, so tying applies


class NNXMLP(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(SHAPES[:-1], SHAPES[1:])])

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = nnx.relu(x)
        return x


def _linen():
    model = MLP(SHAPES[1:])
    params = model.init(jax.random.key(0), jnp.zeros((1, SHAPES[0])))["params"]
    return compress.from_linen(model, params), [f"Dense_{i}" for i in range(len(SHAPES) - 1)]


def _nnx():
    return compress.from_nnx(NNXMLP(nnx.Rngs(0))), [f"layers/{i}" for i in range(len(SHAPES) - 1)]


MODELS = {"linen": _linen, "nnx": _nnx}
X = jnp.asarray(np.random.default_rng(0).normal(size=(8, SHAPES[0])), jnp.float32)


def _instance(name, kind):
    net, layers = MODELS[kind]()
    t = registry.TRANSFORMS[name].example(layers)
    state = t.init(jax.random.key(1), net.params)
    return net, t, state


CASES = [(n, k) for n in registry.TRANSFORMS for k in MODELS]


@pytest.mark.parametrize("name,kind", CASES)
def test_apply_jits_and_eval_shape_gives_the_params_shapes(name, kind):
    net, t, state = _instance(name, kind)
    eager = jax.device_get(t.apply(state))
    jitted = jax.device_get(jax.jit(t.apply)(state))
    # equal up to the rounding of reductions (a scale mean|theta| summed in another order under jit)
    chex.assert_trees_all_close(eager, jitted, rtol=1e-6, atol=0)
    shapes = jax.eval_shape(t.apply, state)
    chex.assert_trees_all_equal_shapes_and_dtypes(shapes, net.params)
    out = jax.jit(net.apply)(t.apply(state), X)
    assert out.shape == (X.shape[0], SHAPES[-1]) and bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize("name,kind", CASES)
def test_gradients_match_finite_differences(name, kind):
    net, t, state = _instance(name, kind)

    weights = flatten_paths(net.params)
    probes = {p: jnp.asarray(np.random.default_rng(i).normal(size=np.shape(w)), jnp.float32)
              for i, (p, w) in enumerate(weights.items())}

    def loss(theta):  # smooth in W, so finite differences see the transform's Jacobian alone
        w = flatten_paths(t.apply(SharedParams(theta, state.frozen)))
        return sum(jnp.sum(jnp.sin(3.0 * w[p]) * probes[p]) for p in probes)

    theta = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), state.theta)
    if registry.TRANSFORMS[name].gradient == "exact":
        check_grads(loss, (theta,), order=1, modes=["rev"], atol=5e-2, rtol=5e-2, eps=1e-2)
        return
    # a straight-through estimator: finite, of theta's structure, and not zero
    grads = jax.grad(loss)(theta)
    chex.assert_trees_all_equal_shapes(grads, theta)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


@pytest.mark.parametrize("name,kind", CASES)
def test_free_parameters_never_exceed_virtual_ones(name, kind):
    net, t, state = _instance(name, kind)
    assert virtual_params(t, state) == count_params(net.params)
    assert 0 < free_params(state) <= virtual_params(t, state)


@pytest.mark.parametrize("name,kind", CASES)
def test_storage_round_trip_is_bit_exact(name, kind, tmp_path):
    net, t, state = _instance(name, kind)
    path = tmp_path / f"{name}.wsjax"
    report = storage.save(path, (t, state))
    assert report.file_bytes == path.stat().st_size
    assert sum(layer.stored_bytes for layer in report.layers) + report.file_overhead_bytes == report.file_bytes
    want = {p: np.asarray(a) for p, a in flatten_paths(jax.device_get(t.apply(state))).items()}
    got = {p: np.asarray(a) for p, a in flatten_paths(storage.load(path)).items()}
    assert set(got) == set(want)
    for p in want:
        assert got[p].dtype == want[p].dtype and got[p].shape == want[p].shape, p
        assert np.array_equal(got[p].view(np.uint8), want[p].view(np.uint8)), p
    # the loaded params run the user's model exactly as the in-memory ones do
    loaded = jax.tree.map(jnp.asarray, storage.load(path))
    chex.assert_trees_all_equal(net.apply(loaded, X), net.apply(t.apply(state), X))


def _codec_names(codec):
    if codec is None:
        return {"weights"}
    if isinstance(codec, tuple):
        return {"weights"} | _codec_names(codec[1])
    return {codec}


def test_every_registered_codec_is_exercised_by_a_registered_transform():
    net, layers = _linen()
    used = set()
    for entry in registry.TRANSFORMS.values():
        used |= _codec_names(entry.example(layers).codec)
    assert used == set(codecs.names()), (sorted(used), codecs.names())


def test_build_from_a_config():
    t = registry.build({"name": "hashing", "compression": 0.125})
    net, _ = _linen()
    state = t.init(jax.random.key(0), net.params)
    assert t.codec == ("select", "hashing")
    assert jax.tree.map(jax.numpy.shape, t.apply(state)) == jax.tree.map(jax.numpy.shape, net.params)
    with pytest.raises(KeyError, match="unknown transform"):
        registry.build({"name": "nope"})
    with pytest.raises(ValueError):
        registry.build({"compression": 0.5})
