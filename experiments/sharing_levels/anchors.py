"""Issue 20's published anchors set beside this study's own measurements, one model at a time.

Their claims are as ``../shared/PAPERS.md`` reports them (other nets, other data: the shape of
a result, not a target). Ours are read from the model's rows, paired by seed (points of test
accuracy, 95 % t-intervals):

* ROAST (Desai, Zhou & Shrivastava, ICML 2023): one global block-hashed pool beats per-layer
  HashedNets and trains faster than element-wise hashing. Ours: rule 1's contenders read with
  a 0-point margin, and the training seconds of ``roast`` over ``hashed_pool``;
* STABLE-RPS (ICLR 2024): randomized sharing matches or beats pruning across rates, and ROAST
  is sensitive to its initialisation scale. Ours: rule 4, and each hashing arm's spread of
  validation accuracy over the tuned initialisation scales at its chosen learning rate;
* ALBERT (Lan et al. 2020): tying all layers costs 2.2 points (80.1 against 82.3);
* Takase & Kiyono (2021): M unique layers in sequence or cycle order beat tying all;
* MiniViT (Zhang et al. 2022) and Relaxed Recursive Transformers (Bae et al. 2024): small
  per-layer freedom (scale and shift; a LoRA) recovers most of what tying costs.
"""

from __future__ import annotations

import math

import numpy as np

from experiments.sharing_levels import config, tables
from experiments.sharing_levels.arm_names import HASHING
from wsjax.study import paired, verdict


def _pm(m: float, h: float) -> str:
    return f"{m:+.2f}" + ("" if math.isnan(h) else f" [{m - h:+.2f}, {m + h:+.2f}]")


def _counts(verdicts) -> str:
    n = len(verdicts)
    return ", ".join(f"{v} at {verdicts.count(v)}" for v in ("better", "tied", "worse", "inconclusive")
                     if v in verdicts) + f" of {n}"


def beats_reading(verdicts) -> str:
    """A "beats" claim read from per-budget verdicts (margin 0): ``holds`` (better everywhere),
    ``holds at some budgets`` (better somewhere, worse nowhere), ``mixed``, ``not shown`` (no
    budget better or worse), ``does not hold`` (worse somewhere, better nowhere)."""
    better, worse = "better" in verdicts, "worse" in verdicts
    if better and worse:
        return "mixed"
    if better:
        return "holds" if all(v == "better" for v in verdicts) else "holds at some budgets"
    return "does not hold" if worse else "not shown"


def matches_reading(verdicts) -> str:
    """A "matches or beats" claim: ``holds`` (better or tied everywhere), ``does not hold``
    (worse everywhere), ``mixed`` (worse somewhere), else ``inconclusive`` (one seed somewhere)."""
    if all(v in ("better", "tied") for v in verdicts):
        return "holds"
    if all(v == "worse" for v in verdicts):
        return "does not hold"
    return "mixed" if "worse" in verdicts else "inconclusive"


def _roast(cs: dict, budgets) -> list[str]:
    from experiments.sharing_levels.report import cross_vs_within

    out = []
    pairs = cross_vs_within(cs, budgets)
    if pairs:
        vs = [verdict(m, h, 0) for _, _, _, m, h, _, _ in pairs]
        ours = "; ".join(f"{tables.budget_label(b)}: {x} - {w} {_pm(m, h)}" for b, x, w, m, h, _, _ in pairs)
        out.append(f"| ROAST | one global pool beats per-layer HashedNets | {ours} ({_counts(vs)} budgets) "
                   f"| {beats_reading(vs)} |")
    ratios = [x["seconds"] / y["seconds"] for b in budgets if ("roast", b) in cs and ("hashed_pool", b) in cs
              for s in sorted(set(cs[("roast", b)]) & set(cs[("hashed_pool", b)]))
              for x, y in [(cs[("roast", b)][s], cs[("hashed_pool", b)][s])] if x.get("seconds") and y.get("seconds")]
    if ratios:
        r = float(np.exp(np.mean(np.log(ratios))))
        out.append(f"| ROAST | block hashing trains much faster than element-wise hashing | `roast` / `hashed_pool` "
                   f"training seconds: {r:.2f}x (geometric mean of {len(ratios)} paired nets; the wall time the rows "
                   f"record, machine-dependent: `benchmarks/hashed_step.py` times the steps side by side) "
                   f"| {'faster' if r < 0.9 else 'not faster here'} |")
    return out


def init_spread(rows: list[dict]) -> dict:
    """``{hashing arm: points}``: the spread (max - min) of last-epoch validation accuracy over
    the initialisation scales tuned at the arm's chosen learning rate."""
    tune = [r for r in rows if r["config"]["kind"] == "tune"]
    chosen = tables.settings_from(tune)
    out = {}
    for arm in HASHING:
        if arm not in chosen:
            continue
        vals = [100 * r["val_accuracy"] for r in tune
                if r["config"]["arm"] == arm and r["config"]["lr"] == chosen[arm][0]]
        if len(vals) > 1:
            out[arm] = max(vals) - min(vals)
    return out


def _stable_rps(rows: list[dict], cs: dict, budgets) -> list[str]:
    from experiments.sharing_levels.report import sharing_vs_pruning

    out = []
    pairs = sharing_vs_pruning(cs, budgets)
    if pairs:
        vs = [v for *_, v in pairs]
        ours = "; ".join(f"{tables.budget_label(b)}: {x} - {p} {_pm(m, h)}" for b, x, p, m, h, _, _ in pairs)
        out.append(f"| STABLE-RPS | randomized sharing matches or beats pruning across rates | {ours} "
                   f"({_counts(vs)} budgets) | {matches_reading(vs)} |")
    spread = init_spread(rows)
    if "roast" in spread:
        most = max(spread, key=spread.get)
        ours = ", ".join(f"{a} {v:.2f}" for a, v in spread.items())
        out.append(f"| STABLE-RPS | ROAST is sensitive to the initialisation scale | validation spread over the "
                   f"tuned scales at the chosen rate (points): {ours} | "
                   f"{'ROAST the most sensitive' if most == 'roast' else 'ROAST not the most sensitive here'} |")
    return out


#: what ``tied_all - dense`` says, by its verdict (margin 0)
COST_READING = {"worse": "tying costs", "tied": "no cost found", "better": "tying gains", "inconclusive": "inconclusive"}


def _tying(cs: dict, cfg) -> list[str]:
    dense, tied_all = cs.get((config.DENSE, None)), cs.get(("tied_all", None))
    if not (dense and tied_all):
        return []
    m, h, _ = paired(tied_all, dense)
    costs = verdict(m, h, 0)
    out = [f"| ALBERT | tying all layers costs 2.2 points (80.1 against 82.3) | `tied_all` - dense {_pm(m, h)} at "
           f"{cfg.tied_fraction('tied_all'):.3f} of the parameters | "
           f"{COST_READING[costs]} |"]
    for unique in (2, 3):
        cells = {o: cs.get((f"tied_{o}_{unique}", None)) for o in ("sequence", "cycle")}
        if not all(cells.values()):
            continue
        beats = [(o, *paired(c, tied_all)) for o, c in cells.items()]
        ours = "; ".join(f"{o} - tied_all {_pm(mm, hh)}" for o, mm, hh, _ in beats)
        mc, hc, _ = paired(cells["cycle"], cells["sequence"])
        vs = [verdict(mm, hh, 0) for _, mm, hh, _ in beats]
        out.append(f"| Takase & Kiyono | {unique} unique layers in sequence or cycle order beat tying all | {ours}; "
                   f"cycle - sequence {_pm(mc, hc)} | {beats_reading(vs)} |")
    lost = -m
    for arm, claim in (("tied_scale_shift", "MiniViT: a per-layer scale and shift"),
                       ("tied_lora_8", "Relaxed Recursive: a per-layer LoRA (rank 8)")):
        cell = cs.get((arm, None))
        if not cell:
            continue
        mm, hh, _ = paired(cell, tied_all)
        if costs == "inconclusive":
            ours, reading = f"{arm} - tied_all {_pm(mm, hh)}; one seed", "inconclusive"
        elif costs != "worse":
            ours, reading = f"{arm} - tied_all {_pm(mm, hh)}; tying all costs nothing measurable here", "nothing to recover"
        else:
            ours = f"{arm} - tied_all {_pm(mm, hh)}: {100 * mm / lost:.0f} % of the {lost:.2f} points tying lost"
            reading = "holds" if mm >= lost / 2 and verdict(mm, hh, 0) == "better" else "does not hold"
        out.append(f"| {claim.split(':')[0]} | {claim.split(': ')[1]} recovers most of what tying costs | {ours} "
                   f"(+{cfg.tied_params(arm) - cfg.tied_params('tied_all'):,} parameters) | {reading} |")
    return out


def anchors_md(rows: list[dict], cs: dict, cfg) -> str:
    """The anchors' table for one model ('' when none of its comparisons has rows yet)."""
    budgets = tables.grid_budgets(cs, cfg)
    lines = _roast(cs, budgets) + _stable_rps(rows, cs, budgets) + _tying(cs, cfg)
    if not lines:
        return ""
    head = ["## The published anchors beside ours", "",
            "Their claims as ../shared/PAPERS.md reports them (other nets and data: the shape of a result, not a "
            "target); ours from this model's rows, test accuracy paired by seed (points, 95% t-interval; a reading "
            "with a 0-point margin).", "", "| anchor | their claim | ours | reading |", "|---|---|---|---|"]
    return "\n".join(head + lines) + "\n"
