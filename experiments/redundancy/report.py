"""The redundancy report: every number computed from the rows, the decision rules of
``config`` applied to them, the papers' numbers beside ours."""

from __future__ import annotations

import math
import os

import numpy as np

from wsjax import study
from experiments.redundancy.cells import by_config as _by, mean_interval as _cell, mean_std as _pm, of_kind as _of
from wsjax.study import t_interval

#: Denil et al. 2013 (MNIST): "more than 95 % of the weights predicted without any drop in accuracy"
DENIL_PREDICTED = 0.95




# ----------------------------------------------------------------------------- basis


def basis_verdicts(rows) -> dict:
    """``{model: (answer, [(budget, diff mean, half-width, verdict)])}`` by the config's rule."""
    cells = _by(_of(rows, "basis"), "model", "budget", "arm")
    out = {}
    for model in dict.fromkeys(k[0] for k in cells):
        per_budget = []
        for budget in sorted({k[1] for k in cells if k[0] == model}, reverse=True):
            shared = {r["config"]["seed"]: r["test_accuracy"] for r in cells.get((model, budget, "shared"), [])}
            layer = {r["config"]["seed"]: r["test_accuracy"] for r in cells.get((model, budget, "per_layer"), [])}
            seeds = sorted(set(shared) & set(layer))
            if not seeds:
                continue
            m, _, h = t_interval([shared[s] - layer[s] for s in seeds])
            verdict = "tied" if math.isnan(h) else ("beats" if m - h > 0 else "loses" if m + h < 0 else "tied")
            per_budget.append((budget, m, h, verdict, len(seeds)))
        v = [p[3] for p in per_budget]
        answer = ("yes" if v and "loses" not in v and "beats" in v else
                  "no" if "loses" in v and "beats" not in v else "mixed")
        out[model] = (answer, per_budget)
    return out


def basis_section(rows) -> str:
    rs = _of(rows, "basis")
    if not rs:
        return ""
    out = ["## Cross-layer basis against per-layer SVD at equal stored bytes\n",
           "Each trained net's group of same-shape kernels factored at a budget (the group's parameters at "
           "1/2 .. 1/16 of its size): per-layer SVD (`per_layer`, each kernel U_l V_l) or one shared basis B "
           "with a C_l per layer (`shared`, rank chosen so it never stores more parameters), then all free "
           "parameters fine-tuned; accuracies are the nets read back from their `.wsjax` files, bytes the "
           "files' sizes. Mean +- std over seeds [95 % t-interval].\n",
           "| model | budget | arm | stored bytes | group params | test acc. factored | test acc. fine-tuned |",
           "|---|---|---|---|---|---|---|"]
    for (m, b, arm), cell in sorted(_by(rs, "model", "budget", "arm").items(), key=lambda kv: (kv[0][0], -kv[0][1], kv[0][2])):
        out.append(f"| {m} | 1/{round(1 / b)} | {arm} | {np.mean([r['stored_bytes'] for r in cell]):,.0f} | "
                   f"{cell[0]['group_params']:,} / {cell[0]['group_dense_params']:,} | "
                   f"{_pm([r['test_accuracy_factored'] for r in cell])} | {_cell([r['test_accuracy'] for r in cell])} |")
    out.append("")
    out += ["Paired by seed (same trained net), shared - per-layer test accuracy after fine-tuning, and the "
            "config's rule (beats / loses when the 95 % interval excludes 0):\n",
            "| model | budget | shared - per-layer | 95 % interval | verdict | seeds |", "|---|---|---|---|---|---|"]
    verdicts = basis_verdicts(rows)
    for m, (answer, per_budget) in verdicts.items():
        for b, d, h, v, n in per_budget:
            iv = "n/a" if math.isnan(h) else f"[{d - h:+.4f}, {d + h:+.4f}]"
            out.append(f"| {m} | 1/{round(1 / b)} | {d:+.4f} | {iv} | {v} | {n} |")
    out.append("")
    out += [f"* **{m}: {answer}**" for m, (answer, _) in verdicts.items()]
    out.append("")
    return "\n".join(out)


def plot_basis(rows, path) -> None:
    rs = _of(rows, "basis")
    if not rs:
        return
    plt = study.pyplot()
    models = list(dict.fromkeys(r["config"]["model"] for r in rs))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    for ax, m in zip(axes[0], models):
        for arm, marker in (("per_layer", "o"), ("shared", "s")):
            cells = sorted(((b, c) for (mm, b, a), c in _by(rs, "model", "budget", "arm").items()
                            if mm == m and a == arm), key=lambda t: t[0])
            if cells:
                study.errorbars(ax, [np.mean([r["stored_bytes"] for r in c]) for _, c in cells],
                                [[r["test_accuracy"] for r in c] for _, c in cells], marker=marker,
                                label=arm.replace("_", "-") + " (fine-tuned)")
        dense = np.mean([r["dense_test_accuracy"] for r in rs if r["config"]["model"] == m])
        ax.axhline(dense, color="gray", ls="--", lw=1, label="trained dense net")
        study.finish_axes(ax, "stored bytes (file size)", "test accuracy", m)
    study.save_figure(fig, path)


# ----------------------------------------------------------------------------- denil


def denil_answers(rows) -> dict:
    """``{(model, dictionary): (largest fraction predicted within 1 point, its mean drop)}``."""
    cells = _by(_of(rows, "denil"), "model", "dictionary", "seen")
    out = {}
    for (m, d, f), cell in cells.items():
        if d is None:
            continue
        dense = cells.get((m, None, 1.0))
        if not dense:
            continue
        drop = np.mean([r["test_accuracy"] for r in dense]) - np.mean([r["test_accuracy"] for r in cell])
        frac = cell[0]["fraction_predicted"]
        best = out.get((m, d))
        if drop <= 0.01 and (best is None or frac > best[0]):
            out[(m, d)] = (frac, float(drop))
        elif best is None:
            out.setdefault((m, d), None)
    return out


def denil_section(rows) -> str:
    rs = _of(rows, "denil")
    if not rs:
        return ""
    out = ["## Denil: predicting the first layer\n",
           "The first layer's kernel W = U V with only V (the weights at a random fraction of the input pixels) "
           "learned and the rest predicted by kernel ridge regression: a squared-exponential kernel over pixel "
           "positions (`se`) or the inputs' empirical covariance (`empirical`, Denil's data-driven kernel); "
           "trained from scratch with the dense recipe. Test accuracy of the net read back from its file, mean "
           "+- std over seeds [95 % t-interval].\n",
           "| model | dictionary | pixels seen | first layer predicted | free params | stored bytes | test accuracy | drop |",
           "|---|---|---|---|---|---|---|---|"]
    cells = _by(rs, "model", "dictionary", "seen")
    for (m, d, f), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), -kv[0][2])):
        dense = cells.get((m, None, 1.0))
        drop = (np.mean([r["test_accuracy"] for r in dense]) - np.mean([r["test_accuracy"] for r in cell])) if dense else float("nan")
        out.append(f"| {m} | {d or 'dense'} | {f:g} | {cell[0]['fraction_predicted']:.1%} | "
                   f"{cell[0]['free_params']:,} | {np.mean([r['stored_bytes'] for r in cell]):,.0f} | "
                   f"{_cell([r['test_accuracy'] for r in cell])} | {drop:+.4f} |")
    out.append("")
    out.append(f"Decision rule: the largest fraction of the first layer predicted with a mean drop of at most 1 point. "
               f"Denil et al. (MNIST): more than {DENIL_PREDICTED:.0%} predicted with no drop.\n")
    for (m, d), best in sorted(denil_answers(rows).items(), key=lambda kv: (kv[0][0], kv[0][1])):
        out.append(f"* {m}, {d}: " + ("no predicted fraction within 1 point" if best is None else
                                      f"**{best[0]:.1%}** predicted (drop {best[1] * 100:+.2f} points)"))
    out.append("")
    out.append(_denil_shortfall(rows))
    return "\n".join(out)


def _denil_shortfall(rows) -> str:
    """Why our largest fraction is short of Denil's 95 %: the drop at the paper's fraction, and
    the trained layers' own predictability (the within-layer section's numbers)."""
    cells = _by(_of(rows, "denil"), "model", "dictionary", "seen")
    drops = []
    for (m, d, f), cell in sorted(cells.items(), key=lambda kv: str(kv[0])):
        dense = cells.get((m, None, 1.0))
        if d is None or not dense or cell[0]["fraction_predicted"] < DENIL_PREDICTED - 1e-3:
            continue
        if abs(cell[0]["fraction_predicted"] - DENIL_PREDICTED) < 0.01:
            drop = np.mean([r["test_accuracy"] for r in dense]) - np.mean([r["test_accuracy"] for r in cell])
            drops.append((f"{m} {d}", drop * 100))
    if not drops:
        return ""
    lo, hi = min(v for _, v in drops), max(v for _, v in drops)
    return ("Short of the paper: at 95 % predicted the drops are " + ", ".join(f"{n} {v:+.2f}" for n, v in drops)
            + " points. The "
            "section on within-layer prediction above says why we expect it: predicted from a quarter of "
            "its rows, a *trained* Fashion-MNIST first layer keeps most of its relative error (the table "
            "there; 1 would be no better than zeros). Its weights are not smooth over pixel positions, so a smoothness "
            "dictionary cannot carry them. The network has to learn features that such a dictionary "
            f"can express, and at 95 % that costs {lo:.1f} to {hi:.1f} points here. Two things may narrow "
            "the gap and were not tried: tuning the kernel's length scale (fixed at 3 pixels) and ridge "
            "on validation, and the paper's several columns, each with its own dictionary. The paper's numbers are for "
            "MNIST digits, whose strokes are smoother than garments' edges and textures; that is a "
            "hypothesis, not something measured here.\n")


def plot_denil(rows, path) -> None:
    rs = _of(rows, "denil")
    if not rs:
        return
    plt = study.pyplot()
    models = list(dict.fromkeys(r["config"]["model"] for r in rs))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    cells = _by(rs, "model", "dictionary", "seen")
    for ax, m in zip(axes[0], models):
        for d in dict.fromkeys(k[1] for k in cells if k[0] == m and k[1] is not None):
            curve = sorted((c[0]["fraction_predicted"], [r["test_accuracy"] for r in c])
                           for (mm, dd, f), c in cells.items() if mm == m and dd == d)
            study.errorbars(ax, [f for f, _ in curve], [a for _, a in curve], marker="o", label=d)
        dense = cells.get((m, None, 1.0))
        if dense:
            acc = np.mean([r["test_accuracy"] for r in dense])
            ax.axhline(acc, color="gray", ls="--", lw=1, label="dense")
            ax.axhline(acc - 0.01, color="gray", ls=":", lw=1, label="dense - 1 point")
        study.finish_axes(ax, "fraction of the first layer predicted", "test accuracy", m)
    study.save_figure(fig, path)


# ----------------------------------------------------------------------------- write


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    from experiments.redundancy import analysis_report, factored_report

    analysis_report.plot_spectra(rows, os.path.join(out, "spectra.png"))
    plot_basis(rows, os.path.join(out, "basis.png"))
    plot_denil(rows, os.path.join(out, "denil.png"))
    body = "\n".join(s for s in (analysis_report.analysis_section(rows), basis_section(rows), denil_section(rows),
                                 factored_report.bottleneck_section(rows), factored_report.denton_section(rows),
                                 answer_section(rows)) if s)
    table_rows = [{"kind": r["config"]["kind"], "model": r["config"]["model"], "seed": r["config"]["seed"],
                   "setting": setting(r["config"]), "test_accuracy": r["test_accuracy"],
                   "stored_bytes": r.get("stored_bytes", ""), "seconds": r.get("seconds", "")} for r in rows]
    return study.write_results(out, "redundancy", dataset, cfg.quick, table_rows, extra_md=body,
                               columns=("kind", "model", "seed", "setting", "test_accuracy", "stored_bytes", "seconds"))


def setting(c: dict) -> str:
    k = c["kind"]
    if k == "basis":
        return f"{c['arm']} 1/{round(1 / c['budget'])}"
    if k == "denil":
        return f"{c['dictionary'] or 'dense'} seen {c['seen']:g}"
    if k == "bottleneck":
        return f"{c['arm']} K={c['rank']}"
    if k == "denton":
        return f"{c['layer']} {c['rank']}"
    return ""


def answer_section(rows) -> str:
    verdicts = basis_verdicts(rows)
    if not verdicts:
        return ""
    lines = ["## The notes' question: is there capacity redundancy between layers?\n"]
    for m, (answer, per_budget) in verdicts.items():
        parts = ", ".join(f"1/{round(1 / b)}: {v} ({d * 100:+.2f} points)" for b, d, h, v, n in per_budget)
        lines.append(f"* **{m}: {answer}** by the pre-registered rule (shared basis vs per-layer SVD at equal "
                     f"stored bytes, after fine-tuning; {parts}).")
    lines.append("")
    return "\n".join(lines)
