"""wsjax.sharing.paths: the one path matcher, per-layer lookup and default kernel selection."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import wsjax.penalties
import wsjax.pruning
import wsjax.sharing
from wsjax.sharing import KERNELS, KERNELS_AND_BIASES, flatten_paths, han_bits, matcher, per_layer
from wsjax.sharing.codebook import default_bits
from wsjax.storage.options import index_bits_for

# --------------------------------------------------------------------------- matcher


@pytest.mark.parametrize("include", [r"kernel$", re.compile(r"kernel$"), lambda p: p.endswith("kernel")])
def test_matcher_accepts_regex_pattern_and_callable(include):
    match = matcher(include)
    assert match("Dense_0/kernel") and not match("Dense_0/bias")


def test_matcher_searches_and_uses_callables_as_is():
    assert matcher("Dense")("net/Dense_0/kernel")  # re.search, not re.match
    pred = lambda p: True  # noqa: E731
    assert matcher(pred) is pred


def test_matcher_invalid_regex_names_the_pattern():
    with pytest.raises(ValueError, match=r"include='\[' is not a valid regular expression"):
        matcher("[")
    with pytest.raises(ValueError, match=r"sparsity key='\(' is not a valid"):
        per_layer({"(": 0.5}, "Dense_0/kernel", name="sparsity")


@pytest.mark.parametrize("bad", [3, None, b"kernel", ["kernel"]])
def test_matcher_rejects_other_types(bad):
    with pytest.raises(TypeError, match="include must be"):
        matcher(bad)


# --------------------------------------------------------------------------- per_layer


def test_per_layer_scalar_mapping_callable_none():
    assert per_layer(0.5, "Dense_0/kernel", name="s") == 0.5
    table = {"Dense_0": 0.1, "Dense": 0.2, re.compile("Conv"): 0.3}
    assert per_layer(table, "Dense_0/kernel", name="s") == 0.1  # first match wins
    assert per_layer(table, "Dense_1/kernel", name="s") == 0.2
    assert per_layer(table, "Conv_0/kernel", name="s") == 0.3
    assert per_layer(table, "LSTM_0/kernel", name="s", default=-1.0) == -1.0
    assert per_layer(table, "LSTM_0/kernel", name="s") is None
    assert per_layer({"Dense": None}, "Dense_0/kernel", name="s", default=7) == 7
    assert per_layer(lambda p: len(p), "abc", name="s") == 3
    assert per_layer(lambda p: None, "abc", name="s", default=4) == 4
    assert per_layer(None, "abc", name="s", default=5) == 5


def test_per_layer_check_sees_found_values_only():
    seen = []

    def check(v, path):
        seen.append((v, path))
        return int(v)

    assert per_layer({"Dense": 3.0}, "Dense_0/kernel", name="bits", default=None, check=check) == 3
    assert per_layer({"Dense": 3.0}, "Conv_0/kernel", name="bits", default=8, check=check) == 8
    assert seen == [(3.0, "Dense_0/kernel")]


def test_han_bits():
    assert han_bits(4) == 8
    assert [han_bits(n) for n in (0, 1, 2, 3, 5)] == [5] * 5
    assert default_bits("Conv_0/kernel", np.zeros((3, 3, 1, 4))) == 8
    assert index_bits_for(None, "Conv_0/kernel", np.zeros((3, 3, 1, 4))) == 8
    assert index_bits_for({"Conv": 6}, "Dense_0/kernel", np.zeros((4, 4))) == 5


# --------------------------------------------------------------------------- linen and NNX paths


class _Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3))(x)).reshape(x.shape[0], -1)
        return nn.Dense(3)(nn.relu(nn.Dense(16)(x)))


class _Nnx(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.layers = nnx.List([nnx.Linear(4 * 8 * 8, 16, rngs=rngs), nnx.Linear(16, 3, rngs=rngs)])

    def __call__(self, x):
        x = nnx.relu(self.conv(x)).reshape(x.shape[0], -1)
        return self.layers[1](nnx.relu(self.layers[0](x)))


_X = jnp.ones((2, 8, 8, 1))


def _named(paths, *names):
    """The paths with one component in ``names`` (the expected selection, found independently)."""
    return {p for p in paths if set(p.split("/")) & set(names)}


def _trees():
    linen = _Linen().init(jax.random.key(0), _X)["params"]
    model = _Nnx(nnx.Rngs(0))
    _, state = nnx.split(model)
    trees = {"linen": linen, "nnx.split": state, "nnx.state(Param)": nnx.state(model, nnx.Param)}
    if hasattr(nnx, "to_pure_dict"):
        trees["to_pure_dict"] = nnx.to_pure_dict(state)
    return trees


@pytest.mark.parametrize("name, tree", list(_trees().items()))
def test_default_selections_match_kernels_in_linen_and_nnx_paths(name, tree):
    paths = list(flatten_paths(tree))
    kernels = _named(paths, "kernel")
    assert len(kernels) == 3 and len(paths) == 6, paths
    assert {p for p in paths if matcher(KERNELS)(p)} == kernels
    assert {p for p in paths if matcher(KERNELS_AND_BIASES)(p)} == set(paths)
    assert not any(matcher(KERNELS)(p) for p in ("Dense_0/lora_kernel", "kernel_scale", "Dense_0/kernel/x"))


@pytest.fixture(scope="module")
def nnx_model():
    model = _Nnx(nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    return graphdef, state, _named(flatten_paths(state), "kernel")


@pytest.mark.parametrize(
    "make",
    [
        lambda: wsjax.sharing.hashed(1 / 8),
        lambda: wsjax.sharing.low_rank(rank=2),
        lambda: wsjax.sharing.quantize(bits=2),
    ],
    ids=["hashed", "low_rank", "quantize"],
)
def test_transforms_select_exactly_the_kernels_of_an_nnx_state(nnx_model, make):
    graphdef, state, kernels = nnx_model
    t = make()
    s = t.init(jax.random.key(0), state)
    all_paths = set(flatten_paths(state))
    # a select puts None at the leaves it takes over in theta['rest']; None leaves drop out
    assert all_paths - set(flatten_paths(s.theta["rest"])) == kernels
    params = t.apply(s)
    w0, w = flatten_paths(state), flatten_paths(params)
    assert set(w) == all_paths
    for p in all_paths - kernels:  # biases untouched
        np.testing.assert_array_equal(w[p], w0[p])
    y = nnx.merge(graphdef, params)(_X)
    assert y.shape == (2, 3) and bool(jnp.all(jnp.isfinite(y)))


def test_quantize_default_leaves_kernels_on_the_codebook(nnx_model):
    graphdef, state, kernels = nnx_model
    t = wsjax.sharing.quantize(bits=2)
    w = flatten_paths(t.apply(t.init(jax.random.key(0), state)))
    for p in kernels:
        assert len(np.unique(np.asarray(w[p]))) <= 4


def test_sparsity_masks_default_prunes_exactly_the_kernels_of_an_nnx_state(nnx_model):
    _, state, kernels = nnx_model
    masks = wsjax.pruning.sparsity_masks(state, 0.5)
    flat = flatten_paths(masks)  # None leaves drop out
    assert set(flat) == kernels
    for p in kernels:
        assert float(np.mean(np.asarray(flat[p]))) == pytest.approx(0.5, abs=0.02)


def test_soft_weight_sharing_with_kernels_on_an_nnx_state(nnx_model):
    _, state, kernels = nnx_model
    tx = wsjax.penalties.soft_weight_sharing(1e-3, 5, include=KERNELS)
    opt_state = tx.init(state)
    zeros = jax.tree.map(jnp.zeros_like, state)
    updates, _ = tx.update(zeros, opt_state, state)
    moved = {p for p, u in flatten_paths(updates).items() if float(jnp.abs(u).max()) > 0}
    assert moved == kernels
    assert set(wsjax.penalties.selected_leaves(state, KERNELS)) == kernels
