"""The deep_compression report: Han's stages, the targets, the sweep over sparsities, the
per-layer storage, the initialisation, bit-width and neuron-pruning studies, and a plot,
all computed from the store's rows."""

from __future__ import annotations

import dataclasses
import os

from wsjax import study
from wsjax.sharing.kmeans import INITS
from wsjax.storage import LayerReport, SizeReport
from wsjax.study.pruned_nets import flat

#: Han, Mao & Dally (2016), Table 1 (MNIST): compression, and top-1 error (%) before -> after.
PAPER = {"lenet300100": (40.0, 1.64, 1.58), "lenet5": (39.0, 0.80, 0.74)}
#: "Within budget": at most this many accuracy points below the model's own dense net.
BUDGET = 0.5
COLUMNS = ["model", "method", "test_accuracy", "drop_points", "val_accuracy", "kept_fraction", "free_params",
           "virtual_params", "bytes", "dense_bytes", "compression", "seconds", "epochs", "bytes_from"]
NEURON_COLUMNS = ["hidden", "test_accuracy", "accuracy_before_finetune", "val_accuracy", "params", "mflops"]
SWEEP_COLUMNS = ["model", "scale", "kept_fraction", "pruned_accuracy", "test_accuracy", "drop_points",
                 "stored_bytes", "compression", "prune_epochs", "file"]


def describe(c: dict) -> str:
    """A unit's progress line."""
    what = {"sweep": "x{scale:g} P+Q+H", "bits": "x{scale:g} fc {fc_bits} bits", "stages": "{stage}",
            "init": "init {init} {bits} bits", "neurons": "hidden {hidden}", "neuron_timing": "timing"}[c["kind"]]
    return f"{c['model']} {c['kind']} " + what.format(**c)


def summary(row: dict) -> str:
    """A finished unit's numbers, for its progress line."""
    parts = [f"{k} {study.fmt(row[k])}" for k in ("pruned_accuracy", "test_accuracy", "drop_points", "stored_bytes",
                                                   "compression", "accuracy_before_retraining") if k in row]
    return ", ".join(parts)


def _pct(v) -> str:
    return f"{100 * v:.2f}"


def _kind(rows, kind):
    return [flat(r) for r in rows if r["config"]["kind"] == kind]


def stage_rows(rows) -> list[dict]:
    """The stage rows as the table shows them: ``bytes`` and ``compression`` are the file's
    where the stage is a file, Han's count otherwise (``bytes_from`` says which)."""
    out = []
    for r in _kind(rows, "stages"):
        counted = "stored_bytes" not in r
        out.append({**r, "method": r["stage"], "bytes": r["counted_bytes"] if counted else r["stored_bytes"],
                    "compression": r["counted_compression"] if counted else r["compression"]})
    return out


def targets_md(stages, sweep) -> str:
    md = ["## Targets (relative to each model's own dense accuracy)\n",
          f"| model | dense acc % | Han sparsity: acc %, drop, ratio | target | best ratio with drop <= {BUDGET:g} "
          "| at >= target ratio | paper (MNIST) |", "|---|---|---|---|---|---|---|"]
    for model, (target, err0, err1) in PAPER.items():
        mr = {r["method"]: r for r in stages if r["model"] == model}
        if "pruned+quantized+huffman" not in mr:
            continue
        d, f = mr["dense"], mr["pruned+quantized+huffman"]
        pts = [r for r in sweep if r["model"] == model]
        ok = [r for r in pts if r["drop_points"] <= BUDGET]
        best = max(ok, key=lambda r: r["compression"]) if ok else None
        reached = [r for r in pts if r["compression"] >= target]
        at = min(reached, key=lambda r: r["compression"]) if reached else None
        met = any(r["compression"] >= target and r["drop_points"] <= BUDGET for r in pts)
        best_s = (f"{best['compression']:.1f}x at {_pct(best['test_accuracy'])} % ({best['drop_points']:.2f} pts, "
                  f"kept x{best['scale']:g})") if best else "none"
        at_s = (f"{_pct(at['test_accuracy'])} % ({at['drop_points']:.2f} pts) at {at['compression']:.1f}x "
                f"(kept x{at['scale']:g})") if at else "no sweep point reached it"
        md.append(f"| {model} | {_pct(d['test_accuracy'])} | {_pct(f['test_accuracy'])}, {f['drop_points']:.2f} pts, "
                  f"{f['compression']:.1f}x | >= {target:g}x at <= {BUDGET:g} pts: {'met' if met else 'not met'} "
                  f"| {best_s} | {at_s} | {target:g}x, {err0:.2f} -> {err1:.2f} % error |")
    same = [r["loaded_equals_in_memory"] for r in stages if "loaded_equals_in_memory" in r]
    md.append("\nEvery accuracy after Huffman coding is that of the model loaded back from its file; "
              + ("it equals the in-memory model's (parameters compared bit for bit, accuracies equal).\n" if all(same)
                 else "for some files it DIFFERS from the in-memory model's.\n"))
    return "\n".join(md)


def seeds_md(by_seed: dict) -> str:
    """Per model and seed (``{seed: sweep rows}``, the seeds whose trajectory is finished):
    the ratio and drop at Han's sparsity and the best ratio within the budget, then their
    mean +- sample std over the seeds."""
    md = ["## Across seeds\n", "Each seed has its own dense net, pruning trajectory and files; the interval is "
          f"mean +- sample std over the seeds done. Budget: a drop of at most {BUDGET:g} points.\n",
          "| model | seeds | Han sparsity: ratio | drop (pts) | best ratio within budget | its drop (pts) |",
          "|---|---|---|---|---|---|"]
    for model in PAPER:
        han, best = [], []
        for seed, sweep in sorted(by_seed.items()):
            pts = [r for r in sweep if r["model"] == model]
            han += [r for r in pts if r["scale"] == 1.0][:1]
            ok = [r for r in pts if r["drop_points"] <= BUDGET]
            best += [max(ok, key=lambda r: r["compression"])] if ok else []
        if not han:
            continue
        cell = lambda rs, k, f: "{:{f}} +- {:{f}}".format(*study.mean_std([r[k] for r in rs]), f=f)  # noqa: E731
        within = (f"{cell(best, 'compression', '.1f')}x ({len(best)} seeds) | {cell(best, 'drop_points', '.2f')}"
                  if best else "none | -")
        md.append(f"| {model} | {len(han)} | {cell(han, 'compression', '.1f')}x | {cell(han, 'drop_points', '.2f')} "
                  f"| {within} |")
    return "\n".join(md) + "\n"


def sweep_md(sweep) -> str:
    bits = sorted({(r["conv_bits"], r["fc_bits"]) for r in sweep})
    bits_s = ", ".join(f"{c}-bit conv / {f}-bit fc" for c, f in bits)
    return ("## Sweep: the same pipeline at other sparsities\n\nOne pruning trajectory per model visits Han's kept "
            "fractions times `scale` (densest first, each level pruned from the previous one and retrained); every "
            f"level is also quantized ({bits_s}, linear init), retrained and stored.\n\n"
            + study.markdown_table(sweep, SWEEP_COLUMNS))


def layers_md(sweep) -> str:
    md = []
    fields = [f.name for f in dataclasses.fields(LayerReport) if f.name != "parts"]
    for r in sweep:
        if r["scale"] != 1.0:
            continue
        layers = [LayerReport(**{k: tuple(x[k]) if k == "shape" else x[k] for k in fields if k in x},
                              parts={k[6:]: v for k, v in x.items() if k.startswith("bytes_")}) for x in r["layers"]]
        rep = SizeReport.from_rows(layers, r["file_overhead_bytes"], r["stored_bytes"])
        md.append(f"## Per-layer storage: {r['model']} at Han's sparsity (`{r['file']}`)\n\n{rep.to_markdown()}\n")
    return "\n".join(md)


def init_md(inits) -> str:
    if not inits:
        return ""
    bits, epochs = sorted({r["bits"] for r in inits}), sorted({r["epochs"] for r in inits})
    retrained = (f"{'/'.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''} of centroid retraining (short, "
                 "for the CPU budget; before retraining in brackets)") if any(epochs) else "no retraining (in brackets)"
    md = ["## Centroid initialisation (Han et al. Sec. 3.2), pruned LeNet-300-100\n",
          f"Test accuracy (%) after k-means with each initialisation and {retrained}. All three layers use the "
          "same number of bits.\n", "| init | " + " | ".join(f"{b} bits" for b in bits) + " |",
          "|---|" + "---|" * len(bits)]
    for init in INITS:
        cells = []
        for b in bits:
            r = next((r for r in inits if r["init"] == init and r["bits"] == b), None)
            after = "n/a" if r is None or "test_accuracy" not in r else _pct(r["test_accuracy"])
            cells.append("" if r is None else f"{after} ({_pct(r['accuracy_before_retraining'])})")
        if any(cells):
            md.append(f"| {init} | " + " | ".join(cells) + " |")
    return "\n".join(md) + "\n"


def bits_md(bits, sweep) -> str:
    if not bits:
        return ""
    md = ["## Fewer bits at the same sparsity\n",
          "The pruned net of one trajectory level quantized with Han's widths (the sweep's point) and with fewer "
          "bits in the fully connected layers (conv layers keep theirs); accuracy of the model loaded from each "
          "file.\n", "| model | level | fc bits | test acc | drop (points) | stored bytes | compression |",
          "|---|---|---|---|---|---|---|"]

    def line(r, label):
        return (f"| {r['model']} | x{r['scale']:g} | {label} | {_pct(r['test_accuracy'])} | {r['drop_points']:.2f} | "
                f"{r['stored_bytes']:,} | {r['compression']:.1f}x |")

    for model in dict.fromkeys(r["model"] for r in bits):
        mine = [r for r in bits if r["model"] == model]
        han = [p for p in sweep if p["model"] == model and p["scale"] == mine[0]["scale"]]
        md += [line(p, f"{p['fc_bits']} (Han)") for p in han[:1]] + [line(r, r["fc_bits"]) for r in mine]
    return "\n".join(md) + "\n"


def neurons_md(neurons, timing, stages) -> str:
    if not timing:
        return ""
    t = timing[-1]
    dense = next((r for r in stages if r["model"] == "lenet300100" and r["method"] == "dense"), {})
    by_label = {"-".join(map(str, r["hidden"])): r for r in neurons}
    batches, base = t["batches"], t["variants"][0]
    table = []
    for v in t["variants"]:
        r = by_label.get(v["hidden"], {"test_accuracy": dense.get("test_accuracy", ""),
                                       "accuracy_before_finetune": dense.get("test_accuracy", "")})
        row = {"hidden": v["hidden"], "test_accuracy": r["test_accuracy"],
               "accuracy_before_finetune": r["accuracy_before_finetune"], "val_accuracy": r.get("val_accuracy", ""),
               "params": v["params"], "mflops": v["mflops"], "finetune_epochs": r.get("epochs", ""),
               "seconds": r.get("seconds", "")}
        for b in batches:
            row[f"ms_batch{b}"] = v[f"ms_batch{b}"]
            row[f"speedup_batch{b}"] = base[f"ms_batch{b}"] / v[f"ms_batch{b}"]
        table.append(row)
    return ("## Structured neuron pruning of LeNet-300-100\n\nHidden units removed by the scale-invariant weight score "
            "(`wsjax.pruning.prune_neurons`), then fine-tuned; forward-pass time of the jitted model on the machine "
            f"that ran it ({t['backend']}, {t['cpus']} CPUs; best of {t['repeats']} interleaved repeats).\n\n"
            + study.markdown_table(table, [c for c in NEURON_COLUMNS if c in table[0]] + [c for c in table[0]
                                                                                       if c not in NEURON_COLUMNS]))


def plot(stages, sweep, inits, path: str, dataset: str) -> None:
    plt = study.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for model, color in zip(PAPER, ("C0", "C1")):
        pts = sorted((r["compression"], 100 * r["test_accuracy"], r["method"]) for r in stages if r["model"] == model)
        if not pts:
            continue
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=color,
                     label=f"{model}: stages (Han's sparsity)")
        for c, acc, m in pts:
            axes[0].annotate(m.replace("pruned+quantized", "P+Q").replace("+huffman", "+H"), (c, acc), fontsize=7,
                             textcoords="offset points", xytext=(3, -9))
        sw = sorted((r["compression"], 100 * r["test_accuracy"]) for r in sweep if r["model"] == model)
        if len(sw) > 1:
            axes[0].plot(*zip(*sw), marker="s", ls="--", color=color, alpha=0.6,
                         label=f"{model}: P+Q+H, other sparsities")
        dense = next(r["test_accuracy"] for r in stages if r["model"] == model and r["method"] == "dense")
        axes[0].axhline(100 * dense - BUDGET, color=color, lw=0.6, ls=":")
    axes[0].set(xscale="log", xlabel="compression (dense float32 bytes / bytes)",
                ylabel=f"test accuracy (%)  (dotted: dense - {BUDGET:g} points)",
                title=f"Deep Compression on {dataset}")
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    for init in INITS:
        pts = sorted((r["bits"], 100 * r.get("test_accuracy", r["accuracy_before_retraining"]))
                     for r in inits if r["init"] == init)
        if pts:
            axes[1].plot(*zip(*pts), marker="o", label=init)
    axes[1].set(xlabel="bits per weight (all layers)", ylabel="test accuracy after retraining (%)",
                title="centroid initialisation (pruned LeNet-300-100)")
    axes[1].grid(alpha=0.3)
    axes[1].legend()
    study.save_figure(fig, path, dpi=120)


def write(rows: list[dict], cfg, out: str, dataset: str, by_seed: dict | None = None) -> str:
    stages, sweep, inits = stage_rows(rows), _kind(rows, "sweep"), _kind(rows, "init")
    md = [targets_md(stages, sweep), seeds_md(by_seed) if by_seed else "", sweep_md(sweep), layers_md(sweep), init_md(inits),
          bits_md(_kind(rows, "bits"), sweep), neurons_md(_kind(rows, "neurons"), _kind(rows, "neuron_timing"), stages)]
    if cfg.quick:
        md.append("\n(quick run: Han's sparsity only, pruned in one step with 1 epoch of retraining, LeNet-5 retrained "
                  "on a subset, a test subset, no retraining in the initialisation study; numbers are a smoke test, "
                  "not results.)\n")
    if stages:
        plot(stages, sweep, inits, os.path.join(out, "deep_compression.png"), dataset)
    return study.write_results(out, "deep_compression", dataset, cfg.quick, stages,
                               extra_md="\n".join(m for m in md if m), columns=COLUMNS)
