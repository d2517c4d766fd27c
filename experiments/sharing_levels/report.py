"""The sharing-level study's report: the pre-registration, then every point, the pre-registered
verdicts and the Pareto plot, all computed from the store's rows (rules: ``preregistration.md``)."""

from __future__ import annotations

import math
import os

import numpy as np

from experiments.sharing_levels import config
from wsjax import study
from wsjax.io import atomic_write

PREREGISTRATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preregistration.md")
COLUMNS = ("kind", "role", "arm", "budget", "seed", "lr", "init_scale", "epochs", "free_params", "stored_bytes",
           "val_accuracy", "test_accuracy", "seconds")
MARGIN = 0.5  # points: rule 1's non-inferiority margin
NOT_YET: tuple = ()
PRUNING = ("pruned", "lottery")


def budget_label(b) -> str:
    if b is None:
        return "own size"
    return f"1/{round(1 / b)}" if abs(1 / b - round(1 / b)) < 1e-6 else f"{b:.3f}"


def settings_from(rows: list[dict]) -> dict:
    """``{arm: (lr, init_scale)}``: the tuning run with the best last-epoch validation accuracy
    (ties: the smaller learning rate, then the scale nearer 1)."""
    best = {}
    for r in rows:
        c = r["config"]
        rank = (-r["val_accuracy"], c["lr"], abs(np.log(c["init_scale"])))
        if c["arm"] not in best or rank < best[c["arm"]][0]:
            best[c["arm"]] = (rank, (c["lr"], c["init_scale"]))
    return {arm: setting for arm, (_, setting) in best.items()}


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


def lottery_md(rows: list[dict]) -> str:
    chains = lottery_rounds(rows)
    if not chains:
        return ""
    lines = ["## Lottery tickets (Frankle & Carbin)", "",
             "Each round prunes a fixed share of every layer's surviving kernel weights by magnitude, rewinds "
             "the survivors to the initialisation and trains them with the dense recipe. Test accuracy (%) of "
             f"the files, mean ± std over seeds; a budget takes, per seed, the round whose file is nearest it "
             f"(within {NEAREST}x).", "",
             "| round | kept | bytes / dense | seeds | test acc (%) | val acc (%) |", "|---|---|---|---|---|---|"]
    rounds = sorted({r for by in chains.values() for r in by})
    for k in rounds:
        rs = [by[k] for by in chains.values() if k in by]
        lines.append(f"| {k} | {np.mean([r['kept_fraction'] for r in rs]):.3f} | "
                     f"{np.mean([r['stored_bytes'] / r['dense_bytes'] for r in rs]):.4f} | {len(rs)} | "
                     f"{interval_text([100 * r['test_accuracy'] for r in rs])} | "
                     f"{np.mean([100 * r['val_accuracy'] for r in rs]):.2f} |")
    return "\n".join(lines) + "\n"


def _points(cell: dict, metric: str = "test_accuracy") -> list[float]:
    return [100 * r[metric] for _, r in sorted(cell.items())]


def interval_text(values) -> str:
    m, s, h = study.t_interval(values)
    return f"{m:.2f} ± {s:.2f}" + ("" if math.isnan(h) else f" [{m - h:.2f}, {m + h:.2f}]")


def paired(a: dict, b: dict) -> tuple[float, float, int]:
    """Mean and 95% half-width of (a - b) test accuracy in points over the seeds both have."""
    seeds = sorted(set(a) & set(b))
    m, _, h = study.t_interval([100 * (a[s]["test_accuracy"] - b[s]["test_accuracy"]) for s in seeds])
    return m, h, len(seeds)


def verdict(m: float, h: float, margin: float) -> str:
    """Rule 1 (``margin`` = 0.5) and, with ``margin`` = 0, rules 4 and 5."""
    if math.isnan(h):
        return "inconclusive"
    if margin == 0:
        return "better" if m - h > 0 else "worse" if m + h < 0 else "tied"
    return "better" if m - h > 0 else "as good" if m - h > -margin else "worse" if m + h < -margin else "inconclusive"


def _best_by_validation(cs: dict, arms, budget):
    """The arm of ``arms`` with the highest mean validation accuracy at ``budget``."""
    have = [a for a in arms if (a, budget) in cs]
    return max(have, key=lambda a: np.mean(_points(cs[(a, budget)], "val_accuracy")), default=None)


def cross_vs_within(cs: dict, budgets) -> list[tuple]:
    out = []
    for b in budgets:
        w, x = _best_by_validation(cs, config.WITHIN, b), _best_by_validation(cs, config.CROSS, b)
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


def settings_md(rows: list[dict]) -> str:
    tune = [r for r in rows if r["config"]["kind"] == "tune"]
    if not tune:
        return ""
    chosen = settings_from(tune)
    lines = ["## Tuning (validation, seed 0)", "",
             "Last-epoch validation accuracy (%) of each setting at the tuning budget; the chosen one in bold.", "",
             "| arm | budget | lr | init scale | val acc (%) |", "|---|---|---|---|---|"]
    for r in tune:
        c = r["config"]
        mark = "**" if chosen[c["arm"]] == (c["lr"], c["init_scale"]) else ""
        lines.append(f"| {c['arm']} | {budget_label(c['budget'])} | {mark}{c['lr']:g}{mark} | {c['init_scale']:g} | "
                     f"{mark}{100 * r['val_accuracy']:.2f}{mark} |")
    return "\n".join(lines) + "\n"


def points_md(cs: dict) -> str:
    lines = ["## Every point", "",
             "Test accuracy (%) of the nets read back from their files, mean ± std [95% t-interval] over the seeds; "
             "bytes: the mean file size.", "",
             "| arm | budget | role | seeds | free params | stored bytes | bytes / dense | test acc (%) |",
             "|---|---|---|---|---|---|---|---|"]
    for (arm, b), cell in sorted(cs.items(), key=lambda kv: (-(kv[0][1] or 2), kv[0][0])):
        rs = list(cell.values())
        role = rs[0]["config"].get("role", "point")
        by = np.mean([r["stored_bytes"] for r in rs])
        lines.append(f"| {arm} | {budget_label(b)} | {role} | {len(rs)} | {rs[0]['free_params']:,} | {by:,.0f} | "
                     f"{by / rs[0]['dense_bytes']:.4f} | {interval_text(_points(cell))} |")
    return "\n".join(lines) + "\n"


def rules_md(cs: dict, cfg) -> str:
    # the grid's budgets only: the controls' budgets (the tying arms' sizes) belong to rule 3
    budgets = sorted({b for (_, b) in cs if b is not None and any(abs(b - g) < 1e-12 for g in cfg.budgets)},
                     reverse=True)
    per_budget = cross_vs_within(cs, [b for b in budgets if any((a, b) in cs for a in config.CROSS)])
    lines = ["## Rule 1-2: cross-layer against within-layer hashing", "",
             "At each budget the cross-layer contender is the best of " + ", ".join(config.CROSS) + " and the "
             "within-layer one the best of " + ", ".join(config.WITHIN) + " by mean validation accuracy; the "
             f"difference is their test accuracy paired by seed (points, 95% t-interval; margin {MARGIN}).", "",
             "| budget | cross-layer | within-layer | cross - within | 95% interval | seeds | verdict |",
             "|---|---|---|---|---|---|---|"]
    for b, x, w, m, h, n, v in per_budget:
        iv = "(one seed)" if math.isnan(h) else f"[{m - h:+.2f}, {m + h:+.2f}]"
        lines.append(f"| {budget_label(b)} | {x} | {w} | {m:+.2f} | {iv} | {n} | {v} |")
    lines += ["", f"**Deep MLP: {model_verdict(per_budget)}** (rule 2: yes if as good or better at every budget, "
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
            lines.append(f"| {a} | {frac} | {interval_text(_points(cell))} | {m:+.2f} "
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
    dynamic = cs.get(("dynamic", None))
    if dynamic:
        rs = list(dynamic.values())
        depths = sorted(rs[0]["depth_test_accuracy"], key=int)
        lines += ["", "## DynamicNet (seed 002)", "",
                  f"One hidden layer reused a random 0-{rs[0]['config']['max_repeats']} times per training step "
                  f"({rs[0]['free_params']:,} parameters, {rs[0]['free_params'] / rs[0]['dense_params']:.3f} of the "
                  "dense net); test accuracy (%) at each fixed depth, mean ± std over seeds, and the depth chosen on "
                  "validation per seed.", "", "| repeats | " + " | ".join(depths) + " | chosen |",
                  "|---|" + "---|" * (len(depths) + 1),
                  "| test acc (%) | " + " | ".join(interval_text([100 * r["depth_test_accuracy"][d] for r in rs])
                                                   for d in depths)
                  + " | " + ", ".join(str(r["depth"]) for _, r in sorted(dynamic.items())) + " |"]
    shared, per_layer = cs.get(("soft_shared", None)), cs.get(("soft_per_layer", None))
    if shared and per_layer:
        m, h, n = paired(shared, per_layer)
        bytes_ratio = np.mean([shared[s]["stored_bytes"] / per_layer[s]["stored_bytes"]
                               for s in sorted(set(shared) & set(per_layer))])
        lines += ["", "## Soft sharing: one prior for all layers against one per layer", "",
                  "Ullrich et al.'s retraining from the dense point of each seed, snapped and stored; the same "
                  "settings for both, only the prior's scope differs.", "",
                  "| arm | seeds | stored bytes | nonzero | distinct values | test acc (%) |", "|---|---|---|---|---|---|"]
        for arm, cell in (("soft_shared", shared), ("soft_per_layer", per_layer)):
            rs = list(cell.values())
            lines.append(f"| {arm} | {len(rs)} | {np.mean([r['stored_bytes'] for r in rs]):,.0f} | "
                         f"{np.mean([r['nonzero_fraction'] for r in rs]):.3f} | "
                         f"{np.mean([r['distinct_values'] for r in rs]):.0f} | {interval_text(_points(cell))} |")
        lines += ["", f"shared - per layer: {m:+.2f} points "
                  f"{'' if math.isnan(h) else f'[{m - h:+.2f}, {m + h:+.2f}]'} over {n} seeds "
                  f"(**{verdict(m, h, 0)}**), at {bytes_ratio:.2f}x the per-layer file's bytes."]
    at = [b for b in budgets if abs(b - 1 / 64) < 1e-9]
    if at and ("narrow", at[0]) in cs:
        best = _best_by_validation(cs, config.HASHING, at[0])
        if best:
            m, h, n = paired(cs[(best, at[0])], cs[("narrow", at[0])])
            lines += ["", "## Rule 5: hashed against equal-size dense at 1/64", "",
                      f"{best} (best hashing arm on validation) - narrow: {m:+.2f} points "
                      f"{'' if math.isnan(h) else f'[{m - h:+.2f}, {m + h:+.2f}]'} over {n} seeds: "
                      f"**{verdict(m, h, 0)}** (HashedNets' claim: hashed beats equal-size dense at 1/64)."]
    return "\n".join(lines) + "\n"


def collisions_md(cs: dict) -> str:
    have = [(a, b) for (a, b) in cs if a in config.HASHING and b is not None]
    if not have:
        return ""
    b = min({b for _, b in have}, key=lambda v: abs(v - 1 / 8))
    lines = ["## Collision load", "",
             f"At {budget_label(b)}, seed {min(next(iter(cs.values())))} (from the hash itself): the mean number "
             "of virtual weights a layer's buckets serve (all layers counted), and the share of its buckets other "
             "layers read too.", "", "| arm | " + " | ".join(["layer", "load", "shared"]) + " |", "|---|---|---|---|"]
    for arm in config.HASHING:
        cell = cs.get((arm, b))
        if not cell:
            continue
        r = cell[min(cell)]
        for layer, v in sorted(r.get("collision_load", {}).items()):
            lines.append(f"| {arm} | {layer} | {v['load']:.1f} | {v['shared']:.2f} |")
    return "\n".join(lines) + "\n"


def pareto_plot(cs: dict, path: str) -> None:
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    arms = sorted({a for a, _ in cs}, key=lambda a: (a not in config.BUDGETED, a))
    markers = {a: m for a, m in zip(arms, "os^vD<>pP*hX8dH" * 2)}
    for arm in arms:
        keys = sorted((k for k in cs if k[0] == arm), key=lambda k: np.mean([r["stored_bytes"] for r in cs[k].values()]))
        x = [np.mean([r["stored_bytes"] for r in cs[k].values()]) for k in keys]
        study.errorbars(ax, x, [_points(cs[k]) for k in keys], marker=markers[arm], label=arm,
                        linestyle="-" if arm in config.BUDGETED else "none", markersize=5)
    ax.set_xscale("log")
    study.finish_axes(ax, "stored bytes (the files' sizes)", "test accuracy (%)",
                      "deep MLP 784-256x8-10: sharing levels at equal bytes")
    study.save_figure(fig, path)


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    cs = cells(rows, cfg.budgets)
    with open(PREREGISTRATION) as f:
        prereg = f.read()
    status = ["## Status of these results", "",
              f"{sum(r['config']['kind'] == 'point' for r in rows)} point rows and "
              f"{sum(r['config']['kind'] == 'tune' for r in rows)} tuning rows on {dataset}"
              f"{' (quick)' if getattr(cfg, 'quick', False) else ''}. This version of the study runs the deep MLP "
              "with every arm of the pre-registration; not yet built: " + ", ".join([f"`{a}`" for a in NOT_YET]
              + ["LeNet-5 and the ViT (the pre-registration's grid)"]) + ".", ""]
    body = "\n".join(status) + "\n" + settings_md(rows) + "\n" + points_md(cs) + "\n" + rules_md(cs, cfg)
    body += "\n" + lottery_md(rows) + "\n" + collisions_md(cs)
    if cs:
        pareto_plot(cs, os.path.join(out, "pareto_deep_mlp.png"))
        body += "\nPlot: `pareto_deep_mlp.png`.\n"
    table = study.write_results(out, "sharing_levels", dataset, getattr(cfg, "quick", False), rows, columns=COLUMNS)
    atomic_write(os.path.join(out, "results.md"),
                 (prereg + "\n\n# Results\n\n" + body + "\n## Every row\n\n" + table).encode())
    return body
