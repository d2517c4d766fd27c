"""Parameter prediction W = U @ V (wsjax.sharing.predicted) and its 'predicted' storage codec."""

import copy
import math
import struct
import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from test_codecs import check_round_trip, trained
from wsjax import storage
from wsjax.sharing import SharedParams, count_params, free_params, virtual_params
from wsjax.sharing.predicted import (KernelDictionary, MatrixDictionary, PredictedFrozen,
                                     choose_alpha, denil_first_layer, dictionary_matrix,
                                     empirical_kernel, fraction_predicted, kernel_spec,
                                     pixel_coordinates, predicted, predicted_leaves,
                                     ridge_dictionary, se_kernel, svd_dictionary)
from wsjax.storage import StorageError, codecs
from wsjax.storage.codecs.base import Group

ALPHA_10 = choose_alpha(jax.random.key(0), 784, 0.1)


def dense_params(sizes, seed=0):
    """The params of ``MLP(sizes[1:])`` on ``sizes[0]`` inputs, drawn with NumPy (no flax init)."""
    rng = np.random.default_rng(seed)
    return {f"Dense_{i}": {"kernel": jnp.asarray(rng.normal(0, 0.1, (a, b)), jnp.float32),
                           "bias": jnp.asarray(rng.normal(0, 0.1, b), jnp.float32)}
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}


# ----------------------------------------------------------------------------- kernels


def test_pixel_coordinates_follow_row_major_flattening():
    np.testing.assert_array_equal(
        pixel_coordinates((2, 3)), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])
    c = pixel_coordinates((2, 2, 2))  # two channels per pixel share its position
    assert c.dtype == np.float32
    np.testing.assert_array_equal(
        c, [[0, 0], [0, 0], [0, 1], [0, 1], [1, 0], [1, 0], [1, 1], [1, 1]])
    # the same order as flax's MLP flattening of an NHWC batch
    x = np.arange(2 * 3 * 4).reshape(1, 2, 3, 4)
    flat = x.reshape(1, -1)[0]
    coords = pixel_coordinates((2, 3, 4))
    for i in range(flat.size):
        h, w, _ = np.unravel_index(flat[i], (2, 3, 4))
        assert tuple(coords[i]) == (h, w)


def test_se_kernel_and_empirical_kernel_against_hand_computation():
    c = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    k = se_kernel(c, 2.0)
    assert k.dtype == np.float64 and k.shape == (3, 3)
    np.testing.assert_allclose(np.diag(k), 1.0)
    np.testing.assert_allclose(k[0, 1], math.exp(-2 / 8), rtol=1e-15)
    np.testing.assert_allclose(k[1, 2], math.exp(-5 / 8), rtol=1e-15)
    np.testing.assert_array_equal(se_kernel(c, 2.0, c[[2]]), k[:, [2]])  # a cross kernel: same bits
    x = np.random.default_rng(0).normal(size=(50, 4))
    np.testing.assert_allclose(empirical_kernel(x), np.cov(x, rowvar=False), rtol=1e-12)
    assert np.all(empirical_kernel(np.ones((5, 3))) == 0)  # constant inputs: zero covariance


def test_choose_alpha_is_a_sorted_subset_of_the_rounded_size():
    assert ALPHA_10.shape == (78,) and np.all(np.diff(ALPHA_10) > 0)
    assert 0 <= ALPHA_10[0] and ALPHA_10[-1] < 784
    np.testing.assert_array_equal(choose_alpha(jax.random.key(0), 784, 0.1), ALPHA_10)
    assert not np.array_equal(choose_alpha(jax.random.key(1), 784, 0.1), ALPHA_10)
    assert choose_alpha(jax.random.key(0), 10, 0.01).shape == (1,)  # at least one row
    np.testing.assert_array_equal(choose_alpha(jax.random.key(0), 7, 1.0), np.arange(7))
    assert len(choose_alpha(jax.random.key(0), 10, 0.25)) == 2  # round(2.5) = 2


def test_ridge_dictionary_matches_the_formula_and_interpolates_at_a_tiny_ridge():
    coords = pixel_coordinates((5, 6))
    kern = se_kernel(coords, 1.5)
    alpha = np.array([0, 4, 7, 13, 20, 29])
    u = ridge_dictionary(kern, alpha, 0.1)
    want = kern[:, alpha] @ np.linalg.inv(kern[np.ix_(alpha, alpha)] + 0.1 * np.eye(6))
    np.testing.assert_allclose(u, want, rtol=1e-10, atol=1e-12)
    # ridge -> 0: U[alpha] -> I, so U @ W[alpha] gives back W exactly at the seen rows
    w = np.random.default_rng(0).normal(size=(30, 5))
    u = ridge_dictionary(kern, alpha, 1e-12)
    np.testing.assert_allclose(u[alpha], np.eye(6), atol=1e-9)
    np.testing.assert_allclose((u @ w[alpha])[alpha], w[alpha], atol=1e-9)
    # a kernel spec's dictionary is this very computation (cross kernels only), bit for bit
    spec = kernel_spec((5, 6), 1.5, 0.1, alpha)
    np.testing.assert_array_equal(dictionary_matrix(spec), ridge_dictionary(kern, alpha, 0.1))


def test_a_smooth_image_is_predicted_from_ten_percent_of_its_pixels_and_noise_is_not():
    # Denil et al.'s premise: weights smooth over the input image are predictable from a few
    coords = pixel_coordinates((28, 28))
    r, c = coords[:, 0] / 27, coords[:, 1] / 27
    smooth = np.stack([np.sin(np.pi * r) * np.cos(np.pi * c),
                       np.exp(-((r - 0.5) ** 2 + (c - 0.4) ** 2) / 0.1), r * c - c], 1)
    noise = np.random.default_rng(0).normal(size=(784, 3))
    u = dictionary_matrix(kernel_spec((28, 28), 3.0, 1e-3, ALPHA_10))

    def error(w):
        return np.linalg.norm(u @ w[ALPHA_10] - w) / np.linalg.norm(w)

    assert error(smooth) < 0.1
    assert error(noise) > 0.9  # 90% of the rows carry nothing the seen ones say


# ----------------------------------------------------------------------------- transform


def test_denil_first_layer_predicts_only_the_first_kernel():
    params = dense_params((784, 16, 10))
    t = denil_first_layer((28, 28), 0.1)
    state = t.init(jax.random.key(5), params)
    assert t.codec == ("select", "predicted")
    inner = state.theta["inner"]
    assert list(inner) == ["Dense_0/kernel"]
    v = inner["Dense_0/kernel"]["v"]
    np.testing.assert_array_equal(v, params["Dense_0"]["kernel"][ALPHA_10])
    assert free_params(state) == 78 * 16 + 16 + 16 * 10 + 10
    assert virtual_params(t, state) == count_params(params)
    assert fraction_predicted(state) == pytest.approx(1 - 78 / 784)
    assert fraction_predicted(state, per_leaf=True) == {
        "Dense_0/kernel": pytest.approx(1 - 78 / 784)}
    out = t.apply(state)
    np.testing.assert_array_equal(out["Dense_1"]["kernel"], params["Dense_1"]["kernel"])
    u = dictionary_matrix(kernel_spec((28, 28), 3.0, 1e-3, ALPHA_10)).astype(np.float32)
    np.testing.assert_allclose(out["Dense_0"]["kernel"], u @ np.asarray(v), rtol=1e-5, atol=1e-6)
    # init ignores its key: the spec fixes everything
    chex.assert_trees_all_equal(t.init(jax.random.key(9), params), state)


def test_fraction_predicted_over_several_leaves():
    leaves = {"a": jnp.ones((12, 5)), "b": jnp.ones((2, 3, 4))}
    t = predicted_leaves(lambda path, shape: kernel_spec(
        (3, 4) if path == "a" else (2, 3), 1.0, 1e-3, (0, 5, 9) if path == "a" else (1, 4)))
    state = t.init(jax.random.key(0), leaves)
    assert fraction_predicted(state, per_leaf=True) == {"a": pytest.approx(0.75),
                                                        "b": pytest.approx(4 / 6)}
    assert fraction_predicted(state) == pytest.approx(1 - (3 * 5 + 2 * 4) / (60 + 24))
    with pytest.raises(ValueError, match="no predicted leaf"):
        fraction_predicted(SharedParams({}, {}))


def test_explicit_dictionaries_fit_by_least_squares_or_take_the_seen_rows():
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(20, 6)), jnp.float32)
    # the top-k singular vectors of a rank-3 matrix represent it exactly
    low = w[:, :3] @ jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)
    t = predicted_leaves({"w": MatrixDictionary(svd_dictionary(low, 3))})
    s = t.init(jax.random.key(0), {"w": low})
    assert s.theta["w"]["v"].shape == (3, 6) and s.frozen["w"].alpha.value is None
    np.testing.assert_allclose(t.apply(s)["w"], low, atol=1e-4)
    # the empirical kernel's ridge dictionary with seen rows: V = W[alpha]
    x = np.random.default_rng(0).normal(size=(100, 20))
    alpha = np.array([1, 3, 8, 15])
    u = ridge_dictionary(empirical_kernel(x), alpha, 1e-2)
    t = predicted_leaves(MatrixDictionary(u, alpha))
    s = t.init(jax.random.key(0), {"w": w})
    np.testing.assert_array_equal(s.theta["w"]["v"], w[alpha])
    assert s.frozen["w"].u.dtype == jnp.float32 and s.frozen["w"].kernel.value is None
    assert fraction_predicted(s) == pytest.approx(1 - 4 / 20)


def test_gradients_through_apply_match_finite_differences_and_apply_jits():
    rng = np.random.default_rng(0)
    leaves = {"k": jnp.asarray(rng.normal(size=(4, 3, 2, 5)), jnp.float32)}  # conv: 24 rows
    t = predicted_leaves(kernel_spec((4, 3, 2), 1.2, 1e-2, (0, 3, 7, 11, 16, 23)))
    s = t.init(jax.random.key(0), leaves)
    probe = jnp.asarray(rng.normal(size=(4, 3, 2, 5)), jnp.float32)

    def loss(theta):
        return jnp.sum(jnp.sin(2.0 * t.apply(SharedParams(theta, s.frozen))["k"]) * probe)

    check_grads(loss, (s.theta,), order=1, modes=["rev"], atol=1e-2, rtol=1e-2, eps=1e-2)
    # the gradient is U^T (dL/dW as a matrix)
    g = jax.grad(loss)(s.theta)["k"]["v"]
    dw = (2.0 * jnp.cos(2.0 * t.apply(s)["k"]) * probe).reshape(24, 5)
    np.testing.assert_allclose(g, s.frozen["k"].u.T @ dw, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_equal(jax.jit(t.apply)(s), t.apply(s))
    assert jax.eval_shape(t.apply, s)["k"].shape == (4, 3, 2, 5)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="image shape"):
        pixel_coordinates((28,))
    with pytest.raises(ValueError, match="length_scale"):
        se_kernel(np.zeros((2, 2)), -1.0)
    with pytest.raises(ValueError, match="fraction"):
        choose_alpha(jax.random.key(0), 10, 0.0)
    with pytest.raises(ValueError, match="fraction"):
        choose_alpha(jax.random.key(0), 10, 1.5)
    kern = se_kernel(pixel_coordinates((2, 3)), 1.0)
    for alpha in ([3, 1], [1, 1], [0, 6], [-1, 2], [], [0.5]):
        with pytest.raises(ValueError, match="alpha"):
            ridge_dictionary(kern, alpha, 1e-3)
    with pytest.raises(ValueError, match="ridge"):
        ridge_dictionary(kern, [0, 1], -1.0)
    with pytest.raises(ValueError, match="singular"):  # two channels at one position, no ridge
        dictionary_matrix(kernel_spec((1, 1, 2), 1.0, 0.0, (0, 1)))
    with pytest.raises(ValueError, match="examples"):
        empirical_kernel(np.ones((1, 3)))
    leaves = {"w": jnp.ones((12, 4))}
    bad = [
        (kernel_spec((3, 3), 1.0, 1e-3, (0, 1)), "inputs"),  # 9 pixels, 12 rows
        (MatrixDictionary(np.ones((11, 2))), "expected"),
        (MatrixDictionary(np.ones((12, 2)), (0, 4, 5)), "alpha rows"),
        (MatrixDictionary(np.full((12, 2), np.nan)), "not finite"),
    ]
    for spec, match in bad:
        with pytest.raises(ValueError, match=match):
            predicted_leaves(spec).init(jax.random.key(0), leaves)
    with pytest.raises(ValueError, match="no dictionary given"):
        predicted_leaves({"other": bad[0][0]}).init(jax.random.key(0), leaves)
    with pytest.raises(ValueError, match=">= 2 axes"):
        predicted_leaves(kernel_spec((3, 4), 1.0, 1e-3, (0,))).init(
            jax.random.key(0), {"b": jnp.ones(12)})
    with pytest.raises(TypeError):
        predicted_leaves(3)
    with pytest.raises(ValueError, match="fraction"):
        denil_first_layer((28, 28), 0.0)
    with pytest.raises(ValueError, match="matched no leaf"):
        denil_first_layer((28, 28), 0.1, layer="Conv_0").init(
            jax.random.key(0), dense_params((784, 4, 2)))


# ----------------------------------------------------------------------------- storage


def test_kernel_spec_round_trip_is_bit_exact_and_small():
    params = dense_params((784, 100, 10))
    t = denil_first_layer((28, 28), 0.1)
    state = trained(t, params)
    data, report = check_round_trip(t, state, "predicted")
    row = {r.name: r for r in report.layers}["Dense_0/kernel"]
    k, cols = 78, 100
    assert row.codec == "predicted" and row.n_stored == k * cols + k
    assert row.n_weights == 784 * cols and row.dense_bytes == 4 * 784 * cols
    # V as float32, alpha as uint16, and at most 400 bytes of meta and record headers
    assert row.stored_bytes <= 4 * k * cols + 2 * k + 400
    assert row.stored_bytes * 9 < row.dense_bytes


def test_matrix_spec_round_trip_is_bit_exact_with_and_without_alpha():
    rng = np.random.default_rng(0)
    leaves = {"a/kernel": jnp.asarray(rng.normal(size=(20, 6)), jnp.float32),
              "b/kernel": jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32)}
    u_a = ridge_dictionary(empirical_kernel(rng.normal(size=(50, 20))), [2, 5, 11], 0.1)
    specs = {"a/kernel": MatrixDictionary(u_a, (2, 5, 11)),
             "b/kernel": MatrixDictionary(svd_dictionary(leaves["b/kernel"], 2))}
    t = predicted_leaves(specs)
    state = trained(t, leaves)
    _, report = check_round_trip(t, state, "predicted")
    rows = {r.name: r for r in report.layers}
    assert rows["a/kernel"].n_stored == 3 * 6 + 20 * 3 + 3  # V, U, alpha
    assert rows["b/kernel"].n_stored == 2 * 5 + 12 * 2  # V, U
    # a kernel spec and a matrix spec side by side, inside select
    params = dense_params((12, 16, 8, 2))
    inc = predicted(
        {"Dense_0/kernel": kernel_spec((3, 4), 1.0, 1e-3, (1, 6, 10)),
         "Dense_1/kernel": MatrixDictionary(np.eye(16)[:, :4], (0, 1, 2, 3))},
        include=r"Dense_[01]/kernel$")
    check_round_trip(inc, trained(inc, params), "predicted")


def _group():
    leaves = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(12, 4)), jnp.float32),
              "m": jnp.asarray(np.random.default_rng(1).normal(size=(6, 3)), jnp.float32)}
    t = predicted_leaves({"w": kernel_spec((3, 4), 1.0, 1e-3, (0, 5, 9)),
                          "m": MatrixDictionary(np.eye(6)[:, :2], (0, 1))})
    state = t.init(jax.random.key(0), leaves)
    return codecs.get("predicted").encode(state, None), t, state


def _changed(group, meta=None, arrays=None):
    m = copy.deepcopy(group.meta)
    if meta:
        meta(m)
    a = dict(group.arrays)
    if arrays:
        arrays(a)
    return Group(group.codec, m, a)


def put(name, value):
    return lambda arrays: arrays.__setitem__(name, value)


def _set(i, key, value):
    return lambda m: m["leaves"][i].__setitem__(key, value)


BAD_FILES = {
    "alpha out of range": (None, put("w/alpha", np.array([0, 5, 12], np.uint8))),
    "alpha unsorted": (None, put("w/alpha", np.array([5, 0, 9], np.uint8))),
    "alpha duplicated": (None, put("w/alpha", np.array([0, 5, 5], np.uint8))),
    "alpha wrong dtype": (None, put("w/alpha", np.array([0, 5, 9], np.uint32))),
    "alpha float": (None, put("w/alpha", np.array([0, 5, 9], np.float32))),
    "alpha 2-D": (None, put("w/alpha", np.array([[0, 5, 9]], np.uint8))),
    "alpha missing": (None, lambda a: a.pop("w/alpha")),
    "extra record": (None, put("w/u", np.ones((12, 3), np.float32))),
    "v shape": (None, put("w/v", np.ones((4, 4), np.float32))),
    "v dtype": (None, put("w/v", np.ones((3, 4), np.int32))),
    "negative length scale": (_set(0, "length_scale", -1.0), None),
    "zero length scale": (_set(0, "length_scale", 0), None),
    "bool length scale": (_set(0, "length_scale", True), None),
    "string ridge": (_set(0, "ridge", "0.1"), None),
    "negative ridge": (_set(0, "ridge", -0.5), None),
    "image shape": (_set(0, "image_shape", [4, 4]), None),
    "image shape 1-D": (_set(0, "image_shape", [12]), None),
    "leaf shape": (_set(0, "shape", [12]), None),
    "leaf shape rows": (_set(0, "shape", [13, 4]), None),
    "kind": (_set(0, "kind", "dense"), None),
    "unknown key": (_set(0, "seed", 3), None),
    "missing key": (lambda m: m["leaves"][0].pop("ridge"), None),
    "entry not an object": (lambda m: m["leaves"].__setitem__(0, ["w"]), None),
    "listed twice": (lambda m: m["leaves"].append(copy.deepcopy(m["leaves"][0])), None),
    "no leaves": (lambda m: m.__setitem__("leaves", []), None),
    "alpha flag not bool": (_set(1, "alpha", 1), None),
    "alpha flag false with a record": (_set(1, "alpha", False), None),
    "u not finite": (None, put("m/u", np.full((6, 2), np.inf, np.float32))),
    "u rows": (None, put("m/u", np.ones((5, 2), np.float32))),
    "u dtype differs": (None, put("m/u", np.ones((6, 2), np.float64))),
    "alpha count vs u": (None, put("m/alpha", np.array([0, 1, 2], np.uint8))),
    "singular kernel": (lambda m: m["leaves"][0].update(ridge=0.0, image_shape=[1, 1, 12]), None),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_decoding_an_inconsistent_group_raises_storage_error(case):
    group, _, _ = _group()
    meta, arrays = BAD_FILES[case]
    with pytest.raises(StorageError):
        codecs.get("predicted").decode(_changed(group, meta, arrays))


def test_the_unchanged_group_decodes_and_the_file_rejects_a_corrupt_meta():
    group, t, state = _group()
    params, loaded = codecs.get("predicted").decode(_changed(group))
    chex.assert_trees_all_equal(params, jax.device_get(t.apply(state)))
    chex.assert_trees_all_equal(loaded, state)
    assert isinstance(loaded.frozen["w"], PredictedFrozen)
    assert loaded.frozen["w"].kernel.value == KernelDictionary((3, 4), 1.0, 1e-3, (0, 5, 9))
    data = storage.encode((t, state))
    meta = b'"length_scale":1.0'
    assert data.count(meta) == 1
    forged = bytearray(data.replace(meta, b'"length_scale":-10'))
    struct.pack_into("<I", forged, len(forged) - 4, zlib.crc32(bytes(forged[:-4])))
    with pytest.raises(StorageError, match="length_scale"):
        storage.decode(bytes(forged))
    with pytest.raises(StorageError, match="max_elements"):  # refused before U is computed
        storage.decode(data, max_elements=100)
