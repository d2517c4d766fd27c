"""A study's loop over its units of work, each one a row of the results store."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping

from wsjax.results import Store


def run_units(store: Store, units: Iterable[Mapping[str, Any]], compute: Callable[[Mapping[str, Any]], Mapping],
              describe: Callable[[Mapping[str, Any]], str] | None = None, summary: Callable[[dict], str] | None = None,
              verbose: bool = True) -> list[dict]:
    """For each unit config: its row from ``store`` if one exists for exactly that config,
    otherwise ``compute(config)``'s metrics, appended as a new row. Returns the rows in
    ``units``' order. ``describe(config)`` and ``summary(row)`` make the progress line
    printed after each unit (``[i/n] description: summary (cached)``).

    A unit finished before an interruption is never recomputed; a folder written with
    another seed, data set or setting contributes nothing (its rows have other configs).
    """
    units = list(units)
    rows = []
    for i, config in enumerate(units, 1):
        row = store.get(config)
        cached = row is not None
        if row is None:
            row = store.put(config, compute(config))
        rows.append(row)
        if verbose:
            what = describe(config) if describe else ", ".join(f"{k}={v}" for k, v in config.items())
            tail = summary(row) if summary else ""
            print(f"[{i}/{len(units)}] {what}{': ' + tail if tail else ''}{' (cached)' if cached else ''}", flush=True)
    return rows


def stored_or_rebuilt(store: Store, unit: Mapping[str, Any], compute: Callable[[Mapping[str, Any]], Mapping],
                      what: str):
    """The params of ``unit``'s trained net, read from its ``.wsjax`` artifact. A unit with no
    row yet (another unit needs it before its own turn) is computed and its row stored now; a
    row whose file is missing (large files are not committed) is computed again and must
    reproduce the row's test accuracy, else RuntimeError, with the rebuilt file removed so that
    no later run reads it as the row's. ``compute(unit)`` writes the file and returns the metrics."""
    from wsjax import storage

    path, row = store.artifact(unit, ".wsjax"), store.get(unit)
    if row is None or not os.path.exists(path):
        again = compute(unit)
        if row is None:
            store.put(unit, again)
        elif again["test_accuracy"] != row["test_accuracy"]:
            os.remove(path)
            raise RuntimeError(
                f"{what} trained again scores {again['test_accuracy']}, its row {row['test_accuracy']} "
                f"(written by commit {row.get('commit')}): a net is rebuilt bit for bit only on the backend and "
                "jax version that trained it; run the study into a new folder (--out) or restore the file")
    return storage.load(path)
