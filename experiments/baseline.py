"""Dense reference nets: LeNet-300-100 and LeNet-5 (Caffe) trained with the standard recipe.

Run: ``python experiments/baseline.py [--quick]``. Every compression experiment starts from
the nets this script trains (``experiments/common.pretrained``), so the dense accuracy each
compression is measured against is the one reported here.

Expected (full run, Fashion-MNIST, 2 CPU cores): LeNet-300-100 >= 0.885 and LeNet-5 >= 0.905
test accuracy.
"""

from __future__ import annotations

import json
import os
import time

import common

from wsjax.sharing import count_params
from wsjax.train import classifier, evaluate

MODELS = ("lenet300100", "lenet5")


def main(argv=None):
    args = common.parse_args("baseline", __doc__.splitlines()[0], argv=argv, models=MODELS)
    _, test = common.dataset_splits(args.dataset, args.quick, args.seed)
    rows = []
    for name in MODELS:
        t0 = time.perf_counter()
        model, params = common.pretrained(name, args.dataset, args.seed, args.quick)
        wall = time.perf_counter() - t0
        hist_path = common.pretrained_path(name, args.dataset, args.seed, args.quick).replace(
            ".msgpack", ".history.json"
        )
        with open(hist_path) as f:
            history = json.load(f)
        _, eval_fn = classifier(lambda th, x, m=model: m.apply({"params": th}, x))
        acc = evaluate(eval_fn, params, *test)["accuracy"]
        epoch_s = [h["seconds"] for h in history]
        n = count_params(params)
        rows.append(
            {
                "model": name,
                "method": "dense",
                "test_accuracy": acc,
                "free_params": n,
                "virtual_params": n,
                "dense_bytes": 4 * n,
                "epochs": len(history),
                # the first epoch includes compilation; report the steady state too
                "seconds_per_epoch": (
                    sum(epoch_s[1:]) / (len(epoch_s) - 1) if len(epoch_s) > 1 else epoch_s[0]
                ),
                "first_epoch_seconds": epoch_s[0],
                "seconds": sum(epoch_s),
                "wall_seconds_this_run": wall,
            }
        )
    _plot(args, rows)
    table = common.write_results(
        args.out, "baseline", args.dataset, args.quick, rows,
        extra_md="Training curves: `curves.png`. Recipe: Adam, cosine decay from 1e-3, batch 100, "
        f"epochs {common.QUICK_EPOCHS if args.quick else common.DENSE_EPOCHS}.\n",
    )
    print(table)
    return rows


def _plot(args, rows):
    plt = common.plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        path = common.pretrained_path(r["model"], args.dataset, args.seed, args.quick)
        with open(path.replace(".msgpack", ".history.json")) as f:
            h = json.load(f)
        ax.plot([e["epoch"] for e in h], [e["eval_accuracy"] for e in h], marker="o", label=r["model"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"dense baselines on {args.dataset}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "curves.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
