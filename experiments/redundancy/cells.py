"""The redundancy report's row selection and cell formats, shared by its sections."""

from __future__ import annotations

import math

from wsjax.study import t_interval


def of_kind(rows, kind: str) -> list[dict]:
    """The rows of one part (``config['kind']``)."""
    return [r for r in rows if r["config"]["kind"] == kind]


def by_config(rows, *keys) -> dict:
    """``{(config[k] for k in keys): [rows]}`` in first-seen order."""
    out = {}
    for r in rows:
        out.setdefault(tuple(r["config"][k] for k in keys), []).append(r)
    return out


def mean_interval(values) -> str:
    """``mean +- std [95 % t-interval]`` (no interval for one value)."""
    m, s, h = t_interval(values)
    return f"{m:.4f} +- {s:.4f}" + ("" if math.isnan(h) else f" [{m - h:.4f}, {m + h:.4f}]")


def mean_std(values) -> str:
    """``mean +- std``."""
    m, s, _ = t_interval(values)
    return f"{m:.4f} +- {s:.4f}"
