"""The study's two plots: test accuracy against average multiply-adds (the early-exit curves,
the separate nets, the full net and the 50% line) and measured time against counted cost."""

from __future__ import annotations

import numpy as np

from experiments.early_exits import claims
from wsjax import study
from wsjax.study import mean_std


def _pct(macs, full) -> np.ndarray:
    return 100 * np.asarray(macs, dtype=float) / full


def _curve(ax, rows, full, colour, label, ls="-"):
    """Each seed's sweep as a thin line; the mean over seeds (per threshold) as a thick line
    with a band of ± one std of the accuracy."""
    xs = np.array([_pct(r["test_sweep"]["avg_macs"], full) for r in rows])
    ys = 100 * np.array([r["test_sweep"]["accuracy"] for r in rows])
    for x, y in zip(xs, ys):
        ax.plot(x, y, color=colour, lw=0.6, alpha=0.4, ls=ls)
    m, s = ys.mean(0), ys.std(0, ddof=1) if len(rows) > 1 else np.zeros(ys.shape[1])
    ax.plot(xs.mean(0), m, color=colour, lw=2, ls=ls, label=label)
    ax.fill_between(xs.mean(0), m - s, m + s, color=colour, alpha=0.15)


def _points(ax, cells, full, marker, colour, label):
    pts = []
    for cell in cells.values():
        m, s = mean_std([100 * r["test_accuracy"] for r in cell])
        pts.append((_pct(cell[0]["macs"], full), m, s))
    if pts:
        x, m, s = zip(*sorted(pts))
        ax.errorbar(x, m, yerr=s, marker=marker, ls="", capsize=3, color=colour, label=label)


def accuracy_vs_macs(rows: list[dict], weightings, budgets, path: str) -> None:
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    uniform = claims.multi(rows, "uniform")
    full = uniform[0]["macs"]
    for w, colour, ls in zip(weightings, ("tab:blue", "tab:purple", "tab:cyan"), ("-", "--", ":")):
        if claims.multi(rows, w):
            _curve(ax, claims.multi(rows, w), full, colour, f"early exit, {w} weights", ls)
    _points(ax, claims.separate(rows, "narrow"), full, "s", "tab:red", "separate narrow nets (one per budget)")
    _points(ax, claims.separate(rows, "truncated"), full, "^", "tab:orange", "separate truncated nets (first i blocks)")
    exits = np.array([r["exit_test_accuracy"] for r in uniform]) * 100
    ax.errorbar(_pct(uniform[0]["exit_macs"], full), exits.mean(0), yerr=exits.std(0, ddof=1) if len(uniform) > 1
                else None, marker="o", mfc="white", color="tab:blue", ls="", capsize=3,
                label="each exit alone (uniform weights)")
    for i, b in enumerate(budgets):
        picks = [p for p in (claims.at_budget(r, b * full) for r in uniform) if p]
        if picks:
            m, s = mean_std([100 * p["accuracy"] for p in picks])
            ax.errorbar([_pct(np.mean([p["avg_macs"] for p in picks]), full)], [m], yerr=[s], marker="D",
                        color="tab:blue", capsize=3, ls="", label=None if i else "early exit, threshold chosen on "
                        "validation for 25/50/75% of the full cost")
    m, s = mean_std([100 * r["test_accuracy"] for r in uniform])
    ax.errorbar([100], [m], yerr=[s], marker="*", ms=12, color="black", capsize=3, ls="",
                label="full net (last exit, every example)")
    ax.axvline(50, color="grey", ls=":", label="50% of the full net's multiply-adds")
    ax.set(xlabel="average multiply-adds per example (% of the full net)", ylabel="test accuracy (%)",
           title="early exit: test accuracy against counted compute", xlim=(0, 104))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def time_vs_macs(entries: dict, path: str) -> None:
    """``entries``: ``{(what, budget): (macs ratios, time ratios)}`` over seeds."""
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    styles = {"masked": ("o", "tab:blue"), "compacting": ("s", "tab:green"), "narrow": ("^", "tab:red"),
              "full": ("*", "black")}
    for what, (marker, colour) in styles.items():
        pts = [(np.mean(m), np.mean(t), np.std(t)) for (w, _), (m, t) in sorted(entries.items()) if w == what]
        if pts:
            x, y, e = zip(*pts)
            ax.errorbar(100 * np.array(x), 100 * np.array(y), yerr=100 * np.array(e), marker=marker, color=colour,
                        ls="", capsize=3, label=what)
    ax.plot([0, 100], [0, 100], color="grey", ls=":", label="time proportional to multiply-adds")
    ax.set(xlabel="counted average multiply-adds (% of the full net)", ylabel="median CPU time (% of the full pass)",
           title="measured time against counted cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
