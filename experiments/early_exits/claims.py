"""The early-exit study's numbers: thresholds chosen on validation for a budget, the cells of
seeds, the decision rules of ``config`` applied to rows, and the papers' and notes' claims
(nothing measured is typed in here)."""

from __future__ import annotations

import math

from wsjax.study import mean_std, separation, t_interval

#: Huang et al. 2018 (MSDNet), abstract and Sec. 5 (budgeted batch classification), paraphrased
MSDNET_BUDGETED = ("one network with early exits, its computation shared between classifiers, beats "
                   "separately trained networks of varying cost (ensembles of ResNets and DenseNets) across "
                   "the budgets of budgeted batch classification, \"substantially\" improving the state of the art "
                   "(CIFAR-10/100, ImageNet)")
MSDNET_INTERFERENCE = ("Sec. 3: intermediate classifiers attached to a plain (non-multi-scale) CNN are weak "
                       "early and can hurt the final classifier's accuracy; multi-scale features and dense "
                       "connections are MSDNet's remedy")
#: the notes (seed 003, "Dynamic Computation"), translated
NOTES = {"separate": "1. Train multiple classifiers: different networks suit different situations, but they "
                     "take up a lot of storage space.",
         "exits": "2. Classifiers at the intermediate layers: storage stays the same, but the accuracy varies "
                  "a lot (solution: Multi-Scale Dense Networks)."}
MARGIN = 0.005  # 0.5 points: the 50% line's non-inferiority margin
SPREAD = 0.05  # 5 points: the notes' "varies a lot"
STORAGE_RATIO = 1.5
interval = t_interval  # (mean, std, 95 % t half-width)


def pick_threshold(sweep: dict, budget: float) -> int | None:
    """The config's rule: index of the threshold with the highest validation accuracy among
    those whose validation average multiply-adds stay within ``budget`` (the cheaper on a
    tie); None if even exit 0 costs more."""
    ok = [i for i, m in enumerate(sweep["avg_macs"]) if m <= budget]
    if not ok:
        return None
    return max(ok, key=lambda i: (sweep["accuracy"][i], -sweep["avg_macs"][i]))


def at_budget(row: dict, budget: float) -> dict | None:
    """The net of ``row`` at the threshold chosen on validation for ``budget`` multiply-adds:
    that threshold and its validation and test accuracy, average multiply-adds and exit shares."""
    i = pick_threshold(row["val_sweep"], budget)
    if i is None:
        return None
    v, t = row["val_sweep"], row["test_sweep"]
    return {"threshold": v["thresholds"][i], "val_accuracy": v["accuracy"][i], "val_macs": v["avg_macs"][i],
            "accuracy": t["accuracy"][i], "avg_macs": t["avg_macs"][i], "exit_fractions": t["exit_fractions"][i]}


def by_seed(rows: list[dict]) -> dict:
    return {r["config"]["seed"]: r for r in rows}


def multi(rows: list[dict], weighting: str = "uniform") -> list[dict]:
    return sorted((r for r in rows if r["config"]["kind"] == "multi_exit" and r["config"]["weighting"] == weighting),
                  key=lambda r: r["config"]["seed"])


def separate(rows: list[dict], family: str) -> dict:
    """``{budget or depth: [rows over seeds]}`` of one family of separate nets."""
    out: dict = {}
    for r in rows:
        c = r["config"]
        if c["kind"] == "separate" and c["family"] == family:
            out.setdefault(c["budget"] if family == "narrow" else c["depth"], []).append(r)
    return {k: sorted(v, key=lambda r: r["config"]["seed"]) for k, v in sorted(out.items())}


def compare(a: list[float], b: list[float]) -> str:
    """The config's matched-compute rule: 'beats' iff mean(a) - mean(b) > std(a) + std(b),
    'loses' iff the reverse, else 'ties'."""
    gap, spread = separation(a, b)
    return "beats" if gap > spread else "loses to" if gap < -spread else "ties"


def non_inferior(diffs: list[float], margin: float = MARGIN) -> str:
    """The 50% line's rule on paired differences: 'better' iff the 95% t-interval lies above
    0, 'as good' iff above ``-margin``, else 'worse' (one seed: the mean decides)."""
    m, _, h = interval(diffs)
    lo = m - (0.0 if math.isnan(h) else h)
    return "better" if lo > 0 else "as good" if lo > -margin else "worse"


def realises_saving(time_ratio: float, macs_ratio: float) -> bool:
    """The config's timing rule: at least half the counted saving shows in measured time."""
    return time_ratio <= 1 - (1 - macs_ratio) / 2


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def acc_cell(xs) -> str:
    """``mean ± std`` of accuracies, in percent."""
    m, s = mean_std(xs)
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def ci_cell(xs, scale: float = 100.0, signed: bool = True) -> str:
    """``mean [95% CI]`` (scaled: percent or points for accuracies; ``signed`` for differences)."""
    m, _, h = interval(xs)
    f = (lambda v: f"{scale * v:+.2f}") if signed else (lambda v: f"{scale * v:.2f}")
    return f(m) if math.isnan(h) else f"{f(m)} [{f(m - h)}, {f(m + h)}]"
