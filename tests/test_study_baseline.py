"""The baseline study: a smoke run over models and seeds, the per-seed table, restricting
the run to some models without losing the others' rows, and resuming."""

import os

import pytest

from wsjax.study import discover

run, config = discover.load("baseline"), discover.load("baseline", "config")


def test_smoke_run_trains_each_seed_once_and_the_report_keeps_every_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    cfg, out = config.smoke(), str(tmp_path / "baseline")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    assert [(r["config"]["model"], r["config"]["seed"]) for r in rows] == [
        ("lenet300100", 0), ("deep_mlp", 0), ("deep_mlp", 1)]
    assert rows[1]["free_params"] == 664_074 and rows[0]["free_params"] == 266_610
    assert rows[1]["key"] != rows[2]["key"]
    for r in rows:
        assert os.path.getsize(os.path.join(out, "artifacts", r["key"] + ".msgpack")) > 4 * r["free_params"]
    md = open(os.path.join(out, "results.md")).read()
    assert "| deep_mlp | 2 |" in md  # the over-seeds table
    assert os.path.getsize(os.path.join(out, "curves.png")) > 0
    capsys.readouterr()

    only = run.run(config.Config(**{**cfg.__dict__, "models": ("deep_mlp",)}), "fashion_mnist", 0, out)
    assert [(r["key"], r["seconds"]) for r in only] == [(r["key"], r["seconds"]) for r in rows[1:]]  # read back
    md = open(os.path.join(out, "results.md")).read()
    assert "| lenet300100 | 0 |" in md  # the restricted run's report keeps LeNet-300-100's row


def test_seeds_and_models_of_the_full_config():
    units = config.full().units("fashion_mnist", 0)
    assert [(u["model"], u["seed"]) for u in units] == [(m, s) for m in config.MODELS for s in range(3)]
    assert {u["model"]: u["epochs"] for u in units} == {"lenet300100": 30, "lenet5": 12, "deep_mlp": 30, "vit": 10}
    with pytest.raises(ValueError, match="unknown models"):
        config.full().only(["resnet"])
