"""The distillation study: a smoke run (rows, real files, the teacher chosen on validation
data, resuming) and the report's verdicts computed from rows."""

import dataclasses
import json
import os

import pytest

from wsjax.results import config_key
from wsjax.study import discover

run, config = discover.load("distillation"), discover.load("distillation", "config")
report, claims = discover.load("distillation", "report"), discover.load("distillation", "claims")


def test_smoke_run_trains_every_student_stores_the_hashed_ones_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    cfg, out = config.smoke(), str(tmp_path / "distillation")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    teachers = [r for r in rows if r["config"]["kind"] == "teacher"]
    students = [r for r in rows if r["config"]["kind"] == "student"]
    assert [r["model"] for r in teachers] == list(cfg.teachers)
    assert len(students) == len(cfg.students) * len(cfg.methods()) * cfg.seeds
    chosen = max(teachers, key=lambda r: r["val_accuracy"])["config"]
    for r in students:
        c = r["config"]
        assert c["teacher"] == (None if c["method"] == "hard" else chosen)
        assert 0.0 <= r["test_accuracy"] <= 1.0 and len(r["val_curve"]) == cfg.epochs
        if c["compression"] is None:
            assert "stored_bytes" not in r and r["free_params"] == r["virtual_params"]
        else:
            assert r["stored_bytes"] == os.path.getsize(os.path.join(out, r["file"])) > 0
            assert r["stored_bytes"] < r["dense_bytes"] / 4  # buckets, not the virtual matrices
    hashed = [r for r in students if r["config"]["compression"] is not None]
    assert len({r["stored_bytes"] for r in hashed}) == 1  # hard-label and distilled: one structure, one size
    assert {r["config"]["seed"] for r in students} == {0, 1}
    with open(os.path.join(out, "results.json")) as f:
        assert len(json.load(f)["rows"]) == len(rows)
    md = open(os.path.join(out, "results.md")).read()
    for section in ("## Teacher", "## Students", "## Hinton", "## Ba & Caruana", "equal stored bytes", "## Every run"):
        assert section in md
    for plot in ("accuracy_vs_temperature.png", "accuracy_vs_size.png"):
        assert os.path.getsize(os.path.join(out, plot)) > 0
    assert os.path.isdir(tmp_path / "baseline-quick")  # the teachers live in the baseline store
    capsys.readouterr()

    def no_teacher(*a, **k):
        raise AssertionError("a resumed run with nothing to train must not run the teacher")

    monkeypatch.setattr(run.distill, "teacher_logits", no_teacher)
    again = run.run(cfg, "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == len(rows)
    assert [r["key"] for r in again] == [r["key"] for r in rows]
    monkeypatch.undo()
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    other = run.run(dataclasses.replace(cfg, students=("2x30",), temperatures=(), logit_regression=True),
                    "fashion_mnist", 0, out)
    printed = capsys.readouterr().out
    assert printed.count("(cached)") == 2 + cfg.seeds  # the teachers and the hard-label runs are reused
    assert [r["config"]["method"] for r in other[2:]] == ["hard"] * cfg.seeds + ["logits"] * cfg.seeds
    assert "## Ba & Caruana" in open(os.path.join(out, "results.md")).read()
    with open(os.path.join(out, "rows.jsonl"), "a") as f:
        f.write('{"key": "torn')  # a writer killed mid-line
    with pytest.warns(RuntimeWarning, match="skipping"):
        again = run.run(cfg, "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == len(rows)


def test_main_rejects_a_dataset_too_small_for_the_teacher(tmp_path):
    with pytest.raises(SystemExit) as e:
        run.main(["--dataset", "digits", "--out", str(tmp_path / "x")])
    assert e.value.code == 2


# ----------------------------------------------------------------------------- report from rows


def _rows(cfg, acc, std=0.001, val=None):
    """Synthetic rows: ``acc[(student, label)]`` is the mean test accuracy, seeds spread by ``std``."""
    teachers = [{"config": u, "model": u["model"], "val_accuracy": a, "test_accuracy": a,
                 "test_errors": round((1 - a) * 10_000), "test_images": 10_000, "free_params": 1000}
                for u, a in zip(cfg.teacher_units("fashion_mnist", 0), (0.915, 0.895))]
    rows = []
    for u in cfg.student_units("fashion_mnist", 0, teachers[0]["config"]):
        a = acc[(u["student"], claims.label(u))] + std * (u["seed"] - 1)
        r = {"config": u, "test_accuracy": a, "val_accuracy": (val or acc)[(u["student"], claims.label(u))],
             "test_errors": round((1 - a) * 10_000), "free_params": 100_000 if u["student"] != "2x30" else 25_000,
             "val_curve": [a - 0.01, a], "train_loss": 0.1, "seconds": 1.0}
        if u["compression"]:
            r.update(stored_bytes=135_100, file="x.wsjax")
        rows.append(r)
    for r in teachers + rows:
        r["key"] = config_key(r["config"])
    return teachers + rows


def _accuracies(cfg, hard, distilled, logits, shallow_hard, shallow_logits):
    acc = {}
    for s in cfg.students:
        for m, t in cfg.methods():
            lab = claims.label({"method": m, "temperature": t})
            acc[(s, lab)] = {"hard": hard, "logits": logits}.get(lab, distilled - 0.002 * (t != 4.0))
    acc[("1x1600", "hard")], acc[("1x1600", "logits")] = shallow_hard, shallow_logits
    return acc


def test_report_verdicts_follow_the_rows(tmp_path):
    cfg = config.full()
    rows = _rows(cfg, _accuracies(cfg, 0.880, 0.905, 0.900, 0.870, 0.882))
    md = report.write(rows, cfg, str(tmp_path), "fashion_mnist")
    assert "| lenet5 | 91.50% | 91.50% | 850 | 1,000 | yes |" in md
    assert "| 2x800 | 100,000 | 88.00 ± 0.10 |" in md and "| 4 |" in md  # T* = 4, chosen on validation
    assert "closes 0.71 of the hard-label 2x800's excess errors" in md and "(paper: 0.91)" in md
    assert "Verdict: Hinton's claim, in shape, holds here." in md
    assert "Verdict: Ba & Caruana's claim holds here." in md
    assert "the same sizes" in md and "Verdict: distillation at T*=4 helps the hashed net" in md
    assert "146 [124, 171]" in md  # the paper's count with its Wilson interval
    noisy = _rows(cfg, _accuracies(cfg, 0.880, 0.884, 0.880, 0.880, 0.880), std=0.01)
    md = report.write(noisy, cfg, str(tmp_path), "fashion_mnist")
    assert "does not help the 2x800 student" in md and "Hinton's claim, in shape, does not hold" in md
    assert "Ba & Caruana's claim does not hold" in md  # the hard-label shallow net matches already
    text = open(tmp_path / "results.md").read()
    assert text.startswith("# distillation on fashion_mnist\n") and "## Every run" in text


def test_claims_arithmetic():
    assert claims.gap_closed(146, 74, 67) == pytest.approx(72 / 79)
    assert claims.gap_closed(60, 50, 70) is None
    lo, hi = claims.wilson(74, 10_000)
    assert lo < 74 < hi and hi - lo == pytest.approx(2 * 1.96 * (74 * (1 - 74e-4)) ** 0.5, rel=0.05)
    m, s, h = claims.interval([1.0, 2.0, 3.0])
    assert (m, s) == (2.0, 1.0) and h == pytest.approx(4.302653 / 3**0.5, rel=1e-5)
    assert claims.helps([0.9, 0.91], [0.8, 0.81]) and not claims.helps([0.9, 0.95], [0.89, 0.94])
    assert claims.pick_teacher([{"val_accuracy": 0.8, "n": 1}, {"val_accuracy": 0.9, "n": 2}])["n"] == 2
