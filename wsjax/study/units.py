"""A study's loop over its units of work, each one a row of the results store."""

from __future__ import annotations

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
