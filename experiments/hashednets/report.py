"""The HashedNets report: the table, accuracy against free parameters, the paper's claim."""

from __future__ import annotations

import os

from wsjax import study

LABELS = {"hashed": "HashedNets (per layer)", "hashed_pool": "HashedNets (cross-layer pool)",
          "nn": "equal-size dense (NN)", "lrd": "low rank (LRD)", "rer": "random edge removal (RER)"}
COLUMNS = ("model", "method", "compression_factor", "free_params", "virtual_params", "test_accuracy",
           "stored_bytes", "compression", "widths", "epochs", "seconds")
#: MNIST test accuracy at 1/64 on the 3-layer net, hashed against the equal-size dense net, as a
#: public port of Chen et al. 2015 reports it (../shared/PAPERS.md) -- the shape of the claim
#: beside ours (Fashion-MNIST), not a target.
PAPER_1_64 = {"hashed": 0.968, "nn": 0.941}


def _by(rows):
    return {(r["model"], r["method"], round(r["compression_factor"], 8)): r for r in rows}


def plot(rows: list[dict], nets, path: str, dataset: str) -> None:
    plt = study.pyplot()
    fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4.2), squeeze=False)
    for ax, net in zip(axes[0], nets):
        for method, label in LABELS.items():
            pts = sorted((r["free_params"], r["test_accuracy"]) for r in rows
                         if r["model"] == net and r["method"] == method)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label)
        widths = "-".join(map(str, next(r["config"]["features"] for r in rows if r["model"] == net)))
        ax.set(xscale="log", xlabel="free parameters", ylabel="test accuracy", title=f"{net} net ({widths}), {dataset}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    study.save_figure(fig, path, dpi=120)


def notes(rows: list[dict], cfg, nets) -> str:
    u = rows[0]["config"]
    epochs = ", ".join(f"{net} {e} epochs" for net, e in cfg.epochs if net in nets)
    lines = ["Plot: `accuracy_vs_free_params.png`.", "",
             f"Recipe: Adam, cosine decay from {u['lr']:g} to {u['lr'] * u['final_lr_fraction']:g}, batch "
             f"{u['batch_size']}, seed {u['seed']}, one run per cell, {epochs}, on "
             f"{u['train_examples'] or 'all'} training images; test accuracy from the net read back from its "
             ".wsjax file. Compression factor c = free / virtual weights of the weight matrices; biases are free "
             "in every method. `stored_bytes` is the size of that file (hashed layers as buckets, low-rank ones as "
             "factors, RER as sparse survivors, dense nets as float32); `seconds` is training wall time on a "
             "shared machine, not a speed measurement (see `benchmarks/hashed_step.py`).", ""]
    by = _by(rows)
    for net in nets:
        for c in (1 / 8, 1 / 64):
            cells = [(m, by.get((net, m, round(c, 8)))) for m in LABELS]
            if all(r for _, r in cells):
                lines.append(f"- {net} at 1/{round(1 / c)}: " + ", ".join(
                    f"{m} {r['test_accuracy']:.4f} ({r['stored_bytes']:,} B)" for m, r in cells) + ".")
    lines.append("")
    for net in nets:
        h, p, n = (by.get((net, m, round(1 / 64, 8))) for m in ("hashed", "hashed_pool", "nn"))
        if h and p and n:
            verdict = "beats" if h["test_accuracy"] > n["test_accuracy"] else "does not beat"
            paper = (f" (MNIST, a public port of the paper: {100 * PAPER_1_64['hashed']:.1f}% against "
                     f"{100 * PAPER_1_64['nn']:.1f}%)" if net == "3-layer" else "")
            lines.append(
                f"- Paper's claim, {net} at 1/64: hashed per layer ({h['test_accuracy']:.4f}) {verdict} the "
                f"equal-size dense net ({n['test_accuracy']:.4f}), {100 * (h['test_accuracy'] - n['test_accuracy']):+.2f}"
                f" points{paper}. "
                f"Cross-layer pool: {p['test_accuracy']:.4f} "
                f"({100 * (p['test_accuracy'] - h['test_accuracy']):+.2f} points against per layer).")
    return "\n".join(lines) + "\n"


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    nets = [n for n in cfg.nets if any(r["model"] == n for r in rows)]
    plot(rows, nets, os.path.join(out, "accuracy_vs_free_params.png"), dataset)
    return study.write_results(out, "hashednets", dataset, cfg.quick, rows, extra_md=notes(rows, cfg, nets),
                               columns=COLUMNS)
