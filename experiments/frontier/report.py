"""The frontier's report: per level and variant the mean over seeds, our frontier against the
peer's at each drop budget, what each ingredient is worth, and one plot per model, all
computed from the store's rows and the peer's json (decision rule: ``config``)."""

from __future__ import annotations

import json
import os
from collections import defaultdict

from experiments.frontier import config
from wsjax import study
from wsjax.io import atomic_write
from wsjax.study.report import mean_std


def describe(c: dict) -> str:
    if c["kind"] == "peer_ours":
        return f"{c['model']} peer {c['sparsity']:.0%} sparsity, {c['clusters']} clusters, stored by wsjax"
    p = c["prune"]
    return f"{p['model']} {c['variant']:<10} kept {p['level']:.2f} seed {p['seed']}"


def summary(row: dict) -> str:
    drop = f" (drop {row['drop_points']:+.2f})" if "drop_points" in row else ""
    return f"test {row['test_accuracy']:.4f}{drop}, {row['stored_bytes']:,} B, {row['compression']:.1f}x"


def cells(rows: list[dict]) -> dict:
    """``{(model, variant, level): [row per seed]}``; ``no_huffman`` from the best rows' fixed widths."""
    out = defaultdict(list)
    for r in rows:
        c = r["config"]
        if c.get("kind") != "compress":
            continue
        key = (c["prune"]["model"], c["variant"], c["prune"]["level"])
        out[key].append(r)
        if c["variant"] == "best":
            out[(key[0], "no_huffman", key[2])].append({**r, "stored_bytes": r["fixed_bytes"],
                                                         "compression": r["dense_bytes"] / r["fixed_bytes"]})
    return dict(out)


def level_stats(group: list[dict]) -> dict:
    comp, drop = mean_std([r["compression"] for r in group]), mean_std([r["drop_points"] for r in group])
    acc, size = mean_std([r["test_accuracy"] for r in group]), mean_std([r["stored_bytes"] for r in group])
    return {"seeds": len(group), "compression": comp, "drop": drop, "accuracy": acc, "bytes": size,
            "kept": sum(r["kept_fraction"] for r in group) / len(group)}


def frontier(cl: dict, model: str, variant: str, budget: float, seeds: int = 1, levels=None):
    """``(level, stats)`` of the largest mean compression with mean drop <= budget, or None;
    only cells with at least ``seeds`` seeds (and, given ``levels``, at those levels) count."""
    best = None
    for (m, v, level), group in cl.items():
        if m == model and v == variant and len(group) >= seeds and (levels is None or level in levels):
            s = level_stats(group)
            if s["drop"][0] <= budget and (best is None or s["compression"][0] > best[1]["compression"][0]):
                best = (level, s)
    return best


def ours_variant(cl: dict, model: str) -> str:
    """The pre-registered choice of *our* pipeline: ``best`` or ``distilled``, whichever has
    the higher mean validation accuracy over the (level, seed) pairs both have."""
    def by_pair(v):
        return {(lv, r["config"]["prune"]["seed"]): r["val_accuracy"]
                for (m, vv, lv), g in cl.items() if m == model and vv == v for r in g}

    best, distilled = by_pair("best"), by_pair("distilled")
    common = sorted(set(best) & set(distilled))
    if not common:
        return "best"
    return "distilled" if sum(distilled[k] for k in common) > sum(best[k] for k in common) else "best"


def peer_best(points: list[dict], budget: float, key: str = "compression"):
    within = [p for p in points if p["drop_points"] <= budget]
    return max(within, key=lambda p: p[key]) if within else None


def peer_points(peer: dict, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The peer's points as its users count them (zipped TFLite) and as wsjax stores its weights."""
    zipped = [{**p, "compression": p["compression"]} for p in peer["points"]]
    ours = []
    for r in rows:
        c = r["config"]
        if c.get("kind") == "peer_ours" and c["model"] == peer["model"]:
            ours.append({**r, "sparsity": c["sparsity"], "clusters": c["clusters"],
                         "drop_points": 100 * (peer["dense_test_accuracy"] - r["test_accuracy"])})
    return zipped, ours


def _pm(ms, digits=2, unit=""):
    return f"{ms[0]:.{digits}f}{unit} ± {ms[1]:.{digits}f}"


def model_section(model: str, cl: dict, peer: dict | None, rows: list[dict], cfg: config.Config) -> str:
    lines = [f"## {model}\n"]
    dense = {r["config"]["prune"]["seed"]: r["dense_accuracy"] for k, g in cl.items() if k[0] == model for r in g}
    lines.append("Dense nets (one per seed): "
                 + ", ".join(f"seed {s} {100 * d:.2f} %" for s, d in sorted(dense.items())) + ".\n")
    lines.append(level_table(cl, model))
    zipped, ours = peer_points(peer, rows) if peer else ([], [])
    if peer:
        lines.append(f"\nPeer ({peer['peer']}, seed {peer['seed']}, dense {100 * peer['dense_test_accuracy']:.2f} %, "
                     f"its dense net trained by wsjax's dense recipe, {peer['dense_epochs']} epochs):\n")
        lines.append(study.markdown_table([
            {"sparsity": p["sparsity"], "clusters": p["clusters"], "test acc % (TFLite)": 100 * p["test_accuracy"],
             "drop (pts)": p["drop_points"], "zipped TFLite bytes": p["zipped_bytes"], "compression": p["compression"],
             "stored by wsjax: bytes": next((o["stored_bytes"] for o in ours if o["sparsity"] == p["sparsity"]), None),
             "wsjax compression": next((o["compression"] for o in ours if o["sparsity"] == p["sparsity"]), None)}
            for p in zipped], ["sparsity", "clusters", "test acc % (TFLite)", "drop (pts)", "zipped TFLite bytes",
                               "compression", "stored by wsjax: bytes", "wsjax compression"]))
    chosen = ours_variant(cl, model)
    verdict, ratio = against_peer(cl, model, chosen, zipped, ours, cfg.seeds)
    lines.append(f"\n### Our frontier against the peer's\n\nOurs: `{chosen}` (of `best` and `distilled`, the higher "
                 "mean validation accuracy over the levels and seeds both have).\n")
    lines.append(study.markdown_table(verdict, list(verdict[0])))
    coded = []
    for b in config.BUDGETS:
        f, po = frontier(cl, model, chosen, b, cfg.seeds), peer_best(ours, b)
        if f is not None and po is not None:
            coded.append(f"{f[1]['compression'][0] / po['compression']:.2f} within {b:g}")
    lines.append(f"\n**Verdict ({model})**: {verdict_text(ratio)}. Only cells with all "
                 f"{cfg.seeds} seeds count. Caveat: ours is the best of {len(cfg.levels.get(model, ()))} levels "
                 "(each a mean over seeds) read at the budget's edge, the peer one seed at its "
                 f"{len(zipped)} points with its guides' 10 pruning epochs and 16 clusters: the finer grid favours "
                 "ours.\n" if peer else f"\n**Verdict ({model})**: no peer run in the store yet.\n")
    if peer:
        lines.append("Against the peer's own weights stored by wsjax's codecs (its training, our file format: "
                     "what the training alone is worth), ours / peer = "
                     + (", ".join(coded) if coded else "nothing to compare (no peer point within a budget)") + ".\n")
    pz = peer_best(zipped, 0.5)
    if pz is not None:
        lines.append(limits_md(cl, model, chosen, 1.5 * pz["compression"]))
    worth = []
    for v in [x for x in cfg.variants if x != "best"] + ["no_huffman"]:
        row = {"ablation": v}
        for b in (0.5, 1.0):  # every ablation drops one ingredient from best: compared at its own levels
            lv = cfg.levels_of(model, v) if v != "no_huffman" else None
            f, a = frontier(cl, model, "best", b, cfg.seeds, lv), frontier(cl, model, v, b, cfg.seeds, lv)
            row[f"compression within {b}"] = None if a is None else round(a[1]["compression"][0], 1)
            row[f"best / it, within {b}"] = None if a is None or f is None else round(
                f[1]["compression"][0] / a[1]["compression"][0], 2)
        worth.append(row)
    lines.append("\n### What each ingredient is worth (bytes at the same accuracy budget)\n")
    lines.append(study.markdown_table(worth, list(worth[0])))
    return "\n".join(lines)


def level_table(cl: dict, model: str) -> str:
    """Per variant and level of ``model``: seeds, accuracy, drop, bytes and compression."""
    table = []
    for (m, v, level), group in sorted(cl.items(), key=lambda kv: (kv[0][1] != "best", kv[0][1], -kv[0][2])):
        if m == model:
            s = level_stats(group)
            table.append({"variant": v, "level": level, "kept": round(s["kept"], 4), "seeds": s["seeds"],
                          "test acc %": _pm(tuple(100 * x for x in s["accuracy"])), "drop (pts)": _pm(s["drop"]),
                          "bytes": f"{s['bytes'][0]:,.0f} ± {s['bytes'][1]:,.0f}",
                          "compression": _pm(s["compression"], 1, "x")})
    return study.markdown_table(table, ["variant", "level", "kept", "seeds", "test acc %", "drop (pts)", "bytes",
                                        "compression"])


def against_peer(cl: dict, model: str, chosen: str, zipped: list, ours: list, seeds: int):
    """``(table rows, {budget: ours / peer or None})``: ``chosen``'s frontier (cells with at least
    ``seeds`` seeds) against the peer's zipped points, its weights in wsjax's codecs beside."""
    rows, ratio = [], {}
    for b in config.BUDGETS:
        f, pz, po = frontier(cl, model, chosen, b, seeds), peer_best(zipped, b), peer_best(ours, b)
        ratio[b] = None if f is None or pz is None else f[1]["compression"][0] / pz["compression"]
        rows.append({"budget (pts)": b, "ours: level": None if f is None else f[0],
                     "ours: compression": None if f is None else _pm(f[1]["compression"], 1, "x"),
                     "ours: drop": None if f is None else _pm(f[1]["drop"]),
                     "peer (zipped TFLite)": None if pz is None else f"{pz['compression']:.1f}x",
                     "peer (wsjax codecs)": None if po is None else f"{po['compression']:.1f}x",
                     "ours / peer": None if ratio[b] is None else round(ratio[b], 2)})
    return rows, ratio


def verdict_text(ratio: dict) -> str:
    """The decision rule read on ``{budget: ours / peer}``: 1.5x at 0.5 points, ahead at every budget."""
    ahead = [r for r in ratio.values() if r is not None]
    met = ratio.get(0.5) is not None and ratio[0.5] >= 1.5 and all(r > 1 for r in ahead)
    at = "undecided (no point of one side within 0.5 points)" if ratio.get(0.5) is None else f"{ratio[0.5]:.2f}"
    return (f"at a drop of at most 0.5 points ours / peer = {at} (goal >= 1.5), ahead at "
            f"{sum(r > 1 for r in ahead)} of {len(ahead)} budgets with a point on both sides: "
            f"**{'met' if met else 'not met'}**")


def limits_md(cl: dict, model: str, variant: str, target: float) -> str:
    """Where the drop and the bytes go at the densest level of ``variant`` whose mean
    compression reaches ``target`` (1.5x the peer's best within 0.5 points)."""
    levels = sorted(((lv, g) for (m, v, lv), g in cl.items() if m == model and v == variant), key=lambda t: -t[0])
    hit = next(((lv, g) for lv, g in levels if level_stats(g)["compression"][0] >= target), None)
    if hit is None:
        return f"\nNo level of `{variant}` reaches {target:.1f}x.\n"
    lv, g = hit
    n = len(g)
    prune = sum(100 * (r["dense_accuracy"] - r["pruned_accuracy"]) for r in g) / n
    quant = sum(100 * (r["pruned_accuracy"] - r["test_accuracy"]) for r in g) / n
    parts = {"index codes": "bytes_index_codes", "value codes": "bytes_weight_codes"}
    split = {k: sum(sum(x.get(f, 0) for x in r["layers"]) for r in g) / n for k, f in parts.items()}
    total = sum(r["stored_bytes"] for r in g) / n
    split["biases, codebooks, tables, headers"] = total - sum(split.values())
    return (f"\n### What limits it\n\nThe goal (1.5x the peer within 0.5 points) is {target:.1f}x; the densest level "
            f"of `{variant}` that reaches it keeps {lv:.2f} of the kernel weights ({level_stats(g)['compression'][0]:.1f}x, "
            f"{n} seeds) and loses {prune + quant:.2f} points on average: {prune:.2f} in pruning (dense -> pruned net) "
            f"and {quant:+.2f} in quantization (pruned -> stored file). Its {total:,.0f} bytes: "
            + ", ".join(f"{k} {v:,.0f} ({100 * v / total:.0f} %)" for k, v in split.items()) + ".\n")


def write(rows: list[dict], peers: dict, cfg: config.Config, out: str, dataset: str) -> str:
    from experiments.frontier import confirm, plot

    main = [r for r in rows if not cfg.is_confirm(r)]
    cl = cells(main)
    os.makedirs(out, exist_ok=True)
    sections = []
    for model in cfg.models:
        if any(k[0] == model for k in cl):
            sections.append(model_section(model, cl, peers.get(model), main, cfg))
            plot.frontier(model, cl, peers.get(model), main, os.path.join(out, f"frontier_{model}.png"))
        confirm_rows = [r for r in rows if cfg.is_confirm(r)]
        section = confirm.section(model, confirm_rows, peers.get(model), main, cfg)
        pick = confirm.chosen(cells(confirm_rows), model, cfg.confirm["candidates"]) if section else None
        if pick:
            name = f"frontier_{model}_confirmation.png"
            plot.frontier(model, cells(confirm_rows), peers.get(model), main, os.path.join(out, name), emphasis=pick,
                          title=" (confirmation)")
            section += f"\nPlot: `{name}` (the confirmation's seeds; ours in bold).\n"
        sections.append(section)
    sections = [s for s in sections if s]
    verdicts = [line for sec in sections for line in sec.splitlines()
                if line.startswith(("**Verdict", "**Confirmation verdict"))]
    answer = ("## The answer\n\nWhere a confirmation on fresh seeds exists it decides for its model (it was "
              "pre-registered after the full run missed the goal there; `experiments/frontier/config.py`):\n\n"
              + "\n".join(f"- {v}" for v in verdicts) + "\n\n") if verdicts else ""
    head = ("Every byte count is the size of a file the study wrote (the peer: its zipped .tflite); accuracy "
            "is the model read back from it. Mean ± sample std over seeds; a drop is against each seed's own "
            "dense net. Decision rule and recipe: `experiments/frontier/config.py`.\n\n")
    body = f"# frontier on {dataset}{' (quick)' if cfg.quick else ''}\n\n" + head + answer + "\n\n".join(sections)
    atomic_write(os.path.join(out, "results.md"), body.encode())
    payload = {"experiment": "frontier", "dataset": dataset, "quick": cfg.quick, "rows": rows, "peers": peers}
    atomic_write(os.path.join(out, "results.json"), json.dumps(payload, indent=1, default=float).encode())
    return body
