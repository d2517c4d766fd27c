"""The sharing-level study's descriptive tables: the tuning choices, every point, and the
collision load per layer, computed from the store's rows."""

from __future__ import annotations

import numpy as np

from experiments.sharing_levels import config
from experiments.sharing_levels.arms import points
from wsjax.study import interval_text


def budget_label(b) -> str:
    if b is None:
        return "own size"
    return f"1/{round(1 / b)}" if abs(1 / b - round(1 / b)) < 1e-6 else f"{b:.3f}"


def grid_budgets(cs: dict, cfg) -> list[float]:
    """The grid's budgets that have cells, largest first (the controls' budgets, the tying
    arms' sizes, are not the grid's)."""
    return sorted({b for (_, b) in cs if b is not None and any(abs(b - g) < 1e-12 for g in cfg.budgets)},
                  reverse=True)


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
                     f"{by / rs[0]['dense_bytes']:.4f} | {interval_text(points(cell))} |")
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
