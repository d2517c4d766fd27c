"""Tables, summaries and plots computed from result rows."""

from __future__ import annotations

import json
import math
import os
from typing import Iterable, Sequence

import numpy as np

from wsjax.io import atomic_write

STANDARD_COLUMNS = ("model", "method", "test_accuracy", "free_params", "virtual_params", "stored_bytes",
                    "dense_bytes", "compression", "seconds")


def fmt(v) -> str:
    """A number as a table shows it (4 decimals below 10, 3 significant digits when tiny or huge)."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def _value(row: dict, column: str):
    if column in row:
        return row[column]
    return row.get("config", {}).get(column, "")


def markdown_table(rows: Sequence[dict], columns: Iterable[str] | None = None) -> str:
    """A GitHub markdown table; a column is a metric or, failing that, a config entry of the
    row. Without ``columns``: the standard ones first, then the others in first-seen order."""
    if not rows:
        return "(no rows)\n"
    if columns is None:
        seen = []
        for r in rows:
            for k in r:
                if k not in seen and k not in ("key", "config", "wsjax", "commit", "written"):
                    seen.append(k)
        columns = [c for c in STANDARD_COLUMNS if c in seen] + [c for c in seen if c not in STANDARD_COLUMNS]
    columns = list(columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(_value(r, c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_results(out_dir: str, experiment: str, dataset: str, quick: bool, rows: list[dict], extra_md: str = "",
                  columns: Iterable[str] | None = None) -> str:
    """Write ``results.json`` (every row, with its config, key and commit) and ``results.md``
    (a title, the table and ``extra_md``); return the table."""
    os.makedirs(out_dir, exist_ok=True)
    payload = {"experiment": experiment, "dataset": dataset, "quick": bool(quick), "rows": rows}
    atomic_write(os.path.join(out_dir, "results.json"), json.dumps(payload, indent=1).encode())
    table = markdown_table(rows, columns)
    title = f"# {experiment} on {dataset}{' (quick)' if quick else ''}\n\n"
    atomic_write(os.path.join(out_dir, "results.md"), (title + table + ("\n" + extra_md if extra_md else "")).encode())
    return table


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean_std of no values")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def separation(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``(mean(a) - mean(b), std(a) + std(b))``: the two numbers of the rule several studies
    fixed before their runs (a beats b iff the gap exceeds the sum of the stds, matches b iff
    the gap is at least minus that sum)."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return ma - mb, sa + sb


def beats(a: Sequence[float], b: Sequence[float]) -> bool:
    """mean(a) - mean(b) > std(a) + std(b) (see :func:`separation`)."""
    gap, spread = separation(a, b)
    return gap > spread


def matches(a: Sequence[float], b: Sequence[float]) -> bool:
    """mean(a) >= mean(b) - (std(a) + std(b)) (see :func:`separation`)."""
    gap, spread = separation(a, b)
    return gap >= -spread


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """``(mean, sample std, half-width of the 95 % Student-t interval of the mean)``; the
    half-width is NaN for a single value."""
    from scipy import stats

    m, s = mean_std(values)
    n = len(values)
    return m, s, (float(stats.t.ppf(0.975, n - 1)) * s / float(np.sqrt(n)) if n > 1 else float("nan"))


def interval_text(values: Sequence[float]) -> str:
    """``mean ± std [low, high]`` (the 95 % t-interval; no interval for a single value)."""
    m, s, h = t_interval(list(values))
    return f"{m:.2f} ± {s:.2f}" + ("" if math.isnan(h) else f" [{m - h:.2f}, {m + h:.2f}]")


def paired(a: dict, b: dict, metric: str = "test_accuracy") -> tuple[float, float, int]:
    """Mean and 95 % half-width of ``a - b`` in points (100 x ``metric``) over the seeds both
    ``{seed: row}`` cells have, and how many those are."""
    seeds = sorted(set(a) & set(b))
    m, _, h = t_interval([100 * (a[s][metric] - b[s][metric]) for s in seeds])
    return m, h, len(seeds)


def verdict(m: float, h: float, margin: float) -> str:
    """A paired difference ``m ± h`` read against a non-inferiority ``margin`` (points):
    ``better`` if its interval lies above 0; with ``margin > 0`` then ``as good`` if it lies
    above ``-margin``, ``worse`` if below, else ``inconclusive``; with ``margin == 0``,
    ``worse`` if below 0, else ``tied``. One seed (no interval): ``inconclusive``."""
    if math.isnan(h):
        return "inconclusive"
    if margin == 0:
        return "better" if m - h > 0 else "worse" if m + h < 0 else "tied"
    return "better" if m - h > 0 else "as good" if m - h > -margin else "worse" if m + h < -margin else "inconclusive"


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def errorbars(ax, x: Sequence[float], samples: Sequence[Sequence[float]], **kwargs) -> None:
    """Plot the mean of each sample in ``samples`` at its ``x`` with its 95 % t-interval as an
    error bar (none for a single value); ``kwargs`` go to ``ax.errorbar``."""
    stats = [t_interval(list(s)) for s in samples]
    ax.errorbar(list(x), [m for m, _, _ in stats], yerr=[0 if math.isnan(h) else h for _, _, h in stats],
                capsize=3, **kwargs)


def finish_axes(ax, xlabel: str, ylabel: str, title: str | None = None, legend_size: int | None = 7) -> None:
    """Label ``ax``, give it a light grid and (unless ``legend_size`` is None) a legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend_size is not None:
        ax.legend(fontsize=legend_size)


def save_figure(fig, path: str, dpi: int = 110) -> None:
    """Lay ``fig`` out tightly, write it to ``path`` and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def write_section(title: str, body: str, path: str) -> None:
    """Replace (or append) the ``## title`` section of the markdown file ``path`` with
    ``body`` (a benchmark's ``--write`` into ``benchmarks/RESULTS.md``)."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    start = text.find(f"\n## {title}\n")
    if start < 0:
        text = text.rstrip("\n") + "\n"
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start + 1] + (text[end + 1:] if end >= 0 else "")
        text = text.rstrip("\n") + "\n"
    atomic_write(path, (text + f"\n## {title}\n\n{body}\n").encode())
