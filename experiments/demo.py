"""The demo: the committed pretrained LeNets compressed by the library's pipelines, side by side.

``make demo`` (or ``python experiments/demo.py``) starts from the committed dense
LeNet-300-100 and LeNet-5 (rows of the baseline study's store,
``experiments/results/baseline/``, trained on Fashion-MNIST), compresses each with

* Deep Compression (``wsjax.compress.deep_compression``): Han et al.'s per-layer kept
  fractions in one pruning step, a short retraining, k-means codebooks (8 bits conv, 5 fc),
  a short centroid retraining;
* HashedNets at 1/8 (``wsjax.compress.hashednets``): buckets fitted to the trained
  weights, then retrained;

writes each result to a real ``.wsjax`` file, loads it back and scores the loaded model on
the 10k test images. One table (test accuracy, stored bytes, compression against dense
float32) and one plot (accuracy against stored bytes). The schedules are short so the demo
finishes in about a minute on 2 CPU cores for LeNet-300-100 (``--models lenet300100 lenet5``
adds LeNet-5, about two minutes more); the full studies (iterative pruning, longer
retraining) are ``wsjax run deep_compression`` and ``wsjax run hashednets``.

Run: ``python experiments/demo.py [--out DIR]`` (default ``runs/demo``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from wsjax import compress, data, storage, study
from wsjax.sharing import count_params
from wsjax.train import classifier, evaluate

ROOT = study.ROOT
#: Han et al. (2016), Tables 4-5: the fraction of each layer's weights kept.
KEEP = {
    "lenet300100": {"Dense_0": 0.08, "Dense_1": 0.09, "Dense_2": 0.26},
    "lenet5": {"Conv_0": 0.66, "Conv_1": 0.12, "Dense_0": 0.08, "Dense_1": 0.19},
}
MODELS = ("lenet300100", "lenet5")
#: (pipeline, training examples) per method and model: short schedules for the demo.
SCHEDULES = {
    "lenet300100": {"Deep Compression": (dict(rounds=3, prune_epochs=4, prune_lr=1e-3, quant_epochs=3), None),
                    "HashedNets 1/8": (dict(epochs=8), None)},
    "lenet5": {"Deep Compression": (dict(prune_epochs=1, prune_lr=5e-4, quant_epochs=1), 20_000),
               "HashedNets 1/8": (dict(epochs=1), 20_000)},
}


def pipelines(model_name):
    sparsity = {f"^{layer}/": 1.0 - kept for layer, kept in KEEP[model_name].items()}
    (dc, dc_n), (hn, hn_n) = SCHEDULES[model_name].values()
    return {"Deep Compression": (compress.deep_compression(sparsity, **dc), dc_n),
            "HashedNets 1/8": (compress.hashednets(1 / 8, lr=1e-3, **hn), hn_n)}


def run_model(model_name, train, test, out_dir):
    model, dense, _ = study.pretrained(model_name, train_if_missing=False)
    _, eval_fn = classifier(lambda p, x: model.apply({"params": p}, x))
    score = lambda p: evaluate(eval_fn, p, *test)["accuracy"]  # noqa: E731
    dense_bytes = 4 * count_params(dense)
    rows = [{"model": model_name, "method": "dense", "test_accuracy": score(dense),
             "stored_bytes": storage.size_report(dense).file_bytes, "seconds": 0.0}]
    val = (train[0][-5000:], train[1][-5000:])
    for method, (pipe, n) in pipelines(model_name).items():
        t0 = time.perf_counter()
        subset = (train[0][:n or -5000], train[1][:n or -5000])
        result = pipe.run(model, subset, val, params=dense, progress=True, label=f"{model_name} {method}: ")
        path = os.path.join(out_dir, f"{model_name}-{method.split()[0].lower()}.wsjax")
        report, _, accuracy, stored_bytes = study.store_and_reload(result.stored, path, score)
        rows.append({"model": model_name, "method": method, "test_accuracy": accuracy,
                     "stored_bytes": stored_bytes, "seconds": time.perf_counter() - t0,
                     "file": os.path.relpath(path, ROOT), "codecs": sorted({r.codec for r in report.layers})})
    for r in rows:
        r["compression"] = dense_bytes / r["stored_bytes"]
    return rows


def table(rows) -> str:
    lines = ["| model | method | test accuracy (from the file) | stored bytes | compression | seconds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['method']} | {100 * r['test_accuracy']:.2f} % | "
                     f"{r['stored_bytes']:,} | {r['compression']:.1f}x | {r['seconds']:.0f} |")
    return "\n".join(lines)


def plot(rows, path):
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    markers = {"dense": "o", "Deep Compression": "s", "HashedNets 1/8": "^"}
    for model, color in zip(MODELS, ("C0", "C1")):
        for r in (r for r in rows if r["model"] == model):
            ax.scatter(r["stored_bytes"], 100 * r["test_accuracy"], color=color, marker=markers[r["method"]],
                       label=f"{model}: {r['method']}")
    ax.set_xscale("log")
    ax.set_xlabel("stored bytes (real files)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Fashion-MNIST: compressed LeNets (demo schedules)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(prog="experiments/demo.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "demo"))
    p.add_argument("--models", nargs="+", default=["lenet300100"], choices=list(MODELS),
                   help="lenet5 adds about two minutes on 2 cores")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    train, test = data.load("fashion_mnist", "train"), data.load("fashion_mnist", "test")
    rows = [r for m in args.models for r in run_model(m, train, test, args.out)]
    print("\n" + table(rows) + "\n")
    plot(rows, os.path.join(args.out, "demo.png"))
    print(f"files and plot in {os.path.relpath(args.out, ROOT)}/ (total {time.perf_counter() - t0:.0f} s)")
    return rows


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
