"""The deep_compression study end to end on a smoke config, and the library code it builds on:
Deep Compression's pruned nets (:mod:`wsjax.study.pruned_nets`), Han's "P" storage count
(:mod:`wsjax.pruning.csr`) and forward-pass timing (:mod:`wsjax.pruning.timing`)."""

import os

import chex
import jax
import numpy as np
import pytest

from wsjax.pruning.csr import csr_float32_bytes
from wsjax.pruning.timing import compare
from wsjax.results import Store
from wsjax.study import discover, pruned_nets

SMOKE = dict(dense_epochs=1, dense_train_examples=500, pool=600, validation=100, test_examples=200)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """One ``WSJAX_STUDY_DIR`` for the module: the smoke dense net is trained once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WSJAX_STUDY_DIR", str(tmp_path_factory.mktemp("studies")))
        mp.setenv("WSJAX_OFFLINE", "1")
        yield os.environ["WSJAX_STUDY_DIR"]


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trained although every row was cached")

    import wsjax.compress.train
    import wsjax.train

    monkeypatch.setattr(wsjax.compress.train, "fit", refuse)
    monkeypatch.setattr(wsjax.train, "fit", refuse)


def test_csr_float32_bytes_counts_values_indices_and_fillers():
    w = np.zeros((10, 10), np.float32)
    w.flat[[0, 99]] = 1.0  # 98 skipped: 3 fillers of a 5-bit index, then the nonzero
    bias = np.ones(10, np.float32)
    assert csr_float32_bytes({"k": w, "b": bias}) == -(-(5 * (32 + 5) + 10 * 32) // 8)
    conv = w.reshape(1, 1, 10, 10)  # 8-bit indices: no filler
    assert csr_float32_bytes({"k": conv}) == 2 * (32 + 8) // 8
    assert csr_float32_bytes({"k": w}, index_bits=lambda ndim: 8) == 10


def test_compare_times_every_model_at_every_batch():
    from wsjax.models import MLP

    x = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    nets = []
    for name, widths in (("wide", (16, 4)), ("narrow", (4, 4))):
        model = MLP(widths)
        nets.append((name, model, model.init(jax.random.key(0), x[:1])["params"]))
    times = compare(nets, x, batches=(1, 20), repeats=1)
    assert set(times) == {(n, b) for n in ("wide", "narrow") for b in (1, 20)}
    assert all(0 < t < 1 for t in times.values())


def test_pruned_config_is_complete_and_checked():
    a = pruned_nets.pruned_config("lenet5", "fashion_mnist", 0, False, 1.0)
    assert a["kind"] == "level" and a["trajectory"] == [3.0, 2.0, 1.4, 1.0]
    assert a["kept"] == pruned_nets.HAN_KEPT["lenet5"]
    assert a["dense"]["epochs"] == 12 and a["data"]["validation"] == 5000
    assert pruned_nets.pruned_config("lenet5", "fashion_mnist", 1, False, 1.0) != a
    assert pruned_nets.pruned_config("lenet5", "mnist", 0, False, 1.0)["dense"]["dataset"] == "mnist"
    with pytest.raises(ValueError, match="pruning levels"):
        pruned_nets.pruned_config("lenet5", "fashion_mnist", 0, False, 0.5)
    with pytest.raises(TypeError, match="unknown override"):
        pruned_nets.pruned_config("lenet5", "fashion_mnist", 0, False, 1.0, prune_epoch=3)


def test_pruned_net_resumes_level_by_level(study_dir, monkeypatch):
    kw = dict(SMOKE, levels=(2.0, 1.0))
    p2, m2, r2 = pruned_nets.pruned_net("lenet300100", "fashion_mnist", 0, True, 2.0, **kw)
    p1, m1, r1 = pruned_nets.pruned_net("lenet300100", "fashion_mnist", 0, True, 1.0, **kw)
    store = Store(os.path.join(study_dir, "deep_compression-quick"))
    assert len(store.rows({"kind": "level", "trajectory": [2.0]})) == 1  # level x2 was read, not redone
    for path, kept in pruned_nets.HAN_KEPT["lenet300100"].items():
        assert r2["layer_kept"][path] == pytest.approx(2 * kept, abs=1e-3)
        assert r1["layer_kept"][path] == pytest.approx(kept, abs=1e-3)
    for a, b in zip(jax.tree.leaves(m1), jax.tree.leaves(m2)):  # cumulative: level x1 prunes within x2
        assert not np.any(np.asarray(a) & ~np.asarray(b))
    assert r1["epochs"] == 2 and r1["seconds"] > r2["seconds"]
    _no_training(monkeypatch)
    q1, n1, again = pruned_nets.pruned_net("lenet300100", "fashion_mnist", 0, True, 1.0, **kw)
    assert again == r1
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, q1), jax.tree.map(np.asarray, p1))
    assert pruned_nets.points("level", True, model="lenet300100", scale=1.0)[0]["test_accuracy"] == r1["test_accuracy"]


def test_smoke_run_writes_rows_files_and_report_and_resumes(study_dir, monkeypatch):
    run, config = discover.load("deep_compression"), discover.load("deep_compression", "config")
    cfg, out = config.smoke(), os.path.join(study_dir, "dc-smoke")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    kinds = [r["config"]["kind"] for r in rows]
    assert {k: kinds.count(k) for k in set(kinds)} == {"level": 1, "sweep": 1, "stages": 4, "init": 1, "bits": 1,
                                                       "neurons": 1, "neuron_timing": 1}
    store = Store(out)
    for r in rows:
        if "stored_bytes" in r:  # every stored size is a file of the store
            assert r["stored_bytes"] == os.path.getsize(os.path.join(store.folder, "artifacts", r["file"]))
    for r in rows:
        if r["config"]["kind"] in ("sweep", "bits"):
            assert r["file"] == os.path.basename(store.artifact(r["config"], ".wsjax"))
            assert r["test_accuracy"] == r["in_memory_accuracy"] and r["compression"] > 20
    stages = {r["config"]["stage"]: r for r in rows if r["config"]["kind"] == "stages"}
    assert stages["pruned+quantized+huffman"]["loaded_equals_in_memory"]
    assert stages["pruned"]["counted_bytes"] > stages["pruned+quantized"]["counted_bytes"] \
        > stages["pruned+quantized+huffman"]["stored_bytes"]
    bits = next(r for r in rows if r["config"]["kind"] == "bits")
    assert bits["stored_bytes"] < stages["pruned+quantized+huffman"]["stored_bytes"]  # 4 fc bits < Han's 5
    md = open(os.path.join(out, "results.md")).read()
    for section in ("## Targets", "## Across seeds", "## Sweep", "## Per-layer storage", "## Centroid initialisation",
                    "## Fewer bits", "## Structured neuron pruning"):
        assert section in md
    for name in ("results.json", "deep_compression.png"):
        assert os.path.isfile(os.path.join(out, name))
    # another seed resumes nothing of this folder
    assert store.get(cfg.quantized("lenet300100", "fashion_mnist", 1, 1.0)) is None
    _no_training(monkeypatch)
    again = run.run(cfg, "fashion_mnist", 0, out)
    assert [(r["key"], r["written"]) for r in again] == [(r["key"], r["written"]) for r in rows]


def test_the_across_seeds_table_gives_mean_and_sample_std():
    report = discover.load("deep_compression", "report")
    row = lambda scale, ratio, drop: {"model": "lenet5", "scale": scale, "compression": ratio,  # noqa: E731
                                      "drop_points": drop}
    md = report.seeds_md({0: [row(2.0, 20.0, 0.4), row(1.0, 35.0, 1.2)],
                          1: [row(2.0, 22.0, 0.2), row(1.0, 37.0, 1.4)], 2: [row(1.0, 36.0, 0.9)]})
    line = next(ln for ln in md.splitlines() if ln.startswith("| lenet5"))
    # Han's sparsity over 3 seeds: 36 +- 1; within 0.5 points: seeds 0 and 1 only, 21 +- 1.41
    assert line == "| lenet5 | 3 | 36.0 +- 1.0x | 1.17 +- 0.25 | 21.0 +- 1.4x (2 seeds) | 0.30 +- 0.14 |", line
    assert "lenet300100" not in md
