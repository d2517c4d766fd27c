"""The soft_compression report, from the store's rows: every stored net, the validation pick,
the recipe, the pi_0 runs, and Deep Compression's rows (its store) beside ours."""

from __future__ import annotations

import os

import numpy as np

from experiments.soft_compression import config, report_dc
from wsjax import storage, study
from wsjax.compress import soft

#: Ullrich, Meeds & Welling 2017 (https://arxiv.org/abs/1702.04008), Table 1 (MNIST): the
#: compression ratio, the error before -> after, and the fraction of nonzero weights.
PAPER = {"lenet300100": (64.0, "1.89 -> 1.94 % error", 0.043), "lenet5": (162.0, "0.88 -> 0.97 % error", 0.005)}
COLUMNS = ("model", "method", "test_accuracy", "free_params", "stored_bytes", "dense_bytes", "compression", "seconds",
           "val_accuracy", "nonzero_fraction", "epochs", "accuracy_before_snap", "components_after_merge",
           "distinct_values", "in_memory_accuracy", "loaded_equals_in_memory", "drop_points", "file", "pi_zero", "tau",
           "finetune_epochs", "codebook_max_abs_error", "prune_scale", "weight_lr", "pruned_accuracy")


def view(row: dict) -> dict:
    """A row (config, key and metrics) with the run's settings by name, for the tables."""
    c = row["config"]
    v = {**row, "model": c["model"], "method": "dense", "tuned": False, "start": None}
    if c["kind"] != "dense_reference":
        v.update(method=config.label(c), tau=c["tau"], epochs=c["epochs"], pi_zero=c["pi_zero"], weight_lr=c["lr"],
                 prune_scale="" if c["prune_scale"] is None else c["prune_scale"], start=c["start"],
                 tuned=c["kind"] == "soft_share_finetune")
    return v


def choose(views: list[dict], budget: float) -> str:
    md = [f"## Chosen on validation (best compression within {budget:g} points of dense, val split)\n",
          "| model | dense test acc | soft test acc | drop (points) | compression | paper (MNIST) |",
          "|---|---|---|---|---|---|"]
    for d in (v for v in views if v["method"] == "dense"):
        ok = [v for v in views if v["model"] == d["model"] and v["method"] != "dense"
              and 100 * (d["val_accuracy"] - v["val_accuracy"]) <= budget + 1e-9]
        paper = PAPER.get(d["model"], (float("nan"), ""))
        pick = max(ok, key=lambda v: v["compression"], default=None)
        cells = (f"none within {budget:g} points on val | | " if pick is None else
                 f"{pick['test_accuracy']:.4f} | {pick['drop_points']:.2f} | {pick['compression']:.1f}x")
        md.append(f"| {d['model']} | {d['test_accuracy']:.4f} | {cells} | {paper[0]:g}x, {paper[1]} |")
    return "\n".join(md) + "\n"


def recipe(views: list[dict], cfg) -> str:
    tuned = [v for v in views if v["tuned"]]
    worst = max(tuned, key=lambda v: v["codebook_max_abs_error"], default=None)
    largest = ("" if worst is None else f" (largest here: {worst['codebook_max_abs_error']:.2g}, {worst['model']} "
               f"{worst['method']})")
    return (
        "## Recipe and where it departs from Ullrich et al.\n\n"
        "Retraining: the epochs, tau and pi_0 in each row's method, weights Adam "
        f"{soft.WEIGHT_LR:g} (cosine decay) unless the method names its lr, mixture Adam per field {soft.MIXTURE_LR}, "
        f"{soft.NUM_COMPONENTS} components, means from `{cfg.mixture_init}` of the trained weights "
        "(`wsjax.compress.soft.soft_weight_sharing`); the objective is mean cross-entropy + (tau / N) "
        "(-log p(w) - log p(mixture)); components closer than a symmetric KL of "
        f"{cfg.kl_threshold:g} are merged before the snap.\n\n"
        "- tau: Ullrich's 5e-3 left these Fashion-MNIST nets unclustered (the weights had not gathered at the "
        "components and the snap sent nearly all of them to zero); larger tau clusters them, at a cost in "
        "accuracy before the snap.\n"
        "- Means: evenly spread means (Ullrich) land mostly outside the narrow range where the trained weights "
        "lie; k-means-initialised means cut the snap loss.\n"
        "- `+ centroid fine-tune` rows are a composition, not Ullrich's recipe: the snapped values (read back from "
        "the snapped row's file) become per-layer codebooks (Deep Compression's trained quantization; zeros and "
        f"assignments frozen) and the centroids are retrained {cfg.finetune_epochs} epoch(s) at Adam "
        f"{cfg.finetune_lr:g}. `codebook_max_abs_error` is how far the codebook starts from the snapped weights "
        f"(float32 k-means rounding, or a weight joining a close neighbouring value){largest}.\n"
        "- `DC pruning xS + soft sharing` rows are a second composition: the retraining starts from Deep "
        "Compression's pruned net at level S of its pruning trajectory (`wsjax.study.pruned_nets.pruned_net`: "
        "Han's kept fractions times S, magnitude pruning with masked retraining; `pruned_accuracy` is that net's "
        "test accuracy) and keeps its pruned weights at exactly zero (`wsjax.pruning.keep_pruned`), so the mixture "
        "prior only quantizes the surviving weights (and may prune a few more). Deep Compression quantizes the "
        "same net with per-layer k-means (5 bits fc, 8 bits conv) and centroid retraining.\n")


def pi_zero_effect(views: list[dict], model: str) -> str:
    """A bullet comparing the runs of ``model`` that differ only in ``pi_0`` (same tau, epochs)."""
    groups = {}
    for v in views:
        if v["model"] == model and v["method"] != "dense" and v["start"] is None and not v["tuned"]:
            groups.setdefault((v["tau"], v["epochs"], v["weight_lr"]), []).append(v)
    (tau, epochs, lr), snapped = max(groups.items(), key=lambda kv: len(kv[1]), default=((None, None, None), []))
    if len(snapped) < 2:
        return ""
    tuned = {v["pi_zero"]: v for v in views if v["model"] == model and v["tuned"] and v["start"] is None
             and (v["tau"], v["epochs"], v["weight_lr"]) == (tau, epochs, lr)}

    def cell(v):
        before = 100 * (v["dense_accuracy"] - v["accuracy_before_snap"])
        text = (f"pi_0 {v['pi_zero']:g}: {100 * v['nonzero_fraction']:.1f} % nonzero, {v['compression']:.1f}x, "
                f"drop {before:.2f} points before the snap, {v['drop_points']:.2f} snapped")
        return text + (f", {tuned[v['pi_zero']]['drop_points']:.2f} fine-tuned" if v["pi_zero"] in tuned else "")

    cells = "; ".join(cell(v) for v in sorted(snapped, key=lambda v: -v["pi_zero"]))
    return f"- Runs that differ only in the fixed pi_0 ({model}, tau {tau:g}, {epochs} epochs): {cells}.\n"


def _kernels(params) -> np.ndarray:
    from wsjax.penalties import selected_leaves

    return np.concatenate([np.ravel(np.asarray(v)) for v in selected_leaves(params, r"kernel").values()])


def plot(views: list[dict], rows: list[dict], dc: list[dict], out: str) -> None:
    plt = study.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    for color, model in zip(("C0", "C1"), sorted({v["model"] for v in views})):
        mine = [v for v in views if v["model"] == model]
        for label, pruned, marker in (("soft", False, "o"), ("DC pruning + soft", True, "s")):
            for state, tuned, mfc in (("snapped", False, "none"), ("+ centroid fine-tune", True, color)):
                pts = [(v["compression"], v["test_accuracy"]) for v in mine if v["method"] != "dense"
                       and (v["start"] is not None) == pruned and v["tuned"] == tuned]
                if pts:
                    axes[0].plot(*zip(*pts), marker, color=color, mfc=mfc, label=f"{model} {label}, {state}")
        sweep = sorted((p["compression"], p["test_accuracy"]) for p in dc
                       if p["model"] == model and p["kind"] == "sweep")
        if sweep:
            axes[0].plot(*zip(*sweep), "x-", color=color, lw=0.8, label=f"{model} Deep Compression sweep")
        fewer = [p for p in dc if p["model"] == model and p["kind"] == "bits"]
        if fewer:
            bits = " / ".join(str(b) for b in sorted({p["fc_bits"] for p in fewer}, reverse=True))
            axes[0].plot([p["compression"] for p in fewer], [p["test_accuracy"] for p in fewer], "+", ms=9,
                         color=color, label=f"{model} Deep Compression, fc {bits} bits")
        for d in (v for v in mine if v["method"] == "dense"):
            axes[0].axhline(d["test_accuracy"], ls=":", lw=0.8, color=color)
    axes[0].set_xscale("log")
    shown = [v["compression"] for v in views if v["method"] != "dense"] + [p["compression"] for p in dc]
    lo, hi = min(shown, default=1.0), max(shown, default=1.0)
    ticks = [t for t in (1, 2, 5, 10, 15, 20, 30, 40, 60, 100, 150, 200, 300) if lo / 1.2 < t < 1.2 * hi]
    ticks = [t for i, t in enumerate(ticks) if len(ticks) <= 8 or i % 2 == 0]
    axes[0].set_xticks(ticks, [f"{t}x" for t in ticks])
    axes[0].xaxis.set_minor_formatter(plt.NullFormatter())
    axes[0].set_xlabel("compression (dense float32 bytes / file bytes)")
    axes[0].set_ylabel("test accuracy (loaded from file)")
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    first = next((r for r in rows if r["config"]["kind"] == "soft_share" and r["config"]["start"] is None), None)
    dense = next((r for r in rows if first and r["config"]["kind"] == "dense_reference"
                  and r["config"]["model"] == first["config"]["model"]), None)
    if first is not None and dense is not None:
        w0, w1 = (_kernels(storage.load(os.path.join(out, r["file"]))) for r in (dense, first))
        bins = np.linspace(min(w0.min(), w1.min()), max(w0.max(), w1.max()), 200)
        axes[1].hist(w0, bins=bins, alpha=0.5, log=True, label="dense weights")
        axes[1].hist(w1, bins=bins, alpha=0.5, log=True, label=f"{config.label(first['config'])} (snapped, its file)")
        for m in first["mixture"]["means"]:
            axes[1].axvline(m, color="k", lw=0.5)
        axes[1].set_xlabel(f"{first['config']['model']} kernel weight (vertical lines: learned means)")
        axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "soft_compression.png"), dpi=120, bbox_inches="tight")
    plt.close(fig)


def write(rows: list[dict], cfg, out: str, dataset: str, seed: int, by_seed: dict | None = None) -> str:
    views = [view(r) for r in rows]
    dc = report_dc.points(cfg, dataset, seed)
    md = [choose(views, cfg.budget)]
    if by_seed:
        md.append(report_dc.seeds_section(by_seed, cfg.budget))
    md += [recipe(views, cfg)] + [pi_zero_effect(views, m) for m in cfg.models]
    md.append("\nPer-layer byte accounting of each file: `artifacts/<key>.layers.md` beside its "
              "`artifacts/<key>.wsjax` (the `file` column). "
              "test_accuracy is the accuracy of the model loaded back from the file.\n")
    md.append(report_dc.sections(views, dc, cfg, dataset, PAPER))
    plot(views, rows, dc, out)
    return study.write_results(out, "soft_compression", dataset, cfg.quick, views, extra_md="\n".join(md),
                               columns=COLUMNS)
