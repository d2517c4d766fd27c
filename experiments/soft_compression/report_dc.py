"""The report's comparisons with Deep Compression, from the rows of its store: its sweep over
pruning levels (Han's bits) and its bit-width study, for the same dense nets as ours."""

from __future__ import annotations

import os

from wsjax import study
from wsjax.results import ROWS, Store, config_key
from wsjax.study import pruned_nets


def folder(cfg) -> str:
    return study.study_folder(pruned_nets.STUDY, cfg.quick)


def _shown(path: str) -> str:
    """``path`` relative to the checkout when inside it (results.md names no machine's paths)."""
    return os.path.relpath(path, study.ROOT) if path.startswith(study.ROOT + os.sep) else path


def points(cfg, dataset: str, seed: int) -> list[dict]:
    """Deep Compression's ``sweep`` and ``bits`` points (flattened rows, ``kind`` telling them
    apart) whose pruned nets start from our dense nets; none when its store does not exist."""
    if not os.path.isfile(os.path.join(folder(cfg), ROWS)):
        return []
    store, dense = Store(folder(cfg)), {m: config_key(cfg.dense(m, dataset, seed)) for m in cfg.models}
    return [p for kind in ("sweep", "bits")
            for p in pruned_nets.points(kind, cfg.quick, store=store, dataset=dataset, seed=seed)
            if p.get("model") in dense and config_key(p["level"]["dense"]) == dense[p["model"]]]


def _point(p) -> str:
    bits = f", fc {p['fc_bits']} bits" if p["kind"] == "bits" else ""
    return f"{100 * p['test_accuracy']:.2f} %, {p['compression']:.1f}x{bits}"


def _soft(views):
    return [v for v in views if v["method"] != "dense"]


def budget_summary(views, dc, budget, paper) -> str:
    """Per model, the highest ratio within ``budget`` points of dense on the test set (test-set
    selection, like Deep Compression's)."""
    md = [f"## At the {budget:g}-point budget (test accuracy, single seed)\n",
          "| model | soft sharing (Ullrich, + fine-tune) | DC pruning + soft sharing | Deep Compression "
          "| paper (MNIST) |",
          "|---|---|---|---|---|"]

    def best(pts):
        p = max((p for p in pts if p["drop_points"] <= budget + 1e-9), key=lambda p: p["compression"], default=None)
        if p is None:
            return "none"
        return f"{p['compression']:.1f}x ({100 * p['test_accuracy']:.2f} %, drop {p['drop_points']:.2f})"

    for model in sorted({v["model"] for v in views}):
        soft = [v for v in _soft(views) if v["model"] == model]
        md.append(f"| {model} | {best([v for v in soft if v['start'] is None])} | "
                  f"{best([v for v in soft if v['start'] is not None])} | "
                  f"{best([p for p in dc if p['model'] == model])} | {paper[model][0]:g}x |")
    md.append("\nEvery row is one seed and one point of accuracy is 1 % of the test images, so differences of a few "
              "hundredths of a point are noise; the ratios are exact.")
    return "\n".join(md) + "\n"


def density_limit(dc, budget, dataset, paper) -> str:
    """Deep Compression's pruned nets (masked retraining, before quantization): accuracy against
    the fraction of weights kept, beside the paper's nonzero fraction at its ratio."""
    md = ["## Why the paper's ratios are out of reach here\n",
          "Deep Compression's pruning levels (magnitude pruning with masked retraining, no quantization yet) "
          "measure how accuracy falls with the fraction of weights kept:\n",
          "| model | kept | pruned test acc | drop (points) | paper's nonzero fraction at its ratio |",
          "|---|---|---|---|---|"]
    facts = []
    for model in sorted({p["model"] for p in dc if p["kind"] == "sweep"}):
        levels = sorted((p for p in dc if p["model"] == model and p["kind"] == "sweep"),
                        key=lambda p: -p["kept_fraction"])
        drops = [100 * (p["dense_accuracy"] - p["pruned_accuracy"]) for p in levels]
        for i, (p, drop) in enumerate(zip(levels, drops)):
            ref = f"{100 * paper[model][2]:.1f} % ({paper[model][0]:g}x)" if i == 0 else ""
            md.append(f"| {model} | {100 * p['kept_fraction']:.1f} % | {100 * p['pruned_accuracy']:.2f} | "
                      f"{drop:.2f} | {ref} |")
        ok = [p["kept_fraction"] for p, drop in zip(levels, drops) if drop <= budget + 1e-9]
        facts.append((f"{model} stays within {budget:g} points down to {100 * min(ok):.1f} % kept" if ok
                      else f"{model} is never within {budget:g} points once pruned")
                     + f" and loses {drops[-1]:.2f} points at {100 * levels[-1]['kept_fraction']:.1f} %, "
                     f"while the paper's ratio kept {100 * paper[model][2]:.1f} %")
    md.append(
        f"\nOn {dataset}, " + "; ".join(facts) + ". Both quantizers (Deep Compression's k-means and the mixture) "
        "code only the surviving weights, and each survivor costs its position as well as its value, so at the "
        "densities this budget allows neither can reach the paper's MNIST ratios. The mixture's own zero "
        "component (Ullrich's recipe, the rows without a DC start) prunes further; whether its sparse runs stay "
        "within the budget is in the tables above. What a quantizer can still win is fewer bits for the same "
        "survivors.")
    return "\n".join(md) + "\n"


def compare(views, dc, where) -> str:
    """Each soft row beside Deep Compression's best ratio at no lower test accuracy."""
    md = ["## Against Deep Compression (same model, same or better accuracy)\n",
          f"Deep Compression points: the `sweep` and `bits` rows of its store (`{where}`; test accuracy of the "
          "file-loaded model). For each soft row: Deep Compression's highest ratio among its points with test "
          "accuracy >= the soft row's.\n",
          "| model | soft method | soft acc | soft ratio | DC best ratio at >= that acc | DC point (acc, ratio) "
          "| verdict |",
          "|---|---|---|---|---|---|---|"]
    for r in _soft(views):
        mine = [p for p in dc if p["model"] == r["model"]]
        pts = [p for p in mine if p["test_accuracy"] >= r["test_accuracy"]]
        beaten = [p for p in mine if p["test_accuracy"] <= r["test_accuracy"] and p["compression"] <= r["compression"]]
        head = f"| {r['model']} | {r['method']} | {100 * r['test_accuracy']:.2f} | {r['compression']:.1f}x | "
        if beaten:  # soft is at least as accurate and at least as small as these DC points
            top = max(beaten, key=lambda p: p["test_accuracy"])
            best = f"{max(p['compression'] for p in pts):.1f}x" if pts else "none"
            md.append(head + f"{best} | {_point(top)} | "
                      "soft (as accurate or more, and smaller than this DC point) |")
        elif not pts:
            md.append(head + "none (every DC point is less accurate) | | soft |")
        else:
            best = max(pts, key=lambda p: p["compression"])
            # every point in pts is at least as accurate, so DC dominates when its ratio is no lower
            winner = ("Deep Compression (as accurate or more, and smaller)" if best["compression"] >= r["compression"]
                      else "neither: DC more accurate, soft smaller")
            md.append(head + f"{best['compression']:.1f}x | {_point(best)} | {winner} |")
    return "\n".join(md) + "\n"


def same_start(views, dc) -> str:
    """Per pruned start: Deep Compression's k-means of that net beside the soft rows that
    quantize the same surviving weights."""
    md = []
    starts = {}
    for v in _soft(views):
        if v["start"] is not None:
            starts.setdefault(config_key(v["start"]), []).append(v)
    for key, mine in starts.items():
        same = sorted((p for p in dc if config_key(p["level"]) == key), key=lambda p: -p["fc_bits"])
        if not same:
            continue
        md += [f"\n**{mine[0]['model']}, pruned at level x{mine[0]['prune_scale']:g}** "
               f"({100 * same[0]['pruned_accuracy']:.2f} % before quantization; conv layers at 8 bits in Deep "
               "Compression):\n", "| quantizer | test acc | drop (points) | compression |", "|---|---|---|---|"]
        md += [f"| Deep Compression k-means, fc {p['fc_bits']} bits | {100 * p['test_accuracy']:.2f} | "
               f"{p['drop_points']:.2f} | {p['compression']:.1f}x |" for p in same]
        md += [f"| {v['method']} | {100 * v['test_accuracy']:.2f} | {v['drop_points']:.2f} | {v['compression']:.1f}x |"
               for v in mine]
    return "\n## Same pruned net, two quantizers\n" + "\n".join(md) + "\n" if md else ""


def sections(views, dc, cfg, dataset, paper) -> str:
    if not dc:
        return (f"## Against Deep Compression\n\n(no Deep Compression rows for these dense nets in "
                f"`{_shown(folder(cfg))}`: run `wsjax run deep_compression{' --quick' if cfg.quick else ''}` "
                "for them)\n")
    return (budget_summary(views, dc, cfg.budget, paper) + "\n" + density_limit(dc, cfg.budget, dataset, paper) + "\n"
            + compare(views, dc, _shown(folder(cfg))) + same_start(views, dc))


def best_within(points, budget) -> float:
    """The highest compression among ``points`` within ``budget`` test points of dense; 1.0
    when none qualifies (the dense net itself is within any budget)."""
    return max((p["compression"] for p in points if p["drop_points"] <= budget + 1e-9), default=1.0)


def seeds_section(by_seed: dict, budget: float) -> str:
    """``by_seed``: ``{seed: (soft views, DC points)}`` of the seeds whose units are all done.
    Per model, each method's best ratio within the budget per seed, mean +- std over seeds,
    and the pre-registered verdict on the paired differences (see the config's docstring)."""
    md = [f"## Across seeds: the {budget:g}-point budget (test accuracy)\n",
          "Per seed: the highest ratio within the budget of that seed's dense net (1.0x when none qualifies); soft "
          "= the better of Ullrich's recipe and DC pruning + soft sharing. Verdict (fixed before seeds 1 and 2 "
          "finished): soft beats DC iff the 95 % t-interval of the paired differences (soft - DC) lies above 0, "
          "refuted iff below 0, else undecided.\n",
          "| model | seeds | soft alone | DC pruning + soft | Deep Compression | soft - DC (mean [95 % CI]) | verdict |",
          "|---|---|---|---|---|---|---|"]
    models = sorted({v["model"] for views, _ in by_seed.values() for v in views})
    for model in models:
        alone, pruned, dc_best, diffs, seeds = [], [], [], [], []
        for seed, (views, dc) in sorted(by_seed.items()):
            soft = [v for v in _soft(views) if v["model"] == model]
            mine = [p for p in dc if p["model"] == model]
            if not soft or not mine:
                continue
            seeds.append(seed)
            alone.append(best_within([v for v in soft if v["start"] is None], budget))
            pruned.append(best_within([v for v in soft if v["start"] is not None], budget))
            dc_best.append(best_within(mine, budget))
            diffs.append(max(alone[-1], pruned[-1]) - dc_best[-1])
        if not seeds:
            continue
        cell = lambda xs: "{:.1f} +- {:.1f}x".format(*study.mean_std(xs))  # noqa: E731
        m, _, h = study.t_interval(diffs)
        if len(diffs) < 2:
            ci, verdict = f"{m:+.1f}x", "one seed: no interval"
        else:
            ci = f"{m:+.1f}x [{m - h:+.1f}, {m + h:+.1f}]"
            verdict = "soft beats DC" if m - h > 0 else "refuted: DC beats soft" if m + h < 0 else "undecided"
        per_seed = ", ".join(f"{s}: {d:+.1f}" for s, d in zip(seeds, diffs))
        md.append(f"| {model} | {len(seeds)} ({per_seed}) | {cell(alone)} | {cell(pruned)} | {cell(dc_best)} "
                  f"| {ci} | {verdict} |")
    return "\n".join(md) + "\n"
