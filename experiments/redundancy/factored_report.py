"""The redundancy report's sections on factored nets: Denton's LeNet-5 and the bottleneck layer."""

from __future__ import annotations

import math

import numpy as np

from experiments.redundancy.cells import mean_interval as _pm, of_kind as _of
from wsjax.study import t_interval

#: Denton et al. 2014: about 2x faster convolutional layers within 1 % of the original accuracy
DENTON_SPEEDUP, DENTON_DROP = 2.0, 0.01


def _setting(c) -> str:
    if c["layer"] == "none":
        return "trained net"
    if c["layer"] == "all":
        return " + ".join(f"{layer} {_rank(r)}" for layer, r in c["rank"])
    return f"{c['layer']} {_rank(c['rank'])}"


def _rank(r) -> str:
    return f"({r[0]}, {r[1]})" if isinstance(r, list) else f"r={r}"


def denton_section(rows) -> str:
    rs = _of(rows, "denton")
    if not rs:
        return ""
    cells = {}
    for r in rs:
        cells.setdefault(_setting(r["config"]), []).append(r)
    dense = cells.get("trained net")
    dense_acc = np.mean([r["test_accuracy"] for r in dense]) if dense else float("nan")
    out = ["## Denton: LeNet-5's layers factored, run as smaller layers, fine-tuned\n",
           "`Conv_0` as a basis of r 5x5 filters and a 1x1 combination (the input is grayscale, so Denton's "
           "monochromatic approximation is exact and saves nothing), `Conv_1` by Tucker-2 (1x1 to r_in, 5x5 "
           "to r_out, 1x1 to 50; HOSVD then HOOI), `Dense_0` by SVD; then the layers above the lowest "
           "factored one fine-tuned. Accuracies of the nets read back from their files (mean +- std over "
           "seeds [95 % t-interval]); params and multiply-adds exact; times are medians of jitted forward "
           "passes on this CPU (one batch; the machine is shared, so ratios, not seconds, are the result).\n",
           "| setting | params | MACs / image | test acc. factored | test acc. fine-tuned | drop | layer speedup "
           "(measured) | layer MAC ratio | net speedup |", "|---|---|---|---|---|---|---|---|---|"]
    for setting, cell in cells.items():
        c = cell[0]
        acc = [r["test_accuracy"] for r in cell]
        layers = c["layers"]
        speed = ", ".join(f"{layer} {np.median([r['layers'][layer]['dense_seconds'] / r['layers'][layer]['seconds'] for r in cell]):.2f}x"
                          for layer in layers) or "-"
        macs = ", ".join(f"{layer} {info['dense_macs'] / info['macs']:.2f}x" for layer, info in layers.items()) or "-"
        net = np.median([r["dense_net_seconds"] / r["net_seconds"] for r in cell])
        out.append(f"| {setting} | {c['params']:,} | {c['macs']:,} | {_pm([r['test_accuracy_factored'] for r in cell])} | "
                   f"{_pm(acc)} | {(dense_acc - np.mean(acc)) * 100:+.2f} | {speed} | {macs} | {net:.2f}x |")
    out.append("")
    within = [s for s, cell in cells.items() if s != "trained net" and cell[0]["layers"]
              and dense_acc - np.mean([r["test_accuracy"] for r in cell]) <= DENTON_DROP]
    conv = [(s, max(np.median([r["layers"][layer]["dense_seconds"] / r["layers"][layer]["seconds"] for r in cells[s]])
                    for layer in cells[s][0]["layers"] if layer.startswith("Conv")))
            for s in within if any(layer.startswith("Conv") for layer in cells[s][0]["layers"])]
    best = max(conv, key=lambda t: t[1]) if conv else None
    out.append(f"Rule: a decomposition is within 1 % when its mean fine-tuned accuracy is at most 1 point below the "
               f"trained net's; its speedup is the measured dense / factored time of the layer. Denton et al.: about "
               f"{DENTON_SPEEDUP:g}x faster conv layers within 1 %. Ours: "
               + (f"the fastest conv decomposition within 1 point is **{best[0]}** at **{best[1]:.2f}x** measured."
                  if best else "no conv decomposition within 1 point.") + "\n")
    return "\n".join(out)


def bottleneck_section(rows) -> str:
    rs = _of(rows, "bottleneck")
    if not rs:
        return ""
    cells = {}
    for r in rs:
        cells.setdefault((r["config"]["rank"], r["config"]["arm"]), []).append(r)
    out = ["## A bottleneck layer from scratch against the factored trained layer\n",
           "LeNet-300-100's first layer as 784 -> K -> 300 (K (784 + 300) + 300 parameters): trained from scratch "
           "with the dense recipe (`scratch`), or the trained layer's rank-K SVD fine-tuned with the rest of the "
           "net (`factored`). Test accuracy from the files, mean +- std over seeds [95 % t-interval].\n",
           "| K | params | scratch | factored (start) | factored (fine-tuned) | factored - scratch (paired) |",
           "|---|---|---|---|---|---|"]
    for k in sorted({k for k, _ in cells}):
        s, f = cells.get((k, "scratch"), []), cells.get((k, "factored"), [])
        params = (s or f)[0]["params"]
        paired = {r["config"]["seed"]: r["test_accuracy"] for r in s}
        diffs = [r["test_accuracy"] - paired[r["config"]["seed"]] for r in f if r["config"]["seed"] in paired]
        d = "n/a"
        if diffs:
            m, _, h = t_interval(diffs)
            d = f"{m * 100:+.2f} points" + ("" if math.isnan(h) else f" [{(m - h) * 100:+.2f}, {(m + h) * 100:+.2f}]")
        out.append(f"| {k} | {params:,} | {_pm([r['test_accuracy'] for r in s]) if s else '-'} | "
                   f"{_pm([r['test_accuracy_start'] for r in f]) if f else '-'} | "
                   f"{_pm([r['test_accuracy'] for r in f]) if f else '-'} | {d} |")
    out.append("")
    return "\n".join(out)
