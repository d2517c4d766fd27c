"""Basis sharing W_l = B @ C_l across same-shape leaves (wsjax.sharing.shared_basis), its codec."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from wsjax import sharing, storage
from wsjax.models import MLP
from wsjax.sharing import SharedParams, count_params, free_params, registry, virtual_params
from wsjax.sharing.shared_basis import (
    Layout,
    equal_budget_ranks,
    joint_factors,
    joint_reconstruction_error,
    per_layer_params,
    per_layer_rank_for_budget,
    per_layer_reconstruction_error,
    shared_basis,
    shared_basis_leaves,
    shared_basis_params,
    shared_rank_for_budget,
)
from wsjax.storage import StorageError, codecs
from wsjax.storage.bytestream import varint_size
from wsjax.storage.codecs import Group
from wsjax.storage.codecs import shared_basis as codec


def leaves(shape=(3, 4, 5), m=3, seed=0):
    rng = np.random.default_rng(seed)
    return {f"L{i}/kernel": jnp.asarray(rng.normal(size=shape), jnp.float32) for i in range(m)}


def mlp_params():
    """``MLP((16, 16, 16, 4))`` on 6 inputs: Dense_1 and Dense_2 kernels are both 16x16."""
    shapes = jax.eval_shape(MLP((16, 16, 16, 4)).init, jax.random.key(0), jnp.zeros((1, 6)))
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.1, s.shape), s.dtype),
                        shapes["params"])


GROUPS = [["Dense_1/kernel", "Dense_2/kernel"], ["Dense_0/kernel"]]


def orthonormal(n, k, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q[:, :k]


def designed(column_spaces, s, c, seed=0):
    """Leaves ``W_l = Q_l diag(s) V_l^T``: given column spaces, singular values ``s``."""
    out = []
    for i, q in enumerate(column_spaces):
        v = orthonormal(c, len(s), seed + 100 + i)
        out.append(jnp.asarray((q * s) @ v.T, jnp.float32))
    return out


# ----------------------------------------------------------------------------- counting


def test_parameter_counts_are_exact():
    assert shared_basis_params(12, 5, 3, 4) == 12 * 4 + 3 * 4 * 5 == 108
    assert per_layer_params(12, 5, 3, 4) == 3 * 4 * (12 + 5) == 204
    t = shared_basis_leaves([list(leaves())], rank=4)
    s = t.init(jax.random.key(0), leaves())
    assert free_params(s) == 108 and virtual_params(t, s) == 3 * 60
    chex.assert_shape(s.theta["bases"][0], (12, 4))
    chex.assert_shape(list(s.theta["coefs"].values()), (4, 5))
    # On a model: two groups with their own ranks, everything else kept as it is.
    params = mlp_params()
    t = shared_basis(GROUPS, rank={0: 5, 1: 2})
    s = t.init(jax.random.key(0), params)
    biases = 16 + 16 + 16 + 4
    assert free_params(s) == (16 * 5 + 2 * 5 * 16) + (6 * 2 + 2 * 16) + 16 * 4 + biases
    assert virtual_params(t, s) == count_params(params)


def test_budget_ranks_round_down_and_never_exceed_the_per_layer_arm():
    # n=20, c=10, m=3, r'=2: 3*2*30 = 180 per layer; shared 180 // (20 + 30) = 3 -> 150.
    assert equal_budget_ranks(20, 10, 3, 2) == (3, 2, 150, 180)
    assert shared_rank_for_budget(20, 10, 3, 150) == 3
    assert shared_rank_for_budget(20, 10, 3, 149) == 2
    assert per_layer_rank_for_budget(20, 10, 3, 180) == 2
    assert per_layer_rank_for_budget(20, 10, 3, 179) == 1
    # Capped: min(n, m*c) = 4 (a larger basis reproduces the stack already).
    assert equal_budget_ranks(4, 4, 2, 4) == (4, 4, 48, 64)
    assert equal_budget_ranks(4, 4, 2, 9) == (4, 4, 48, 64)  # r' lowered to min(n, c)
    for n, c, m, r in [(784, 300, 2, 7), (256, 256, 7, 16), (5, 3, 4, 1), (3, 40, 6, 3)]:
        b = equal_budget_ranks(n, c, m, r)
        assert b.shared >= 1 and b.shared_params <= b.per_layer_params
        assert b.shared == min(n, m * c) or b.per_layer_params - b.shared_params < n + m * c
    with pytest.raises(ValueError, match="buys no shared basis"):
        shared_rank_for_budget(20, 10, 3, 49)


def test_per_layer_rank_matches_the_low_rank_arm_at_most_in_parameters():
    params = mlp_params()
    hidden = GROUPS[0]
    shared = shared_basis([hidden], per_layer_rank=3).init(jax.random.key(0), params)
    lowrank = sharing.low_rank(3, include=r"Dense_[12]/kernel").init(jax.random.key(0), params)
    # per layer 2*3*32 = 192; shared 192 // (16 + 32) = 4, exactly 192.
    assert shared.theta["inner"]["bases"][0].shape == (16, 4)
    assert free_params(shared) == free_params(lowrank)


# ----------------------------------------------------------------------------- factoring


def test_full_rank_reproduces_the_leaves():
    ws = leaves()
    for rank in (12, 100):  # 100 is lowered to min(n, m*c) = 12
        t = shared_basis_leaves([list(ws)], rank=rank)
        out = t.apply(t.init(jax.random.key(0), ws))
        chex.assert_trees_all_close(out, ws, atol=2e-5)
    err = joint_reconstruction_error(list(ws.values()), 12)
    assert err.total < 1e-6 and err.rank == 12


def test_init_is_the_svd_optimal_joint_approximation():
    ws = leaves()
    t = shared_basis_leaves([list(ws)], rank=4)
    s = t.init(jax.random.key(0), ws)
    stack = np.concatenate([np.asarray(w, np.float64).reshape(12, 5) for w in ws.values()], 1)
    u, sv, vt = np.linalg.svd(stack, full_matrices=False)
    best = (u[:, :4] * sv[:4]) @ vt[:4]
    got = np.concatenate([np.asarray(w).reshape(12, 5) for w in t.apply(s).values()], 1)
    np.testing.assert_allclose(got, best, atol=1e-5)
    # Balanced split: the basis columns carry sqrt of the singular values.
    np.testing.assert_allclose(np.linalg.norm(np.asarray(s.theta["bases"][0]), axis=0),
                               np.sqrt(sv[:4]), rtol=1e-5)
    # Eckart-Young: the error is the tail of the spectrum.
    err = joint_reconstruction_error(list(ws.values()), 4)
    np.testing.assert_allclose(err.total, np.sqrt(np.sum(sv[4:] ** 2) / np.sum(sv ** 2)),
                               rtol=1e-5)
    # Any other rank-4 basis, with its least-squares coefficients, does worse.
    other = np.random.default_rng(3).normal(size=(12, 4))
    fit = other @ np.linalg.lstsq(other, stack, rcond=None)[0]
    assert np.linalg.norm(stack - fit) > np.linalg.norm(stack - best) * 1.05


def test_equal_leaves_share_a_basis_for_free():
    q = orthonormal(12, 4, 0)
    w = designed([q], np.array([4.0, 3.0, 2.0, 1.0]), 6)[0]
    ws = [w, w, w]
    joint, separate = joint_reconstruction_error(ws, 2), per_layer_reconstruction_error(ws, 2)
    hand = np.sqrt((4 + 1) / 30)  # the dropped singular values 2, 1 of 4, 3, 2, 1
    np.testing.assert_allclose(joint.per_layer, [hand] * 3, rtol=1e-4)
    np.testing.assert_allclose(separate.per_layer, [hand] * 3, rtol=1e-4)
    assert (joint.params, separate.params) == (12 * 2 + 3 * 2 * 6, 3 * 2 * 18) == (60, 108)
    # At equal parameters (108) the shared arm affords rank 3 and only drops the 1.
    ranks = equal_budget_ranks(12, 6, 3, 2)
    assert ranks.shared == 3 and ranks.shared_params == 90
    better = joint_reconstruction_error(ws, ranks.shared)
    np.testing.assert_allclose(better.total, np.sqrt(1 / 30), rtol=1e-3)


def test_orthogonal_column_spaces_make_a_shared_basis_worse_at_equal_parameters():
    q = orthonormal(12, 12, 0)
    ws = designed([q[:, 0:4], q[:, 4:8], q[:, 8:12]], np.array([4.0, 3.0, 2.0, 1.0]), 6)
    ranks = equal_budget_ranks(12, 6, 3, 2)
    separate = per_layer_reconstruction_error(ws, ranks.per_layer)
    joint = joint_reconstruction_error(ws, ranks.shared)
    np.testing.assert_allclose(separate.total, np.sqrt(5 / 30), rtol=1e-4)
    # The stack's spectrum is 4, 4, 4, 3, 3, 3, ...: rank 3 keeps only the three 4s.
    np.testing.assert_allclose(joint.total, np.sqrt(3 * (9 + 4 + 1) / 90), rtol=1e-4)
    assert joint.params <= separate.params and joint.total > separate.total + 0.2


# ----------------------------------------------------------------------------- autodiff


def test_gradients_match_finite_differences_and_sum_over_the_group():
    ws = leaves(shape=(6, 4))
    ws["solo/kernel"] = ws.pop("L2/kernel")
    t = shared_basis_leaves([["L0/kernel", "L1/kernel"], ["solo/kernel"]], rank={0: 3, 1: 2})
    s = t.init(jax.random.key(0), ws)
    probes = {p: jnp.asarray(np.random.default_rng(i).normal(size=(6, 4)), jnp.float32)
              for i, p in enumerate(sorted(ws))}

    def loss(theta):
        out = t.apply(SharedParams(theta, s.frozen))
        return sum(jnp.sum(jnp.sin(out[p]) * probes[p]) for p in probes)

    check_grads(jax.jit(loss), (s.theta,), order=1, modes=["fwd", "rev"], atol=1e-2, rtol=1e-2,
                eps=1e-2)
    # dL/dB = sum over the group of dL/dW_l C_l^T.
    grad = jax.grad(loss)(s.theta)
    out = t.apply(s)
    g_w = {p: jnp.cos(out[p]) * probes[p] for p in probes}
    hand = sum(g_w[p] @ s.theta["coefs"][p].T for p in ("L0/kernel", "L1/kernel"))
    np.testing.assert_allclose(grad["bases"][0], hand, rtol=1e-5, atol=1e-6)


class JitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_apply(self):
        params = mlp_params()
        t = shared_basis(GROUPS, rank=3)
        s = t.init(jax.random.key(0), params)
        out = self.variant(sharing.bind(t, s))(s.theta)
        chex.assert_trees_all_equal_shapes_and_dtypes(out, params)
        chex.assert_trees_all_close(out, t.apply(s), atol=1e-6)
        np.testing.assert_array_equal(out["Dense_3"]["kernel"], params["Dense_3"]["kernel"])


# ----------------------------------------------------------------------------- storage


def test_storage_round_trip_is_bit_exact_with_the_file_size_from_the_arrays(tmp_path):
    params = mlp_params()
    t = shared_basis(GROUPS, rank={0: 2, 1: 2})
    s = t.init(jax.random.key(0), params)
    rng = np.random.default_rng(1)  # as after training: values off their SVD start
    s = SharedParams(jax.tree.map(
        lambda x: x + jnp.asarray(rng.normal(0, 0.01, x.shape), x.dtype), s.theta), s.frozen)
    path = tmp_path / "sb.wsjax"
    report = storage.save(path, (t, s), encoding="raw")
    assert report.file_bytes == path.stat().st_size
    loaded, states = storage.load(path, with_state=True)
    want = sharing.flatten_paths(jax.device_get(t.apply(s)))
    got = sharing.flatten_paths(loaded)
    assert set(got) == set(want)
    for p in want:
        assert got[p].dtype == want[p].dtype and got[p].shape == want[p].shape, p
        assert np.array_equal(got[p].view(np.uint8), np.asarray(want[p]).view(np.uint8)), p
    inner = states["shared_basis"]
    chex.assert_trees_all_equal(inner.theta, s.theta["inner"])
    assert inner.frozen == s.frozen and isinstance(inner.frozen.value, Layout)
    rows = {r.name: r for r in report.layers if r.codec == "shared_basis"}
    pair = "{Dense_1/kernel,Dense_2/kernel}"
    assert set(rows) == {pair, "Dense_0/kernel"}
    assert rows[pair].n_stored == 16 * 2 + 2 * 2 * 16 and rows[pair].n_weights == 2 * 256
    assert rows["Dense_0/kernel"].n_stored == 6 * 2 + 2 * 16

    # One more rank in group 0 adds its (n + m*c) float32 values and nothing else but the
    # changed varints of the records' payload lengths: exactly computed from the arrays.
    bigger = shared_basis(GROUPS, rank={0: 3, 1: 2})
    s3 = bigger.init(jax.random.key(0), params)
    path3 = tmp_path / "sb3.wsjax"
    storage.save(path3, (bigger, s3), encoding="raw")

    def record_bytes(rank):  # payload and its length's varint, for basis/0 and two coefs
        sizes = [4 * 16 * rank] + [4 * rank * 16] * 2
        return sum(b + varint_size(b) for b in sizes)

    delta = path3.stat().st_size - path.stat().st_size
    assert delta == record_bytes(3) - record_bytes(2) == 4 * (16 + 2 * 16)
    assert rows[pair].parts["raw"] == 4 * rows[pair].n_stored  # float32 values, no more


def _group():
    ws = leaves(shape=(4, 6), m=2)
    ws["x/kernel"] = jnp.ones((3, 5))
    t = shared_basis_leaves([["L0/kernel", "L1/kernel"], ["x/kernel"]], rank=2)
    s = t.init(jax.random.key(0), ws)
    return t, s, codec.encode(s, None)


def test_codec_encode_decode_directly():
    t, s, g = _group()
    assert codecs.get("shared_basis") is codec
    assert g.meta == {"groups": [[["L0/kernel", "L1/kernel"], [4, 6]], [["x/kernel"], [3, 5]]]}
    assert list(g.arrays) == ["basis/0", "L0/kernel/coef", "L1/kernel/coef", "basis/1",
                              "x/kernel/coef"]
    params, state = codec.decode(g)
    for p, x in t.apply(s).items():
        assert np.array_equal(params[p].view(np.uint8), np.asarray(x).view(np.uint8)), p
    chex.assert_trees_all_equal(state, s)


def _edit(group, meta=None, drop=(), add=None, replace=None):
    arrays = {k: v for k, v in group.arrays.items() if k not in drop}
    arrays.update(add or {})
    arrays.update(replace or {})
    return Group(group.codec, group.meta if meta is None else meta, arrays)


BAD = {
    "unknown field": lambda g: _edit(g, {**g.meta, "rank": 2}),
    "missing groups": lambda g: _edit(g, {}),
    "no groups": lambda g: _edit(g, {"groups": []}),
    "groups not a list": lambda g: _edit(g, {"groups": {"0": 1}}),
    "short entry": lambda g: _edit(g, {"groups": [[["L0/kernel", "L1/kernel"]]]}),
    "empty group": lambda g: _edit(g, {"groups": [[[], [4, 6]], g.meta["groups"][1]]}),
    "path twice": lambda g: _edit(g, {"groups": [[["L0/kernel", "L0/kernel"], [4, 6]],
                                                 g.meta["groups"][1]]}),
    "path in two groups": lambda g: _edit(g, {"groups": [g.meta["groups"][0],
                                                         [["L0/kernel"], [3, 5]]]}),
    "path not a string": lambda g: _edit(g, {"groups": [[[1, "L1/kernel"], [4, 6]],
                                                        g.meta["groups"][1]]}),
    "one axis": lambda g: _edit(g, {"groups": [[["L0/kernel", "L1/kernel"], [24]],
                                               g.meta["groups"][1]]}),
    "shape vs basis": lambda g: _edit(g, {"groups": [[["L0/kernel", "L1/kernel"], [2, 6]],
                                                     g.meta["groups"][1]]}),
    "huge shape": lambda g: _edit(g, {"groups": [[["L0/kernel", "L1/kernel"], [2**40, 6]],
                                                 g.meta["groups"][1]]}),
    "bool dim": lambda g: _edit(g, {"groups": [[["L0/kernel", "L1/kernel"], [True, 6]],
                                               g.meta["groups"][1]]}),
    "rank over the stack": lambda g: _edit(g, replace={
        "basis/1": np.zeros((3, 4), np.float32), "x/kernel/coef": np.zeros((4, 5), np.float32)}),
    "coef shape": lambda g: _edit(g, replace={"L1/kernel/coef": np.zeros((3, 6), np.float32)}),
    "coef dtype": lambda g: _edit(g, replace={"L1/kernel/coef": np.zeros((2, 6), np.float16)}),
    "int basis": lambda g: _edit(g, replace={"basis/0": np.zeros((4, 2), np.int32)}),
    "missing record": lambda g: _edit(g, drop=("x/kernel/coef",)),
    "extra record": lambda g: _edit(g, add={"y/coef": np.zeros((2, 5), np.float32)}),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_metas_and_records_raise_storage_errors(case):
    _, _, g = _group()
    with pytest.raises(StorageError, match="shared_basis group"):
        codec.decode(BAD[case](g))


def test_encode_refuses_an_inconsistent_state():
    _, s, _ = _group()
    coefs = dict(s.theta["coefs"], **{"L0/kernel": jnp.zeros((3, 6))})
    with pytest.raises(ValueError, match="coefficients of shape"):
        codec.encode(SharedParams({**s.theta, "coefs": coefs}, s.frozen), None)
    with pytest.raises(ValueError, match="one basis per group"):
        codec.encode(SharedParams({**s.theta, "bases": s.theta["bases"][:1]}, s.frozen), None)


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("groups,kwargs,match", [
    ([], {"rank": 2}, "non-empty list of lists"),
    ("L0/kernel", {"rank": 2}, "non-empty list of lists"),
    ([[]], {"rank": 2}, "group 0 must be a non-empty list"),
    (["L0/kernel"], {"rank": 2}, "group 0 must be a non-empty list"),
    ([["L0/kernel", 3]], {"rank": 2}, "leaf paths are strings"),
    ([["L0/kernel"], ["L0/kernel"]], {"rank": 2}, "listed twice"),
    ([["L0/kernel"]], {}, "exactly one of rank and per_layer_rank"),
    ([["L0/kernel"]], {"rank": 2, "per_layer_rank": 2}, "exactly one"),
    ([["L0/kernel"]], {"rank": 0}, "rank must be a positive int"),
    ([["L0/kernel"]], {"rank": 2.0}, "rank must be a positive int"),
    ([["L0/kernel"]], {"rank": True}, "rank must be a positive int"),
    ([["L0/kernel"], ["L1/kernel"]], {"rank": {0: 2}}, "one rank for each group index 0..1"),
    ([["L0/kernel"]], {"rank": {"0": 2}}, "one rank for each group index"),
    ([["L0/kernel"]], {"per_layer_rank": -1}, "per_layer_rank must be a positive int"),
])
def test_bad_arguments_are_refused_at_construction(groups, kwargs, match):
    with pytest.raises(ValueError, match=match):
        shared_basis_leaves(groups, **kwargs)


@pytest.mark.parametrize("tree,groups,match", [
    ({"a": jnp.ones((4, 3)), "b": jnp.ones((4, 2))}, [["a", "b"]], "one shape and dtype"),
    ({"a": jnp.ones((4, 3)), "b": jnp.ones((4, 3), jnp.bfloat16)}, [["a", "b"]],
     "one shape and dtype"),
    ({"a": jnp.ones((4,)), "b": jnp.ones((4,))}, [["a", "b"]], ">= 2 axes"),
    ({"a": jnp.ones((4, 3), jnp.int32)}, [["a"]], "float leaves"),
    ({"a": jnp.ones((0, 3))}, [["a"]], "empty"),
    ({"a": jnp.ones((4, 3)), "b": jnp.ones((4, 3))}, [["a"]], r"\['b'\] are in no group"),
    ({"a": jnp.ones((4, 3))}, [["a", "c"]], r"\['c'\] are not among the leaves"),
])
def test_bad_leaves_are_refused_at_init(tree, groups, match):
    with pytest.raises(ValueError, match=match):
        shared_basis_leaves(groups, rank=1).init(jax.random.key(0), tree)


def test_bad_analysis_inputs():
    w = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="exceeds min"):
        joint_factors([w, w], 7)  # min(4, 2*3) = 6
    with pytest.raises(ValueError, match="non-empty sequence"):
        joint_reconstruction_error([], 1)
    with pytest.raises(ValueError, match="non-empty sequence"):
        per_layer_reconstruction_error({"a": w}, 1)
    with pytest.raises(ValueError, match="n must be a positive int"):
        equal_budget_ranks(0, 3, 2, 1)
    with pytest.raises(ValueError, match="budget must be a non-negative int"):
        shared_rank_for_budget(4, 3, 2, 1.5)
    with pytest.raises(ValueError, match=r"matched no leaf"):
        shared_basis([["Nope/kernel"]], rank=1).init(jax.random.key(0), mlp_params())


def test_registry_builds_it_from_a_config():
    t = registry.build({"name": "shared_basis", "groups": [GROUPS[0]], "rank": 3})
    s = t.init(jax.random.key(0), mlp_params())
    assert t.codec == ("select", "shared_basis")
    assert s.theta["inner"]["bases"][0].shape == (16, 3)
