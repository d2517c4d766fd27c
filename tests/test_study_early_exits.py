"""The early-exit study: a smoke run (rows, real files, sweeps that agree with the exits,
timing beside counted cost, resuming) and the report's verdicts computed from rows."""

import json
import os

import pytest

from wsjax.results import config_key
from wsjax.study import discover

run, config = discover.load("early_exits"), discover.load("early_exits", "config")
report, claims = discover.load("early_exits", "report"), discover.load("early_exits", "claims")
nets, timing = discover.load("early_exits", "nets"), discover.load("early_exits", "timing")


def _check_sweep(r, thresholds):
    for split in ("val_sweep", "test_sweep"):
        s = r[split]
        assert s["thresholds"] == pytest.approx(thresholds)
        macs = s["avg_macs"]
        assert all(a <= b + 1e-6 for a, b in zip(macs, macs[1:]))  # a higher threshold never costs less
        assert macs[0] == r["exit_macs"][0] and macs[-1] == r["exit_macs"][-1]
        assert all(sum(f) == pytest.approx(1.0) for f in s["exit_fractions"])
    assert r["test_sweep"]["accuracy"][0] == pytest.approx(r["exit_test_accuracy"][0], abs=1e-6)
    assert r["test_sweep"]["accuracy"][-1] == pytest.approx(r["exit_test_accuracy"][-1], abs=1e-6)


def test_smoke_run_trains_stores_times_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    cfg, out = config.smoke(), str(tmp_path / "early_exits")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    kinds = [r["config"]["kind"] for r in rows]
    n_sep = (len(cfg.budgets) + len(cfg.depths)) * cfg.seeds
    assert kinds == ["multi_exit"] * (cfg.seeds * len(cfg.weightings)) + ["separate"] * n_sep + ["timing"] * cfg.seeds
    multi = [r for r in rows if r["config"]["kind"] == "multi_exit"]
    full = multi[0]["macs"]
    assert multi[0]["exit_macs"] == [28_264, 84_792, 113_096] and full == 113_096
    for r in rows[: len(multi) + n_sep]:
        assert r["stored_bytes"] == os.path.getsize(os.path.join(out, r["file"])) > 0
        assert len(r["val_curves"][-1]) == cfg.epochs and 0 <= r["test_accuracy"] <= 1
    for r in multi:
        _check_sweep(r, cfg.thresholds())
        assert r["test_accuracy"] == r["exit_test_accuracy"][-1] and len(r["exit_test_accuracy"]) == 3
    for r in rows[len(multi): len(multi) + n_sep]:
        assert r["macs"] <= r["config"]["budget"] * full  # within its budget
        assert r["free_params"] < multi[0]["free_params"]
    for t in rows[-cfg.seeds:]:
        entries = t["entries"]
        assert [e["what"] for e in entries] == ["masked", "compacting", "narrow", "full"]
        masked, compacting, narrow, whole = entries
        assert masked["computed_macs"] == whole["avg_macs"] == full  # masked runs every exit
        assert compacting["computed_macs"] <= masked["computed_macs"]
        assert compacting["threshold"] == masked["threshold"]
        assert masked["avg_macs"] == pytest.approx(compacting["avg_macs"], rel=0.02)
        assert masked["avg_macs"] == pytest.approx(masked["sweep_macs"], rel=0.02)
        assert masked["accuracy"] == pytest.approx(masked["sweep_accuracy"], abs=0.011)  # rounding flips at most
        assert all(e["seconds"] > 0 and len(e["rounds"]) == cfg.repeats for e in entries)
        assert t["test_images"] == cfg.test_examples
    with open(os.path.join(out, "results.json")) as f:
        assert len(json.load(f)["rows"]) == len(rows)
    md = open(os.path.join(out, "results.md")).read()
    assert md.startswith("# early_exits on fashion_mnist (quick)\n")
    for section in ("## The nets and their counted costs", "## Early exit at 50% of the full net's multiply-adds",
                    "## The accuracy-compute curve",
                    "## Each exit alone", "## One multi-exit net against separate nets at matched compute",
                    "## Measured CPU time beside the counted cost", "## MSDNet and the notes beside ours",
                    "## Convergence", "## Every run"):
        assert section in md
    for plot in ("accuracy_vs_macs.png", "time_vs_macs.png"):
        assert os.path.getsize(os.path.join(out, plot)) > 0
    capsys.readouterr()

    def nothing(*a, **k):
        raise AssertionError("a resumed run with nothing to do must not train or time")

    monkeypatch.setattr(nets, "fit", nothing)
    monkeypatch.setattr(timing, "measure", nothing)
    again = run.run(cfg, "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == len(rows)
    assert [r["key"] for r in again] == [r["key"] for r in rows]


def test_main_rejects_a_dataset_outside_the_study(tmp_path):
    with pytest.raises(SystemExit) as e:
        run.main(["--dataset", "digits", "--out", str(tmp_path / "x")])
    assert e.value.code == 2


def test_config_checks_and_narrow_widths():
    with pytest.raises(ValueError, match="budgets"):
        config.Config(budgets=(1.5,))
    with pytest.raises(ValueError, match="uniform"):
        config.Config(weightings=("linear",))
    with pytest.raises(ValueError, match="depths"):
        config.Config(depths=(4,))
    t = config.full().thresholds()
    assert t[0] == 0.0 and t[-1] == 2.0 and len(t) == 122 and t[-2] == pytest.approx(1 - 1e-6)
    assert nets.narrow_widths((16, 32, 64), 0.5, (28, 28, 1)) == [11, 22, 45]
    assert nets.single_exit_macs((11, 22, 45), (28, 28, 1)) <= 0.5 * 1_920_352
    assert nets.single_exit_macs((12, 23, 47), (28, 28, 1)) > 0.5 * 1_920_352


# ----------------------------------------------------------------------------- report from rows

FULL = 1_920_352
EXITS = [113_056, 1_016_544, FULL]


def _sweep(acc_mid):
    """Four thresholds: everything at exit 0, two mixes at 40% and 70% of the full cost, no exit."""
    return {"thresholds": [0.0, 0.5, 0.9, 2.0], "avg_macs": [EXITS[0], 0.4 * FULL, 0.7 * FULL, FULL],
            "accuracy": [0.45, acc_mid[0], acc_mid[1], 0.90], "exit_fractions": [[1, 0, 0], [0.6, 0.3, 0.1],
                                                                                  [0.3, 0.3, 0.4], [0, 0, 1]]}


def _rows(cfg, ee_mid=(0.88, 0.895), narrow_acc=(0.80, 0.87, 0.894), alone=0.89, spread=0.001):
    rows = []
    for u in cfg.multi_exit_units("fashion_mnist", 0):
        d = spread * (u["seed"] - 1)
        mid = (ee_mid[0] + d, ee_mid[1] + d)
        rows.append({"config": u, "macs": FULL, "exit_macs": EXITS, "block_macs": [112_896, 903_168, 903_168],
                     "head_macs": [160, 320, 640], "free_params": 24_446, "stored_bytes": 98_133,
                     "exit_test_accuracy": [0.45 + d, 0.73 + d, 0.90 + d], "test_accuracy": 0.90 + d,
                     "val_sweep": _sweep(mid), "test_sweep": {**_sweep(mid), "accuracy": [0.45 + d, *mid, 0.90 + d]},
                     "val_curves": [[0.4, 0.45], [0.7, 0.73], [0.89, 0.90]], "seconds": 100.0})
    narrow = dict(zip(cfg.budgets, narrow_acc))
    for u in cfg.separate_units("fashion_mnist", 0, (28, 28, 1)):
        d = spread * (u["seed"] - 1)
        if u["family"] == "narrow":
            macs, acc, size = int(u["budget"] * FULL * 0.98), narrow[u["budget"]] + d, int(98_000 * u["budget"])
        else:
            macs, acc, size = EXITS[u["depth"] - 1], (0.47 if u["depth"] == 1 else alone) + d, 98_000
        rows.append({"config": u, "macs": macs, "test_accuracy": acc, "free_params": size // 4, "stored_bytes": size,
                     "val_curves": [[acc - 0.01, acc]], "seconds": 50.0})
    multi = [r["config"] for r in rows if r["config"]["kind"] == "multi_exit"]
    sep = [r["config"] for r in rows if r["config"]["kind"] == "separate"]
    for u in cfg.timing_units(multi, sep):
        entries = []
        for b in cfg.budgets:
            m = 0.4 if b < 0.7 else 0.7
            entries += [{"what": "masked", "budget": b, "avg_macs": m * FULL, "computed_macs": FULL, "seconds": 1.05,
                         "accuracy": 0.88},
                        {"what": "compacting", "budget": b, "avg_macs": m * FULL, "computed_macs": m * FULL + 1,
                         "seconds": 0.6, "accuracy": 0.88},
                        {"what": "narrow", "budget": b, "avg_macs": b * FULL, "computed_macs": b * FULL,
                         "seconds": b, "accuracy": 0.87}]
        entries.append({"what": "full", "budget": 1.0, "avg_macs": FULL, "computed_macs": FULL, "seconds": 1.0,
                        "accuracy": 0.9})
        rows.append({"config": u, "entries": entries, "test_images": 10_000, "backend": "cpu", "cpus": 2,
                     "load_before": 1.0, "load_after": 2.0})
    for r in rows:
        r["key"] = config_key(r["config"])
    return rows


def test_report_verdicts_follow_the_rows(tmp_path):
    cfg = config.full()
    md = report.write(_rows(cfg), cfg, str(tmp_path), "fashion_mnist")
    assert "Verdict: early exit at 50% is **worse than** the full net" in md  # -2 points, tight seeds
    assert "88.00 [87.75, 88.25] % against the full net's 90.00 [89.75, 90.25] %" in md
    assert "| uniform | 0 | 5.9% | 45.00 ± 0.10 | 1.00 / 0.00 / 0.00 |" in md  # the curve table
    assert "| linear | 2 | 100.0% | 90.00 ± 0.10 | 0.00 / 0.00 / 1.00 |" in md
    assert "| 25% | [8, 15, 31] |" in md and "one multi-exit net loses to the narrow net |" in md
    assert "| 50% | [11, 22, 45] |" in md and "one multi-exit net beats the narrow net |" in md
    assert "| 75% | [14, 27, 55] |" in md and "one multi-exit net ties the narrow net |" in md
    assert ("the multi-exit net loses to the narrow net at 25%, beats the narrow net at 50%, ties the narrow net "
            "at 75% | does not hold here |") in md
    assert "the full-depth net alone loses to the jointly trained last exit | does not hold here |" in md
    assert "last exit 45.00 points above the first | holds here" in md
    ratio = (int(98_000 * 0.25) + int(98_000 * 0.5) + int(98_000 * 0.75) + 98_000) / 98_133
    assert f"separate nets' files {ratio:.2f}x the multi-exit net's | holds here" in md
    assert "| compacting | 25% | 40.0% | 40.0% | 0.600 (0.600-0.600) | 0.60 | 88.00 ± 0.00 | yes |" in md
    assert "| masked | 25% | 40.0% | 100.0% | 1.050 (1.050-1.050) | 1.05 | 88.00 ± 0.00 | no |" in md
    assert "| compacting | 75% | 70.0% | 70.0% | 0.600 (0.600-0.600) | 0.60 | 88.00 ± 0.00 | yes |" in md
    assert "| narrow | 75% | 75.0% | 75.0% | 0.750 (0.750-0.750) | 0.75 | 87.00 ± 0.00 | yes |" in md
    # per-exit table: both weightings and the truncated nets beside exits 0 and 2
    assert "| 0 | 5.9% | 45.00 ± 0.10 | 45.00 ± 0.10 | 47.00 ± 0.10 (5.9%) | -2.00 |" in md
    good = _rows(cfg, ee_mid=(0.8995, 0.90), narrow_acc=(0.40, 0.80, 0.85), alone=0.95)
    md = report.write(good, cfg, str(tmp_path), "fashion_mnist")
    assert "Verdict: early exit at 50% is **as good as** the full net" in md
    assert "net beats the narrow net at 25%, beats the narrow net at 50%, beats the narrow net at 75% | holds here |" in md
    assert "the full-depth net alone beats the jointly trained last exit | holds here |" in md
    text = open(tmp_path / "results.md").read()
    assert text.startswith("# early_exits on fashion_mnist\n") and "## Every run" in text
    assert os.path.getsize(tmp_path / "accuracy_vs_macs.png") > 0 and os.path.getsize(tmp_path / "time_vs_macs.png") > 0


def test_claims_rules():
    sweep = {"avg_macs": [10, 50, 50, 90], "accuracy": [0.5, 0.8, 0.8, 0.9]}
    assert claims.pick_threshold(sweep, 60) == 1  # the cheaper of a tie (first of equal cost)
    assert claims.pick_threshold(sweep, 95) == 3 and claims.pick_threshold(sweep, 5) is None
    assert claims.pick_threshold({"avg_macs": [10, 20], "accuracy": [0.9, 0.8]}, 30) == 0  # not the costliest
    assert claims.compare([0.9, 0.91], [0.8, 0.81]) == "beats" and claims.compare([0.8], [0.9]) == "loses to"
    assert claims.compare([0.9, 0.95], [0.89, 0.94]) == "ties"
    assert claims.non_inferior([0.010, 0.011, 0.012]) == "better"
    assert claims.non_inferior([-0.001, 0.0, 0.001]) == "as good"
    assert claims.non_inferior([-0.02, -0.01, 0.0]) == "worse"
    assert claims.realises_saving(0.7, 0.4) and not claims.realises_saving(0.71, 0.4)
