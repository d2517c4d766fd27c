"""The redundancy study: a smoke run of every part (rows, real files, resuming, a run of some
parts keeping the others' rows) and the report's rules computed from rows."""

import dataclasses
import os

import pytest

from wsjax.results import config_key
from wsjax.study import discover

run, config, report = (discover.load("redundancy"), discover.load("redundancy", "config"),
                       discover.load("redundancy", "report"))


def test_smoke_run_of_every_part_stores_real_files_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    cfg, out = config.smoke(), str(tmp_path / "redundancy")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    kinds = [r["config"]["kind"] for r in rows]
    assert kinds == ["analysis", "basis", "basis", "denil", "denil", "bottleneck", "bottleneck", "denton", "denton"]
    for r in rows:
        if "stored_bytes" in r:
            assert r["stored_bytes"] == os.path.getsize(os.path.join(out, r["file"])) > 0
    analysis = rows[0]
    assert set(analysis["layers"]) == {"Dense_0/kernel", "Dense_1/kernel", "Dense_2/kernel"}
    assert analysis["layers"]["Dense_0/kernel"]["max_rank"] == 300
    assert len(analysis["cka"]) == len(analysis["cka_layers"]) == 3
    shared, per_layer = rows[1], rows[2]
    assert shared["group_params"] <= per_layer["group_params"] == 7 * 16 * 512  # rank 16 of 256x256 at 1/8
    assert shared["group_params"] > 0.99 * per_layer["group_params"] - 256 - 7 * 256
    assert abs(shared["stored_bytes"] - per_layer["stored_bytes"]) < 4 * 2000  # equal bytes up to headers and rounding
    dense, denil = rows[3], rows[4]
    assert dense["fraction_predicted"] == 0.0 and denil["fraction_predicted"] == pytest.approx(1 - 78 / 784)
    assert denil["stored_bytes"] < dense["stored_bytes"] * 0.3
    scratch, factored = rows[5], rows[6]
    assert scratch["params"] == factored["params"] == 8 * (784 + 300) + 300 + 300 * 100 + 100 + 100 * 10 + 10
    trained, lowrank = rows[7], rows[8]
    assert trained["params"] == 431_080 and lowrank["params"] == 431_080 - 800 * 500 + 8 * 1300
    assert lowrank["layers"]["Dense_0"]["macs"] == 8 * 1300
    md = open(os.path.join(out, "results.md")).read()
    for section in ("## Spectra", "## Cross-layer basis", "## Denil", "## A bottleneck", "## Denton",
                    "## The notes' question"):
        assert section in md
    for plot in ("spectra.png", "basis.png", "denil.png"):
        assert os.path.getsize(os.path.join(out, plot)) > 0
    capsys.readouterr()
    again = run.run(dataclasses.replace(cfg, parts=("denil",)), "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == 2
    assert [r["key"] for r in again] == [r["key"] for r in rows[3:5]]
    assert "## Denton" in open(os.path.join(out, "results.md")).read()  # the other parts' rows stay in the report


def _row(kind, seed, acc, **config):
    return {"config": {"kind": kind, "seed": seed, **config}, "test_accuracy": acc}


def test_basis_rule_from_rows():
    rows = []
    for s, (shared, layer) in enumerate([(0.90, 0.88), (0.91, 0.885), (0.905, 0.88)]):
        rows += [_row("basis", s, shared, model="m", budget=0.5, arm="shared"),
                 _row("basis", s, layer, model="m", budget=0.5, arm="per_layer"),
                 _row("basis", s, layer - 0.001 * s, model="m", budget=0.25, arm="shared"),
                 _row("basis", s, layer, model="m", budget=0.25, arm="per_layer")]
    answer, per_budget = report.basis_verdicts(rows)["m"]
    assert [(b, v) for b, _, _, v, _ in per_budget] == [(0.5, "beats"), (0.25, "tied")]
    assert answer == "yes"
    worse = [dict(r, test_accuracy=r["test_accuracy"] - (0.05 + 0.001 * r["config"]["seed"]))
             if r["config"]["arm"] == "shared" else r for r in rows]
    assert report.basis_verdicts(worse)["m"][0] == "no"


def test_denil_rule_from_rows():
    rows = [_row("denil", s, 0.89, model="m", dictionary=None, seen=1.0) for s in range(3)]
    for frac, acc in ((0.5, 0.885), (0.1, 0.881), (0.05, 0.87)):
        rows += [dict(_row("denil", s, acc, model="m", dictionary="se", seen=frac), fraction_predicted=1 - frac)
                 for s in range(3)]
    best, drop = report.denil_answers(rows)[("m", "se")]
    assert best == pytest.approx(0.9) and drop == pytest.approx(0.009)


def test_parts_and_units():
    cfg = config.full()
    units = cfg.units("fashion_mnist", 0)
    count = {k: sum(u["kind"] == k for u in units) for k in config.PARTS}
    assert count == {"analysis": 12, "basis": 2 * 4 * 2 * 3, "denil": 3 * (1 + 2 * 5) + 3 * (1 + 2 * 4),
                     "bottleneck": 3 * 2 * 3, "denton": 3 * 10}
    assert len({config_key(u) for u in units}) == len(units)
    with pytest.raises(ValueError, match="unknown parts"):
        cfg.only(["nope"])
    assert cfg.only(["denton"]).models == ("lenet5",)
