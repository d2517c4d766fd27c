"""The quantization_bits report: per model the accuracy of every (method, bits) cell with
its file size, the binary LeNet-300-100 acceptance line, BinaryConnect beside ours, the
decision rules of ``config`` and the plot, all computed from the store's rows."""

from __future__ import annotations

import os

from experiments.quantization_bits import claims, plots
from experiments.quantization_bits.claims import acc_cell, ci_cell, error_cell, mean, values
from wsjax import study
from wsjax.io import atomic_write
from wsjax.study import mean_std

COLUMNS = ["model", "method", "bits", "seed", "test_accuracy", "in_memory_accuracy", "val_accuracy",
           "accuracy_before_training", "stored_bytes", "bits_per_weight", "bits_per_kernel_weight", "compression",
           "seconds", "file"]


def describe(c: dict) -> str:
    """A unit's progress line."""
    return f"{c['model']} {c['method']} {c['bits']} bits seed {c['seed']}"


def summary(row: dict) -> str:
    """A finished unit's numbers, for its progress line."""
    s = f"test {row['test_accuracy']:.4f}, {row['stored_bytes']:,} bytes ({row['bits_per_weight']:.2f} bits/weight)"
    return s + (f", {row['seconds']:.0f} s" if "seconds" in row else "")


def _order(cell_map: dict, model: str) -> list[tuple]:
    rank = {m: i for i, m in enumerate(("dense",) + plots.ORDER)}
    return sorted((k for k in cell_map if k[0] == model), key=lambda k: (rank[k[1]], k[2]))


def model_md(cell_map: dict, model: str) -> str:
    dense = cell_map.get((model, "dense", 32))
    seeds = sorted({len(c) for k, c in cell_map.items() if k[0] == model})
    lines = [f"## {model}: test accuracy against stored bits", "",
             f"Mean ± std over {'/'.join(map(str, seeds))} seeds, the 95% t-interval of the mean; every accuracy is "
             "the net loaded back from its file. Bits: nominal; bits/weight: 8 x file bytes / kernel weights "
             "(biases and headers charged to the kernels); kernel bits/weight: the kernels' records only.", "",
             "| method | bits | stored bytes | bits/weight | kernel bits/weight | compression | test acc % | 95% CI "
             "| drop (pts) | before fine-tune % |", "|---" * 10 + "|"]
    for key in _order(cell_map, model):
        c = cell_map[key]
        drop = f"{claims.drop_points(c, dense):+.2f}" if dense and key[1] != "dense" else ""
        before = f"{100 * mean(c, 'accuracy_before_training'):.2f}" if "accuracy_before_training" in c[0] else ""
        nbytes = values(c, "stored_bytes")
        size = f"{min(nbytes):,}" + ("" if min(nbytes) == max(nbytes) else f"–{max(nbytes):,}")
        lines.append(f"| {claims.LABELS[key[1]]} | {key[2]} | {size} | {mean(c, 'bits_per_weight'):.3f} "
                     f"| {mean(c, 'bits_per_kernel_weight'):.3f} | {mean(c, 'compression'):.1f}x | "
                     f"{acc_cell(values(c))} | {ci_cell(values(c))} | {drop} | {before} |")
    pruned = [r for k, c in cell_map.items() if k[0] == model and k[1] == "kmeans_pruned" for r in c]
    if pruned:
        seeds = {r["config"]["seed"]: r for r in pruned}.values()
        committed = [r.get("committed_pruned_accuracy") for r in seeds]
        check = ("" if None in committed else f" (the deep_compression study's committed rows: "
                 f"{100 * mean_std(committed)[0]:.2f}%)")
        lines += ["", f"Pruned + k-means starts from nets with {100 * mean(list(seeds), 'kept_fraction'):.1f}% of the "
                  f"kernel weights kept, at {100 * mean(list(seeds), 'pruned_accuracy'):.2f}% test accuracy before "
                  f"quantization{check}."]
    return "\n".join(lines) + "\n"


def acceptance_md(cell_map: dict, rows: list[dict]) -> str:
    cell = cell_map.get(("lenet300100", "binary", 1))
    lines = ["## Acceptance: the binary LeNet-300-100 file", ""]
    if not cell:
        return "\n".join(lines + ["(no binary LeNet-300-100 rows)"]) + "\n"
    for r in cell:
        lines.append(f"- seed {r['config']['seed']}: `{r['file']}` is {r['stored_bytes']:,} bytes = "
                     f"{r['bits_per_weight']:.3f} bits per kernel weight ({r['bits_per_kernel_weight']:.3f} without "
                     f"the biases and file header), {r['compression']:.1f}x against float32 "
                     f"({r['dense_bytes']:,} bytes); accuracy from the file {100 * r['test_accuracy']:.2f}% "
                     f"{'=' if r['test_accuracy'] == r['in_memory_accuracy'] else '!='} in memory "
                     f"{100 * r['in_memory_accuracy']:.2f}%.")
    ok = all(r["compression"] >= 25 and r["test_accuracy"] == r["in_memory_accuracy"] for r in cell)
    equal = [r for r in rows if r["config"]["kind"] == "quantized"]
    same = sum(r["test_accuracy"] == r["in_memory_accuracy"] and r["loaded_equals_in_memory"] for r in equal)
    lines += [f"- Verdict: {'met' if ok else 'NOT met'} (about 1 bit per weight, at least 25x, the file's accuracy "
              "equal to the in-memory one).",
              f"- Over every quantized unit, {same} of {len(equal)} files load to the in-memory weights bit for bit "
              "with equal accuracy (the run raises otherwise)."]
    return "\n".join(lines) + "\n"


def binaryconnect_md(cell_map: dict) -> str:
    lines = ["## BinaryConnect (MNIST) beside ours (Fashion-MNIST), as shape", "",
             "Paper: Courbariaux, Bengio & David 2015, Table 2 (3x1024 MLP, batch norm, 1000 epochs from scratch). "
             "Ours: LeNet-300-100 (no batch norm), per-layer scale, fine-tuned from the dense net (from scratch for "
             "the last row); test error %, mean [95% t-interval]. Fashion-MNIST is harder: compare the gaps, not "
             "the errors.", "", "| net | paper (MNIST) | ours (Fashion-MNIST) |", "|---|---|---|"]
    ours = {"float, no regulariser": ("lenet300100", "dense", 32), "BinaryConnect (det.)": ("lenet300100", "binary", 1),
            "BinaryConnect (stoch.)": ("lenet300100", "binary_stochastic", 1)}
    for name, (err, sd) in claims.BINARYCONNECT.items():
        key = ours[name]
        got = error_cell(values(cell_map[key])) if key in cell_map else "not run"
        lines.append(f"| {name} | {err:.2f} ± {sd:.2f} | {claims.LABELS[key[1]]}: {got} |")
    if ("lenet300100", "binary_scratch", 1) in cell_map:
        scratch = values(cell_map[("lenet300100", "binary_scratch", 1)])
        lines.append(f"| (binary from scratch) | | {error_cell(scratch)} |")
    dense, det = cell_map.get(("lenet300100", "dense", 32)), cell_map.get(("lenet300100", "binary", 1))
    paper = claims.BINARYCONNECT
    if dense and det:
        gap = claims.drop_points(det, dense)
        paper_gap = paper["BinaryConnect (det.)"][0] - paper["float, no regulariser"][0]
        holds = claims.within(det, dense, claims.BINARY_POINTS)
        lines += ["", f"- The deterministic binary net is {gap:.2f} points below the dense one (paper: "
                  f"{paper_gap:+.2f}); BinaryConnect's shape (within {claims.BINARY_POINTS:g} point of float) "
                  f"{'holds' if holds else 'does not hold'} here."]
    stoch = cell_map.get(("lenet300100", "binary_stochastic", 1))
    if stoch and det:
        d = 100 * (mean(stoch) - mean(det))
        paper_d = paper["BinaryConnect (det.)"][0] - paper["BinaryConnect (stoch.)"][0]
        verdict = "helps" if claims.helps(values(stoch), values(det)) else "does not help"
        lines.append(f"- Stochastic binarisation {verdict} ({d:+.2f} points; rule: gain > sum of the stds; paper: "
                     f"{paper_d:+.2f} points).")
    return "\n".join(lines) + "\n"


def rules_md(cell_map: dict, models) -> str:
    lines = ["## Decision rules", ""]
    for model in models:
        dense = cell_map.get((model, "dense", 32))
        lines.append(f"### {model}")
        for method in ("uniform", "lsq"):
            got = claims.ste_vs_kmeans(cell_map, model, method)
            if got:
                yes = [k for k, v in got.items() if v]
                lines.append(f"- {claims.LABELS[method]} matches k-means at k = {', '.join(map(str, yes)) or 'none'} "
                             f"of {', '.join(map(str, got))}: it {'matches' if all(got.values()) else 'does not match'}"
                             " k-means at the same bits (rule: mean >= other mean - sum of stds).")
        if dense and (model, "binary", 1) in cell_map:
            b = cell_map[(model, "binary", 1)]
            ok = claims.within(b, dense, claims.BINARY_POINTS)
            lines.append(f"- Binary is {'within' if ok else 'NOT within'} {claims.BINARY_POINTS:g} point of dense "
                         f"({claims.drop_points(b, dense):.2f} points lost).")
        for method in plots.ORDER:
            if any(k[0] == model and k[1] == method for k in cell_map):
                best = claims.cheapest_within_budget(cell_map, model, method)
                what = ("never within budget" if best is None else
                        f"{best[0]} bits, {best[1]:,.0f} bytes ({best[2]:+.2f} points)")
                lines.append(f"- {claims.LABELS[method]}: cheapest cell within {claims.BUDGET:g} points of dense: "
                             f"{what}.")
        front = claims.pareto(cell_map, model)
        lines += ["- Pareto front (bytes up, accuracy up): "
                  + ", ".join(f"{claims.LABELS[m]} {k}" for m, k in front) + ".", ""]
    return "\n".join(lines)


def recipe_md(cfg) -> str:
    epochs = ", ".join(f"{m} {e}" for m, e in cfg.epochs if m in cfg.models)
    lrs = ", ".join(f"{m} {lr:g}" for m, lr in cfg.lr)
    return (f"Recipe: fine-tuned from each seed's dense net for {epochs} epochs (binary from scratch: "
            f"{cfg.scratch_epochs}), Adam with cosine decay to {cfg.final_lr_fraction:g} x the peak rate ({lrs}), "
            f"batch {cfg.batch_size}, {cfg.train_examples:,} training images; scale '{cfg.scale}'; kmeans_pruned from "
            f"the deep_compression level x{cfg.prune_scale:g}. Plot: `accuracy_vs_bytes.png`.\n")


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    cell_map = claims.cells(rows)
    models = [m for m in cfg.models if any(k[0] == m for k in cell_map)]
    plots.accuracy_vs_bytes(cell_map, models, os.path.join(out, "accuracy_vs_bytes.png"))
    parts = [model_md(cell_map, m) for m in models] + [acceptance_md(cell_map, rows), binaryconnect_md(cell_map),
                                                        rules_md(cell_map, models), recipe_md(cfg)]
    if cfg.quick:
        parts.append("(quick run: few methods, one seed, one epoch on a subset; numbers are a smoke test, not "
                     "results.)\n")
    body = "\n".join(parts)
    table = study.write_results(out, "quantization_bits", dataset, cfg.quick, rows, columns=COLUMNS)
    title = f"# quantization_bits on {dataset}{' (quick)' if cfg.quick else ''}\n\n"
    atomic_write(os.path.join(out, "results.md"), (title + body + "\n## Every run\n\n" + table).encode())
    return body
