"""The distillation study's numbers: cells of seeds, intervals, the papers' claims and the
decision rules of ``config`` applied to the rows (nothing measured is typed in here)."""

from __future__ import annotations

import math


from wsjax.study import beats as helps, matches, mean_std, t_interval  # the config's rules: helps, matches

#: Hinton, Vinyals & Dean 2015, Sec. 3 (MNIST, 10,000 test images): test errors
HINTON_MNIST = {"teacher (2x1200, dropout, jitter)": 67, "2x800, hard labels": 146, "2x800, distilled at T=20": 74}
MNIST_TEST = 10_000


def label(config: dict) -> str:
    """A method's column name: ``hard``, ``T=4``, ``logits``."""
    return f"T={config['temperature']:g}" if config["method"] == "hinton" else config["method"]


def pick_teacher(rows: list[dict]) -> dict:
    """The config's rule: the candidate with the highest validation accuracy (first on a tie)."""
    return max(rows, key=lambda r: r["val_accuracy"])


def cells(rows: list[dict]) -> dict:
    """``{(student, label): [rows over seeds]}`` of the student rows."""
    out: dict = {}
    for r in rows:
        if r["config"]["kind"] == "student":
            out.setdefault((r["config"]["student"], label(r["config"])), []).append(r)
    return out


def values(cell: list[dict], metric: str = "test_accuracy") -> list[float]:
    return [r[metric] for r in cell]


interval = t_interval  # (mean, std, 95 % t half-width)


def wilson(errors: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson interval of an error count out of ``n`` test images, in errors."""
    p = errors / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return n * (centre - half), n * (centre + half)


def best_temperature(cell_map: dict, student: str, temperatures) -> float | None:
    """T* of ``student``: the highest mean validation accuracy (the smaller T on a tie)."""
    scored = [(mean_std(values(cell_map[(student, f"T={t:g}")], "val_accuracy"))[0], -t, t)
              for t in temperatures if (student, f"T={t:g}") in cell_map]
    return max(scored)[2] if scored else None




def gap_closed(hard_errors: float, distilled_errors: float, teacher_errors: float) -> float | None:
    """The fraction of the hard-label student's excess test errors over the teacher that
    distillation removes (None when the student makes no more errors than the teacher)."""
    gap = hard_errors - teacher_errors
    return (hard_errors - distilled_errors) / gap if gap > 0 else None


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def acc_cell(xs) -> str:
    """``mean ± std`` of accuracies, in percent."""
    m, s = mean_std(xs)
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def errors_cell(xs) -> str:
    """``mean [95% CI]`` of error counts."""
    m, _, h = interval(xs)
    return f"{m:.1f} [{m - h:.1f}, {m + h:.1f}]" if not math.isnan(h) else f"{m:.0f}"
