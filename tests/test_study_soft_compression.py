"""The soft_compression study on its smoke config, and the library pieces it runs on
(:mod:`wsjax.compress.soft`)."""

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsjax import compress, storage
from wsjax.compress import soft
from wsjax.models import MLP
from wsjax.results import Store
from wsjax.sharing import flatten_paths
from wsjax.study import discover, pruned_nets

run = discover.load("soft_compression")
config = discover.load("soft_compression", "config")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    base = tmp_path_factory.mktemp("studies")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WSJAX_STUDY_DIR", str(base))
        out = str(base / "soft_compression")
        cfg = config.smoke()
        rows = run.run(cfg, "fashion_mnist", 0, out)
        yield base, out, cfg, rows, mp


def test_rows_files_and_report(smoke):
    base, out, cfg, rows, _ = smoke
    kinds = [r["config"]["kind"] for r in rows]
    assert kinds == ["dense_reference"] + ["soft_share", "soft_share_finetune"] * 2
    assert len(Store(out).rows()) == len(rows)
    for r in rows:
        path = os.path.join(out, r["file"])
        assert r["stored_bytes"] == os.path.getsize(path)
        assert r["compression"] == pytest.approx(r["dense_bytes"] / r["stored_bytes"])
        assert r["loaded_equals_in_memory"] and os.path.isfile(path.replace(".wsjax", ".layers.md"))
    for name in ("results.md", "results.json", "soft_compression.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    md = open(os.path.join(out, "results.md")).read()
    assert "Chosen on validation" in md and "DC pruning x2 + soft sharing tau=0.1, 1 ep, pi_0=0.9" in md
    # the pruned start is Deep Compression's level, a row of its store in the test's folder
    levels = Store(base / "deep_compression-quick").rows({"kind": "level"})
    assert [r["config"]["scale"] for r in levels] == [2.0]


def test_pruned_start_keeps_its_zeros_and_finetune_keeps_the_snap(smoke):
    _, out, cfg, rows, _ = smoke
    snapped, tuned = rows[3], rows[4]
    assert snapped["config"]["start"] is not None and "pruned_accuracy" in tuned
    _, masks, _ = pruned_nets.pruned_net("lenet300100", "fashion_mnist", 0, True, 2.0, **dict(cfg.prune_overrides))
    w_snap, w_tuned = (flatten_paths(storage.load(os.path.join(out, r["file"]))) for r in (snapped, tuned))
    pruned = flatten_paths(masks)
    assert sorted(pruned) == ["Dense_0/kernel", "Dense_1/kernel", "Dense_2/kernel"]
    for path, m in pruned.items():
        assert not np.any(np.asarray(w_snap[path])[~np.asarray(m)]), "a pruned weight came back"
    for path in (p for p in w_snap if p.endswith("kernel")):
        np.testing.assert_array_equal(np.asarray(w_snap[path]) == 0, np.asarray(w_tuned[path]) == 0)
    assert snapped["distinct_values"] <= snapped["components_after_merge"]  # zero included
    assert tuned["codebook_max_abs_error"] < 1e-3


def test_second_run_returns_the_cached_rows_without_training(smoke, monkeypatch):
    _, out, cfg, rows, _ = smoke

    def fail(*a, **k):
        raise AssertionError("a cached unit was recomputed")

    for name in ("dense_reference", "soft_share", "finetune"):
        monkeypatch.setattr(run, name, fail)
    again = run.run(cfg, "fashion_mnist", 0, out)
    assert [r["key"] for r in again] == [r["key"] for r in rows]
    # another seed shares nothing with this folder
    assert all(u["seed"] == 1 and Store(out).get(u) is None for u in cfg.units("fashion_mnist", 1))


def test_config_subsets_and_units():
    full = config.full()
    assert full.models == ("lenet300100", "lenet5")
    only = full.only(["lenet300100"])
    assert only.models == ("lenet300100",) and len(only.units("fashion_mnist", 0)) == 1 + 2 * 10
    with pytest.raises(ValueError, match="lenet5"):
        config.quick().only(["lenet5"])
    units = full.units("fashion_mnist", 0)
    assert len(units) == 2 + 2 * 20 and len({u["kind"] + str(sorted(u.items())) for u in units}) == len(units)
    starts = [u["start"] for u in units if u["kind"] == "soft_share" and u["start"] is not None]
    assert sorted((s["model"], s["scale"]) for s in starts) == [("lenet300100", 2.0)] * 5 + [
        ("lenet5", 2.0), ("lenet5", 3.0)]


def _tiny_net():
    model = MLP((6, 3))
    return model, model.init(jax.random.key(0), jnp.zeros((1, 4)))["params"]


def test_snapped_start_masks_its_zeros_and_distinct_values():
    _, params = _tiny_net()
    params = jax.tree.map(np.asarray, params)
    k = params["Dense_0"]["kernel"].copy()
    k[:2] = 0.0
    k[2:] = np.where(k[2:] > 0, 0.25, -0.5)
    params = {**params, "Dense_0": {**params["Dense_0"], "kernel": k}}
    c = soft.snapped_start(params)
    np.testing.assert_array_equal(c.masks["Dense_0"]["kernel"], k != 0)
    assert c.masks["Dense_0"]["bias"] is None
    chex.assert_trees_all_equal(c.params, params)
    assert soft.distinct_values({"Dense_0": {"kernel": k}}) == 2
    assert soft.max_abs_difference(params, params) == 0.0
    assert soft.max_abs_difference({"a": np.float32([1.0, 2.0])}, {"a": np.float32([1.0, 2.5])}) == 0.5


def test_soft_weight_sharing_pipeline_snaps_to_few_values():
    model, params = _tiny_net()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    pipe = soft.soft_weight_sharing(1.0, 2, num_components=5, pi_zero=0.9, mixture_lr={"means": 1e-3})
    share, snap = pipe.stages
    assert (share.tau, share.epochs, share.pi_zero, share.num_components) == (1.0, 2, 0.9, 5)
    assert share.mixture_optimizer.keywords == {**soft.MIXTURE_LR, "means": 1e-3}
    assert snap.kl_threshold == soft.soft_weight_sharing(1.0, 1).stages[1].kl_threshold == 1e-2
    out = pipe.run(model, (x, y), (x[:50], y[:50]), params=params, seed=0, progress=False)
    kernels = np.concatenate([np.ravel(v["kernel"]) for v in jax.device_get(out.params).values()])
    assert np.unique(kernels[kernels != 0]).size <= out.history[-1]["components"] - 1
    assert out.masks is not None and [h["stage"] for h in out.history] == ["soft_share", "snap"]
    with pytest.raises(ValueError, match="mixture_lr"):
        soft.soft_weight_sharing(1.0, 1, mixture_lr={"mean": 1e-3})
    assert isinstance(compress.Pipeline(pipe.stages[:1]).stages[0], compress.SoftShare)


def test_report_compares_with_deep_compression_rows_of_the_same_dense_net(smoke):
    base, out, cfg, rows, _ = smoke
    report = discover.load("soft_compression", "report")
    dc = Store(base / "deep_compression-quick")
    level = dc.rows({"kind": "level"})[0]["config"]
    point = {"model": "lenet300100", "dataset": "fashion_mnist", "seed": 0, "scale": 2.0, "conv_bits": 8,
             "level": level}
    metrics = {"dense_accuracy": rows[0]["test_accuracy"], "pruned_accuracy": 0.5, "kept_fraction": 0.16}
    dc.put({**point, "kind": "sweep", "fc_bits": 5}, {**metrics, "test_accuracy": 0.53, "compression": 40.0,
                                                      "drop_points": 100 * (rows[0]["test_accuracy"] - 0.53)})
    dc.put({**point, "kind": "bits", "fc_bits": 4}, {**metrics, "test_accuracy": 0.52, "compression": 45.0,
                                                     "drop_points": 100 * (rows[0]["test_accuracy"] - 0.52)})
    other = {**level, "dense": {**level["dense"], "epochs": 7}}  # another dense net: never compared
    dc.put({**point, "level": other, "kind": "sweep", "fc_bits": 5}, {**metrics, "test_accuracy": 0.99,
                                                                      "compression": 999.0, "drop_points": 0.0})
    report.write(rows, cfg, out, "fashion_mnist", 0)
    md = open(os.path.join(out, "results.md")).read()
    for section in ("At the 0.5-point budget", "Why the paper's ratios", "Against Deep Compression (same model",
                    "Same pruned net, two quantizers", "Deep Compression k-means, fc 4 bits | 52.00"):
        assert section in md
    assert "999.0x" not in md and "45.0x" in md


def test_across_seeds_verdict_follows_the_paired_differences():
    """The pre-registered rule: the 95 % t-interval of (best soft - best DC) per seed."""
    from experiments.soft_compression import report_dc

    def seed(soft_alone, soft_pruned, dc, drop=0.2):
        views = [{"model": "m", "method": "soft", "start": None, "compression": soft_alone, "drop_points": drop},
                 {"model": "m", "method": "soft+dc", "start": {"x": 1}, "compression": soft_pruned,
                  "drop_points": drop},
                 {"model": "m", "method": "soft far", "start": None, "compression": 99.0, "drop_points": 3.0}]
        return views, [{"model": "m", "compression": dc, "drop_points": drop}]

    wins = report_dc.seeds_section({0: seed(20, 26, 24), 1: seed(21, 27, 24.5), 2: seed(19, 26.5, 24.2)}, 0.5)
    assert "| m | 3 (0: +2.0, 1: +2.5, 2: +2.3) | 20.0 +- 1.0x | 26.5 +- 0.5x | 24.2 +- 0.3x |" in wins
    assert wins.rstrip().endswith("| soft beats DC |")
    mixed = report_dc.seeds_section({0: seed(20, 26, 24), 1: seed(20, 22, 24), 2: seed(20, 25, 24)}, 0.5)
    assert mixed.rstrip().endswith("| undecided |")
    # nothing within the budget scores 1.0x (the dense net), not the 99x run 3 points down
    lost = report_dc.seeds_section({s: seed(20, 22, 30, drop=0.6 if s else 0.2) for s in range(3)}, 0.5)
    assert "(0: -8.0, 1: +0.0, 2: +0.0)" in lost and "undecided" in lost
    one = report_dc.seeds_section({0: seed(20, 26, 24)}, 0.5)
    assert "one seed: no interval" in one
