"""The baseline report: one row per dense net, its training curve, the expected floor."""

from __future__ import annotations

import os

from wsjax import study

COLUMNS = ("model", "seed", "test_accuracy", "free_params", "epochs", "seconds_per_epoch", "first_epoch_seconds",
           "seconds", "expected", "meets")


def summarise(row: dict, expected: dict) -> dict:
    import numpy as np

    history = row["history"]
    epoch_s = [h["seconds"] for h in history]
    floor = expected.get(row["config"]["model"])
    return {**row, "model": row["config"]["model"], "seed": row["config"]["seed"], "epochs": len(history),
            # the first epoch includes compilation; the steady state is the rest
            "seconds_per_epoch": float(np.mean(epoch_s[1:])) if len(epoch_s) > 1 else epoch_s[0],
            "first_epoch_seconds": epoch_s[0], "expected": floor if floor is not None else "",
            "meets": "" if floor is None else ("yes" if row["test_accuracy"] >= floor else "NO")}


def seeds_summary(table_rows: list[dict]) -> str:
    """Mean +- sample std of test accuracy and training time per model with 2 or more seeds."""
    import numpy as np

    by_model = {}
    for r in table_rows:
        by_model.setdefault(r["model"], []).append(r)
    lines = [f"| {m} | {len(rs)} | {np.mean([r['test_accuracy'] for r in rs]):.4f} +- "
             f"{np.std([r['test_accuracy'] for r in rs], ddof=1):.4f} | {np.mean([r['seconds'] for r in rs]):.0f} |"
             for m, rs in by_model.items() if len(rs) > 1]
    if not lines:
        return ""
    return ("Over seeds (mean +- sample std):\n\n| model | seeds | test accuracy | seconds a training |\n"
            "|---|---|---|---|\n" + "\n".join(lines) + "\n\n")


def plot(rows: list[dict], path: str, dataset: str) -> None:
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        h = r["history"]
        ax.plot([e["epoch"] for e in h], [e["eval_accuracy"] for e in h], marker="o", markersize=3,
                label=f"{r['config']['model']} seed {r['config']['seed']}")
    study.finish_axes(ax, "epoch", "test accuracy", f"dense baselines on {dataset}")
    study.save_figure(fig, path, dpi=120)


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    expected = dict(cfg.expected) if not cfg.quick else {}
    table_rows = [summarise(r, expected) for r in rows]
    plot(rows, os.path.join(out, "curves.png"), dataset)
    c = rows[0]["config"] if rows else {}
    notes = seeds_summary(table_rows) + ("Training curves: `curves.png`. Recipe: Adam, cosine decay from "
             f"{c.get('lr')} to {c.get('lr', 0) * c.get('final_lr_fraction', 0):g}, batch {c.get('batch_size')}, "
             + ", ".join(dict.fromkeys(f"{r['model']} {r['epochs']} epochs" for r in table_rows))
             + ". Each net is the `.msgpack` artifact of its row (`artifacts/<key>.msgpack`).\n")
    return study.write_results(out, "baseline", dataset, cfg.quick, table_rows, extra_md=notes, columns=COLUMNS)
