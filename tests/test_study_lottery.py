"""The lottery study's smoke config: every arm trains and is stored with its masks; a rerun
reuses every row; a killed run resumes at the first unfinished row with the same numbers
(a missing artifact is recomputed); the report's rules applied to hand-made cells."""

import dataclasses
import json
import os

import chex
import jax
import numpy as np
import pytest

from wsjax.pruning import lottery
from wsjax.results import Store, read_rows
from wsjax.sharing import mask_counts
from wsjax.study import discover, model_by_name


def _artifact(run, out, row, which="artifact"):
    template = model_by_name(row["config"]["model"]).init(jax.random.key(0), np.zeros((1, 28, 28, 1)))["params"]
    return run.read(os.path.join(out, "artifacts", row[which]), template)


def test_smoke_run_stores_every_arm_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    run, config = discover.load("lottery"), discover.load("lottery", "config")
    cfg, out = config.smoke(), str(tmp_path / "lottery")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    arms = [(r["config"]["round"], r["config"]["arm"]) for r in rows]
    assert arms == [(0, "dense"), (1, "ticket"), (2, "ticket"), (2, "reinit"), (2, "random_mask")]
    by = {a: r for a, r in zip(arms, rows)}
    assert by[(0, "dense")]["density"] == 1.0
    assert by[(1, "ticket")]["density"] == pytest.approx(0.8004, abs=1e-4)
    assert len({by[(2, a)]["density"] for a in ("ticket", "reinit", "random_mask")}) == 1
    for r in rows:
        assert 0.1 < r["test_accuracy"] <= 1.0 and 0 < r["es_iteration"] <= r["iterations"]
        assert r["curve"][-1][0] == r["iterations"] and r["artifact_bytes"] > 0
        assert r["config"]["rates"] == [[k, v] for k, v in lottery.LENET300100_RATES.items()]
    art = {a: _artifact(run, out, r) for a, r in by.items()}
    theta = _artifact(run, out, by[(0, "dense")], "theta_artifact")
    theta0 = model_by_name("lenet300100").init(jax.random.key(0), np.zeros((1, 28, 28, 1)))["params"]
    chex.assert_trees_all_equal(theta["theta0"], theta0)  # the initial values are stored
    assert not np.array_equal(theta["theta_k"]["Dense_0"]["kernel"], theta0["Dense_0"]["kernel"])
    assert all(r["artifact_bytes"] < 500_000 for r in rows)  # masks: small enough to commit
    chex.assert_trees_all_equal(art[(1, "ticket")]["mask"], art[(0, "dense")]["next_mask"])
    chex.assert_trees_all_equal(art[(2, "ticket")]["mask"], art[(1, "ticket")]["next_mask"])
    chex.assert_trees_all_equal(art[(2, "reinit")]["mask"], art[(2, "ticket")]["mask"])
    assert mask_counts(art[(2, "random_mask")]["mask"]) == mask_counts(art[(2, "ticket")]["mask"])
    md = open(os.path.join(out, "results.md")).read()
    assert "## Claims" in md and "Frankle & Carbin 2019" in md and "Liu et al. 2019" in md
    for png in ("accuracy_vs_weights.png", "early_stop_vs_weights.png"):
        assert os.path.getsize(os.path.join(out, png)) > 0
    with open(os.path.join(out, "results.json")) as f:
        assert len(json.load(f)["rows"]) == 5  # one summary row per (model, round, arm)

    capsys.readouterr()
    again = run.run(cfg, "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == len(rows)
    assert [r["key"] for r in again] == [r["key"] for r in rows]

    # a run killed during the last row, its dense artifact lost as well (not committed: over 500 KB)
    lines = open(os.path.join(out, "rows.jsonl")).read().splitlines(keepends=True)
    with open(os.path.join(out, "rows.jsonl"), "w") as f:
        f.writelines(lines[:4])
    for which in ("artifact", "theta_artifact"):
        os.remove(os.path.join(out, "artifacts", by[(0, "dense")][which]))
    resumed = run.run(cfg, "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == 4
    for old, new in zip(rows, resumed):
        assert new["key"] == old["key"] and new["test_accuracy"] == old["test_accuracy"]
        assert new["es_iteration"] == old["es_iteration"]
    chex.assert_trees_all_equal(_artifact(run, out, by[(0, "dense")]), art[(0, "dense")])
    chex.assert_trees_all_equal(_artifact(run, out, by[(0, "dense")], "theta_artifact"), theta)
    assert len(read_rows(os.path.join(out, "rows.jsonl"))) == 5  # the recomputed dense net adds no row


def test_rewinding_to_theta_0_needs_no_stored_dense_net(tmp_path):
    run, config = discover.load("lottery"), discover.load("lottery", "config")
    cfg = dataclasses.replace(config.smoke(), rewind_iteration=0)
    trainer = run.Trainer(cfg, "fashion_mnist", Store(str(tmp_path)))
    unit = cfg.unit("lenet300100", "fashion_mnist", 4, 2, "ticket")
    theta0 = model_by_name("lenet300100").init(jax.random.key(4), np.zeros((1, 28, 28, 1)))["params"]
    chex.assert_trees_all_equal(trainer.rewind_target(unit), theta0)  # drawn again, not trained
    assert not os.listdir(tmp_path / "artifacts")


def test_units_of_the_full_config():
    config = discover.load("lottery", "config")
    units = config.full().units("fashion_mnist", 0)
    count = lambda m, **kw: sum(u["model"] == m and all(u[k] == v for k, v in kw.items()) for u in units)
    assert count("lenet300100") == 3 * (1 + 19 * 3) and count("lenet5") == 3 * (1 + 22 + 11 * 2)
    assert count("lenet300100", round=19, arm="reinit") == 3 and count("lenet5", round=3, arm="reinit") == 0
    assert {u["seed"] for u in units} == {0, 1, 2}
    with pytest.raises(ValueError, match="unknown models"):
        config.full().only(["lenet7"])
    run = discover.load("lottery")
    with pytest.raises(SystemExit):
        run.main(["--models", "lenet7"])


def test_decision_rules_on_hand_made_cells():
    report = discover.load("lottery", "report")
    row = lambda arm, r, d, acc, it: {"config": {"model": "m", "round": r, "arm": arm}, "density": d,
                                       "test_accuracy": acc, "es_iteration": it, "test_accuracy_loss": acc,
                                       "es_iteration_loss": it}
    rows = [row("dense", 0, 1.0, a, i) for a, i in ((0.88, 1000), (0.89, 1100), (0.90, 1200))]
    rows += [row("ticket", 8, 0.15, a, i) for a, i in ((0.895, 600), (0.90, 700), (0.905, 800))]
    rows += [row("reinit", 8, 0.15, a, 1500) for a in (0.85, 0.86, 0.87)]
    rows += [row("random_mask", 8, 0.15, a, 1500) for a in (0.89, 0.895, 0.90)]
    (v,) = report.verdicts(report.cells(rows), "m")
    assert v["match"] and not v["beat"] and v["earlier"] and v["reinit"] and not v["random_mask"]
    text = report.claims(report.cells(rows), "m")
    assert "holds (1 of 1 rounds: 15.0 %)" in text and "within both stds of the ticket at no round" in text
    m, s, h = report.interval([1.0, 2.0, 3.0])
    assert (m, s) == (2.0, 1.0) and h == pytest.approx(4.302653 / 3 ** 0.5)
