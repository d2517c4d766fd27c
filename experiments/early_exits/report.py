"""The early-exit report: costs, the 50% line, per-exit accuracy, one multi-exit net against
separate nets at matched compute, measured time beside counted cost, the MSDNet and notes
claims beside ours, convergence and the plots (every number from rows)."""

from __future__ import annotations

import os

import numpy as np

from experiments.early_exits import claims, plots
from experiments.early_exits.claims import acc_cell, at_budget, ci_cell, pct
from experiments.early_exits.tables import share, costs_md, curve_md
from wsjax import study
from wsjax.io import atomic_write
from wsjax.study import mean_std

COLUMNS = ("kind", "weighting", "family", "budget", "depth", "widths", "seed", "val_accuracy", "test_accuracy",
           "macs", "free_params", "stored_bytes", "seconds")
PHRASE = {"better": "better than", "as good": "as good as", "worse": "worse than"}


def fifty_md(weighting_rows: dict) -> tuple[str, dict]:
    """The 50% line per weighting; returns the markdown and ``{weighting: verdict}``."""
    lines = ["## Early exit at 50% of the full net's multiply-adds, beside the full net", "",
             "Threshold chosen on validation (the most accurate one whose validation average stays within 50% of "
             "the full net's multiply-adds), scored on test; the full net is the same net's last exit, every "
             "example run through all blocks. Difference: paired within each seed's net, in points.", "",
             "| weighting | seed | threshold | val MACs | test MACs | exit shares (test) | early exit (%) | "
             "full net (%) | difference |", "|---|---|---|---|---|---|---|---|---|"]
    verdicts, summary = {}, []
    for w, rows in weighting_rows.items():
        picks = [(r, at_budget(r, 0.5 * r["macs"])) for r in rows]
        picks = [(r, p) for r, p in picks if p]
        if not picks:
            continue
        for r, p in picks:
            shares = " / ".join(f"{f:.2f}" for f in p["exit_fractions"])
            lines.append(f"| {w} | {r['config']['seed']} | {p['threshold']:.6g} | {share(p['val_macs'], r['macs'])} | "
                         f"{share(p['avg_macs'], r['macs'])} | {shares} | {pct(p['accuracy'])} | "
                         f"{pct(r['test_accuracy'])} | {100 * (p['accuracy'] - r['test_accuracy']):+.2f} |")
        ee, fulls = [p["accuracy"] for _, p in picks], [r["test_accuracy"] for r, _ in picks]
        diffs = [a - b for a, b in zip(ee, fulls)]
        verdicts[w] = claims.non_inferior(diffs)
        summary.append(f"- {w}: early exit at 50% {ci_cell(ee, signed=False)} % against the full net's "
                       f"{ci_cell(fulls, signed=False)} % (mean [95% t-interval] over {len(picks)} seed(s)); paired "
                       f"difference {ci_cell(diffs)} points at {np.mean([p['avg_macs'] / r['macs'] for r, p in picks]):.1%} "
                       f"of the multiply-adds. Verdict: early exit at 50% is **{PHRASE[verdicts[w]]}** the full net "
                       f"(rule: interval above -{100 * claims.MARGIN:g} points: as good; above 0: better).")
    return "\n".join(lines + [""] + summary) + "\n", verdicts


def per_exit_md(weighting_rows: dict, truncated: dict) -> tuple[str, dict]:
    uniform = weighting_rows["uniform"]
    full = uniform[0]["macs"]
    names = list(weighting_rows)
    lines = ["## Each exit alone (test accuracy %, mean ± std over seeds)", "",
             "| exit | cost | " + " | ".join(f"joint, {w} weights" for w in names)
             + " | truncated net alone (cost) | joint uniform minus alone (points) |", "|---" * (len(names) + 4) + "|"]
    for i, c in enumerate(uniform[0]["exit_macs"]):
        accs = [acc_cell([r["exit_test_accuracy"][i] for r in weighting_rows[w]]) for w in names]
        alone = truncated.get(i + 1)
        if alone:
            diff = mean_std([r["exit_test_accuracy"][i] for r in uniform])[0] - mean_std(
                [r["test_accuracy"] for r in alone])[0]
            tail = f"{acc_cell([r['test_accuracy'] for r in alone])} ({share(alone[0]['macs'], full)}) | {100 * diff:+.2f}"
        else:
            tail = " | "
        lines.append(f"| {i} | {share(c, full)} | " + " | ".join(accs) + f" | {tail} |")
    first = [r["exit_test_accuracy"][0] for r in uniform]
    last = [r["exit_test_accuracy"][-1] for r in uniform]
    spread = mean_std(last)[0] - mean_std(first)[0]
    verdicts = {"spread": spread, "spread_holds": spread > claims.SPREAD}
    depth = len(uniform[0]["exit_macs"])
    if depth in truncated:
        alone = [r["test_accuracy"] for r in truncated[depth]]
        verdicts["interference"] = claims.compare(alone, last)
        lines += ["", f"- The full-depth net trained alone {verdicts['interference']} the jointly trained last exit "
                  f"({acc_cell(alone)} against {acc_cell(last)}; rule: mean difference beyond the sum of the stds)."]
    lines.append(f"- The last exit is {100 * spread:.2f} points above the first (the notes' \"varies a lot\": more "
                 f"than {100 * claims.SPREAD:g} points).")
    return "\n".join(lines) + "\n", verdicts


def matched_md(weighting_rows: dict, narrow: dict, truncated: dict) -> tuple[str, dict]:
    uniform = weighting_rows["uniform"]
    full = uniform[0]["macs"]
    others = [w for w in weighting_rows if w != "uniform"]
    lines = ["## One multi-exit net against separate nets at matched compute", "",
             "Budget B: the narrow net's counted multiply-adds; the multi-exit net's threshold is chosen on "
             "validation to stay within B and scored on test (its test average may differ slightly from B).", "",
             "| budget | narrow net | B | narrow net (%) | early exit, uniform (%) | its test MACs | "
             + "".join(f"early exit, {w} (%) | " for w in others) + "verdict |", "|---" * (7 + len(others)) + "|"]
    verdicts = {}
    for b, cell in narrow.items():
        budget = cell[0]["macs"]
        picks = [p for p in (at_budget(r, budget) for r in uniform) if p]
        if not picks:
            continue
        ee, sep = [p["accuracy"] for p in picks], [r["test_accuracy"] for r in cell]
        verdicts[b] = claims.compare(ee, sep)
        extra = ""
        for w in others:
            ps = [p for p in (at_budget(r, budget) for r in weighting_rows[w]) if p]
            extra += (acc_cell([p["accuracy"] for p in ps]) if ps else "") + " | "
        lines.append(f"| {b:.0%} | {cell[0]['config']['widths']} | {share(budget, full)} | "
                     f"{acc_cell(sep)} | {acc_cell(ee)} | {share(np.mean([p['avg_macs'] for p in picks]), full)} | "
                     f"{extra}one multi-exit net {verdicts[b]} the narrow net |")
    sizes = [cell[0]["stored_bytes"] for cell in narrow.values()]
    depth = len(uniform[0]["exit_macs"])
    if depth in truncated:
        sizes.append(truncated[depth][0]["stored_bytes"])
    ratio = sum(sizes) / uniform[0]["stored_bytes"]
    verdicts["storage_ratio"] = ratio
    lines += ["", f"- Storage: one net per budget ({len(narrow)} narrow net(s){' and the full-depth net' if depth in truncated else ''}) "
              f"takes {sum(sizes):,} bytes of files against the one multi-exit net's {uniform[0]['stored_bytes']:,} "
              f"({ratio:.2f}x)."]
    return "\n".join(lines) + "\n", verdicts


def timing_cells(timing_rows) -> dict:
    """``{(what, budget): (macs ratios, time ratios, computed ratios, seconds, accuracies)}`` over seeds."""
    out: dict = {}
    for r in timing_rows:
        full = next(e for e in r["entries"] if e["what"] == "full")
        for e in r["entries"]:
            c = out.setdefault((e["what"], e["budget"]), ([], [], [], [], []))
            for lst, v in zip(c, (e["avg_macs"] / full["avg_macs"], e["seconds"] / full["seconds"],
                                  e["computed_macs"] / full["avg_macs"], e["seconds"], e["accuracy"])):
                lst.append(v)
    return out


def timing_md(timing_rows) -> tuple[str, dict]:
    if not timing_rows:
        return "", {}
    cells = timing_cells(timing_rows)
    r0 = timing_rows[0]
    loads = [v for r in timing_rows for v in (r["load_before"], r["load_after"])]
    lines = ["## Measured CPU time beside the counted cost", "",
             f"Inference over the {r0['test_images']:,} test images in batches of {r0['config']['batch']}, "
             f"{r0['config']['repeats']} interleaved rounds, the median kept; {r0['backend']}, {r0['cpus']} CPUs, load "
             f"average {min(loads):.1f}-{max(loads):.1f} (a shared machine). Ratios are to the full net's jitted "
             f"forward pass of the same seed, then averaged over {len(timing_rows)} seed(s). The early-exit rows of a "
             "budget run at the threshold chosen on validation for that budget's narrow net (as in the matched "
             "comparison); 'computed MACs' counts the work that ran (compacting: the buckets, padding included).", "",
             "| what | budget | counted MACs | computed MACs | median seconds | time / full | test accuracy (%) | "
             "realises half the counted saving |", "|---|---|---|---|---|---|---|---|"]
    verdicts = {}
    for (what, b), (m, t, comp, secs, acc) in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ok = claims.realises_saving(float(np.mean(t)), float(np.mean(m))) if what != "full" else None
        if what == "compacting":
            verdicts[b] = ok
        lines.append(f"| {what} | {b:.0%} | {100 * np.mean(m):.1f}% | {100 * np.mean(comp):.1f}% | "
                     f"{np.mean(secs):.3f} ({min(secs):.3f}-{max(secs):.3f}) | {np.mean(t):.2f} | "
                     f"{acc_cell(acc)} | {'' if ok is None else 'yes' if ok else 'no'} |")
    lines.append("\nPlot: `time_vs_macs.png`.")
    return "\n".join(lines) + "\n", verdicts


def claims_md(fifty: dict, per_exit: dict, matched: dict) -> str:
    budgets = {k: v for k, v in matched.items() if k != "storage_ratio"}
    holds = bool(budgets) and all(v == "beats" for v in budgets.values())
    per_budget = ", ".join(f"{v} the narrow net at {b:.0%}" for b, v in budgets.items())
    lines = ["## MSDNet and the notes beside ours", "",
             "| claim | source | ours (Fashion-MNIST, a 3-block lite net) | verdict |", "|---|---|---|---|",
             f"| {claims.MSDNET_BUDGETED} | Huang et al. 2018 (MSDNet) | the multi-exit net {per_budget} | "
             f"{'holds' if holds else 'does not hold'} here |"]
    if "interference" in per_exit:
        hurt = per_exit["interference"] == "beats"
        lines.append(f"| {claims.MSDNET_INTERFERENCE} | Huang et al. 2018, Sec. 3 | the full-depth net alone "
                     f"{per_exit['interference']} the jointly trained last exit | "
                     f"{'holds' if hurt else 'does not hold'} here |")
    lines.append(f"| {claims.NOTES['exits']} | notes (seed 003) | last exit {100 * per_exit['spread']:.2f} points "
                 f"above the first | {'holds' if per_exit['spread_holds'] else 'does not hold'} here (rule: > "
                 f"{100 * claims.SPREAD:g} points) |")
    if "storage_ratio" in matched:
        ratio = matched["storage_ratio"]
        lines.append(f"| {claims.NOTES['separate']} | notes (seed 003) | separate nets' files {ratio:.2f}x the "
                     f"multi-exit net's | {'holds' if ratio > claims.STORAGE_RATIO else 'does not hold'} here "
                     f"(rule: > {claims.STORAGE_RATIO:g}x) |")
    lines.append("")
    lines += [f"- The 50% line ({w} weights): early exit is {PHRASE[v]} the full net." for w, v in fifty.items()]
    lines.append("- MSDNet's numbers are on CIFAR and ImageNet with multi-scale dense nets: compare the shape.")
    return "\n".join(lines) + "\n"


def convergence_md(rows, cfg) -> str:
    drops = [(max(r["val_curves"][-1]) - r["val_curves"][-1][-1], r) for r in rows]
    worst, wr = max(drops, key=lambda d: d[0])
    return (f"## Convergence\n\nRecipe: Adam, cosine decay from {cfg.lr:g} to {cfg.lr * cfg.final_lr_fraction:g} "
            f"over {cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.train_examples:,} training images, the last "
            f"epoch scored. The last exit's final validation accuracy is on average "
            f"{100 * np.mean([d for d, _ in drops]):.2f} points (at most {100 * worst:.2f}, "
            f"{wr['config']['kind']} seed {wr['config']['seed']}) below its best epoch's. Training time: "
            f"{sum(r['seconds'] for r in rows) / 60:.1f} min in all. Plot: `accuracy_vs_macs.png`.\n")


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    net_rows = [r for r in rows if r["config"]["kind"] != "timing"]
    timing_rows = [r for r in rows if r["config"]["kind"] == "timing"]
    weighting_rows = {w: claims.multi(rows, w) for w in cfg.weightings if claims.multi(rows, w)}
    narrow, truncated = claims.separate(rows, "narrow"), claims.separate(rows, "truncated")
    fifty, fifty_v = fifty_md(weighting_rows)
    per_exit, per_exit_v = per_exit_md(weighting_rows, truncated)
    matched, matched_v = matched_md(weighting_rows, narrow, truncated)
    timing, _ = timing_md(timing_rows)
    os.makedirs(out, exist_ok=True)
    plots.accuracy_vs_macs(rows, list(weighting_rows), cfg.budgets, os.path.join(out, "accuracy_vs_macs.png"))
    plots.time_vs_macs({k: v[:2] for k, v in timing_cells(timing_rows).items()}, os.path.join(out, "time_vs_macs.png"))
    summary = "\n".join([costs_md(weighting_rows["uniform"], narrow, truncated), fifty, curve_md(weighting_rows),
                         per_exit, matched, timing,
                         claims_md(fifty_v, per_exit_v, matched_v), convergence_md(net_rows, cfg)])
    table = study.write_results(out, "early_exits", dataset, cfg.quick, rows, columns=COLUMNS)
    title = f"# early_exits on {dataset}{' (quick)' if cfg.quick else ''}\n\n"
    atomic_write(os.path.join(out, "results.md"), (title + summary + "\n## Every run\n\n" + table).encode())
    return summary
