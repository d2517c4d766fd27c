"""The sharing-level study: a smoke run (tuning, then every arm at equal free parameters,
real files, resuming) and the pre-registered verdicts computed from hand-made rows."""

import os

import pytest

from wsjax.study import discover
from wsjax.study import report as study_report

run, config = discover.load("sharing_levels"), discover.load("sharing_levels", "config")
report = discover.load("sharing_levels", "report")
derived_arms = discover.load("sharing_levels", "derived")


def test_tied_sizes_follow_the_architecture():
    cfg = config.full()
    assert cfg.dense_params() == 664_074
    assert cfg.tied_params("tied_all") == 269_322 and cfg.tied_params("tied_sequence_2") == 335_114
    assert cfg.tied_params("tied_cycle_3") == 400_906
    assert cfg.tied_params("tied_scale_shift") == 269_322 + 7 * 512
    assert cfg.tied_params("tied_lora_8") == 269_322 + 7 * 2 * 256 * 8
    assert cfg.dynamic_params() == cfg.tied_params("tied_all")  # one layer, run 0-3 times instead of 7
    every = {a: (1e-3, 1.0) for a in ("dense",) + config.BUDGETED + tuple(config.TYING) + config.OWN_SIZE}
    units = cfg.point_units("fashion_mnist", 0, every)
    budgeted = [u for u in units if u["budget"] in cfg.budgets and u["role"] == "point"]
    assert len(budgeted) == len(config.BUDGETED) * (4 * 3 + 2 * 5)  # 5 seeds at 1/8 and 1/32
    first = cfg.tune_units("fashion_mnist", 0)
    assert len(first) == 3 * (1 + 1 + len(config.TYING) + 1) + 9 * len(config.HASHING)  # soft arms: not tuned
    assert not any(u["arm"] in config.DERIVED for u in first)
    derived = cfg.tune_units("fashion_mnist", 0, every)
    assert [u["arm"] for u in derived] == ["pruned"] * 3 and derived[0]["dense_lr"] == every["dense"][0]
    # a derived arm starts from the dense point its seed has: one of the point units
    assert cfg.dense_point_of(derived[0]) == next(u for u in units if u["arm"] == "dense")
    assert derived_arms.round_epochs(10, 2) == [5, 5] and derived_arms.round_epochs(10, 3) == [3, 3, 4] and derived_arms.round_epochs(1, 1) == [1]
    with pytest.raises(ValueError, match="unknown arms"):
        config.Config(arms=("hashed_everything",))


def test_smoke_run_tunes_trains_every_arm_at_equal_size_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    cfg, out = config.smoke(), str(tmp_path / "sharing_levels")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    tune = [r for r in rows if r["config"]["kind"] == "tune"]
    points = [r for r in rows if r["config"]["kind"] == "point"]
    assert len(tune) == 1 + len(cfg.arms) + len(cfg.tying) + len(cfg.own_size) - len(config.SOFT)
    # every budgeted arm once, the dense net, the tying arms, the controls at the tying sizes
    controls = cfg.control_budgets()
    assert controls == [round(cfg.tied_fraction("tied_cycle_2"), 4)]  # LoRA 8 on 16 units costs more than it saves
    assert len(points) == 1 + len(cfg.arms) + len(cfg.tying) + len(cfg.own_size) + 2 * len(controls) + 2
    dense = cfg.dense_params()
    for r in points:
        c = r["config"]
        assert r["stored_bytes"] == os.path.getsize(os.path.join(out, r["file"])) > 0
        assert r["test_accuracy"] == r["in_memory_accuracy"] and len(r["val_curve"]) == cfg.epochs
        if c["arm"] in config.HASHING:  # equal free parameters, up to one bucket a layer
            assert abs(r["free_params"] - c["budget"] * dense) <= cfg.hidden_layers + 1, (c["arm"], r["free_params"])
            assert set(r["collision_load"]) == {f"Dense_{i}" for i in range(cfg.hidden_layers + 1)}
        if c["arm"] in config.TYING:
            assert r["free_params"] == cfg.tied_params(c["arm"])
        if c["arm"] == "pruned":  # the file fits the budget's bytes, within one bisection step of it
            assert r["stored_bytes"] <= r["target_bytes"] == c["budget"] * 4 * dense
            assert r["stored_bytes"] > 0.97 * r["target_bytes"] and 0 < r["kept_fraction"] < c["budget"]
        if c["arm"] == "lottery":  # 20 % of the survivors a round, 10 % of the output layer's
            hidden = 784 * 16 + 3 * 16 * 16
            kept = hidden - round((1 - 0.8 ** c["round"]) * hidden) + 160 - round((1 - 0.9 ** c["round"]) * 160)
            assert r["free_params"] == kept + 4 * 16 + 10 and r["kept_fraction"] == kept / (hidden + 160)
        if c["arm"] in config.SOFT:  # snapped: few values, the zeros pruned
            assert c["scope"] == config.SOFT[c["arm"]] and c["lr"] == cfg.soft_lr
            assert r["distinct_values"] <= (17 if c["scope"] == "global" else 17 * (cfg.hidden_layers + 1))
            assert r["free_params"] < dense
        if c["arm"] == "dynamic":
            assert r["free_params"] == cfg.dynamic_params() and r["depth"] in range(cfg.max_repeats + 1)
            assert r["test_accuracy"] == r["depth_test_accuracy"][str(r["depth"])]
    by = {(r["config"]["arm"], r["config"]["budget"]): r for r in points}
    pool, layer = by[("hashed_pool", 1 / 8)], by[("hashed_layer", 1 / 8)]
    assert all(v["shared"] == 0.0 for v in layer["collision_load"].values())
    assert pool["collision_load"]["Dense_4"]["shared"] == 1.0  # the small output layer lives in the pool
    md = open(os.path.join(out, "results.md")).read()
    assert md.startswith("# The sharing-level study: pre-registration")
    for section in ("## Status of these results", "## Tuning", "## Every point", "## Rule 1-2", "## Rule 3",
                    "## Rule 4", "## DynamicNet", "## Soft sharing", "## Lottery tickets", "## Collision load"):
        assert section in md
    assert os.path.getsize(os.path.join(out, "pareto_deep_mlp.png")) > 10_000
    # without the uncommitted files (the deep MLP's are not in git) a chain is trained again and
    # must reproduce its rows: the dense start and round 1 are rebuilt for round 2
    last = next(r for r in points if r["config"]["arm"] == "lottery" and r["config"]["round"] == 2)
    for r in points:
        if r["config"]["arm"] in ("dense", "lottery"):
            os.remove(os.path.join(out, r["file"]))
    from wsjax.results import Store
    data = run.data_for(cfg, "fashion_mnist", 0)
    assert run.train_metrics(cfg, last["config"], data, Store(out))["test_accuracy"] == last["test_accuracy"]
    capsys.readouterr()
    again = run.run(cfg, "fashion_mnist", 0, out)  # resumes: nothing is trained twice
    assert [r["key"] for r in again] == [r["key"] for r in rows]
    assert capsys.readouterr().out.count("(cached)") == len(rows)


def test_lenet5_grid_and_a_smoke_run_of_its_arms(tmp_path, monkeypatch):
    from wsjax.models import equal_size_lenet5, lenet5_params

    cfg = config.lenet5()
    assert cfg.dense_params() == lenet5_params() == 431_080
    every = {a: (1e-3, 1.0) for a in ("dense",) + config.BUDGETED}
    tune = cfg.tune_units("fashion_mnist", 0) + cfg.tune_units("fashion_mnist", 0, every)
    points = cfg.point_units("fashion_mnist", 0, every)
    assert len(tune) == 3 * 2 + 9 * len(config.HASHING) + 3 and len(points) == 3 + 7 * 3 * 3
    assert all(u["model"] == "lenet5" and "width" not in u for u in tune + points)
    assert equal_size_lenet5(round(431_080 / 64)) == (2, 6, 60) and lenet5_params((2, 6, 60)) == 6_788
    for bad, why in ((dict(tying=("tied_all",)), "no same-shape layers"), (dict(lottery_rounds=2), "deep MLP only"),
                     (dict(model="resnet"), "runs one of")):
        with pytest.raises(ValueError, match=why):
            config.Config(**{**dict(model="lenet5", tying=(), own_size=(), lottery_rounds=0), **bad})
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    smoke, out = config.smoke_lenet5(), str(tmp_path / "sharing_levels")
    rows = run.run(smoke, "fashion_mnist", 0, out)
    by = {r["config"]["arm"]: r for r in rows if r["config"]["kind"] == "point"}
    assert set(by) == {"dense", "narrow", "hashed_layer", "hashed_pool_scaled", "pruned"}
    for r in by.values():
        assert r["stored_bytes"] == os.path.getsize(os.path.join(out, r["file"]))
        assert r["test_accuracy"] > 0.2  # 300 images, one epoch: above chance (0.1)
    target = round(431_080 / 8)
    assert by["narrow"]["widths"] == [7, 17, 179]
    assert abs(by["narrow"]["free_params"] - target) < 0.01 * target
    # the pool with its 4 per-layer scales and the biases fills the budget's free parameters
    assert abs(by["hashed_pool_scaled"]["free_params"] - target) <= 4
    assert set(by["hashed_pool_scaled"]["collision_load"]) == {"Conv_0", "Conv_1", "Dense_0", "Dense_1"}
    assert by["pruned"]["stored_bytes"] <= by["pruned"]["target_bytes"] == 4 * 431_080 / 8
    md = open(os.path.join(out, "results.md")).read()
    assert "# LeNet-5\n" in md and "**LeNet-5: " in md and "Plot: `pareto_lenet5.png`" in md
    assert os.path.getsize(os.path.join(out, "pareto_lenet5.png")) > 10_000


def test_vit_grid_its_tied_sizes_are_the_transforms_and_a_smoke_run_of_its_arms(tmp_path, monkeypatch):
    import jax
    import jax.numpy as jnp

    from wsjax.models import ViT, equal_size_vit, vit_params
    from wsjax.sharing import free_params

    cfg = config.vit()
    assert cfg.dense_params() == vit_params() == 139_018 and cfg.tied_layers() == [f"Block_{i}" for i in range(4)]
    # each tying arm's counted size is the free parameters of its transform on the real ViT
    params = ViT().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    for arm in cfg.tying:
        t = run.transform_of({"arm": arm, "model": "vit", "depth": 4}, None)
        assert free_params(t.init(jax.random.key(1), params)) == cfg.tied_params(arm), arm
    assert cfg.tied_params("tied_all") == 139_018 - 3 * 33_472
    every = {a: (1e-3, 1.0) for a in ("dense",) + config.BUDGETED + tuple(config.TYING)}
    tune = cfg.tune_units("fashion_mnist", 0) + cfg.tune_units("fashion_mnist", 0, every)
    points = cfg.point_units("fashion_mnist", 0, every)
    assert len(tune) == 3 * (2 + len(config.TYING) + 1) + 9 * len(config.HASHING)
    # dense, 7 budgeted arms at 3 budgets, 7 tying arms, the 2 controls at the 5 distinct tied sizes
    assert len(points) == 3 * (1 + 7 * 3 + 7 + 2 * 5) and cfg.control_budgets()[0] == 0.2777
    assert equal_size_vit(round(139_018 / 4)) == 32 and equal_size_vit(round(139_018 / 16)) == 16
    with pytest.raises(ValueError, match="more same-shape"):
        config.Config(model="vit", depth=3, tying=("tied_cycle_3",), own_size=(), lottery_rounds=0)
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    smoke, out = config.smoke_vit(), str(tmp_path / "sharing_levels")
    rows = run.run(smoke, "fashion_mnist", 0, out)
    by = {r["config"]["arm"]: r for r in rows if r["config"]["kind"] == "point"}
    assert set(by) == {"dense", "narrow", "roast", "tied_scale_shift"}
    for arm, r in by.items():
        assert r["stored_bytes"] == os.path.getsize(os.path.join(out, r["file"])), arm
    assert by["dense"]["test_accuracy"] > 0.2  # 300 images, one epoch: above chance (0.1)
    for arm in smoke.tying:
        assert by[arm]["free_params"] == smoke.tied_params(arm)
    target = round(vit_params(width=16, depth=3) / 4)
    assert by["narrow"]["widths"] == [8] * 3 and by["narrow"]["free_params"] == vit_params(width=8, depth=3)
    assert abs(by["roast"]["free_params"] - target) <= 1
    assert set(by["roast"]["collision_load"]) == {"Block_0", "Block_1", "Block_2", "embed", "head"}
    md = open(os.path.join(out, "results.md")).read()
    assert "# ViT\n" in md and "## Rule 3: tying" in md and "Plot: `pareto_vit.png`" in md
    assert "| ViT | 4 | " in md  # the verdicts' table: its point rows
    # models not chosen with --models: their stored rows in the report, nothing trained
    n = len(open(os.path.join(out, "rows.jsonl")).readlines())
    again = run.run([smoke, config.smoke_lenet5()], "fashion_mnist", 0, out,
                    report_only=[smoke, config.smoke_lenet5()])
    assert len(open(os.path.join(out, "rows.jsonl")).readlines()) == n
    assert sorted(r["key"] for r in again) == sorted(r["key"] for r in rows)
    assert "# LeNet-5\n" not in open(os.path.join(out, "results.md")).read()
    with pytest.raises(SystemExit):  # argparse's one-line error
        run.main(["--models", "resnet", "--out", str(tmp_path / "unused")])


def _row(arm, budget, seed, test, val=None, kind="point"):
    return {"config": {"kind": kind, "arm": arm, "budget": budget, "seed": seed, "role": "point"},
            "test_accuracy": test, "val_accuracy": test if val is None else val, "stored_bytes": 1000,
            "dense_bytes": 8000, "free_params": 250}


def test_pruning_in_two_rounds_fits_the_last_mask_to_the_budget(tmp_path, monkeypatch):
    import dataclasses

    from wsjax.results import Store

    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    cfg = dataclasses.replace(config.smoke(), epochs=2, tune_epochs=2, prune_rounds=2)
    every = {a: (3e-3, 1.0) for a in ("dense",) + config.BUDGETED + tuple(config.TYING) + config.OWN_SIZE}
    unit = next(u for u in cfg.point_units("fashion_mnist", 0, every) if u["arm"] == "pruned")
    row = run.train_metrics(cfg, unit, run.data_for(cfg, "fashion_mnist", 0), Store(tmp_path / "s"))
    assert row["stored_bytes"] <= row["target_bytes"] and row["stored_bytes"] > 0.97 * row["target_bytes"]
    assert len(row["val_curve"]) == 2  # one retraining epoch per round


def test_a_budget_takes_the_lottery_round_nearest_it():
    def rnd(seed, k, frac):
        return {"config": {"kind": "point", "role": "round", "arm": "lottery", "budget": None, "seed": seed,
                           "round": k}, "stored_bytes": frac * 8000, "dense_bytes": 8000, "test_accuracy": 0.8}

    rows = [rnd(s, k, 0.8 ** k) for s in (0, 1) for k in range(1, 13)]
    got = report.lottery_cells(rows, [1 / 2, 1 / 8, 1 / 64])
    assert set(got) == {("lottery", 1 / 2), ("lottery", 1 / 8)}  # 0.8^12 = 0.069 is too far from 1/64
    assert [got[("lottery", 1 / 2)][s]["config"]["round"] for s in (0, 1)] == [3, 3]  # 0.512
    assert got[("lottery", 1 / 8)][0]["config"]["round"] == 9  # 0.134 (round 10: 0.107)
    assert ("lottery", None) not in report.cells(rows)  # the rounds are not one cell
    # only the grid's budgets take a round (not the tying controls' sizes)
    assert {b for (_, b) in report.cells(rows, [1 / 2])} == {1 / 2}


def test_the_rules_follow_the_rows():
    rows = []
    for s, (a, b, c, d) in enumerate([(0.880, 0.884, 0.870, 0.860), (0.882, 0.885, 0.873, 0.862),
                                      (0.881, 0.886, 0.872, 0.861)]):
        rows += [_row("hashed_layer", 1 / 8, s, a), _row("hashed_pool", 1 / 8, s, b),
                 _row("hashed_layer", 1 / 32, s, c), _row("roast", 1 / 32, s, d, val=0.9)]
    cs = report.cells(rows)
    per_budget = report.cross_vs_within(cs, [1 / 8, 1 / 32])
    assert [(b, x, w, v) for b, x, w, _, _, _, v in per_budget] == [
        (1 / 8, "hashed_pool", "hashed_layer", "better"), (1 / 32, "roast", "hashed_layer", "worse")]
    assert report.model_verdict(per_budget) == "no"
    assert report.model_verdict(per_budget[:1]) == "yes"
    assert study_report.verdict(-0.3, 0.1, 0.5) == "as good" and study_report.verdict(-0.3, 0.5, 0.5) == "inconclusive"
    assert study_report.verdict(0.2, 0.3, 0) == "tied"


def test_the_anchors_follow_the_rows():
    anchors = discover.load("sharing_levels", "anchors")
    rows = []
    for s in range(3):
        e = 0.001 * s
        rows += [_row("hashed_layer", 1 / 8, s, 0.870 + e), _row("hashed_pool", 1 / 8, s, 0.880 + e),
                 _row("pruned", 1 / 8, s, 0.890 + e), _row("dense", None, s, 0.900 + e),
                 _row("tied_all", None, s, 0.870 + e), _row("tied_scale_shift", None, s, 0.895 + e),
                 _row("tied_lora_8", None, s, 0.872 + e)]
        rows[-7]["seconds"], rows[-6]["seconds"] = 10.0, 30.0
    for scale, val in ((0.5, 0.80), (1.0, 0.85), (2.0, 0.84)):
        rows.append({**_row("roast", 1 / 8, 0, val, kind="tune"), "config": {
            "kind": "tune", "arm": "roast", "budget": 1 / 8, "seed": 0, "lr": 1e-3, "init_scale": scale}})
    cs = report.cells(rows)
    md = anchors.anchors_md(rows, cs, config.full())
    line = {row.split(" | ")[0].lstrip("| ") + row.split(" | ")[1][:20]: row for row in md.splitlines() if row.startswith("| ")}
    assert line["ROASTone global pool beat"].endswith("| holds |")  # +1 point at every seed
    assert line["STABLE-RPSrandomized sharing m"].endswith("| does not hold |")  # 1 point below pruning
    assert "roast 5.00" in line["STABLE-RPSROAST is sensitive t"]
    assert "tied_all` - dense -3.00" in line["ALBERTtying all layers cos"]
    assert "83 % of the 3.00 points" in line["MiniViTa per-layer scale an"] and line["MiniViTa per-layer scale an"].endswith("| holds |")
    assert line["Relaxed Recursivea per-layer LoRA (ra"].endswith("| does not hold |")
    assert anchors.anchors_md([], {}, config.full()) == ""


def test_anchor_readings_name_ties_and_single_seeds_for_what_they_are():
    anchors = discover.load("sharing_levels", "anchors")
    assert anchors.beats_reading(["tied", "tied"]) == "not shown"
    assert anchors.beats_reading(["better", "tied"]) == "holds at some budgets"
    assert anchors.beats_reading(["better", "worse"]) == "mixed" and anchors.beats_reading(["worse", "tied"]) == "does not hold"
    assert anchors.matches_reading(["inconclusive"]) == "inconclusive" and anchors.matches_reading(["tied", "better"]) == "holds"
    assert anchors.matches_reading(["worse", "tied"]) == "mixed" and anchors.matches_reading(["worse"]) == "does not hold"
    # one seed (a quick run): every reading inconclusive, no KeyError
    rows = [_row("hashed_layer", 1 / 8, 0, 0.80), _row("hashed_pool", 1 / 8, 0, 0.85), _row("pruned", 1 / 8, 0, 0.75),
            _row("dense", None, 0, 0.90), _row("tied_all", None, 0, 0.85), _row("tied_scale_shift", None, 0, 0.88)]
    md = anchors.anchors_md(rows, report.cells(rows), config.quick())
    readings = [line.rsplit(" | ", 1)[1].rstrip(" |") for line in md.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert readings == ["not shown", "inconclusive", "inconclusive", "inconclusive"], readings
    # noisy seeds: a pool ahead by 0.3 +- 0.6 points is tied, so ROAST's claim is not shown
    noisy = []
    for s, d in enumerate((0.009, -0.003, 0.003)):
        noisy += [_row("hashed_layer", 1 / 8, s, 0.80), _row("hashed_pool", 1 / 8, s, 0.80 + d)]
    md = anchors.anchors_md(noisy, report.cells(noisy), config.full())
    assert "(tied at 1 of 1 budgets) | not shown |" in md
