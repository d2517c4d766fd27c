"""The lottery-ticket report: per (model, round, arm) means over seeds, the papers' claims
beside our measurement with the decision rules of :mod:`experiments.lottery.config`, and
two plots (:mod:`experiments.lottery.plots`); all computed from the rows."""

from __future__ import annotations

import math
import os

from scipy import stats

from wsjax import study

ARM_ORDER = ("dense", "ticket", "reinit", "random_mask")
LABELS = {"dense": "dense net", "ticket": "ticket (rewound)", "reinit": "same mask, random re-init",
          "random_mask": "random mask, same layer densities"}
BAND = (0.10, 0.212)  # "10-20 %" of the weights: the rounds whose weights remaining lies here (21.07 % included)
COLUMNS = ("model", "round", "weights_%", "arm", "seeds", "test_accuracy", "es_iteration", "test_accuracy_loss",
           "es_iteration_loss")
#: the papers' claims, in words (MNIST / CIFAR-10; nothing measured by us is typed in here)
CLAIMS = {
    "match": "Frankle & Carbin 2019: winning tickets at 10-20 % of the weights (and above) reach the dense "
             "net's test accuracy or higher",
    "earlier": "Frankle & Carbin 2019: above that size they learn faster (an earlier early-stopping iteration)",
    "reinit": "Frankle & Carbin 2019: the same mask re-initialised at random learns slower and does worse",
    "random_mask": "Frankle & Carbin 2019: randomly sampled sparse nets do worse than the tickets",
    "liu": "Liu et al. 2019: for unstructured pruning, training the pruned net from scratch matches on small "
           "data sets at moderate sparsity (the ticket's edge shows at high sparsity / small learning rates)",
}


interval = study.t_interval  # (mean, std, 95 % t half-width)


def difference(a, b) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and the half-width of its 95 % Welch t-interval (NaN below 2 values each)."""
    (ma, sa), (mb, sb) = study.mean_std(a), study.mean_std(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    if min(len(a), len(b)) < 2 or va + vb == 0:
        return ma - mb, float("nan") if min(len(a), len(b)) < 2 else 0.0
    dof = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    return ma - mb, float(stats.t.ppf(0.975, dof)) * math.sqrt(va + vb)


def cells(rows: list[dict]) -> dict:
    """``{(model, round, arm): [rows over seeds]}``."""
    out: dict = {}
    for r in rows:
        c = r["config"]
        out.setdefault((c["model"], c["round"], c["arm"]), []).append(r)
    return out


def _pm(xs, scale=1.0, digits=2) -> str:
    m, s, h = interval([scale * x for x in xs])
    ci = f" [{m - h:.{digits}f}, {m + h:.{digits}f}]" if not math.isnan(h) else ""
    return f"{m:.{digits}f} ± {s:.{digits}f}{ci}"


def table_rows(cell_map: dict) -> list[dict]:
    out = []
    for (model, r, arm), rs in sorted(cell_map.items(), key=lambda kv: (kv[0][0], kv[0][1], ARM_ORDER.index(kv[0][2]))):
        get = lambda k: [x[k] for x in rs]
        out.append({"model": model, "round": r, "weights_%": f"{100 * rs[0]['density']:.2f}", "arm": arm,
                    "seeds": len(rs), "test_accuracy": _pm(get("test_accuracy"), 100),
                    "es_iteration": _pm(get("es_iteration"), digits=0),
                    "test_accuracy_loss": _pm(get("test_accuracy_loss"), 100),
                    "es_iteration_loss": _pm(get("es_iteration_loss"), digits=0)})
    return out


def values(rs, key) -> list[float]:
    return [r[key] for r in rs]


def _ms(rs, key):
    return study.mean_std(values(rs, key))


def verdicts(cell_map: dict, model: str, metric: str = "test_accuracy", iteration: str = "es_iteration") -> list[dict]:
    """The decision rules at every round of ``model`` that has a ticket: one dict per round."""
    dense = cell_map.get((model, 0, "dense"))
    out = []
    for (m, r, arm), tickets in sorted(cell_map.items()):
        if m != model or arm != "ticket" or not dense:
            continue
        (dm, ds), (tm, ts) = _ms(dense, metric), _ms(tickets, metric)
        (di, dis), (ti, _) = _ms(dense, iteration), _ms(tickets, iteration)
        v = {"round": r, "density": tickets[0]["density"], "match": tm >= dm - ds, "beat": tm > dm + ds,
             "earlier": ti < di - dis, "gap": difference(values(tickets, metric), values(dense, metric)),
             "iteration_ratio": ti / di if di else float("nan")}
        for control in ("reinit", "random_mask"):
            rows = cell_map.get((model, r, control))
            if rows:
                cm, cs = _ms(rows, metric)
                v[control] = tm - cm > ts + cs
                v[control + "_gap"] = difference(values(tickets, metric), values(rows, metric))
        out.append(v)
    return out


def _band(vs, key) -> str:
    inside = [v for v in vs if BAND[0] <= v["density"] <= BAND[1] and key in v]
    if not inside:
        return "not measured (no round in the band)"
    held = sum(bool(v[key]) for v in inside)
    where = ", ".join(f"{100 * v['density']:.1f} %" for v in inside)
    return f"{'holds' if held == len(inside) else 'does not hold'} ({held} of {len(inside)} rounds: {where})"


def claims(cell_map: dict, model: str, criterion: str = "val accuracy") -> str:
    metric, iteration = ("test_accuracy", "es_iteration") if criterion == "val accuracy" else \
        ("test_accuracy_loss", "es_iteration_loss")
    vs = verdicts(cell_map, model, metric, iteration)
    if not vs:
        return ""
    d = cell_map[(model, 0, "dense")]
    lines = [f"### {model}, early stopping at the best {criterion}", "",
             f"Dense net: test accuracy {_pm([r[metric] for r in d], 100)} %, early-stopping iteration "
             f"{_pm([r[iteration] for r in d], digits=0)} (mean ± std [95 % CI], {len(d)} seeds).", "",
             f"- {CLAIMS['match']}. Ours: {_band(vs, 'match')}; beats (mean above dense mean + std): "
             f"{_band(vs, 'beat')}.",
             f"- {CLAIMS['earlier']}. Ours: {_band(vs, 'earlier')}.",
             f"- {CLAIMS['reinit']}. Ours (worse by more than both stds): {_band(vs, 'reinit')}.",
             f"- {CLAIMS['random_mask']}. Ours: {_band(vs, 'random_mask')}.",
             f"- {CLAIMS['liu']}. Ours: re-init within both stds of the ticket at "
             + (", ".join(f"{100 * v['density']:.1f} %" for v in vs if "reinit" in v and not v["reinit"]) or "no round")
             + "; worse at " + (", ".join(f"{100 * v['density']:.1f} %" for v in vs if v.get("reinit")) or "no round")
             + ".", "",
             "Differences in points, ± the half-width of their 95 % Welch t-interval:", "",
             "| weights % | ticket − dense | matches | beats | stops earlier | ticket / dense iteration "
             "| ticket − re-init | re-init worse | ticket − random mask | random mask worse |", "|" + "---|" * 10]
    def f(v, k):
        if k not in v:
            return ""
        m, h = v[k]
        return f"{100 * m:+.2f}" + (f" ± {100 * h:.2f}" if not math.isnan(h) else "")

    b = lambda v, k: ("yes" if v[k] else "no") if k in v else ""
    for v in vs:
        lines.append(f"| {100 * v['density']:.2f} | {f(v, 'gap')} | {b(v, 'match')} | {b(v, 'beat')} | "
                     f"{b(v, 'earlier')} | {v['iteration_ratio']:.2f} | {f(v, 'reinit_gap')} | {b(v, 'reinit')} | "
                     f"{f(v, 'random_mask_gap')} | {b(v, 'random_mask')} |")
    return "\n".join(lines) + "\n"


def notes(rows: list[dict], cfg, cell_map: dict, models) -> str:
    u = rows[0]["config"]
    lines = ["Plots: `accuracy_vs_weights.png`, `early_stop_vs_weights.png` (mean ± std bands over seeds; top row at the best validation accuracy, bottom row at the lowest validation loss).", "",
             f"Recipe: Adam {u['lr']:g} (constant), batch {u['batch_size']}, validation = the last {u['validation']:,} "
             f"training images, rewinding to iteration {u['rewind_iteration']}; "
             + ", ".join(f"{m} {dict(cfg.epochs)[m]} epochs, {dict(cfg.rounds)[m]} rounds" for m in models)
             + ". Test accuracy in %, mean ± std [95 % t-interval] over seeds, at the iteration of the best "
             "validation accuracy (`test_accuracy`, `es_iteration`) and of the lowest validation loss, Frankle & "
             "Carbin's criterion (`*_loss`). Validation accuracy tends to plateau long before the budget ends, so "
             "the iteration of its maximum is the noisier of the two; the lowest validation loss marks learning "
             "speed more sharply.", "",
             "How we read Liu et al.'s baseline: their structured result (the pruned architecture trained from "
             "scratch matches) has, for unstructured masks, the random re-init arm as its counterpart -- the "
             "ticket's architecture (its mask) trained from a fresh initialisation.", "", "## Claims", ""]
    for model in models:
        lines += [claims(cell_map, model), claims(cell_map, model, "val loss")]
    return "\n".join(lines) + "\n"


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    from experiments.lottery.plots import plot

    cell_map = cells(rows)
    models = [m for m in cfg.models if any(k[0] == m for k in cell_map)]
    plot(cell_map, models, [("test_accuracy", "test accuracy (%), best val accuracy"),
                            ("test_accuracy_loss", "test accuracy (%), lowest val loss")],
         os.path.join(out, "accuracy_vs_weights.png"), 100)
    plot(cell_map, models, [("es_iteration", "early-stopping iteration, best val accuracy"),
                            ("es_iteration_loss", "early-stopping iteration, lowest val loss")],
         os.path.join(out, "early_stop_vs_weights.png"))
    return study.write_results(out, "lottery", dataset, cfg.quick, table_rows(cell_map),
                               extra_md=notes(rows, cfg, cell_map, models), columns=COLUMNS)
