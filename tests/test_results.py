"""The results store: rows keyed by their full config, never mixed across configs, a torn
last line survived."""

import json
import os

import numpy as np
import pytest

from wsjax import results

CFG = {"model": "lenet300100", "dataset": "fashion_mnist", "seed": 0, "epochs": 30, "method": {"bits": (5, 8)}}


def test_the_key_is_canonical_and_covers_every_setting():
    same = {"method": {"bits": [5, 8]}, "epochs": np.int64(30), "seed": 0, "dataset": "fashion_mnist",
            "model": "lenet300100"}
    assert results.config_key(CFG) == results.config_key(same)
    for change in ({"seed": 1}, {"dataset": "mnist"}, {"epochs": 31}, {"method": {"bits": (5, 7)}}):
        assert results.config_key({**CFG, **change}) != results.config_key(CFG)


def test_resuming_into_a_folder_of_another_seed_or_dataset_never_mixes_rows(tmp_path):
    store = results.Store(tmp_path)
    store.put(CFG, {"test_accuracy": 0.9})
    resumed = results.Store(tmp_path)  # a later run, another config, same --out
    assert resumed.get({**CFG, "seed": 1}) is None
    assert resumed.get({**CFG, "dataset": "mnist"}) is None
    assert resumed.get(CFG)["test_accuracy"] == 0.9
    resumed.put({**CFG, "seed": 1}, {"test_accuracy": 0.8})
    assert [r["config"]["seed"] for r in resumed.rows()] == [0, 1]
    assert [r["test_accuracy"] for r in resumed.rows({"seed": 1})] == [0.8]
    row = resumed.get(CFG)
    assert row["wsjax"] and "commit" in row and row["key"] == results.config_key(CFG)


def test_a_row_whose_key_matches_but_config_differs_is_not_returned(tmp_path):
    store = results.Store(tmp_path)
    forged = {"key": results.config_key(CFG), "config": {**CFG, "seed": 7}, "test_accuracy": 0.1}
    with open(store.path, "w") as f:
        f.write(json.dumps(forged) + "\n")
    assert store.get(CFG) is None


def test_a_torn_last_line_is_skipped_with_a_warning_and_the_next_row_starts_a_new_line(tmp_path):
    store = results.Store(tmp_path)
    store.put(CFG, {"test_accuracy": 0.9})
    with open(store.path, "a") as f:
        f.write('{"key": "abc", "config": {"seed"')  # a writer killed mid-line
    with pytest.warns(RuntimeWarning, match="torn last line"):
        assert len(store.rows()) == 1
    store.put({**CFG, "seed": 2}, {"test_accuracy": 0.7})
    with pytest.warns(RuntimeWarning, match=r"unreadable line\(s\) \[2\]"):
        rows = store.rows()
    assert [r["config"]["seed"] for r in rows] == [0, 2]


def test_artifacts_are_named_by_the_config_and_written_atomically(tmp_path):
    store = results.Store(tmp_path)
    path = store.write_artifact(CFG, ".msgpack", b"weights")
    assert path == store.artifact(CFG, ".msgpack") and open(path, "rb").read() == b"weights"
    assert store.artifact({**CFG, "seed": 1}, ".msgpack") != path
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".tmp-")]


@pytest.mark.parametrize("bad,error,match", [
    ({"lr": float("nan")}, TypeError, "finite"),
    ({"model": object()}, TypeError, "no JSON form"),
    ({1: "x"}, TypeError, "keys must be strings"),
])
def test_configs_without_a_stable_form_are_refused(bad, error, match):
    with pytest.raises(error, match=match):
        results.config_key(bad)


def test_bad_folders_and_reserved_metric_names_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        results.Store(tmp_path / "file")
    with pytest.raises(ValueError, match="non-empty"):
        results.Store("")
    with pytest.raises(ValueError, match="reserved"):
        results.Store(tmp_path / "s").put(CFG, {"config": 1})


def test_merge_adds_the_rows_it_lacks_with_their_artifacts_once(tmp_path):
    Store = results.Store
    here, there = Store(tmp_path / "here"), Store(tmp_path / "there")
    shared, new = {"seed": 0}, {"seed": 1}
    here.put(shared, {"test_accuracy": 0.5})
    there.put(shared, {"test_accuracy": 0.5})
    row = there.put(new, {"test_accuracy": 0.7})
    there.write_artifact(new, ".wsjax", b"\x00net")
    assert here.merge(there.folder) == 1 and here.merge(there) == 0  # once
    assert here.get(new) == row and len(here.rows()) == 2
    with open(here.artifact(new, ".wsjax"), "rb") as f:
        assert f.read() == b"\x00net"
    assert here.merge(here) == 0
    forged = Store(tmp_path / "forged")
    forged.put({"seed": 3}, {"test_accuracy": 0.9})  # a valid new row before the forged one
    with open(forged.path, "a") as f:
        f.write(json.dumps({"key": "0" * 16, "config": {"seed": 2}, "test_accuracy": 1.0}) + "\n")
    with pytest.raises(ValueError, match="not the hash of its config"):
        here.merge(forged)
    assert len(here.rows()) == 2  # nothing added, the valid row neither
    with pytest.raises(ValueError, match="not a results store"):
        here.merge(tmp_path / "missing")
    assert not os.path.exists(tmp_path / "missing")
