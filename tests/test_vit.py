"""The cross-layer reference models: the deep balanced MLP and the small ViT."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wsjax import compress, data
from wsjax.models import ViT, deep_mlp, mlp_params, vit_params
from wsjax.train import classifier, evaluate, fit


def _count(params):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def _shapes(model, x):
    """The parameters' shapes and dtypes of ``model.init`` on ``x``, traced, not computed."""
    return jax.eval_shape(model.init, jax.random.key(0), x)["params"]


def test_deep_mlp_has_seven_same_shape_hidden_kernels():
    params = _shapes(deep_mlp(), jnp.zeros((1, 28, 28, 1)))
    assert _count(params) == mlp_params((256,) * 8 + (10,), 784) == 664_074
    shapes = [params[f"Dense_{i}"]["kernel"].shape for i in range(1, 8)]
    assert shapes == [(256, 256)] * 7
    with pytest.raises(ValueError, match="width"):
        deep_mlp(width=0)


@pytest.mark.parametrize("kw", [{}, {"patch": 4, "width": 32, "depth": 2, "heads": 2, "mlp_ratio": 4}])
def test_vit_parameter_count_equals_the_formula(kw):
    model = ViT(**kw)
    params = _shapes(model, jnp.zeros((2, 28, 28, 1)))
    formula_kw = {k: v for k, v in kw.items() if k != "heads"}
    assert _count(params) == vit_params(**formula_kw)
    depth = kw.get("depth", 4)
    shapes = [jax.tree.map(jnp.shape, params[f"Block_{i}"]) for i in range(depth)]
    assert all(s == shapes[0] for s in shapes)  # every block has one shape: tying applies


def test_vit_sows_row_stochastic_attention_maps_and_rejects_bad_images():
    model = ViT()
    x = jax.random.normal(jax.random.key(1), (3, 28, 28, 1))
    params = model.init(jax.random.key(0), x)["params"]
    logits, state = model.apply({"params": params}, x, mutable=["intermediates"])
    assert logits.shape == (3, 10)
    maps = state["intermediates"]["Block_2"]["attention"][0]
    assert maps.shape == (3, 4, 17, 17)
    np.testing.assert_allclose(np.asarray(maps.sum(-1)), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match=r"divisible by 7, got shape \(1, 30, 30, 1\)"):
        model.init(jax.random.key(0), jnp.zeros((1, 30, 30, 1)))


def test_vit_gradients_match_finite_differences():
    model = ViT(width=16, depth=1, heads=2)
    x = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
    params = model.init(jax.random.key(0), x)["params"]
    # At initialisation the class token is zero and the positions tiny: its LayerNorm sees
    # a near-constant vector, where a finite-difference step is not small. Use O(1) values.
    params["cls"] = jax.random.normal(jax.random.key(2), params["cls"].shape)
    params["position"] = jax.random.normal(jax.random.key(3), params["position"].shape)
    f = lambda p: jnp.mean(model.apply({"params": p}, x) ** 2)  # noqa: E731
    jax.test_util.check_grads(f, (params,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-2)


def test_vit_learns_fashion_mnist_and_takes_a_shared_pool():
    """A few hundred steps on real data: well above chance; the tied-block and hashed
    versions of the same net train through the same engine."""
    x, y = data.load("fashion_mnist", "train")
    xt, yt = data.load("fashion_mnist", "test")
    model = ViT(width=32, depth=2, heads=2)
    params = model.init(jax.random.key(0), x[:2])["params"]
    loss_fn, eval_fn = classifier(lambda p, xb: model.apply({"params": p}, xb))
    # loop='python': 'auto' would compile the ViT's step twice (a Python-loop step and a scan
    # chunk) to time them; tests/test_train.py tests the choice itself
    r = fit(loss_fn, params, optax.adam(2e-3), (x[:6000], y[:6000]), epochs=2, batch_size=100, loop="python",
            progress=False)
    acc = evaluate(eval_fn, r.theta, xt[:2000], yt[:2000])["accuracy"]
    assert acc > 0.70, acc  # chance is 0.10
    net = compress.from_linen(model, r.theta)
    hashed = compress.hashednets(1 / 4, epochs=1, lr=2e-3).run(
        net, (x[:3000], y[:3000]), (x[-500:], y[-500:]), loop="python", progress=False)
    assert hashed.history[-1]["val_accuracy"] > 0.5, hashed.history
    chex.assert_trees_all_equal_shapes(hashed.params, params)
