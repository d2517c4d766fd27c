"""The baseline report: one row per dense net, its training curve, the expected floor."""

from __future__ import annotations

import os

from wsjax import study

COLUMNS = ("model", "test_accuracy", "free_params", "epochs", "seconds_per_epoch", "first_epoch_seconds",
           "seconds", "expected", "meets")


def summarise(row: dict, expected: dict) -> dict:
    import numpy as np

    history = row["history"]
    epoch_s = [h["seconds"] for h in history]
    floor = expected.get(row["config"]["model"])
    return {**row, "model": row["config"]["model"], "epochs": len(history),
            # the first epoch includes compilation; the steady state is the rest
            "seconds_per_epoch": float(np.mean(epoch_s[1:])) if len(epoch_s) > 1 else epoch_s[0],
            "first_epoch_seconds": epoch_s[0], "expected": floor if floor is not None else "",
            "meets": "" if floor is None else ("yes" if row["test_accuracy"] >= floor else "NO")}


def plot(rows: list[dict], path: str, dataset: str) -> None:
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        h = r["history"]
        ax.plot([e["epoch"] for e in h], [e["eval_accuracy"] for e in h], marker="o", label=r["config"]["model"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"dense baselines on {dataset}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    expected = dict(cfg.expected) if not cfg.quick else {}
    table_rows = [summarise(r, expected) for r in rows]
    plot(rows, os.path.join(out, "curves.png"), dataset)
    c = rows[0]["config"] if rows else {}
    notes = ("Training curves: `curves.png`. Recipe: Adam, cosine decay from "
             f"{c.get('lr')} to {c.get('lr', 0) * c.get('final_lr_fraction', 0):g}, batch {c.get('batch_size')}, "
             + ", ".join(f"{r['model']} {r['epochs']} epochs" for r in table_rows)
             + ". Each net is the `.msgpack` artifact of its row (`artifacts/<key>.msgpack`).\n")
    return study.write_results(out, "baseline", dataset, cfg.quick, table_rows, extra_md=notes, columns=COLUMNS)
