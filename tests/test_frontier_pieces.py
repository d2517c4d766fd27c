"""The frontier's library pieces: gradual pruning as a pipeline stage, the sensitivity scan
and its allocation, per-layer codebook widths chosen on validation, and tuned index widths."""

import jax
import numpy as np
import pytest

from wsjax import compress, pruning, storage
from wsjax.models import LeNet300100
from wsjax.study import pruned_nets as pn


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 28, 28, 1)).astype(np.float32)
    y = (x[:, 10:18, 10:18, 0].sum((1, 2)) > 0).astype(np.int32) + 2 * (x[:, :8, :8, 0].sum((1, 2)) > 0)
    model = LeNet300100()
    params = jax.device_get(model.init(jax.random.key(0), x[:1])["params"])
    return model, params, (x[:300], y[:300]), (x[300:], y[300:])


def test_gradual_prune_reaches_each_layers_exact_target_and_is_cached(small, tmp_path):
    model, params, train, val = small
    stage = compress.GradualPrune({"Dense_0": 0.9, "Dense_1": 0.75, "Dense_2": 0.5}, 2, 1e-3, every=1)
    pipe = compress.Pipeline([stage])
    r = pipe.run(model, train, val, params=params, seed=0, out_dir=str(tmp_path), progress=False)
    w = jax.device_get(r.params)
    for layer, kept in (("Dense_0", 0.1), ("Dense_1", 0.25), ("Dense_2", 0.5)):
        mask, kernel = r.masks[layer]["kernel"], np.asarray(w[layer]["kernel"])
        assert mask.sum() == round(kept * mask.size)
        assert np.all(kernel[~mask] == 0) and r.masks[layer]["bias"] is None
    assert r.history[-1]["stage"] == "gradual_prune" and len(r.history[-1]["per_epoch"]) == 2
    again = pipe.run(model, train, val, params=params, seed=0, out_dir=str(tmp_path), progress=False)
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(r.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    q = compress.Pipeline([compress.Quantize(2), compress.Retrain(1, 1e-4)]).run(
        model, train, val, params=params, seed=0, start_from=r, progress=False)
    k = np.asarray(jax.device_get(q.params)["Dense_0"]["kernel"])
    assert np.count_nonzero(k) <= r.masks["Dense_0"]["kernel"].sum() and np.unique(k[k != 0]).size <= 4
    assert "gradual_prune" in compress.STAGES


def test_gradual_prune_refuses_a_pruned_start_and_bad_settings(small):
    model, params, train, val = small
    pruned = compress.Pipeline([compress.Prune(0.5)]).run(model, train, params=params, progress=False)
    with pytest.raises(ValueError, match="unpruned"):
        compress.Pipeline([compress.GradualPrune(0.5, 1, 1e-3)]).run(model, train, params=params,
                                                                     start_from=pruned, progress=False)
    with pytest.raises(ValueError, match="end_fraction"):
        compress.GradualPrune(0.5, 1, 1e-3, end_fraction=0.0)
    with pytest.raises(ValueError, match="sparsity"):
        compress.GradualPrune(1.5, 1, 1e-3)


def test_sensitivity_scan_prunes_one_layer_at_a_time_and_reads_the_profile():
    params = {"a": {"kernel": np.arange(1.0, 101.0).reshape(10, 10)}, "b": {"kernel": np.arange(1.0, 11.0)[:, None]}}
    seen = []

    def score(p):  # "accuracy" = the fraction of layer a's weights kept; b does not matter
        seen.append({k: int(np.count_nonzero(v["kernel"])) for k, v in p.items()})
        return np.count_nonzero(p["a"]["kernel"]) / 100

    scan = pruning.sensitivity_scan(params, score, fractions=(1.0, 0.5, 0.2))
    assert [f for f, _ in scan["a/kernel"]] == [1.0, 0.5, 0.2]
    assert [s for _, s in scan["a/kernel"]] == [1.0, 0.5, 0.2] and [s for _, s in scan["b/kernel"]] == [1.0] * 3
    assert {"a": 50, "b": 10} in seen and {"a": 100, "b": 2} in seen  # one layer pruned, the other whole
    assert pruning.tolerated_kept(scan, 1.0, 0.1) == {"a/kernel": 1.0, "b/kernel": 0.2}
    assert pruning.tolerated_kept(scan, 1.0, 0.5) == {"a/kernel": 0.5, "b/kernel": 0.2}
    # a recovery after the first failure does not count
    assert pruning.tolerated_kept({"x": [(1.0, 1.0), (0.5, 0.8), (0.2, 1.0)]}, 1.0, 0.1) == {"x": 1.0}


def test_allocate_kept_keeps_the_target_in_the_profiles_proportions():
    sizes = {"big": 9000, "small": 1000}
    kept = pruning.allocate_kept({"big": 0.05, "small": 0.2}, sizes, 0.1)
    assert kept["small"] == pytest.approx(4 * kept["big"])
    assert sum(kept[k] * sizes[k] for k in sizes) == pytest.approx(1000, rel=1e-9)
    capped = pruning.allocate_kept({"big": 0.05, "small": 1.0}, sizes, 0.5)
    assert capped["small"] == 1.0 and capped["big"] == pytest.approx(4000 / 9000)
    with pytest.raises(ValueError, match="same layers"):
        pruning.allocate_kept({"big": 0.1}, sizes, 0.1)


def test_fewest_bits_takes_the_smallest_width_within_tolerance(small):
    model, params, train, val = small
    scorer = pn.Scorer(model, val, val)
    net, start = compress.from_linen(model, params), compress.start(params)
    loose = compress.fewest_bits(net, start, train, lambda w: scorer(w, "val"), tolerance=1.0)
    assert loose == {"^Dense_0/kernel$": 2, "^Dense_1/kernel$": 2, "^Dense_2/kernel$": 2}
    # a score that falls whenever Dense_2 is quantized: no width is within tolerance there
    # (the largest candidate is taken), while quantizing the other layers costs nothing
    distinct = lambda w: float(np.unique(np.asarray(w["Dense_2"]["kernel"])).size)  # noqa: E731
    strict = compress.fewest_bits(net, start, train, distinct, tolerance=0.0, candidates=(2, 3))
    assert strict == {"^Dense_0/kernel$": 2, "^Dense_1/kernel$": 2, "^Dense_2/kernel$": 3}


def test_smallest_index_bits_gives_the_smallest_file_over_widths():
    rng = np.random.default_rng(1)
    k = rng.normal(size=(300, 100)).astype(np.float32)
    k[rng.random(k.shape) > 0.06] = 0
    k = np.round(k * 4) / 4  # a few distinct values: a codebook layer
    params = {"Dense_0": {"kernel": k, "bias": np.zeros(100, np.float32)}}
    widths = storage.smallest_index_bits(params)
    sizes = {b: len(storage.encode(params, index_bits=b)) for b in storage.index_width.CANDIDATES}
    assert list(widths) == ["^Dense_0/kernel$"]
    assert len(storage.encode(params, index_bits=widths)) == min(sizes.values())
    loaded = storage.decode(storage.encode(params, index_bits=widths))
    np.testing.assert_array_equal(np.asarray(loaded["Dense_0"]["kernel"]), k)
    with pytest.raises(ValueError, match="index widths"):
        storage.smallest_index_bits(params, candidates=(0, 3))


def test_gradual_prune_can_learn_from_the_net_it_starts_from(small):
    model, params, train, val = small
    plain = compress.Pipeline([compress.GradualPrune(0.8, 1, 1e-3, every=1)]).run(
        model, train, val, params=params, seed=0, progress=False)
    taught = compress.Pipeline([compress.GradualPrune(0.8, 1, 1e-3, every=1, distill_temperature=4.0,
                                                      distill_alpha=0.3)]).run(
        model, train, val, params=params, seed=0, progress=False)
    for layer in ("Dense_0", "Dense_1", "Dense_2"):
        assert taught.masks[layer]["kernel"].sum() == round(0.2 * taught.masks[layer]["kernel"].size)
    a, b = (np.asarray(jax.device_get(r.params)["Dense_0"]["kernel"]) for r in (plain, taught))
    assert not np.array_equal(a, b)  # another loss, other weights
    with pytest.raises(ValueError, match="distill_temperature"):
        compress.GradualPrune(0.8, 1, 1e-3, distill_temperature=0.0)
    with pytest.raises(ValueError, match="distill_alpha"):
        compress.GradualPrune(0.8, 1, 1e-3, distill_temperature=2.0, distill_alpha=1.5)


def test_retrain_with_a_teacher_minimises_hintons_loss(small):
    from wsjax import distill
    from wsjax.compress import train as _train

    model, params, train, val = small
    net, c = compress.from_linen(model, params), compress.start(params)
    teacher = jax.tree.map(lambda w: 2.0 * np.asarray(w), params)
    _, _, history, _ = _train.retrain(net, c, train, val, epochs=1, lr=1e-9, seed=0, batch_size=300, loop="python",
                                      progress=False, teacher=teacher, temperature=3.0, distill_alpha=0.25)
    logits_s = model.apply({"params": params}, train[0])
    logits_t = model.apply({"params": teacher}, train[0])
    want = distill.hinton_loss(logits_s, logits_t, train[1], temperature=3.0, alpha=0.25)
    assert history[0]["train_loss"] == pytest.approx(float(want), rel=1e-4)


def test_gradual_prune_accepts_targets_on_a_float32_rounding_edge(small):
    """s * size near .5: the final check counts as the pruner does (float32), not in float64."""
    model, params, train, val = small
    s = 0.8008736892661972  # 784 x 300: float32 keeps 46834, a float64 round would say 46835
    r = compress.Pipeline([compress.GradualPrune({"Dense_0": s}, 1, 1e-3, every=1)]).run(
        model, train, val, params=params, seed=0, progress=False)
    assert r.masks["Dense_0"]["kernel"].sum() == 784 * 300 - int(np.round(np.float32(s) * np.float32(784 * 300)))
    with pytest.raises(ValueError, match="at least one training step"):
        compress.Pipeline([compress.GradualPrune(0.5, 1, 1e-3, batch_size=500)]).run(
            model, train, params=params, progress=False)
    with pytest.raises(ValueError, match="sparsity"):
        compress.GradualPrune({"Dense_0": 2.0}, 1, 1e-3)
