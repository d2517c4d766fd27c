"""The frontier study: a smoke run (real files, every variant, resuming) and the verdict
against the peer computed from hand-made rows."""

import dataclasses
import json
import os

import pytest

from wsjax.study import discover

run, config = discover.load("frontier"), discover.load("frontier", "config")
report = discover.load("frontier", "report")


def test_smoke_run_writes_a_file_per_point_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    cfg, out = config.smoke(), str(tmp_path / "frontier")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    assert [r["config"]["variant"] for r in rows] == ["best", "distilled", "iterative"]
    for r in rows:
        assert r["stored_bytes"] == os.path.getsize(os.path.join(out, r["file"]))
        assert r["test_accuracy"] == r["in_memory_accuracy"]
        assert r["compression"] == pytest.approx(4 * 266_610 / r["stored_bytes"])
        assert r["drop_points"] == pytest.approx(100 * (r["dense_accuracy"] - r["test_accuracy"]))
        assert 0.08 < r["kept_fraction"] < 0.12 and r["fixed_bytes"] > r["stored_bytes"]
    best = rows[0]
    assert set(best["bits"]) == {"Dense_0/kernel", "Dense_1/kernel", "Dense_2/kernel"}
    assert best["index_bits"] and all(2 <= b <= 12 for b in best["index_bits"].values())
    assert rows[0]["config"]["prune"]["schedule"] == "gradual" and rows[2]["config"]["prune"]["schedule"] == "iterative"
    assert rows[1]["config"]["prune"]["distill"] == config.DISTILL and "distill" not in rows[0]["config"]["prune"]
    md = open(os.path.join(out, "results.md")).read()
    assert md.startswith("# frontier on fashion_mnist (quick)\n") and "### Our frontier against the peer's" in md
    assert os.path.getsize(os.path.join(out, "frontier_lenet300100.png")) > 0
    with open(os.path.join(out, "results.json")) as f:
        assert len(json.load(f)["rows"]) == len(rows)

    def nothing(*a, **k):
        raise AssertionError("a resumed run with every unit stored must not compute anything")

    monkeypatch.setattr(run.Study, "compressed", nothing)
    assert [r["key"] for r in run.run(cfg, "fashion_mnist", 0, out)] == [r["key"] for r in rows]


def _row(variant, level, seed, drop, compression):
    return {"config": {"kind": "compress", "variant": variant, "prune": {"model": "m", "level": level, "seed": seed}},
            "compression": compression, "drop_points": drop, "test_accuracy": 0.9 - drop / 100,
            "val_accuracy": 0.9 - drop / 100, "pruned_accuracy": 0.9 - drop / 200,
            "layers": [{"bytes_index_codes": int(6e5 / compression), "bytes_weight_codes": int(3e5 / compression)}],
            "dense_accuracy": 0.9, "stored_bytes": int(1e6 / compression), "fixed_bytes": int(1.3e6 / compression),
            "dense_bytes": 1_000_000, "kept_fraction": level}


def test_verdict_uses_mean_drop_over_seeds_and_the_peers_best_point():
    rows = [_row("best", 0.1, s, d, c) for s, d, c in ((0, 0.3, 35), (1, 0.5, 34), (2, 0.4, 36))]
    rows += [_row("best", 0.05, s, d, c) for s, d, c in ((0, 0.9, 60), (1, 0.4, 60), (2, 0.6, 60))]  # mean 0.63
    cl = report.cells(rows)
    level, stats = report.frontier(cl, "m", "best", 0.5)
    assert level == 0.1 and stats["compression"][0] == pytest.approx(35)
    assert report.frontier(cl, "m", "best", 1.0)[0] == 0.05
    assert report.frontier(cl, "m", "no_huffman", 0.5)[1]["compression"][0] == pytest.approx(1e6 / 1.3e6 * 35, rel=0.01)
    peer = [{"drop_points": 0.4, "compression": 22.0}, {"drop_points": 0.6, "compression": 30.0}]
    assert report.peer_best(peer, 0.5)["compression"] == 22.0 and report.peer_best(peer, 0.3) is None
    cfg = config.Config(models=("m",), variants=("best",))
    peer_json = {"model": "m", "peer": "tfmot", "seed": 0, "dense_test_accuracy": 0.9, "dense_epochs": 1,
                 "points": [{**p, "sparsity": 0.9, "clusters": 16, "test_accuracy": 0.9, "zipped_bytes": 1}
                            for p in peer]}
    md = report.model_section("m", cl, peer_json, rows, cfg)
    assert "ours / peer = 1.59 (goal >= 1.5), ahead at 4 of 4 budgets with a point on both sides: **met**" in md
    # the goal is 33x (1.5 x 22): the densest level reaching it is 0.1 (35x), its drop half pruning, half quantization
    assert "is 33.0x; the densest level of `best` that reaches it keeps 0.10" in md
    assert "loses 0.40 points on average: 0.20 in pruning (dense -> pruned net) and +0.20 in quantization" in md
    # ours is the better of best and distilled on validation, over the (level, seed) pairs both have
    assert report.ours_variant(cl, "m") == "best"
    taught = report.cells(rows + [_row("distilled", 0.1, s, 0.1, 30) for s in range(3)])
    assert report.ours_variant(taught, "m") == "distilled"
    md = report.model_section("m", cl, {**peer_json, "points": [{**peer_json["points"][0], "compression": 24.0}]},
                              rows, cfg)
    assert "ours / peer = 1.46" in md and "**not met**" in md


def test_confirmation_runs_fresh_seeds_and_keeps_its_rows_out_of_the_full_grid():
    cfg = config.full()
    units = cfg.confirm_units("fashion_mnist", 0)
    assert len(units) == 3 * 3 * 4 and {u["prune"]["seed"] for u in units} == {3, 4, 5}
    long = [u for u in units if u["variant"] == "global_distilled_long"]
    assert {u["prune"]["epochs"] for u in long} == {2 * config.RECIPE["lenet300100"]["prune_epochs"]}
    assert all(u["prune"]["allocation"] == "global" and u["prune"]["distill"] == config.DISTILL for u in long)
    # the full grid's keys do not move: its distilled units are the confirmation's control but at other seeds
    assert not {u["prune"]["seed"] for u in cfg.units("fashion_mnist", 0)} & {3, 4, 5}
    with pytest.raises(ValueError, match="confirmation seeds \\[3, 4\\] are also the run's seeds"):
        cfg.confirm_units("fashion_mnist", 2)
    assert config.quick().confirm_units("fashion_mnist", 0) == []
    assert cfg.is_confirm(_row("distilled", 0.1, 4, 0.3, 30)) and not cfg.is_confirm(_row("distilled", 0.1, 2, 0.3, 30))


def test_confirmation_picks_its_candidate_on_validation_and_pairs_it_with_the_control():
    confirm = discover.load("frontier", "confirm")
    cfg = dataclasses.replace(config.full(), models=("m",), confirm={**config.CONFIRM, "levels": {"m": (0.1,)}})
    rows = [_row("distilled", 0.1, s, d, 30) for s, d in ((3, 0.6), (4, 0.7), (5, 0.5))]
    rows += [_row("global_distilled", 0.1, s, d, 36) for s, d in ((3, 0.4), (4, 0.5), (5, 0.3))]
    assert confirm.section("m", rows, None, [], cfg).endswith("Not every candidate has a row yet: no verdict.\n")
    rows += [_row("global_distilled_long", 0.1, s, 0.45, 40) for s in (3, 4, 5)]
    cl = report.cells(rows)
    # validation accuracy 0.9 - drop/100: global_distilled's mean drop 0.40 beats the long one's 0.45
    assert confirm.chosen(cl, "m", cfg.confirm["candidates"]) == "global_distilled"
    (paired,) = confirm.against_control(cl, "m", "global_distilled")
    assert paired["seeds"] == 3 and paired["global_distilled - distilled (pts)"] == "+0.20 ± 0.00"
    assert paired["reading"] == "better"
    peer = {"model": "m", "peer": "tfmot", "seed": 0, "dense_test_accuracy": 0.9, "dense_epochs": 1,
            "points": [{"drop_points": 0.4, "compression": 22.0, "sparsity": 0.9, "clusters": 16,
                        "test_accuracy": 0.896, "zipped_bytes": 1}]}
    md = confirm.section("m", rows, peer, [], cfg)
    assert "Ours in the confirmation: `global_distilled`" in md
    assert "**Confirmation verdict (m)**: at a drop of at most 0.5 points ours / peer = 1.64 (goal >= 1.5)" in md
