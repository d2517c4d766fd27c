"""Redundancy analysis (wsjax.analysis): spectra, similarity, representations, predictability."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsjax.analysis import (
    cka_matrix,
    effective_rank,
    energy_rank,
    explained_by_others,
    explained_by_self,
    hidden_representations,
    linear_cka,
    matched_filter_cosine,
    principal_angles,
    redundancy_table,
    singular_values,
    spectra,
    subspace_overlap,
    within_layer_predictability,
)
from wsjax.models import MLP, ViT
from wsjax.sharing.predicted import se_kernel


def rng(seed=0):
    return np.random.default_rng(seed)


def orthogonal(n, seed=0):
    return np.linalg.qr(rng(seed).normal(size=(n, n)))[0]


def random_params(model, x, seed=0, scale=0.3):
    """Params of ``model``'s shapes, drawn from N(0, scale^2) (no compiled ``init``)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    leaves, tree = jax.tree.flatten(shapes)
    g = rng(seed)
    return jax.tree.unflatten(tree, [jnp.asarray(scale * g.normal(size=l.shape), l.dtype) for l in leaves])


# ----------------------------------------------------------------------------- spectra


def test_effective_rank_of_identity_rank_one_and_a_hand_spectrum():
    assert effective_rank(singular_values(np.eye(7))) == pytest.approx(7.0, rel=1e-12)
    u, v = rng().normal(size=(9, 1)), rng(1).normal(size=(1, 6))
    assert effective_rank(singular_values(u @ v)) == pytest.approx(1.0, rel=1e-9)
    # p = (1/2, 1/4, 1/4): H = 1.5 log 2, exp(H) = 2 ** 1.5.
    assert effective_rank([2.0, 1.0, 1.0, 0.0]) == pytest.approx(2**1.5, rel=1e-12)
    with pytest.raises(ValueError, match="all zero"):
        effective_rank([0.0, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        effective_rank([1.0, -1.0])


def test_energy_rank_on_a_designed_spectrum():
    s = np.sqrt([4.0, 3.0, 2.0, 1.0])  # energies 4, 3, 2, 1 of 10
    expected = {0.1: 1, 0.4: 1, 0.41: 2, 0.7: 2, 0.71: 3, 0.9: 3, 0.91: 4, 1.0: 4}
    for fraction, k in expected.items():
        assert energy_rank(s, fraction) == k, fraction
        assert energy_rank(s[::-1], fraction) == k, fraction  # order of s does not matter
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="fraction"):
            energy_rank(s, bad)


def test_singular_values_view_leading_axes_as_rows_and_spectra_selects_kernels():
    k = rng().normal(size=(3, 3, 2, 5)).astype(np.float32)
    np.testing.assert_allclose(singular_values(k), np.linalg.svd(k.reshape(18, 5).astype(np.float64),
                                                                 compute_uv=False), rtol=1e-12)
    assert singular_values(rng().normal(size=(4, 2, 3)), rows=1).shape == (4,)  # (4 x 6)
    with pytest.raises(ValueError, match="2 dimensions"):
        singular_values(np.ones(3))
    params = {f"Dense_{i}": {"kernel": rng(i).normal(size=shape), "bias": np.zeros(shape[1])}
              for i, shape in enumerate([(5, 6), (6, 4)])}
    out = spectra(params)
    assert list(out) == ["Dense_0/kernel", "Dense_1/kernel"]
    chex.assert_shape([out["Dense_0/kernel"], out["Dense_1/kernel"]], [(5,), (4,)])
    np.testing.assert_allclose(out["Dense_1/kernel"], np.linalg.svd(
        np.asarray(params["Dense_1"]["kernel"], np.float64), compute_uv=False), rtol=1e-12)
    with pytest.raises(ValueError, match="matched no leaf"):
        spectra(params, include="nothing")
    with pytest.raises(ValueError, match="narrow"):
        spectra(params, include="bias")


# ----------------------------------------------------------------------------- similarity


def cka_by_gram(x, y):
    """Kornblith et al.'s HSIC form: tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)), K = XX^T, L = YY^T."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_invariances_and_independence():
    x = rng().normal(size=(300, 12)) + 5.0  # an offset that centring must remove
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ orthogonal(12)) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.7 * x) == pytest.approx(1.0, abs=1e-12)
    # Not invariant to a general invertible map: stretch one direction.
    assert linear_cka(x, x * np.r_[50.0, np.ones(11)]) < 0.5
    a, b = rng(1).normal(size=(4000, 10)), rng(2).normal(size=(4000, 10))
    assert linear_cka(a, b) < 0.02  # ~ sqrt(p q) / n = 0.0025
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(a, b[:10])
    with pytest.raises(ValueError, match="constant"):
        linear_cka(a, np.ones((4000, 3)))


@pytest.mark.parametrize("n,p,q", [(200, 5, 7), (20, 100, 90)])  # feature-space and Gram paths
def test_linear_cka_matches_the_hsic_formula(n, p, q):
    x = rng(3).normal(size=(n, p))
    y = x[:, :1] * rng(4).normal(size=(1, q)) + rng(5).normal(size=(n, q))
    assert linear_cka(x, y) == pytest.approx(cka_by_gram(x, y), rel=1e-10)


def test_cka_matrix_is_the_symmetric_table_of_pairwise_cka():
    base = rng(6).normal(size=(50, 8))
    reps = {"a": base, "b": base @ rng(7).normal(size=(8, 3)), "c": rng(8).normal(size=(50, 20))}
    m = cka_matrix(reps)
    chex.assert_shape(m, (3, 3))
    np.testing.assert_allclose(np.diag(m), 1.0)
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(m[0, 1], linear_cka(reps["a"], reps["b"]), rtol=1e-12)
    np.testing.assert_allclose(cka_matrix(list(reps.values())), m)
    with pytest.raises(ValueError, match="same examples"):
        cka_matrix([base, base[:10]])


def test_principal_angles_equal_orthogonal_and_45_degrees():
    a = rng(9).normal(size=(10, 3))
    np.testing.assert_allclose(principal_angles(a, a @ rng(10).normal(size=(3, 3)), 3), 1.0, atol=1e-12)
    e = np.eye(6)
    np.testing.assert_allclose(principal_angles(e[:, :2], e[:, 2:4], 2), 0.0, atol=1e-15)
    b = np.stack([e[:, 0], (e[:, 1] + e[:, 2]) / np.sqrt(2)], axis=1)
    np.testing.assert_allclose(principal_angles(e[:, :2], b, 2), [1.0, np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(np.degrees(np.arccos(principal_angles(e[:, :2], b, 2)[1])), 45.0)
    assert subspace_overlap(e[:, :2], b, 2) == pytest.approx(0.75)
    # Only the top-k singular directions count: b's small second column is left out at k = 1.
    assert principal_angles(e[:, :2] * [10.0, 1.0], e[:, [0, 3]] * [10.0, 1.0], 1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="rank below"):
        principal_angles(e[:, :2], np.outer(e[:, 0], [1.0, 1.0]), 2)
    with pytest.raises(ValueError, match="same number of rows"):
        principal_angles(e[:, :2], e[:5, :2], 1)


def test_matched_filter_cosine_recovers_a_signed_permutation():
    a = rng(11).normal(size=(3, 3, 4, 8))  # 8 conv filters of 36 taps
    perm = rng(12).permutation(8)
    signs = np.array([1, -1, -1, 1, 1, -1, 1, -1], float)
    b = a[..., perm] * signs * rng(13).uniform(0.5, 2.0, size=8)  # scaled too
    got = matched_filter_cosine(a, b)
    assert got.mean == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(got.rows, np.arange(8))
    np.testing.assert_array_equal(got.cols, np.argsort(perm))
    np.testing.assert_allclose(got.cosines, signs[got.cols], atol=1e-12)
    unrelated = matched_filter_cosine(a, rng(14).normal(size=(3, 3, 4, 8)))
    assert unrelated.mean < 0.6


# ----------------------------------------------------------------------------- representations


def test_hidden_representations_of_an_mlp_equal_layer_by_layer_outputs():
    model = MLP((7, 5, 3))
    x = rng(15).normal(size=(10, 4, 4)).astype(np.float32)
    params = random_params(model, x[:1])
    reps = hidden_representations(model, params, x, batch_size=4)  # batches 4, 4, 2 (padded)
    assert list(reps) == ["Dense_0", "Dense_1", "Dense_2"]
    h, expected = x.reshape(10, -1), []
    for i in range(3):
        h = h @ np.asarray(params[f"Dense_{i}"]["kernel"]) + np.asarray(params[f"Dense_{i}"]["bias"])
        expected.append(h)
        h = np.maximum(h, 0.0)
    chex.assert_trees_all_close([reps[k] for k in reps], expected, rtol=1e-5, atol=1e-6)
    assert list(hidden_representations(model, {"params": params}, x, include="_2$")) == ["Dense_2"]
    with pytest.raises(ValueError, match="captured no module"):
        hidden_representations(model, params, x, modules=nn.Conv)
    with pytest.raises(ValueError, match="tokens"):
        hidden_representations(model, params, x, tokens="first")


def test_hidden_representations_of_the_vit_in_execution_order_with_token_choices():
    model = ViT(width=16, depth=3, heads=2)
    x = jnp.asarray(rng(16).normal(size=(5, 28, 28, 1)), jnp.float32)
    params = random_params(model, x[:1], seed=1, scale=0.1)
    reps = hidden_representations(model, params, x, batch_size=8)
    names = list(reps)
    assert [k for k in names if "/" not in k] == ["embed", "Block_0", "Block_1", "Block_2", "head"]
    for i in range(3):  # each block's Dense layers, in call order, just before the block itself
        dense = [f"Block_{i}/{k}" for k in params[f"Block_{i}"] if "kernel" in params[f"Block_{i}"][k]]
        inner = names[names.index(f"Block_{i}") - len(dense):names.index(f"Block_{i}")]
        assert sorted(inner) == sorted(dense) and inner.index(f"Block_{i}/mlp_in") < inner.index(f"Block_{i}/mlp_out")
    only = r"^Block_\d+$"
    flat = hidden_representations(model, params, x, include=only, tokens="flatten")
    mean = hidden_representations(model, params, x, include=only, tokens="mean")
    cls = hidden_representations(model, params, x, include=only, tokens="cls")
    assert list(flat) == list(mean) == list(cls) == ["Block_0", "Block_1", "Block_2"]
    for k in flat:
        chex.assert_shape([flat[k], mean[k], cls[k]], [(5, 17 * 16), (5, 16), (5, 16)])
        tokens = flat[k].reshape(5, 17, 16)
        np.testing.assert_allclose(mean[k], tokens.mean(axis=1), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(cls[k], tokens[:, 0])
    np.testing.assert_array_equal(mean["Block_2"], reps["Block_2"])  # 'mean' is the default
    # The head reads the last block's class token through the final LayerNorm.
    t = cls["Block_2"].astype(np.float64)
    ln, head = params["LayerNorm_final"], params["head"]
    normed = (t - t.mean(1, keepdims=True)) / np.sqrt(t.var(1, keepdims=True) + 1e-6) * ln["scale"] + ln["bias"]
    np.testing.assert_allclose(reps["head"], normed @ np.asarray(head["kernel"]) + head["bias"], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- predictability


def test_a_smooth_layer_is_predicted_much_better_than_noise():
    t = np.linspace(0.0, 1.0, 100)
    phase = rng(18).uniform(0, 2 * np.pi, size=8)
    smooth = np.sin(2 * np.pi * np.outer(t, np.arange(1, 9) / 4) + phase)
    noise = rng(19).normal(size=(100, 8))
    k = se_kernel(t[:, None], 0.1)
    key = jax.random.key(3)
    good = within_layer_predictability(smooth, 0.3, k, 1e-6, key)
    bad = within_layer_predictability(noise, 0.3, k, 1e-6, key)
    assert good < 0.05 and bad > 0.8, (good, bad)
    with pytest.raises(ValueError, match="kernel must be"):
        within_layer_predictability(smooth, 0.3, k[:50, :50], 1e-6, key)
    with pytest.raises(ValueError, match="fraction"):
        within_layer_predictability(smooth, 1.0, k, 1e-6, key)


def test_explained_by_self_is_the_truncated_svd_energy():
    w = rng(20).normal(size=(16, 12))
    s2 = np.linalg.svd(w, compute_uv=False) ** 2
    for r in (1, 5, 12, 40):
        assert explained_by_self(w, r) == pytest.approx(s2[:r].sum() / s2.sum(), rel=1e-12)


def test_others_never_exceed_self():
    base = rng(21).normal(size=(16, 12))
    for ws in ([rng(22 + i).normal(size=(16, 12)) for i in range(4)],
               [base + 0.3 * rng(30 + i).normal(size=(16, 12)) for i in range(4)]):
        for row in redundancy_table(ws, range(1, 13)):
            assert row["others_in"] <= row["self"] + 1e-12 and row["others_out"] <= row["self"] + 1e-12
            assert 0.0 <= row["others_in"] <= 1.0 + 1e-12


def test_a_layer_with_the_same_column_space_is_fully_explained():
    w1 = rng(40).normal(size=(16, 12))
    w2 = w1 @ orthogonal(12, 41)  # same left singular vectors and values as w1
    for r in range(1, 13):
        assert explained_by_others([w1, w2], 0, r) == pytest.approx(explained_by_self(w1, r), abs=1e-10)
    w3 = orthogonal(16, 42) @ w1  # same right singular vectors: the output side
    for r in range(1, 13):
        assert explained_by_others([w1, w3], 0, r, side="out") == pytest.approx(explained_by_self(w1, r), abs=1e-10)
    low = rng(43).normal(size=(16, 3)) @ rng(44).normal(size=(3, 12))  # rank 3
    mixed = low @ rng(45).normal(size=(12, 12))  # same column space, other spectrum
    assert explained_by_others({"a": low, "b": mixed}, "a", 3) == pytest.approx(1.0, abs=1e-10)
    assert explained_by_self(low, 3) == pytest.approx(1.0, abs=1e-10)
    assert explained_by_others([low, mixed], 0, 2) < explained_by_self(low, 2)


def test_independent_layers_are_explained_at_the_random_baseline():
    ws = {f"Dense_{i}/kernel": rng(50 + i).normal(size=(64, 64)) for i in range(5)}
    rows = redundancy_table(ws, [16, 32])
    assert len(rows) == 10 and rows[0]["layer"] == "Dense_0/kernel" and rows[1]["rank"] == 32
    for row in rows:
        base = row["random_baseline"]
        assert base == row["random_baseline_out"] == row["rank"] / 64
        assert abs(row["others_in"] - base) < 0.05 and abs(row["others_out"] - base) < 0.05, row
        assert row["self"] > base + 0.1
        assert row["others_in"] == pytest.approx(explained_by_others(ws, row["layer"], row["rank"]), rel=1e-12)
    with pytest.raises(ValueError, match="one shape"):
        redundancy_table([np.ones((4, 3)), np.ones((3, 4))], [1])
    with pytest.raises(ValueError, match="at least 2 layers"):
        explained_by_others([np.ones((4, 3))], 0, 1)
    with pytest.raises(ValueError, match="side"):
        explained_by_others(ws, 0, 1, side="left")


# ----------------------------------------------------------------------------- collision load


def _collisions_by_hand(specs, pooled):
    """The same statistics by a loop over every virtual weight (an independent reference)."""
    from wsjax.sharing.hashing import hash_indices_numpy

    users = {}  # (vector, bucket) -> {leaf: count}
    for p, s in specs.items():
        for b in hash_indices_numpy(s)[0].ravel().tolist():
            key = ("pool" if pooled else p, b)
            users.setdefault(key, {}).setdefault(p, 0)
            users[key][p] += 1
    out = {}
    for p in specs:
        read = [u for u in users.values() if p in u]
        out[p] = (len(read), sum(sum(u.values()) for u in read) / len(read),
                  sum(len(u) > 1 for u in read) / len(read))
    return out


@pytest.mark.parametrize("scope", ["layer", "pool"])
def test_collision_load_per_layer_and_in_a_pool(scope):
    from wsjax.analysis import collision_load
    from wsjax.sharing import hashed

    params = {"a": {"kernel": np.zeros((40, 25), np.float32)}, "b": {"kernel": np.zeros((10, 3), np.float32)},
              "c": {"kernel": np.zeros((6, 5), np.float32)}}
    t = hashed(1 / 8, scope=scope)
    s = t.init(jax.random.key(0), params)
    load = collision_load(s)
    specs = dict(s.frozen["specs"].value)
    assert set(load) == {"a/kernel", "b/kernel", "c/kernel"}
    for p, (used, mean_load, shared) in _collisions_by_hand(specs, scope == "pool").items():
        assert load[p]["used"] == used and load[p]["virtual"] == specs[p].size
        assert load[p]["load"] == pytest.approx(mean_load) and load[p]["shared"] == pytest.approx(shared)
    if scope == "layer":  # own buckets: load = weights / buckets read, nothing shared
        assert load["a/kernel"]["buckets"] == 125 and load["a/kernel"]["load"] == 1000 / load["a/kernel"]["used"]
        assert all(v["shared"] == 0.0 for v in load.values())
    else:  # one pool of round(1060 / 8) = 132 buckets; the small layers live among the big one's weights
        assert {v["buckets"] for v in load.values()} == {132}
        assert load["b/kernel"]["shared"] == 1.0 and load["b/kernel"]["load"] > 1000 / 132
    with pytest.raises(ValueError, match="hashing transform"):
        collision_load(s._replace(frozen={}))
