"""The committed study results are what they claim: every row is keyed by its own config,
and every row that reports stored bytes names a file the study wrote, of exactly that size
(committed, or listed as too large to commit in experiments/results/.gitignore)."""

import glob
import os

import pytest

from wsjax import storage
from wsjax.results import config_key, read_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "experiments", "results")
STORES = sorted(glob.glob(os.path.join(RESULTS, "*", "rows.jsonl")))


def _not_committed() -> set:
    with open(os.path.join(RESULTS, ".gitignore")) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def _path(folder: str, name: str) -> str:
    direct = os.path.join(folder, name)
    return direct if os.path.dirname(name) else os.path.join(folder, "artifacts", name)


def test_every_study_with_committed_results_has_a_store():
    names = {os.path.basename(os.path.dirname(p)) for p in STORES}
    assert {"baseline", "deep_compression", "hashednets", "lecun89", "soft_sharing"} <= names, names


@pytest.mark.parametrize("rows_file", STORES, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_rows_are_keyed_by_their_config_and_stored_bytes_are_real_files(rows_file):
    folder = os.path.dirname(rows_file)
    skipped = _not_committed()
    rows = read_rows(rows_file)
    assert rows
    checked = 0
    for row in rows:
        assert row["key"] == config_key(row["config"]), row["key"]
        if "stored_bytes" not in row:
            continue
        path = _path(folder, row["file"])
        relative = os.path.relpath(path, RESULTS)
        if not os.path.exists(path):
            assert relative in skipped, f"{relative}: neither committed nor listed as too large"
            continue
        assert os.path.getsize(path) == row["stored_bytes"], relative
        with open(path, "rb") as f:
            head = f.read(len(storage.MAGIC))
        assert head == storage.MAGIC, relative
        checked += 1
    if any("stored_bytes" in r for r in rows):
        assert checked > 0
