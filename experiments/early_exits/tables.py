"""The early-exit report's plain tables: the nets' counted costs and the accuracy-compute curve."""

from __future__ import annotations

import numpy as np

from experiments.early_exits.claims import acc_cell


def share(macs, full) -> str:
    """``macs`` as a percentage of ``full``."""
    return f"{100 * macs / full:.1f}%"


def costs_md(uniform, narrow, truncated) -> str:
    r = uniform[0]
    full = r["macs"]
    lines = ["## The nets and their counted costs", "",
             f"Multi-exit net: widths {r['config']['widths']}, {r['free_params']:,} parameters, file "
             f"{r['stored_bytes']:,} bytes. Multiply-adds per example of leaving at each exit "
             "(`exit_costs`, blocks and heads up to that exit):", "",
             "| exit | block MACs | head MACs | cost of leaving here | share of the full net |", "|---|---|---|---|---|"]
    for i, (b, h, c) in enumerate(zip(r["block_macs"], r["head_macs"], r["exit_macs"])):
        lines.append(f"| {i} | {b:,} | {h:,} | {c:,} | {share(c, full)} |")
    lines += ["", "Separate nets (one exit, trained alone):", "",
              "| family | budget / depth | widths | MACs | share of the full net | parameters | file bytes |",
              "|---|---|---|---|---|---|---|"]
    for name, cells in (("narrow", narrow), ("truncated", truncated)):
        for k, cell in cells.items():
            c = cell[0]
            what = f"{k:.0%}" if name == "narrow" else f"depth {k}"
            lines.append(f"| {name} | {what} | {c['config']['widths']} | {c['macs']:,} | {share(c['macs'], full)} | "
                         f"{c['free_params']:,} | {c['stored_bytes']:,} |")
    return "\n".join(lines) + "\n"


def curve_md(weighting_rows: dict, every: int = 10) -> str:
    """Every ``every``-th threshold of the sweep: mean test multiply-adds, accuracy and exit shares."""
    lines = ["## The accuracy-compute curve (test, mean over seeds)", "",
             "| weighting | threshold | average MACs | accuracy (%) | exit shares |", "|---|---|---|---|---|"]
    for w, rows in weighting_rows.items():
        s0 = rows[0]["test_sweep"]
        n = len(s0["thresholds"])
        for i in sorted(set(range(0, n, every)) | {n - 1}):
            macs = np.mean([r["test_sweep"]["avg_macs"][i] / r["macs"] for r in rows])
            shares = np.mean([r["test_sweep"]["exit_fractions"][i] for r in rows], axis=0)
            lines.append(f"| {w} | {s0['thresholds'][i]:.6g} | {100 * macs:.1f}% | "
                         f"{acc_cell([r['test_sweep']['accuracy'][i] for r in rows])} | "
                         + " / ".join(f"{v:.2f}" for v in shares) + " |")
    return "\n".join(lines) + "\n\nPlot: `accuracy_vs_macs.png` (every threshold).\n"
