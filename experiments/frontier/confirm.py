"""The frontier's confirmation on fresh seeds: the candidates for *ours* against the peer and,
paired by seed, against ``distilled`` (decision rule: ``config``'s module docstring)."""

from __future__ import annotations

from experiments.frontier import config, report
from wsjax import study
from wsjax.study.report import paired, verdict


def chosen(cl: dict, model: str, candidates) -> str | None:
    """The pre-registered pick: the candidate with the higher mean validation accuracy over its
    (level, seed) cells; None while a candidate has no row."""
    means = {}
    for v in candidates:
        vals = [r["val_accuracy"] for (m, vv, _), g in cl.items() if m == model and vv == v for r in g]
        if not vals:
            return None
        means[v] = sum(vals) / len(vals)
    return max(candidates, key=lambda v: means[v])


def against_control(cl: dict, model: str, variant: str, control: str = "distilled") -> list[dict]:
    """Per level: ``variant - control`` in test accuracy points, paired by seed, 95 % interval."""
    out = []
    for (m, v, level), group in sorted(cl.items(), key=lambda kv: -kv[0][2]):
        if m == model and v == variant and (m, control, level) in cl:
            a = {r["config"]["prune"]["seed"]: r for r in group}
            b = {r["config"]["prune"]["seed"]: r for r in cl[(m, control, level)]}
            d, h, n = paired(a, b)
            out.append({"level": level, "seeds": n, f"{variant} - {control} (pts)": f"{d:+.2f} ± {h:.2f}",
                        "reading": verdict(d, h, 0.0)})
    return out


def section(model: str, rows: list[dict], peer: dict | None, main_rows: list[dict], cfg: config.Config) -> str:
    """The confirmation's markdown for ``model`` ('' when it has no confirmation rows)."""
    cl = report.cells(rows)
    if cfg.confirm is None or not any(k[0] == model for k in cl):
        return ""
    seeds = cfg.confirm["seeds"]
    lines = [f"## {model}: confirmation on fresh seeds {', '.join(map(str, seeds))}\n",
             "Pre-registered in `experiments/frontier/config.py` before this run; the candidates were "
             "suggested by the full run's test numbers, so only these seeds are evidence.\n",
             report.level_table(cl, model)]
    pick = chosen(cl, model, cfg.confirm["candidates"])
    if pick is None:
        lines.append("\nNot every candidate has a row yet: no verdict.\n")
        return "\n".join(lines)
    zipped, ours = report.peer_points(peer, main_rows) if peer else ([], [])
    table, ratio = report.against_peer(cl, model, pick, zipped, ours, len(seeds))
    lines.append(f"\nOurs in the confirmation: `{pick}` (of {', '.join(f'`{c}`' for c in cfg.confirm['candidates'])}, "
                 "the higher mean validation accuracy).\n")
    lines.append(study.markdown_table(table, list(table[0])))
    lines.append(f"\n**Confirmation verdict ({model})**: {report.verdict_text(ratio)}"
                 + (" (no peer run)" if not peer else "") + f"; only cells with all {len(seeds)} seeds count.\n")
    for v in cfg.confirm["candidates"]:
        ctl = against_control(cl, model, v)
        if ctl:
            lines.append(f"\n`{v}` against `distilled` on the same seeds (is the change itself worth it?):\n")
            lines.append(study.markdown_table(ctl, list(ctl[0])))
    return "\n".join(lines)
