"""The quantization_bits study: a smoke run (every method once, real files read back,
resuming) and the report's verdicts computed from hand-made rows."""

import json
import os

import numpy as np
import pytest

from wsjax import storage
from wsjax.results import config_key
from wsjax.sharing import flatten_paths
from wsjax.study import discover

run, config = discover.load("quantization_bits"), discover.load("quantization_bits", "config")
report, claims = discover.load("quantization_bits", "report"), discover.load("quantization_bits", "claims")

KERNELS = 784 * 300 + 300 * 100 + 100 * 10


def test_smoke_run_stores_every_method_reads_it_back_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    cfg, out = config.smoke(), str(tmp_path / "quantization_bits")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    assert len(rows) == 1 + len(cfg.grid("lenet300100")) == len(cfg.units("fashion_mnist", 0))
    assert {r["config"]["method"] for r in rows} == {"dense", *config.METHODS}
    by = {(r["config"]["method"], r["config"]["bits"]): r for r in rows}
    for r in rows:
        assert r["stored_bytes"] == os.path.getsize(os.path.join(out, r["file"])) > 0
        assert r["test_accuracy"] == r["in_memory_accuracy"] and r["loaded_equals_in_memory"]
        assert r["kernel_weights"] == KERNELS and r["params"] == KERNELS + 410
        assert r["bits_per_weight"] == pytest.approx(8 * r["stored_bytes"] / KERNELS)
        assert r["compression"] == pytest.approx(4 * (KERNELS + 410) / r["stored_bytes"])
    binary = by[("binary", 1)]
    assert binary["compression"] >= 25 and 1.0 < binary["bits_per_kernel_weight"] < 1.02
    assert binary["stored_bytes"] < 36_000  # about one bit per weight plus float32 biases and scales
    assert {by[(m, 1)]["stored_bytes"] for m in ("binary", "binary_stochastic", "binary_scratch")} == {
        binary["stored_bytes"]}
    assert 1.6 <= by[("ternary", 2)]["bits_per_kernel_weight"] < 1.62  # five trits a byte
    assert 2.0 <= by[("uniform", 2)]["bits_per_kernel_weight"] < 2.02
    assert 3.0 <= by[("lsq", 3)]["bits_per_kernel_weight"] < 3.02
    assert by[("dense", 32)]["compression"] == pytest.approx(1.0, abs=1e-3)
    assert by[("kmeans_pruned", 1)]["stored_bytes"] < by[("kmeans", 1)]["stored_bytes"]
    assert by[("kmeans_pruned", 1)]["kept_fraction"] < 0.2 and by[("kmeans", 1)]["kept_fraction"] == 1.0
    loaded = flatten_paths(storage.load(os.path.join(out, binary["file"])))
    for path, w in loaded.items():  # the file holds +-alpha per layer, the biases as they were
        if path.endswith("kernel"):
            assert len(np.unique(np.abs(w))) == 1 and set(np.unique(np.sign(w))) == {-1.0, 1.0}
    assert len(np.unique(flatten_paths(storage.load(os.path.join(out, by[("kmeans", 1)]["file"])))
                         ["Dense_0/kernel"])) <= 2
    with open(os.path.join(out, "results.json")) as f:
        assert len(json.load(f)["rows"]) == len(rows)
    md = open(os.path.join(out, "results.md")).read()
    for section in ("## lenet300100: test accuracy against stored bits", "## Acceptance", "## BinaryConnect",
                    "## Decision rules", "Pareto front", "## Every run"):
        assert section in md
    assert f"{binary['stored_bytes']:,} bytes" in md and "Verdict: met" in md
    assert os.path.getsize(os.path.join(out, "accuracy_vs_bytes.png")) > 0
    assert os.path.isdir(tmp_path / "baseline-quick")  # the dense nets live in the baseline store
    pruned = by[("kmeans_pruned", 1)]  # its pruned level is retrained into this study's store, not deep_compression's
    assert not os.path.exists(tmp_path / "deep_compression-quick") and pruned["committed_pruned_accuracy"] is None
    level = run.Store(out).get(pruned["config"]["pruned"])
    assert level is not None and level["test_accuracy"] == pruned["pruned_accuracy"]
    capsys.readouterr()

    def nothing_to_train(*a, **k):
        raise AssertionError("a resumed run with every unit in the store must train nothing")

    monkeypatch.setattr(run.methods, "train_lowbit", nothing_to_train)
    monkeypatch.setattr(run.methods, "train_kmeans", nothing_to_train)
    monkeypatch.setattr(run.study, "pretrained", nothing_to_train)
    again = run.run(cfg, "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == len(rows)
    assert [r["key"] for r in again] == [r["key"] for r in rows]


def test_main_rejects_a_dataset_too_small_for_lenet5(tmp_path):
    with pytest.raises(SystemExit) as e:
        run.main(["--dataset", "digits", "--out", str(tmp_path / "x")])
    assert e.value.code == 2


def test_full_config_units():
    cfg = config.full()
    units = cfg.units("fashion_mnist", 0)
    lenet300, lenet5 = cfg.grid("lenet300100"), cfg.grid("lenet5")
    assert len(lenet300) == 3 + 1 + 7 + 7 + 8 + 8 and len(lenet5) == 1 + 1 + 5 + 2 + 6 + 6
    assert len(units) == 3 * (1 + len(lenet300)) + 3 * (1 + len(lenet5))
    assert len({config_key(u) for u in units}) == len(units)
    assert {u["seed"] for u in units} == {0, 1, 2} and {u["seed"] for u in cfg.units("fashion_mnist", 5)} == {5, 6, 7}
    pruned = [u for u in units if u["method"] == "kmeans_pruned"]
    assert all(u["pruned"]["scale"] == 2.0 and u["pruned"]["dense"] == u["dense"] for u in pruned)
    assert {u["epochs"] for u in units if u["model"] == "lenet5" and u["kind"] == "quantized"} == {3}
    with pytest.raises(ValueError, match="kmeans_bits"):
        config.Config(kmeans_bits=(("lenet5", (0,)),))
    with pytest.raises(ValueError, match="runs"):
        config.Config(models=("vit",))
    with pytest.raises(ValueError, match="unknown method"):
        cfg.unit("lenet300100", "hashing", 4, "fashion_mnist", 0)


# ----------------------------------------------------------------------------- report from rows


def _rows(acc: dict, nbytes: dict, spread: float = 0.001):
    """Synthetic LeNet-300-100 rows of three seeds: ``acc[(method, bits)]`` the mean test accuracy."""
    cfg = config.full()
    rows = []
    for u in cfg.units("fashion_mnist", 0):
        key = (u["method"], u["bits"])
        if u["model"] != "lenet300100" or key not in acc:
            continue
        a = acc[key] + spread * (u["seed"] - 1)
        b = nbytes[key]
        r = {"config": u, "test_accuracy": a, "in_memory_accuracy": a, "loaded_equals_in_memory": True,
             "val_accuracy": a, "stored_bytes": b, "bits_per_weight": 8 * b / KERNELS,
             "bits_per_kernel_weight": 8 * (b - 1700) / KERNELS, "compression": 4 * (KERNELS + 410) / b,
             "dense_bytes": 4 * (KERNELS + 410), "file": "x.wsjax", "accuracy_before_training": a - 0.1,
             "seconds": 1.0}
        if u["method"] == "kmeans_pruned":
            r.update(kept_fraction=0.1636, pruned_accuracy=0.898, committed_pruned_accuracy=0.8988)
        r["key"] = config_key(u)
        rows.append(r)
    return cfg, rows


def test_report_verdicts_follow_the_rows(tmp_path):
    acc = {("dense", 32): 0.900, ("binary", 1): 0.870, ("binary_stochastic", 1): 0.850, ("ternary", 2): 0.885}
    acc.update({("uniform", k): 0.860 if k == 2 else 0.899 for k in range(2, 9)})
    acc.update({("kmeans", k): 0.896 if k <= 2 else 0.899 for k in range(1, 9)})
    acc.update({("kmeans_pruned", k): 0.897 for k in range(1, 9)})
    nbytes = {("dense", 32): 1_066_595, ("binary", 1): 35_511, ("binary_stochastic", 1): 35_511,
              ("ternary", 2): 55_529}
    nbytes.update({("uniform", k): 35_000 * k for k in range(2, 9)})
    nbytes.update({("kmeans", k): 30_000 * k for k in range(1, 9)})
    nbytes.update({("kmeans_pruned", k): 10_000 * k for k in range(1, 9)})
    cfg, rows = _rows(acc, nbytes)
    md = report.write(rows, cfg, str(tmp_path), "fashion_mnist")
    assert "| binary (det.) | 1 | 35,511 |" in md and "87.00 ± 0.10" in md and "| +3.00 |" in md
    assert "k-bit STE, fixed step matches k-means at k = 3, 4, 5, 6, 7, 8 of 2, 3, 4, 5, 6, 7, 8: it does not " \
           "match k-means at the same bits" in md
    assert "Binary is NOT within 1 point of dense (3.00 points lost)." in md
    assert "BinaryConnect's shape (within 1 point of float) does not hold here" in md
    assert "Stochastic binarisation does not help (-2.00 points" in md
    assert "| float, no regulariser | 1.30 ± 0.04 | dense float32: 10.00 [9.75, 10.25] |" in md
    assert "k-means (DC): cheapest cell within 0.5 points of dense: 1 bits, 30,000 bytes (+0.40 points)" in md
    assert "pruned + k-means (DC): cheapest cell within 0.5 points of dense: 1 bits, 10,000 bytes" in md
    assert "binary (det.): cheapest cell within 0.5 points of dense: never within budget" in md
    assert "Pruned + k-means starts from nets with 16.4% of the kernel weights kept, at 89.80% test accuracy before " \
           "quantization (the deep_compression study's committed rows: 89.88%)." in md
    assert "Pareto front (bytes up, accuracy up): pruned + k-means (DC) 1, k-means (DC) 3, dense float32 32." in md
    text = open(tmp_path / "results.md").read()
    assert text.startswith("# quantization_bits on fashion_mnist\n") and "## Every run" in text
    assert os.path.getsize(tmp_path / "accuracy_vs_bytes.png") > 0
    close = {**acc, ("binary", 1): 0.893, ("binary_stochastic", 1): 0.899}
    md = report.write(_rows(close, nbytes)[1], cfg, str(tmp_path), "fashion_mnist")
    assert "BinaryConnect's shape (within 1 point of float) holds here" in md
    assert "Stochastic binarisation helps (+0.60 points" in md


def test_claims_rules():
    assert claims.matches([0.9, 0.91], [0.905, 0.906]) and not claims.matches([0.8, 0.81], [0.9, 0.91])
    assert claims.helps([0.9, 0.91], [0.8, 0.81]) and not claims.helps([0.9, 0.95], [0.89, 0.94])
    row = lambda a, b: {"test_accuracy": a, "stored_bytes": b}  # noqa: E731
    cells = {("m", "dense", 32): [row(0.9, 1000)], ("m", "a", 1): [row(0.8, 10)], ("m", "a", 2): [row(0.7, 20)],
             ("m", "b", 1): [row(0.85, 15)], ("m", "b", 2): [row(0.897, 50)]}
    assert claims.pareto(cells, "m") == [("a", 1), ("b", 1), ("b", 2), ("dense", 32)]
    assert claims.cheapest_within_budget(cells, "m", "b") == (2, 50, pytest.approx(0.3))
    assert claims.cheapest_within_budget(cells, "m", "a") is None
    assert claims.ci_cell([0.9]) == "-" and claims.error_cell([0.9]) == "10.00"
