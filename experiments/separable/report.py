"""The separable study's report: counts, accuracy and time per arm, MobileNet's formula against
the count, seed 002's arithmetic, MobileNet's claims beside ours, the speed verdicts and the
plots, all computed from the store's rows (decision rules: ``config``)."""

from __future__ import annotations

import os

from experiments.separable import claims, config, plots
from wsjax import study
from wsjax.io import atomic_write
from wsjax.models.separable import scaled_width
from wsjax.study import mean_std

COLUMNS = ("arm", "block", "width_multiplier", "seed", "epochs", "params", "macs", "stored_bytes", "val_accuracy",
           "test_accuracy", "train_loss", "seconds")


def acc_cell(cell) -> str:
    m, s = mean_std([claims.points(v) for v in claims.values(cell)])
    return f"{m:.2f} ± {s:.2f}"


def ci_cell(cell) -> str:
    m, _, h = claims.interval([claims.points(v) for v in claims.values(cell)])
    return f"[{m - h:.2f}, {m + h:.2f}]" if h == h else "(one seed)"


def ratio_cell(r: dict) -> str:
    return f"{r['median']:.2f} [{r['q25']:.2f}, {r['q75']:.2f}]"


def _equal_width_separable(cells: dict) -> str | None:
    return next((a for a, c in cells.items() if c[0]["config"]["block"] == "separable"
                 and c[0]["config"]["width_multiplier"] == 1.0), None)


def arms_md(cells: dict, timed: dict | None, unit: dict | None) -> str:
    ref = cells[config.REFERENCE]
    seeds = "/".join(map(str, sorted({len(c) for c in cells.values()})))
    head = ["## Arms: counts, accuracy and time", "",
            f"Test accuracy over {seeds} seeds (mean ± std, 95% t-interval of the mean); params and "
            "multiply-adds (MACs, per example) from `wsjax.models.counting.count`; times: median over the "
            "interleaved rounds, ratios to `standard` taken within each round (median [quartiles]).", "",
            "| arm | widths | params | MACs | params / std | MACs / std | test acc (%) | 95% CI | vs standard | "
            "forward ms | step ms | forward / std | step / std |", "|---" * 13 + "|"]
    for arm, cell in cells.items():
        c, r = cell[0]["config"], cell[0]
        widths = [scaled_width(w, c["width_multiplier"]) for w in c["widths"]]
        t = (timed or {}).get(arm)
        times = (f"{1e3 * t['forward_median']:.2f} | {1e3 * t['step_median']:.1f} | {ratio_cell(t['forward_ratio'])} | "
                 f"{ratio_cell(t['step_ratio'])}") if t else " | | | "
        vs = "(reference)" if arm == config.REFERENCE else claims.compare(claims.values(cell), claims.values(ref))
        head.append(f"| {arm} | {', '.join(map(str, widths))} | {r['params']:,} | {r['macs']:,} | "
                    f"{r['params'] / ref[0]['params']:.3f} | {r['macs'] / ref[0]['macs']:.3f} | {acc_cell(cell)} | "
                    f"{ci_cell(cell)} | {vs} | {times} |")
    if unit:
        head += ["", f"Forward pass: batch {unit['forward_batch']} test images, {unit['forward_inner']} calls per "
                 f"measurement; training step: batch {unit['step_batch']}, Adam, {unit['step_inner']} chained steps "
                 f"per measurement; {unit['rounds']} rounds. 'vs standard': the matched-size rule (means apart by "
                 "more than the sum of the stds)."]
    return "\n".join(head) + "\n"


def formula_md(cells: dict) -> str:
    lines = ["## MobileNet's formula against the count", "",
             "Per separable block: the count's multiply-adds per output position (depthwise + pointwise) beside "
             "`k^2 N + N M`, the count of a standard `k x k` conv on the same input beside `k^2 N M`, and the "
             "ratio beside `1/M + 1/k^2` (Howard et al. 2017, Sec. 3.1; exact fractions).", "",
             "| arm | block | k | N | M | separable (count) | k²N + NM | standard (count) | k²NM | ratio | "
             "1/M + 1/k² | cut | exact |", "|---" * 13 + "|"]
    exact = []
    for arm, cell in cells.items():
        for b in claims.formula_rows(cell[0]):
            exact.append(b["exact"])
            lines.append(f"| {arm} | {b['block']} | {b['k']} | {b['N']} | {b['M']} | {b['separable']} | "
                         f"{b['k2N+NM']} | {b['standard']} | {b['k2NM']} | {float(b['ratio']):.4f} | "
                         f"{float(b['1/M+1/k2']):.4f} | {float(1 / b['ratio']):.2f}x | "
                         f"{'yes' if b['exact'] else 'NO'} |")
    if exact:
        lines += ["", f"- Verdict: the count is {'exact' if all(exact) else 'NOT exact'} for "
                  f"{'every' if all(exact) else 'some'} block ({sum(exact)} of {len(exact)} match the formula)."]
    return "\n".join(lines) + "\n"


def seed_002_md() -> str:
    s = claims.seed_002()
    shared, d = s["shared"], claims.SEED_002
    lines = ["## Seed 002's first layer: shared vs locally connected", "",
             f"Seed 002: a {d['kernel']}x{d['kernel']}x{d['maps']} first layer on a {d['side']}x{d['side']} grayscale "
             f"image has {d['shared']} shared weights, \"about 1.2 million\" without sharing. Counted "
             "(`counting.count`, no biases):", "", "| layer | weights | multiply-adds | weights / shared |",
             "|---|---|---|---|",
             f"| convolution (shared), SAME, stride 1 | {shared.params:,} | {shared.macs:,} | 1 |"]
    for name, c in s["local"].items():
        lines.append(f"| locally connected, {name} | {c.params:,} | {c.macs:,} | {c.params // shared.params:,} |")
    lines += ["", f"- The seed's 1.2 million is {s['outputs']:,} = {d['side']}² x {d['maps']}, one weight per output "
              f"unit: unshared {d['kernel']}x{d['kernel']} filters give exactly that only at stride {d['kernel']}; at "
              f"stride 1 ('SAME') they give {s['local']['SAME, stride 1'].params:,}, {d['kernel'] ** 2}x more. Sharing "
              "changes the weights, never the multiply-adds of the same grid."]
    return "\n".join(lines) + "\n"


def mobilenet_md(cells: dict) -> str:
    p, ref = claims.MOBILENET, cells[config.REFERENCE]
    sep_arm = _equal_width_separable(cells)
    lines = ["## MobileNet (Howard et al. 2017) beside ours", "",
             "| | paper (ImageNet; Sec. 3.1, Table 4) | ours (Fashion-MNIST) |", "|---|---|---|"]
    if sep_arm is None:
        return "\n".join(lines[:2]) + "\n(no separable arm at equal widths)\n"
    sep = cells[sep_arm]
    cuts = {a: [float(1 / b["ratio"]) for b in claims.formula_rows(c[0])] for a, c in cells.items()
            if c[0]["config"]["block"] == "separable"}
    wider = "".join(f"; {a}: {min(v):.2f}-{max(v):.2f}x" for a, v in cuts.items() if a != sep_arm and v)
    macs_cut, params_cut = ref[0]["macs"] / sep[0]["macs"], ref[0]["params"] / sep[0]["params"]
    (mr, _), (ms, _) = (mean_std([claims.points(v) for v in claims.values(c)]) for c in (ref, sep))
    cost, holds = claims.accuracy_cost(claims.values(ref), claims.values(sep), macs_cut)
    s, q = p["standard"], p["separable"]
    lines += [f"| 3x3 conv cost cut (per block) | {p['cut_3x3'][0]}-{p['cut_3x3'][1]}x | {sep_arm}: "
              f"{min(cuts[sep_arm]):.2f}-{max(cuts[sep_arm]):.2f}x{wider} |",
              f"| whole net, multiply-adds | {s['mult_adds'] / 1e6:,.0f}M -> {q['mult_adds'] / 1e6:,.0f}M "
              f"({s['mult_adds'] / q['mult_adds']:.1f}x) | {ref[0]['macs'] / 1e6:.2f}M -> {sep[0]['macs'] / 1e6:.2f}M "
              f"({macs_cut:.1f}x) |",
              f"| whole net, params | {s['params'] / 1e6:.1f}M -> {q['params'] / 1e6:.1f}M "
              f"({s['params'] / q['params']:.1f}x) | {ref[0]['params']:,} -> {sep[0]['params']:,} "
              f"({params_cut:.1f}x) |",
              f"| accuracy, standard -> separable | {s['accuracy']} -> {q['accuracy']} "
              f"({q['accuracy'] - s['accuracy']:+.1f} points) | {mr:.2f} -> {ms:.2f} ({-cost:+.2f} points) |"]
    for arm, cell in cells.items():
        c = cell[0]["config"]
        if c["block"] == "separable" and c["width_multiplier"] != 1.0:
            m = mean_std([claims.points(v) for v in claims.values(cell)])[0]
            lines.append(f"| separable at width x{c['width_multiplier']:g} "
                         f"({cell[0]['macs'] / ref[0]['macs']:.2f}x the standard MACs) | | {m:.2f} "
                         f"({m - mr:+.2f} points; {claims.compare(claims.values(cell), claims.values(ref))}) |")
    lines += ["", f"- Verdict: at equal widths the separable net costs {cost:.2f} points for a {macs_cut:.1f}x cut in "
              f"multiply-adds; MobileNet's trade {'holds' if holds else 'does not hold'} here in shape (rule: cost <= "
              f"{claims.PAPER_COST_POINTS:.1f} points + the sum of the stds, cut >= {claims.MIN_MACS_CUT:g}x)."]
    return "\n".join(lines) + "\n"


def speed_md(row: dict | None) -> str:
    lines = ["## Does the smaller count run faster here?", ""]
    if row is None:
        return "\n".join(lines) + "(no timing row yet)\n"
    arms, m = row["arms"], row["machine"]
    lines += [f"Measured side by side in one process: {m['backend']} backend, {m['cpus']} CPUs, {m['machine']}, jax "
              f"{m['jax']}; 1-minute load average {m['load_1min']:.2f} before and {row['load_1min_after']:.2f} after "
              "(a shared machine). Rule: faster iff the upper quartile of the per-round ratio is below 1; follows "
              "the count iff the counted ratio lies between the quartiles.", "",
              "| arm | MACs / std (counted) | forward / std (measured) | forward | follows count | "
              "step / std (measured) | step | follows count |", "|---" * 8 + "|"]
    answers = []
    ref_macs = arms[config.REFERENCE]["macs"]
    for arm, a in arms.items():
        if arm == config.REFERENCE:
            continue
        counted = a["macs"] / ref_macs
        f, s = claims.speed(a["forward_ratio"]), claims.speed(a["step_ratio"])
        ff, fs = (claims.follows_count(a[k], counted) for k in ("forward_ratio", "step_ratio"))
        lines.append(f"| {arm} | {counted:.3f} | {ratio_cell(a['forward_ratio'])} | {f} | {'yes' if ff else 'no'} | "
                     f"{ratio_cell(a['step_ratio'])} | {s} | {'yes' if fs else 'no'} |")
        if counted < 1:
            answers.append(f"{arm} ({counted:.2f}x the MACs): forward {f}, training step {s}")
    lines += ["", "- Verdict (arms with fewer multiply-adds than `standard`): " + ("; ".join(answers) or "none") + "."]
    return "\n".join(lines) + "\n"


def convergence_md(cells: dict, cfg) -> str:
    lines = ["## Convergence", "", f"Recipe: Adam, cosine decay from {cfg.lr:g} to {cfg.lr * cfg.final_lr_fraction:g} "
             f"over {cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.train_examples:,} training images; the final "
             f"epoch is scored. Rule: converged iff the mean validation accuracy gains at most "
             f"{claims.PLATEAU_POINTS} points over the last quarter of the epochs.", "",
             "| arm | final val acc (%) | best epoch's (%) | gain over the last quarter (points) | converged | "
             "s / epoch |", "|---|---|---|---|---|---|"]
    for arm, cell in cells.items():
        final = mean_std([claims.points(r["val_curve"][-1]) for r in cell])[0]
        best = mean_std([claims.points(max(r["val_curve"])) for r in cell])[0]
        per_epoch = mean_std([s for r in cell for s in r["seconds_per_epoch"][1:] or r["seconds_per_epoch"]])[0]
        gain = claims.plateau_gain(cell)
        lines.append(f"| {arm} | {final:.2f} | {best:.2f} | {gain:.2f} | {'yes' if claims.converged(cell) else 'no'} | "
                     f"{per_epoch:.1f} |")
    lines += ["", "Plots: `accuracy_vs_cost.png`, `time_ratios.png`, `val_curves.png`."]
    return "\n".join(lines) + "\n"


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    cells = claims.train_cells(rows, [a[0] for a in cfg.arms])
    timing = claims.timing_row(rows)
    if config.REFERENCE not in cells:
        raise ValueError(f"the report needs rows of the reference arm {config.REFERENCE!r}")
    plots.accuracy_vs_cost(cells, os.path.join(out, "accuracy_vs_cost.png"))
    plots.val_curves(cells, os.path.join(out, "val_curves.png"))
    if timing is not None:
        plots.time_ratios(timing, os.path.join(out, "time_ratios.png"))
    summary = "\n".join([arms_md(cells, timing and timing["arms"], timing and timing["config"]), formula_md(cells),
                         seed_002_md(), mobilenet_md(cells), speed_md(timing), convergence_md(cells, cfg)])
    train_rows = [r for r in rows if r["config"]["kind"] == "train"]
    study.write_results(out, "separable", dataset, cfg.quick, rows, columns=COLUMNS)  # results.json (every row)
    table = study.markdown_table(train_rows, COLUMNS)
    title = f"# separable on {dataset}{' (quick)' if cfg.quick else ''}\n\n"
    atomic_write(os.path.join(out, "results.md"), (title + summary + "\n## Every run\n\n" + table).encode())
    return summary
