"""The lecun89 study: its smoke run writes one row per (net, setting), the report from them,
and a second run reads every row back without training."""

import json
import os

import pytest

from wsjax.results import Store
from wsjax.study import discover

run = discover.load("lecun89")
config = discover.load("lecun89", "config")
report = discover.load("lecun89", "report")


def test_smoke_run_writes_rows_and_report_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    out = str(tmp_path / "lecun89")
    cfg = config.smoke()
    rows = run.run(cfg, "lecun89", 0, out)
    assert len(rows) == 2 * 2  # 2 nets x (the main setting + 1 replication)
    assert [r["model"] for r in rows] == ["Net-1", "Net-4"] * 2
    assert [r["config"]["seeds"] for r in rows] == [[0, 1]] * 2 + [[2, 3]] * 2
    for r in rows:
        assert len(r["test_accuracies"]) == len(r["train_errors"]) == 2
        assert all(0.0 <= a <= 1.0 for a in r["test_accuracies"])
    net4 = rows[1]
    assert (net4["links"], net4["free_params"], net4["method"]) == (2266, 1132, "conv-shared")  # LeCun's Table 1
    assert len(Store(out).rows()) == 4
    md = open(os.path.join(out, "results.md")).read()
    assert "Pooled with its replications below (4 draws, seeds 0-3)" in md
    assert "### `lecun89`, seeds 2-3" in md and "Do the shared nets" in md
    for png in ("accuracy_vs_free_params.png", "accuracy_vs_free_params_lecun89_shift0_seeds2-3.png"):
        assert os.path.getsize(os.path.join(out, png)) > 0
    payload = json.load(open(os.path.join(out, "results.json")))
    assert [r["model"] for r in payload["rows"]] == ["Net-1", "Net-4"] and payload["rows"][0]["seeds"] == 2

    def no_training(unit):
        raise AssertionError(f"trained {unit['model']} again")

    monkeypatch.setattr(run, "train", no_training)
    again = run.run(cfg, "lecun89", 0, out)
    assert [r["key"] for r in again] == [r["key"] for r in rows]
    assert len(Store(out).rows()) == 4


def test_units_differ_by_every_setting_so_no_row_is_reused():
    cfg = config.full()
    units = cfg.units("lecun89", 0)
    assert len(units) == 5 * 7  # main, 3 other settings, 1 replication; 7 nets each
    keys = {json.dumps(u, sort_keys=True) for u in units}
    assert len(keys) == len(units)
    assert not keys & {json.dumps(u, sort_keys=True) for u in cfg.units("lecun89", 1)}
    assert not keys & {json.dumps(u, sort_keys=True) for u in config.quick().units("lecun89", 0)}
    settings = cfg.settings("lecun89", 0)
    assert [(s["dataset"], s["shift"], s["seeds"][0], len(s["seeds"])) for s in settings] == [
        ("lecun89", 0, 0, 20), ("lecun89_centred", 0, 0, 20), ("lecun89_centred", 2, 0, 20),
        ("lecun89_new_drawings", 0, 0, 20), ("lecun89", 0, 20, 20)]
    # another main data set does not repeat itself among the other settings
    assert [(s["dataset"], s["shift"]) for s in cfg.settings("lecun89_centred", 0)] == [
        ("lecun89_centred", 0), ("lecun89_centred", 2), ("lecun89_new_drawings", 0), ("lecun89_centred", 0)]
    with pytest.raises(ValueError, match="16x16"):
        cfg.settings("fashion_mnist", 0)


def test_main_rejects_other_data_in_one_line(tmp_path, capsys):
    out = tmp_path / "never_made"
    with pytest.raises(SystemExit) as e:
        run.main(["--dataset", "fashion_mnist", "--out", str(out)])
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse: usage, then one error line
    assert "error:" in last and "lecun89_centred" in last and "fashion_mnist" in last
    assert not out.exists()  # refused before any folder is made


def _seed_rows(models, seeds, acc=0.9, slope=0.001):
    return [{"model": m, "seed": s, "test_accuracy": acc + slope * s, "train_error": 0.0, "links": 1,
             "free_params": 1, "seconds": 1.0} for m in models for s in seeds]


NETS = [f"Net-{n}" for n in range(1, 6)]


def test_pooled_section_counts_each_seed_once_and_only_complete_seeds():
    done = _seed_rows(NETS, range(3))
    more = _seed_rows(NETS, range(3)) + _seed_rows(NETS, range(3, 6)) + _seed_rows(NETS[:3], range(6, 9))
    text = report.pooled_section(done, more)
    assert "(6 draws, seeds 0-5)" in text, text
    assert "better on " in text and "/6 splits" in text
    assert report.pooled_section(done, _seed_rows(NETS[:3], range(6, 9))) == ""  # nothing complete to add


def test_verdict_and_paired_comparison_from_rows():
    seed_rows = (_seed_rows(["Net-1"], range(4), 0.7) + _seed_rows(["Net-2"], range(4), 0.75)
                 + _seed_rows(["Net-3"], range(4), 0.8) + _seed_rows(["Net-4", "Net-5"], range(4), 0.9, 0.003))
    rows = report.summarise(seed_rows)
    assert [r["model"] for r in rows] == NETS
    assert rows[0]["paper_test_accuracy"] == report.PAPER[1] / 100
    assert "**yes**" in report.verdict(rows)
    text = report.paired_comparison(seed_rows)
    assert "Net-4 - Net-3 (best unshared): mean +10.30 points, better on 4/4 splits" in text
    assert "no sharing" not in text  # the controls have not run
    assert "no verdict" in report.verdict(report.summarise(_seed_rows(["Net-1"], range(2))))
