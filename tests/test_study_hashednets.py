"""The HashedNets study's smoke config: every method trains, is stored in a real file and
scored from it; resuming reuses rows of the same config only."""

import dataclasses
import json
import os

import pytest

from wsjax.study import discover


def test_smoke_run_stores_every_point_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSJAX_STUDY_DIR", str(tmp_path))
    run, config = discover.load("hashednets"), discover.load("hashednets", "config")
    cfg = config.smoke()
    out = str(tmp_path / "hashednets")
    rows = run.run(cfg, "fashion_mnist", 0, out)
    assert [r["method"] for r in rows] == list(config.METHODS)
    for r in rows:
        path = os.path.join(out, r["file"])
        assert r["stored_bytes"] == os.path.getsize(path) > 0
        assert r["compression"] == r["dense_bytes"] / r["stored_bytes"]
        assert 0.1 < r["test_accuracy"] <= 1.0  # 10 classes: above chance after a few steps
    by = {r["method"]: r for r in rows}
    # the hashed nets hold their buckets, not the 784x200 virtual matrix
    assert by["hashed"]["stored_bytes"] < by["hashed"]["dense_bytes"] / 4
    assert by["hashed"]["free_params"] == by["hashed_pool"]["free_params"]
    assert by["nn"]["widths"] != by["hashed"]["widths"]
    with open(os.path.join(out, "results.json")) as f:
        assert len(json.load(f)["rows"]) == len(rows)
    assert os.path.getsize(os.path.join(out, "accuracy_vs_free_params.png")) > 0
    capsys.readouterr()
    again = run.run(cfg, "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == len(rows)
    assert [r["key"] for r in again] == [r["key"] for r in rows]
    other = run.run(dataclasses.replace(cfg, methods=("hashed",)), "fashion_mnist", 1, out)
    assert "(cached)" not in capsys.readouterr().out  # another seed: new rows, none reused
    assert not {r["key"] for r in other} & {r["key"] for r in rows}
    digits = run.run(dataclasses.replace(cfg, methods=("nn",)), "digits", 0, out)  # another data set
    assert "(cached)" not in capsys.readouterr().out and digits[0]["widths"].startswith("64-")
    with open(os.path.join(out, "rows.jsonl"), "a") as f:
        f.write('{"key": "torn')  # a writer killed mid-line
    with pytest.warns(RuntimeWarning, match="skipping"):
        again = run.run(cfg, "fashion_mnist", 0, out)
    assert capsys.readouterr().out.count("(cached)") == len(rows)
