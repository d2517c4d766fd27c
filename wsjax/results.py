"""One results store for every study: rows keyed by a hash of their full config.

A study describes each unit of work (one model, data set, seed, schedule and method
setting) as a JSON-able config mapping; :func:`config_key` hashes it canonically. A
:class:`Store` is a folder with ``rows.jsonl`` (one JSON row per finished unit) and
``artifacts/`` (files that belong to a row: a pretrained net, a compressed model), both
named by that key:

>>> store = Store("runs/my_study")                                    # doctest: +SKIP
>>> cfg = {"model": "lenet300100", "dataset": "fashion_mnist", "seed": 0, "epochs": 30}
>>> row = store.get(cfg) or store.put(cfg, {"test_accuracy": train_and_score(cfg)})

* Resuming into a folder only ever returns a row whose config is exactly the one asked
  for (the key and the stored config are both compared), so a folder written with another
  seed, data set or setting is never mixed in: its rows are simply other rows.
* Every row also records the wsjax version and the git commit of the checkout that wrote
  it (not part of the key: a new commit does not invalidate finished work, but a report
  can tell which code made each number).
* Rows are appended durably, one line each (written and fsync'd in one call); a torn last
  line (a process killed mid-write) is skipped with a warning and the next row starts on a
  line of its own. Artifacts are written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import subprocess
import time
from typing import Any, Mapping

import numpy as np

from wsjax import __version__
from wsjax.io import append_line, atomic_write, read_lines

ROWS = "rows.jsonl"
ARTIFACTS = "artifacts"


def _canonical(value):
    """``value`` as plain JSON types (tuples as lists, NumPy scalars as numbers); TypeError
    for anything that has no stable JSON form."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"config keys must be strings, got {k!r}")
            out[k] = _canonical(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise TypeError(f"config values must be finite numbers, got {value!r}")
        return float(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"config value {value!r} ({type(value).__name__}) has no JSON form; describe it "
                    "by its settings (a dict) or its name")


def config_key(config: Mapping[str, Any]) -> str:
    """A 16-hex-digit SHA-256 of the canonical JSON of ``config`` (sorted keys)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"a config is a mapping, got {type(config).__name__}")
    text = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's HEAD commit (with ``+dirty`` when files differ from it), or None."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def read_rows(path: str) -> list[dict]:
    """The JSON object rows of a ``.jsonl`` file (:func:`wsjax.io.read_lines`: a torn or
    unreadable line is skipped with a warning)."""
    return [r for r in read_lines(path) if isinstance(r, dict)]


class Store:
    """A folder of result rows and artifacts, keyed by config (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike):
        folder = os.fspath(folder)
        if not folder:
            raise ValueError("a results folder must be a non-empty path")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise NotADirectoryError(f"results folder {folder!r} is a file")
        os.makedirs(os.path.join(folder, ARTIFACTS), exist_ok=True)
        self.folder = folder
        self.path = os.path.join(folder, ROWS)

    def rows(self, where: Mapping[str, Any] | None = None) -> list[dict]:
        """Every row, or those whose config contains the items of ``where``."""
        rows = read_rows(self.path)
        if where:
            want = _canonical(where)
            rows = [r for r in rows if all(r.get("config", {}).get(k) == v for k, v in want.items())]
        return rows

    def get(self, config: Mapping[str, Any]) -> dict | None:
        """The latest row of exactly ``config``, or None."""
        key, want = config_key(config), _canonical(config)
        found = [r for r in read_rows(self.path) if r.get("key") == key and r.get("config") == want]
        return found[-1] if found else None

    def put(self, config: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict:
        """Append the row of ``config`` with ``metrics``; returns it."""
        reserved = {"key", "config", "wsjax", "commit", "written"} & set(metrics)
        if reserved:
            raise ValueError(f"metric names {sorted(reserved)} are reserved for the row's own fields")
        row = {"key": config_key(config), "config": _canonical(config), "wsjax": __version__,
               "commit": git_commit(), "written": time.strftime("%Y-%m-%dT%H:%M:%S"), **_canonical(dict(metrics))}
        append_line(self.path, json.dumps(row, sort_keys=False))
        return row

    def artifact(self, config: Mapping[str, Any], suffix: str) -> str:
        """The path of ``config``'s artifact ending in ``suffix`` (e.g. ``'.wsjax'``)."""
        if not suffix or "/" in suffix or os.sep in suffix:
            raise ValueError(f"an artifact suffix is a file-name ending, got {suffix!r}")
        return os.path.join(self.folder, ARTIFACTS, config_key(config) + suffix)

    def write_artifact(self, config: Mapping[str, Any], suffix: str, data: bytes) -> str:
        path = self.artifact(config, suffix)
        atomic_write(path, data)
        return path

    def merge(self, other: "Store | str | os.PathLike") -> int:
        """Add the rows of ``other`` (a store written elsewhere: a GPU machine's run of the same
        study) that this store lacks, each with its artifacts (the regular files of
        ``other/artifacts`` named by its key), written atomically before the row is appended;
        rows are kept as written (their commit and time). ValueError, before anything is
        added, for a folder that is not a store or a row whose key is not its config's.
        Returns the number of rows added."""
        if not isinstance(other, Store):
            if not os.path.isfile(os.path.join(os.fspath(other), ROWS)):
                raise ValueError(f"{os.fspath(other)!r} is not a results store (no {ROWS})")
            other = Store(other)
        if os.path.realpath(other.folder) == os.path.realpath(self.folder):
            return 0
        incoming = other.rows()
        for r in incoming:
            try:
                ok = isinstance(r.get("config"), Mapping) and r.get("key") == config_key(r["config"])
            except TypeError:
                ok = False
            if not ok:
                raise ValueError(f"{other.path}: a row's key {r.get('key')!r} is not the hash of its config")
        have = {(r.get("key"), json.dumps(r.get("config"), sort_keys=True)) for r in self.rows()}
        folder = os.path.join(other.folder, ARTIFACTS)
        files = [n for n in sorted(os.listdir(folder)) if not n.endswith(".part")
                 and not os.path.islink(os.path.join(folder, n)) and os.path.isfile(os.path.join(folder, n))]
        added = 0
        for r in incoming:
            mark = (r["key"], json.dumps(r["config"], sort_keys=True))
            if mark in have:
                continue
            for name in files:
                if name.startswith(r["key"] + "."):
                    with open(os.path.join(folder, name), "rb") as f:
                        atomic_write(os.path.join(self.folder, ARTIFACTS, name), f.read())
            append_line(self.path, json.dumps(r, sort_keys=False))
            have.add(mark)
            added += 1
        return added
