"""The sharing-level study's report sections for the arms outside the hashing grid: the
lottery chain, seed 002's DynamicNet, soft sharing's two priors and rule 5 (hashed against
equal-size dense at 1/64), computed from the store's rows (rules: ``preregistration.md``)."""

from __future__ import annotations

import math

import numpy as np

from experiments.sharing_levels import config
from wsjax.study import interval_text, paired, verdict


def points(cell: dict, metric: str = "test_accuracy") -> list[float]:
    """A ``{seed: row}`` cell's ``metric`` in points, by seed."""
    return [100 * r[metric] for _, r in sorted(cell.items())]


def lottery_md(rows: list[dict]) -> str:
    from experiments.sharing_levels.report import NEAREST, lottery_rounds

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



def sections_md(cs: dict, budgets) -> list[str]:
    """The DynamicNet, soft-sharing and rule-5 sections (lines), those whose rows exist."""
    from experiments.sharing_levels.report import _best_by_validation

    lines: list[str] = []
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
                         f"{np.mean([r['distinct_values'] for r in rs]):.0f} | {interval_text(points(cell))} |")
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
    return lines
