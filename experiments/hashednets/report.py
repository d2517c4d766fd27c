"""The HashedNets report: the table, accuracy against free parameters, the paper's claim."""

from __future__ import annotations

import os

import numpy as np

from wsjax import study

LABELS = {"hashed": "HashedNets (per layer)", "hashed_pool": "HashedNets (cross-layer pool)",
          "nn": "equal-size dense (NN)", "lrd": "low rank (LRD)", "rer": "random edge removal (RER)"}
COLUMNS = ("model", "method", "compression_factor", "seed", "free_params", "virtual_params", "test_accuracy",
           "stored_bytes", "compression", "widths", "epochs", "seconds")
#: MNIST test accuracy at 1/64 on the 3-layer net, hashed against the equal-size dense net, as a
#: public port of Chen et al. 2015 reports it (../shared/PAPERS.md) -- the shape of the claim
#: beside ours (Fashion-MNIST), not a target.
PAPER_1_64 = {"hashed": 0.968, "nn": 0.941}


def cells(rows: list[dict]) -> dict:
    """``{(net, method, compression): {seed: row}}``."""
    out: dict = {}
    for r in rows:
        out.setdefault((r["model"], r["method"], round(r["compression_factor"], 8)), {})[r["config"]["seed"]] = r
    return out


def plot(rows: list[dict], nets, path: str, dataset: str) -> None:
    plt = study.pyplot()
    cs = cells(rows)
    fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4.2), squeeze=False)
    for ax, net in zip(axes[0], nets):
        for method, label in LABELS.items():
            keys = sorted((k for k in cs if k[0] == net and k[1] == method), key=lambda k: k[2])
            if keys:
                x = [np.mean([r["free_params"] for r in cs[k].values()]) for k in keys]
                study.errorbars(ax, x, [[r["test_accuracy"] for r in cs[k].values()] for k in keys], marker="o",
                                label=label)
        widths = "-".join(map(str, next(r["config"]["features"] for r in rows if r["model"] == net)))
        ax.set(xscale="log", xlabel="free parameters", ylabel="test accuracy (mean, 95% interval over seeds)",
               title=f"{net} net ({widths}), {dataset}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    study.save_figure(fig, path, dpi=120)


def _c_label(c: float) -> str:
    return "1" if c == 1 else f"1/{round(1 / c)}"


def notes(rows: list[dict], cfg, nets) -> str:
    u = rows[0]["config"]
    seeds = sorted({r["config"]["seed"] for r in rows})
    epochs = ", ".join(f"{net} {e} epochs" for net, e in cfg.epochs if net in nets)
    lines = ["Plot: `accuracy_vs_free_params.png`.", "",
             f"Recipe: Adam, cosine decay from {u['lr']:g} to {u['lr'] * u['final_lr_fraction']:g}, batch "
             f"{u['batch_size']}, seeds {', '.join(map(str, seeds))}, {epochs}, on "
             f"{u['train_examples'] or 'all'} training images; test accuracy from the net read back from its "
             ".wsjax file. Compression factor c = free / virtual weights of the weight matrices; biases are free "
             "in every method. `stored_bytes` is the size of that file (hashed layers as buckets, low-rank ones as "
             "factors, RER as sparse survivors, dense nets as float32); `seconds` is training wall time on a "
             "shared machine, not a speed measurement (see `benchmarks/hashed_step.py`).", ""]
    cs = cells(rows)
    for net in nets:
        comps = sorted({k[2] for k in cs if k[0] == net}, reverse=True)
        lines += [f"### {net}: test accuracy (%) over seeds", "",
                  "| c | " + " | ".join(LABELS) + " | pool - per layer (points, paired) |",
                  "|---|" + "---|" * (len(LABELS) + 1)]
        for c in comps:
            cell = [cs.get((net, m, c)) for m in LABELS]
            text = [study.interval_text([100 * r["test_accuracy"] for r in x.values()]) if x else "" for x in cell]
            h, p = cs.get((net, "hashed", c)), cs.get((net, "hashed_pool", c))
            pair = ""
            if h and p:
                m, hw, n = study.paired(p, h)
                pair = f"{m:+.2f}" + ("" if np.isnan(hw) else f" [{m - hw:+.2f}, {m + hw:+.2f}]") + \
                    f", {n} seeds: {study.verdict(m, hw, 0)}"
            lines.append(f"| {_c_label(c)} | " + " | ".join(text) + f" | {pair} |")
        lines.append("")
    for net in nets:
        c = round(1 / 64, 8)
        h, p, n = (cs.get((net, m, c)) for m in ("hashed", "hashed_pool", "nn"))
        if h and n:
            m, hw, k = study.paired(h, n)
            v = study.verdict(m, hw, 0)
            claim = "holds" if v == "better" else "does not hold"
            paper = (f" (MNIST, a public port of the paper: {100 * PAPER_1_64['hashed']:.1f}% against "
                     f"{100 * PAPER_1_64['nn']:.1f}%)" if net == "3-layer" else "")
            iv = "" if np.isnan(hw) else f" [{m - hw:+.2f}, {m + hw:+.2f}]"
            line = (f"- Paper's claim, {net} at 1/64: hashed per layer - equal-size dense = {m:+.2f} points{iv} "
                    f"over {k} seeds (**{v}**): the claim {claim} here{paper}.")
            if p:
                mp, hp, kp = study.paired(p, h)
                line += (f" Cross-layer pool - per layer: {mp:+.2f} points"
                         f"{'' if np.isnan(hp) else f' [{mp - hp:+.2f}, {mp + hp:+.2f}]'} ({study.verdict(mp, hp, 0)}).")
            lines.append(line)
    return "\n".join(lines) + "\n"


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    nets = [n for n in cfg.nets if any(r["model"] == n for r in rows)]
    plot(rows, nets, os.path.join(out, "accuracy_vs_free_params.png"), dataset)
    return study.write_results(out, "hashednets", dataset, cfg.quick, rows, extra_md=notes(rows, cfg, nets),
                               columns=COLUMNS)
