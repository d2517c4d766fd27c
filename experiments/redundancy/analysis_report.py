"""The redundancy report's analysis sections: spectra, within-layer prediction, between-layer
subspaces, matched filters and CKA, all computed from the analysis rows."""

from __future__ import annotations

import numpy as np

from experiments.redundancy.cells import of_kind as _of
from wsjax import study


def analysis_section(rows) -> str:
    rows = _of(rows, "analysis")
    if not rows:
        return ""
    out = ["## Spectra: how low-rank is each trained layer?\n",
           "Effective rank (Roy & Vetterli 2007) and the ranks holding 90 % / 99 % of each kernel's squared "
           "singular values, mean over seeds (kernels viewed as inputs x outputs; `spectra.png`).\n",
           "| model | layer | shape | max rank | effective rank | rank 90 % | rank 99 % |", "|---|---|---|---|---|---|---|"]
    by_model = {}
    for r in rows:
        by_model.setdefault(r["config"]["model"], []).append(r)
    for m, rs in by_model.items():
        for layer, info in rs[0]["layers"].items():
            vals = [x["layers"][layer] for x in rs]
            out.append(f"| {m} | {layer} | {'x'.join(map(str, info['shape']))} | {info['max_rank']} | "
                       f"{np.mean([v['effective_rank'] for v in vals]):.1f} | "
                       f"{np.mean([v['energy_rank_90'] for v in vals]):.1f} | "
                       f"{np.mean([v['energy_rank_99'] for v in vals]):.1f} |")
    out.append("")
    within = [(m, rs) for m, rs in by_model.items() if "within_layer" in rs[0]]
    if within:
        out += ["## Within a layer: Denil's prediction of the first layer from some of its rows\n",
                "Relative error ||W_held - W_hat_held|| / ||W_held|| of the rows (input pixels) left out, predicted by "
                "kernel ridge regression (squared-exponential kernel over the pixel positions, ridge 1) from a "
                "random fraction of them; `shuffled`: the same layer with its rows permuted (the same numbers with "
                "no spatial order). 0 is perfect, 1 no better than zeros. Mean over seeds.\n",
                "| model | layer | length scale | " + " | ".join(f"seen {f:g}" for f in within[0][1][0]["within_layer"]["fractions"])
                + " |", "|---|---|---|" + "---|" * len(within[0][1][0]["within_layer"]["fractions"])]
        for m, rs in within:
            w = rs[0]["within_layer"]
            err = np.mean([r["within_layer"]["error"] for r in rs], axis=0)
            shf = np.mean([r["within_layer"]["error_shuffled"] for r in rs], axis=0)
            out.append(f"| {m} | {w['layer']} | {w['length_scale']:g} | "
                       + " | ".join(f"{e:.3f} (shuffled {x:.3f})" for e, x in zip(err, shf)) + " |")
        out.append("")
    red = [(m, rs) for m, rs in by_model.items() if rs[0]["redundancy"]]
    if red:
        out += ["## Within vs between layers, in the trained weights\n",
                "For same-shape layers: the fraction of a layer's squared Frobenius norm kept by its own best "
                "rank-r subspace (`self`), by the top-r subspace of the *other* layers of its group (input side "
                "`others_in`, output side `others_out`; each other layer scaled to unit norm) and by a random "
                "r-dim subspace (r/n). Means over the group's layers and the seeds. Rule (config): the others "
                "explain a layer *as well as itself* when others >= 0.9 self; *not at all* when others is within "
                "0.02 of the random baseline.\n",
                "| model | group | rank | self | others_in | others_out | random | verdict |",
                "|---|---|---|---|---|---|---|---|"]
        for m, rs in red:
            for g, info in rs[0]["redundancy"].items():
                label = _group_label(info["paths"])
                for rank in rs[0]["config"]["ranks"]:
                    cells = [t for x in rs for t in x["redundancy"][g]["table"] if t["rank"] == rank]
                    s, i, o, b = (float(np.mean([c[k] for c in cells]))
                                  for k in ("self", "others_in", "others_out", "random_baseline"))
                    best = max(i, o)
                    verdict = ("as well as itself" if best >= 0.9 * s else
                               "not at all" if best <= b + 0.02 else f"{(best - b) / max(s - b, 1e-12):.0%} of the way")
                    out.append(f"| {m} | {label} | {rank} | {s:.3f} | {i:.3f} | {o:.3f} | {b:.3f} | {verdict} |")
        out.append("")
        out += ["Adjacent layers of a group: mean matched-filter |cosine| (units matched one to one by the "
                "Hungarian algorithm) and linear CKA of their outputs on validation images (mean over seeds).\n",
                "| model | group | matched-filter cosine | CKA of adjacent outputs |", "|---|---|---|---|"]
        for m, rs in red:
            for g, info in rs[0]["redundancy"].items():
                cos = np.mean([np.mean(x["redundancy"][g]["adjacent_matched_cosine"]) for x in rs])
                out.append(f"| {m} | {_group_label(info['paths'])} | {cos:.3f} | {_adjacent_cka(rs, info['paths'])} |")
        out.append("")
    return "\n".join(out)


def _group_label(paths) -> str:
    first, last = paths[0], paths[-1]
    return f"{first} .. {last} ({len(paths)})"


def _adjacent_cka(rs, paths) -> str:
    modules = ["/".join(p.split("/")[:-1]) for p in paths]
    vals = []
    for x in rs:
        names = x["cka_layers"]
        idx = [names.index(m) for m in modules if m in names]
        vals += [x["cka"][a][b] for a, b in zip(idx, idx[1:])]
    return f"{np.mean(vals):.3f}" if vals else "n/a (not captured)"


def plot_spectra(rows, path) -> None:
    rows = [r for r in _of(rows, "analysis") if r["config"]["seed"] == min(x["config"]["seed"] for x in
                                                                           _of(rows, "analysis"))]
    if not rows:
        return
    plt = study.pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(4.5 * len(rows), 3.6), squeeze=False)
    for ax, r in zip(axes[0], rows):
        for layer, info in r["layers"].items():
            s = np.asarray(info["singular_values"])
            ax.semilogy(np.arange(1, len(s) + 1), s / s[0], label=layer, lw=1)
        study.finish_axes(ax, "index", "singular value / largest", f"{r['config']['model']} (seed {r['config']['seed']})",
                          legend_size=6 if len(r["layers"]) <= 10 else None)
    study.save_figure(fig, path)


