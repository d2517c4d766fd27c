"""The sharing-level study's report: the pre-registration, then every point, the pre-registered
verdicts and the Pareto plot, all computed from the store's rows (rules: ``preregistration.md``)."""

from __future__ import annotations

import math
import os

import numpy as np

from experiments.sharing_levels import arm_names, arms, config, nets
from experiments.sharing_levels.anchors import anchors_md
from experiments.sharing_levels.arms import lottery_md, points
from experiments.sharing_levels.tables import budget_label, collisions_md, grid_budgets, points_md, settings_md
from wsjax import study
from wsjax.io import atomic_write
from wsjax.study import interval_text, paired, verdict

PREREGISTRATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preregistration.md")
COLUMNS = ("kind", "role", "arm", "budget", "seed", "lr", "init_scale", "epochs", "free_params", "stored_bytes",
           "val_accuracy", "test_accuracy", "seconds")
MARGIN = 0.5  # points: rule 1's non-inferiority margin
PRUNING = ("pruned", "lottery")


#: a lottery round stands for a budget when its file is within this factor of the budget's bytes
#: (20 % of the survivors per round puts a round within sqrt(1.25) of any budget it spans)
NEAREST = 1.25


def cells(rows: list[dict], budgets=None) -> dict:
    """``{(arm, budget): {seed: row}}`` of the point rows (controls included); the lottery's
    rounds enter at each of the grid's ``budgets`` (default: those of the budgeted points)
    through :func:`lottery_cells`."""
    out: dict = {}
    for r in rows:
        c = r["config"]
        if c["kind"] == "point" and c.get("role") != "round":
            out.setdefault((c["arm"], c["budget"]), {})[c["seed"]] = r
    if budgets is None:
        budgets = {r["config"]["budget"] for r in rows if r["config"].get("role") == "point"} - {None}
    out.update(lottery_cells(rows, sorted(budgets, reverse=True)))
    return out


def lottery_rounds(rows: list[dict]) -> dict:
    """``{seed: {round: row}}`` of the lottery's rows."""
    out: dict = {}
    for r in rows:
        c = r["config"]
        if c["kind"] == "point" and c["arm"] == config.LOTTERY:
            out.setdefault(c["seed"], {})[c["round"]] = r
    return out


def lottery_cells(rows: list[dict], budgets) -> dict:
    """``{('lottery', b): {seed: row}}``: per seed, the round whose file's fraction of the dense
    bytes is nearest ``b`` (in ratio), where one is within :data:`NEAREST` of it."""
    out: dict = {}
    for seed, by_round in lottery_rounds(rows).items():
        for b in budgets:
            ratio = lambda r: abs(math.log(r["stored_bytes"] / r["dense_bytes"] / b))  # noqa: E731
            best = min(by_round.values(), key=ratio)
            if ratio(best) <= math.log(NEAREST):
                out.setdefault((config.LOTTERY, b), {})[seed] = best
    return out


def _best_by_validation(cs: dict, arms, budget):
    """The arm of ``arms`` with the highest mean validation accuracy at ``budget``."""
    have = [a for a in arms if (a, budget) in cs]
    return max(have, key=lambda a: np.mean(points(cs[(a, budget)], "val_accuracy")), default=None)


def cross_vs_within(cs: dict, budgets) -> list[tuple]:
    out = []
    for b in budgets:
        w, x = _best_by_validation(cs, arm_names.WITHIN, b), _best_by_validation(cs, arm_names.CROSS, b)
        if w and x:
            m, h, n = paired(cs[(x, b)], cs[(w, b)])
            out.append((b, x, w, m, h, n, verdict(m, h, MARGIN)))
    return out


def sharing_vs_pruning(cs: dict, budgets) -> list[tuple]:
    """Rule 4 per budget: ``(budget, sharing arm, pruning arm, mean, half-width, seeds, verdict)``."""
    out = []
    for b in budgets:
        x, p = _best_by_validation(cs, config.HASHING, b), _best_by_validation(cs, PRUNING, b)
        if x and p:
            m, h, n = paired(cs[(x, b)], cs[(p, b)])
            out.append((b, x, p, m, h, n, verdict(m, h, 0)))
    return out


def model_verdict(per_budget) -> str:
    v = [p[-1] for p in per_budget]
    if not v:
        return "no points yet"
    return "yes" if all(x in ("as good", "better") for x in v) else "no" if "worse" in v else "mixed"


def rules_md(cs: dict, cfg) -> str:
    budgets = grid_budgets(cs, cfg)  # the controls' budgets (the tying arms' sizes) belong to rule 3
    per_budget = cross_vs_within(cs, [b for b in budgets if any((a, b) in cs for a in arm_names.CROSS)])
    lines = ["## Rule 1-2: cross-layer against within-layer hashing", "",
             "At each budget the cross-layer contender is the best of " + ", ".join(arm_names.CROSS) + " and the "
             "within-layer one the best of " + ", ".join(arm_names.WITHIN) + " by mean validation accuracy; the "
             f"difference is their test accuracy paired by seed (points, 95% t-interval; margin {MARGIN}).", "",
             "| budget | cross-layer | within-layer | cross - within | 95% interval | seeds | verdict |",
             "|---|---|---|---|---|---|---|"]
    for b, x, w, m, h, n, v in per_budget:
        iv = "(one seed)" if math.isnan(h) else f"[{m - h:+.2f}, {m + h:+.2f}]"
        lines.append(f"| {budget_label(b)} | {x} | {w} | {m:+.2f} | {iv} | {n} | {v} |")
    lines += ["", f"**{nets.LABELS[cfg.model]}: {model_verdict(per_budget)}** (rule 2: yes if as good or better at every budget, "
              "no if worse at one or more, mixed otherwise)."]
    dense = cs.get((config.DENSE, None))
    tying = [a for a in config.TYING if (a, None) in cs]
    if tying and dense:
        lines += ["", "## Rule 3: tying", "",
                  "Each tying variant against the untied dense net (the accuracy tying costs) and against the "
                  "within-layer control (`hashed_layer`) and the pool at the tied net's parameter fraction (rule 1).",
                  "", "| variant | fraction of dense | test acc (%) | - dense | vs hashed_layer at its size | "
                  "vs hashed_pool at its size |", "|---|---|---|---|---|---|"]
        for a in tying:
            cell = cs[(a, None)]
            m, h, _ = paired(cell, dense)
            frac = round(cfg.tied_fraction(a), 4)
            vs = []
            for ctl in config.CONTROLS:
                other = cs.get((ctl, frac))
                if other:
                    mm, hh, _ = paired(cell, other)
                    vs.append(f"{mm:+.2f} ({verdict(mm, hh, MARGIN)})")
                else:
                    vs.append("")
            lines.append(f"| {a} | {frac} | {interval_text(points(cell))} | {m:+.2f} "
                         f"{'' if math.isnan(h) else f'[{m - h:+.2f}, {m + h:+.2f}]'} | {vs[0]} | {vs[1]} |")
    per_budget = sharing_vs_pruning(cs, budgets)
    if per_budget:
        lines += ["", "## Rule 4: sharing against pruning", "",
                  "At each budget the best hashing arm and the better of " + ", ".join(PRUNING) + " (each chosen "
                  "by mean validation accuracy), test accuracy paired by seed (points, 95% t-interval; margin 0). "
                  "`pruned` starts from the trained dense net of its seed (the hashing arms train from scratch "
                  "for as many epochs as its retraining takes).", "",
                  "| budget | sharing | pruning | sharing - pruning | 95% interval | seeds | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for b, x, w, m, h, n, v in per_budget:
            iv = "(one seed)" if math.isnan(h) else f"[{m - h:+.2f}, {m + h:+.2f}]"
            lines.append(f"| {budget_label(b)} | {x} | {w} | {m:+.2f} | {iv} | {n} | {v} |")
    lines += arms.sections_md(cs, budgets)
    return "\n".join(lines) + "\n"


TITLES = {"deep_mlp": "deep MLP 784-256x8-10", "lenet5": "LeNet-5 (Caffe variant)",
          "vit": "ViT (7x7 patches, width 64, 4 blocks)"}


def pareto_plot(cs: dict, path: str, model: str = "deep_mlp") -> None:
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    arms = sorted({a for a, _ in cs}, key=lambda a: (a not in config.BUDGETED, a))
    markers = {a: m for a, m in zip(arms, "os^vD<>pP*hX8dH" * 2)}
    for arm in arms:
        keys = sorted((k for k in cs if k[0] == arm), key=lambda k: np.mean([r["stored_bytes"] for r in cs[k].values()]))
        x = [np.mean([r["stored_bytes"] for r in cs[k].values()]) for k in keys]
        study.errorbars(ax, x, [points(cs[k]) for k in keys], marker=markers[arm], label=arm,
                        linestyle="-" if arm in config.BUDGETED else "none", markersize=5)
    ax.set_xscale("log")
    study.finish_axes(ax, "stored bytes (the files' sizes)", "test accuracy (%)",
                      f"{TITLES[model]}: sharing levels at equal bytes")
    study.save_figure(fig, path)


def model_md(rows: list[dict], cfg, out: str) -> str:
    """One model's results: tuning, every point, the rules' verdicts, the published anchors beside
    them, the lottery chain, the collision load and its Pareto plot (``pareto_<model>.png``), from that model's rows."""
    cs = cells(rows, cfg.budgets)
    body = settings_md(rows) + "\n" + points_md(cs) + "\n" + rules_md(cs, cfg) + "\n" + anchors_md(rows, cs, cfg)
    body += "\n" + lottery_md(rows) + "\n" + collisions_md(cs)
    if cs:
        name = f"pareto_{cfg.model}.png"
        pareto_plot(cs, os.path.join(out, name), cfg.model)
        body += f"\nPlot: `{name}`.\n"
    return body


def verdicts_md(by_model: dict, cfgs) -> str:
    """One line per model with rows: rule 2's answer and rule 4's, budget by budget."""
    lines = ["## Verdicts per model (details and intervals in each model's section)", "",
             "| model | point rows | cross-layer as good as within-layer (rule 2) | by budget | sharing against "
             "pruning (rule 4), by budget |", "|---|---|---|---|---|"]
    for c in cfgs:
        rs = by_model[c.model]
        if not rs:
            continue
        cs = cells(rs, c.budgets)
        budgets = grid_budgets(cs, c)
        rule2 = cross_vs_within(cs, budgets)
        rule4 = sharing_vs_pruning(cs, budgets)
        label = lambda per: ", ".join(f"{budget_label(p[0])} {p[-1]}" for p in per) or "no points yet"  # noqa: E731
        lines.append(f"| {nets.LABELS[c.model]} | {sum(r['config']['kind'] == 'point' for r in rs)} | "
                     f"{model_verdict(rule2)} | {label(rule2)} | {label(rule4)} |")
    return "\n".join(lines) + "\n"


def write(rows: list[dict], cfgs, out: str, dataset: str) -> str:
    """results.md (the pre-registration, then per model its results) and results.json;
    ``cfgs``: the study's configs (one per model) or one config."""
    cfgs = [cfgs] if isinstance(cfgs, config.Config) else list(cfgs)
    with open(PREREGISTRATION) as f:
        prereg = f.read()
    quick = any(c.quick for c in cfgs)
    by_model = {c.model: [r for r in rows if r["config"].get("model", "deep_mlp") == c.model] for c in cfgs}
    counts = "; ".join(f"{nets.LABELS[m]}: {sum(r['config']['kind'] == 'point' for r in rs)} point rows and "
                       f"{sum(r['config']['kind'] == 'tune' for r in rs)} tuning rows" for m, rs in by_model.items())
    status = ["## Status of these results", "",
              f"{counts} on {dataset}{' (quick)' if quick else ''}. This version of the study runs the deep MLP "
              "with every arm of the pre-registration, LeNet-5 with the arms that apply to it but the lottery "
              "and soft arms (`experiments/sharing_levels/config.py`: `lenet5`) and the ViT with the hashing, "
              "narrow, pruned and tying arms (`vit`). A model with no section below has no rows yet.", ""]
    parts = [f"# {nets.LABELS[c.model]}\n\n" + model_md(by_model[c.model], c, out)
             for c in cfgs if by_model[c.model]]
    body = "\n".join(status) + "\n" + verdicts_md(by_model, cfgs) + "\n" + "\n".join(parts)
    table = study.write_results(out, "sharing_levels", dataset, quick, rows, columns=COLUMNS)
    atomic_write(os.path.join(out, "results.md"),
                 (prereg + "\n\n# Results\n\n" + body + "\n## Every row\n\n" + table).encode())
    return body
