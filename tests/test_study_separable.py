"""The separable study: a smoke run (rows counted by the one counting function, real files,
the side-by-side timing, resuming) and the report's verdicts computed from hand-made rows."""

import json
import os

import pytest

from wsjax.models import counting
from wsjax.results import config_key
from wsjax.study import discover

run, config = discover.load("separable"), discover.load("separable", "config")
report, claims = discover.load("separable", "report"), discover.load("separable", "claims")

SECTIONS = ("## Arms", "## MobileNet's formula against the count", "## Seed 002's first layer",
            "## MobileNet (Howard et al. 2017) beside ours", "## Does the smaller count run faster here?",
            "## Convergence", "## Every run")
PLOTS = ("accuracy_vs_cost.png", "time_ratios.png", "val_curves.png")


def test_smoke_run_trains_counts_times_every_arm_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    cfg, out = config.smoke(), str(tmp_path / "separable")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    trained = [r for r in rows if r["config"]["kind"] == "train"]
    timed = [r for r in rows if r["config"]["kind"] == "timing"]
    assert len(trained) == len(cfg.arms) * cfg.seeds and len(timed) == 1
    assert {(r["config"]["arm"], r["config"]["seed"]) for r in trained} == {(a[0], 0) for a in cfg.arms}
    for r in trained:
        c = r["config"]
        counted = counting.count(run.model_of(c), (28, 28, 1))
        assert (r["params"], r["macs"]) == (counted.params, counted.macs)
        assert r["stored_bytes"] == os.path.getsize(os.path.join(out, r["file"])) > 4 * r["params"]
        assert 0.0 <= r["test_accuracy"] <= 1.0 and len(r["val_curve"]) == cfg.epochs == len(r["seconds_per_epoch"])
        assert r["test_images"] == cfg.test_examples
    by_arm = {r["config"]["arm"]: r for r in trained}
    assert by_arm["separable"]["macs"] < by_arm["standard"]["macs"]
    assert all(b["exact"] for b in claims.formula_rows(by_arm["separable"]))
    arms = timed[0]["arms"]
    assert list(arms) == [a[0] for a in cfg.arms]
    for name, a in arms.items():
        assert len(a["forward_seconds"]) == len(a["step_seconds"]) == cfg.timing_rounds
        assert min(a["forward_seconds"] + a["step_seconds"]) > 0 and a["macs"] == by_arm[name]["macs"]
    assert arms["standard"]["step_ratio"]["per_round"] == [1.0] * cfg.timing_rounds
    with open(os.path.join(out, "results.json")) as f:
        assert len(json.load(f)["rows"]) == len(rows)
    md = open(os.path.join(out, "results.md")).read()
    assert md.startswith("# separable on fashion_mnist (quick)\n")
    for section in SECTIONS:
        assert section in md, section
    for plot in PLOTS:
        assert os.path.getsize(os.path.join(out, plot)) > 0
    capsys.readouterr()

    def nothing_to_compute(*a, **k):
        raise AssertionError("a resumed run with every unit stored must not train or time anything")

    monkeypatch.setattr(run, "fit", nothing_to_compute)
    monkeypatch.setattr(run.timing, "interleaved", nothing_to_compute)
    monkeypatch.setattr(run, "data_for", nothing_to_compute)  # not even the data are loaded
    again = run.run(cfg, "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == len(rows)
    assert [r["key"] for r in again] == [r["key"] for r in rows]


def test_main_rejects_a_negative_seed(tmp_path):
    with pytest.raises(SystemExit) as e:
        run.main(["--seed", "-1", "--out", str(tmp_path / "x")])
    assert e.value.code == 2


def test_config_rejects_bad_arms():
    with pytest.raises(ValueError, match="reference"):
        config.Config(arms=(("separable", "separable", 1.0),))
    with pytest.raises(ValueError, match="block must be one of"):
        config.Config(arms=config.ARMS + (("dense", "dense", 1.0),))
    with pytest.raises(ValueError, match="unique"):
        config.Config(arms=config.ARMS + (config.ARMS[0],))
    with pytest.raises(ValueError, match="epochs"):
        config.Config(epochs=0)


# ----------------------------------------------------------------------------- report from rows


def _rows(cfg, acc, std=0.001, step=None, forward=None):
    """Hand-made rows: ``acc[arm]`` the mean test accuracy (seeds spread by ``std``), counts
    from the one counting function, a timing row whose arm ``a`` takes ``step[a]`` (and
    ``forward[a]``) times the standard's time in every round, with a little jitter."""
    rows = []
    counts = {a[0]: run.counts_of(cfg.net(a), (28, 28, 1)) for a in cfg.arms}
    for u in cfg.train_units("fashion_mnist", 0):
        a = acc[u["arm"]] + std * (u["seed"] - 1)
        curve = [a - 0.05 + 0.05 * min(1.0, e / (cfg.epochs - 3)) for e in range(cfg.epochs)]
        rows.append({"config": u, "test_accuracy": a, "val_accuracy": curve[-1], "val_curve": curve,
                     "train_loss": 0.2, **counts[u["arm"]], "stored_bytes": 4 * counts[u["arm"]]["params"] + 300,
                     "file": "x.wsjax", "seconds": 100.0, "seconds_per_epoch": [12.0] + [10.0] * (cfg.epochs - 1),
                     "test_images": 10_000})
    unit = cfg.timing_unit("fashion_mnist", 0)
    jitter = [1.0, 1.02, 0.98, 1.01, 0.99]
    arms = {}
    for a in cfg.arms:
        f, s = (forward or {}).get(a[0], 1.0), (step or {}).get(a[0], 1.0)
        fw, st = [0.01 * f * j for j in jitter], [0.1 * s * j for j in jitter]
        arms[a[0]] = {"forward_seconds": fw, "step_seconds": st, "forward_median": 0.01 * f, "step_median": 0.1 * s,
                      "forward_ratio": {"median": f, "q25": f * 0.99, "q75": f * 1.01, "per_round": [f] * 5},
                      "step_ratio": {"median": s, "q25": s * 0.99, "q75": s * 1.01, "per_round": [s] * 5},
                      "params": counts[a[0]]["params"], "macs": counts[a[0]]["macs"]}
    machine = {"backend": "cpu", "cpus": 2, "jax": "0.10.2", "machine": "x86_64", "load_1min": 1.5}
    rows.append({"config": unit, "arms": arms, "machine": machine, "load_1min_after": 1.6})
    for r in rows:
        r["key"] = config_key(r["config"])
    return rows


def test_report_verdicts_follow_the_rows(tmp_path):
    cfg = config.full()
    acc = {"standard": 0.910, "separable": 0.895, "separable x3": 0.911, "standard x0.5": 0.890}
    rows = _rows(cfg, acc, step={"separable": 0.95, "separable x3": 2.6, "standard x0.5": 0.4},
                 forward={"separable": 0.5, "separable x3": 1.004, "standard x0.5": 0.3})
    md = report.write(rows, cfg, str(tmp_path), "fashion_mnist")
    for section in SECTIONS[:-1]:
        assert section in md, section
    # the counts, from counting.count, in the arms table and against MobileNet's formula
    assert "| standard | 16, 32, 64 | 26,266 | 3,726,208 | 1.000 | 1.000 |" in md
    assert "| separable | 16, 32, 64 | 4,378 | 670,176 | 0.167 | 0.180 |" in md
    assert "| separable x3 | 48, 96, 192 | 30,010 |" in md and "| 91.00 ± 0.10 |" in md
    assert "| separable | stage0_block0 | 3 | 16 | 16 | 400 | 400 | 2304 | 2304 |" in md  # 9*16 + 16*16; 9*16*16
    assert "| separable | stage2_block0 | 3 | 32 | 64 | 2336 | 2336 | 18432 | 18432 |" in md
    assert "the count is exact for every block (6 of 6 match the formula)" in md
    # seed 002, counted
    assert "| locally connected, VALID, stride 3 | 1,179,648 | 1,179,648 | 4,096 |" in md
    assert "| locally connected, SAME, stride 1 | 10,616,832 |" in md and "| 288 |" in md
    # MobileNet beside ours: 1.5 points at a 5.6x cut; 1.1 + 0.2 allowed -> does not hold
    assert "| 29.3M -> 4.2M (7.0x) | 26,266 -> 4,378 (6.0x) |" in md
    assert "4,866M -> 569M (8.6x)" in md and "91.00 -> 89.50 (-1.50 points)" in md
    assert "MobileNet's trade does not hold here in shape" in md
    assert "| separable at width x3 (1.19x the standard MACs) | | 91.10 (+0.10 points; matches) |" in md
    # speed: separable step 0.95 [0.94, 0.96] is faster; x3 slower; a forward ratio of 1.004 is not measurable
    assert "| separable | 0.180 | 0.50 [0.49, 0.51] | faster | no | 0.95 [0.94, 0.96] | faster | no |" in md
    assert ("| separable x3 | 1.186 | 1.00 [0.99, 1.01] | not measurably different | no | 2.60 [2.57, 2.63] | "
            "slower |") in md
    assert "separable (0.18x the MACs): forward faster, training step faster" in md
    assert "standard x0.5 (0.26x the MACs)" in md and "separable x3 (" not in md.split("- Verdict (arms")[1]
    assert "| standard | 91.00 | 91.00 | 0.00 | yes | 10.0 |" in md  # curve flat over the last quarter
    text = open(tmp_path / "results.md").read()
    assert text.startswith("# separable on fashion_mnist\n") and "## Every run" in text
    for plot in PLOTS:
        assert os.path.getsize(tmp_path / plot) > 0

    close = _rows(cfg, {**acc, "separable": 0.902, "separable x3": 0.930}, std=0.002)
    md = report.write(close, cfg, str(tmp_path), "fashion_mnist")
    assert "MobileNet's trade holds here in shape" in md  # 0.8 points <= 1.1 + 0.4
    assert "91.00 -> 90.20 (-0.80 points)" in md and "(+2.00 points; better)" in md


def test_claims_rules():
    assert claims.compare([0.90, 0.91], [0.80, 0.81]) == "better"
    assert claims.compare([0.80, 0.81], [0.90, 0.91]) == "worse"
    assert claims.compare([0.90, 0.95], [0.89, 0.94]) == "matches"
    assert claims.speed({"q25": 0.7, "median": 0.8, "q75": 0.99}) == "faster"
    assert claims.speed({"q25": 1.01, "median": 1.1, "q75": 1.2}) == "slower"
    assert claims.speed({"q25": 0.9, "median": 0.95, "q75": 1.05}) == "not measurably different"
    assert claims.follows_count({"q25": 0.2, "q75": 0.3}, 0.25)
    assert not claims.follows_count({"q25": 0.9, "q75": 1.1}, 0.2)
    cost, holds = claims.accuracy_cost([0.91, 0.91], [0.90, 0.90], macs_cut=5.6)
    assert cost == pytest.approx(1.0) and holds
    assert not claims.accuracy_cost([0.91, 0.91], [0.90, 0.90], macs_cut=4.0)[1]  # the count must cut 5x
    cell = [{"val_curve": [0.80, 0.85, 0.88, 0.890, 0.893, 0.895, 0.899, 0.904]}]
    assert claims.plateau_gain(cell) == pytest.approx(0.9) and not claims.converged(cell)  # 8 epochs: 2 back
    assert claims.converged([{"val_curve": [0.80, 0.85, 0.88, 0.89, 0.895, 0.896, 0.897, 0.898]}])
    s = claims.seed_002()
    assert s["shared"].params == 288 and s["outputs"] == 1_179_648 == s["local"]["VALID, stride 3"].params
