"""HashedNets against dense, low-rank and random-edge baselines with equal free parameters.

Run: ``python experiments/hashednets.py [--quick]``. On Fashion-MNIST, a 3-layer net
(784-1000-10) and a 5-layer net (784-1000-1000-1000-10) are trained at compression factors
1, 1/2, ..., 1/64 (free / virtual parameters of the weight matrices) as

* ``hashed``: HashedNets, one bucket vector per layer (Chen et al. 2015), biases not hashed;
* ``hashed_pool``: cross-layer hashing, one bucket vector shared by all weight matrices;
* ``nn``: a dense net whose hidden widths are scaled so its parameter count matches the
  hashed net's free parameters (the paper's "equal-size" net);
* ``lrd``: every weight matrix factored as ``U @ V`` (both trained, SVD init) with rank
  ``round(c * m * n / (m + n))``;
* ``rer``: random edge removal keeping ``round(c * m * n)`` weights of each matrix.

Recipe (chosen for the 2-core CPU budget, see results.md): Adam with cosine decay from 1e-3,
batch 100, all 60,000 training images; 2 epochs for the 3-layer net and 1 for the 5-layer
net. The run is resumable (``partial.jsonl``).

Expected: at 1/64 ``hashed`` beats ``nn`` on the 3-layer net (the paper's claim).

References: Chen et al, `Compressing Neural Networks with the Hashing Trick
<https://arxiv.org/abs/1504.04788>`_, 2015.
"""

from __future__ import annotations

import math
import time

import common
import jax
import optax

from wsjax.models import MLP
from wsjax.sharing import bind, count_params, free_params, virtual_params
from wsjax.sharing.hashing import hashed
from wsjax.sharing.lowrank import low_rank
from wsjax.sharing.random_edges import random_edges
from wsjax.train import classifier, evaluate, fit

NETS = {"3-layer": (1000, 10), "5-layer": (1000, 1000, 1000, 10)}
COMPRESSIONS = (1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64)
METHODS = ("hashed", "hashed_pool", "nn", "lrd", "rer")
EPOCHS = {"3-layer": 2, "5-layer": 1}
TRAIN_EXAMPLES = {"3-layer": 60_000, "5-layer": 60_000}
QUICK = {"nets": ("3-layer-small",), "compressions": (1 / 64,), "epochs": 1,
         "train": 2000, "test": 2000}
QUICK_NETS = {"3-layer-small": (200, 10)}  # a narrower 3-layer net: the quick run is a smoke test
INPUT_DIM = 784


def _mlp_params(features, input_dim=INPUT_DIM) -> int:
    sizes = (input_dim,) + tuple(features)
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def equal_size_features(features, target: int) -> tuple:
    """Hidden widths scaled by one factor so the dense net has about ``target`` parameters."""
    hidden, out = features[:-1], features[-1]
    best, best_gap = None, math.inf
    lo, hi = 1, max(hidden)
    # The count grows with the width, so bisect on the width of the first hidden layer.
    while lo <= hi:
        mid = (lo + hi) // 2
        widths = tuple(max(1, round(h * mid / hidden[0])) for h in hidden) + (out,)
        n = _mlp_params(widths)
        if abs(n - target) < best_gap:
            best, best_gap = widths, abs(n - target)
        if n < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return best


def _transform(method: str, c: float, seed: int):
    if method == "hashed":
        return hashed(c, scope="layer", seed=seed)
    if method == "hashed_pool":
        return hashed(c, scope="pool", seed=seed)
    if method == "lrd":
        return low_rank(compression=c)
    if method == "rer":
        return random_edges(c)
    raise ValueError(f"unknown method {method!r}")


def run_one(net: str, method: str, c: float, train, test, epochs: int, seed: int):
    features = {**NETS, **QUICK_NETS}[net]
    full = MLP(features)
    key = jax.random.key(seed)
    full_params = full.init(key, train[0][:1])["params"]
    if method == "nn":
        hashed_state = hashed(c).init(key, full_params)
        features_nn = equal_size_features(features, free_params(hashed_state))
        model = MLP(features_nn)
        theta = model.init(key, train[0][:1])["params"]
        to_params = lambda th: th  # noqa: E731
        n_free = n_virtual = count_params(theta)
        extra = {"widths": "-".join(map(str, (INPUT_DIM,) + features_nn))}
    else:
        model = full
        transform = _transform(method, c, seed)
        state = transform.init(jax.random.fold_in(key, 1), full_params)
        theta, to_params = state.theta, bind(transform, state)
        n_free, n_virtual = free_params(state), virtual_params(transform, state)
        extra = {"widths": "-".join(map(str, (INPUT_DIM,) + features))}
    loss_fn, eval_fn = classifier(lambda th, x: model.apply({"params": to_params(th)}, x))
    steps = epochs * (len(train[0]) // 100)
    opt = optax.adam(optax.cosine_decay_schedule(1e-3, steps, alpha=0.01))
    t0 = time.perf_counter()
    result = fit(
        loss_fn, theta, opt, train, epochs=epochs, batch_size=100, seed=seed,
        loop="python", progress=False,
    )
    acc = evaluate(eval_fn, result.theta, *test)["accuracy"]
    return {
        "model": net,
        "method": method,
        "compression_factor": c,
        "free_params": n_free,
        "virtual_params": n_virtual,
        "test_accuracy": acc,
        "train_loss": result.history[-1]["train_loss"],
        "epochs": epochs,
        "train_examples": len(train[0]),
        "seconds": time.perf_counter() - t0,
        **extra,
    }


def _key(row):
    return (row["model"], row["method"], round(row["compression_factor"], 8))


def main(argv=None):
    args = common.parse_args("hashednets", __doc__.splitlines()[0], argv=argv)
    train, test = common.dataset_splits(args.dataset, args.quick, args.seed)
    if args.quick:
        train = (train[0][: QUICK["train"]], train[1][: QUICK["train"]])
        test = (test[0][: QUICK["test"]], test[1][: QUICK["test"]])
    nets = QUICK["nets"] if args.quick else tuple(NETS)
    compressions = QUICK["compressions"] if args.quick else COMPRESSIONS
    done = {_key(r): r for r in common.load_partial(args.out)}
    rows = []
    for net in nets:
        epochs = QUICK["epochs"] if args.quick else EPOCHS[net]
        n_train = QUICK["train"] if args.quick else TRAIN_EXAMPLES[net]
        net_train = (train[0][:n_train], train[1][:n_train])
        for c in compressions:
            for method in METHODS:
                k = (net, method, round(c, 8))
                if k in done:
                    rows.append(done[k])
                    continue
                row = run_one(net, method, c, net_train, test, epochs, args.seed)
                common.append_partial(args.out, row)
                rows.append(row)
                print(
                    f"{net} {method:12s} c=1/{round(1 / c):<3d} free={row['free_params']:>8d} "
                    f"acc={row['test_accuracy']:.4f} ({row['seconds']:.0f}s)",
                    flush=True,
                )
    _plot(args, rows, nets)
    table = common.write_results(
        args.out, "hashednets", args.dataset, args.quick, rows,
        extra_md=_notes(rows, nets, args.quick),
        columns=("model", "method", "compression_factor", "free_params", "virtual_params",
                 "test_accuracy", "widths", "epochs", "seconds"),
    )
    print(table)
    return rows


LABELS = {
    "hashed": "HashedNets (per layer)",
    "hashed_pool": "HashedNets (cross-layer pool)",
    "nn": "equal-size dense (NN)",
    "lrd": "low rank (LRD)",
    "rer": "random edge removal (RER)",
}


def _plot(args, rows, nets):
    plt = common.plt()
    fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4.2), squeeze=False)
    for ax, net in zip(axes[0], nets):
        for method in METHODS:
            pts = sorted(
                (r["free_params"], r["test_accuracy"])
                for r in rows
                if r["model"] == net and r["method"] == method
            )
            if pts:
                ax.plot(*zip(*pts), marker="o", label=LABELS[method])
        ax.set_xscale("log")
        ax.set_xlabel("free parameters")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{net} net ({'-'.join(map(str, (INPUT_DIM,) + {**NETS, **QUICK_NETS}[net]))}), {args.dataset}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{args.out}/accuracy_vs_free_params.png", dpi=120)
    plt.close(fig)


def _notes(rows, nets, quick) -> str:
    lines = ["Plot: `accuracy_vs_free_params.png`.", ""]
    if quick:
        lines.append(
            f"Quick run (a smoke test): {QUICK['train']} training and {QUICK['test']} test "
            f"images, {QUICK['epochs']} epoch, compression 1/64 only, a 784-200-10 net only.\n"
        )
    else:
        lines.append(
            "Recipe: Adam, cosine decay from 1e-3 to 1e-5, batch 100, no dropout, seed 0, one "
            "run per cell. Few epochs, for the shared 2-core CPU budget: the 3-layer net trains "
            "2 epochs and the 5-layer net 1 epoch, on all 60,000 training images; test accuracy is on the 10,000 test images. Compression "
            "factor c = free / virtual weights of the weight matrices; biases are free in every "
            "method. `seconds` is each run's wall time on a 2-core machine shared with other "
            "jobs (load 2 to 11 during the run), not a speed measurement: see "
            "`benchmarks/hashed_step.py` for step timings.\n"
        )
    by = {(r["model"], r["method"], round(r["compression_factor"], 8)): r for r in rows}
    for net in nets:
        for c in (1 / 8, 1 / 64):
            cells = [by.get((net, m, round(c, 8))) for m in METHODS]
            if all(cells):
                accs = ", ".join(f"{m} {r['test_accuracy']:.4f}" for m, r in zip(METHODS, cells))
                lines.append(f"- {net} at 1/{round(1 / c)}: {accs}.")
    lines.append("")
    for net in nets:
        h, p, n = (by.get((net, m, round(1 / 64, 8))) for m in ("hashed", "hashed_pool", "nn"))
        if h and p and n:
            verdict = "beats" if h["test_accuracy"] > n["test_accuracy"] else "does not beat"
            lines.append(
                f"- Paper's claim, {net} at 1/64: hashed per layer ({h['test_accuracy']:.4f}) "
                f"{verdict} the equal-size dense net ({n['test_accuracy']:.4f}), "
                f"{100 * (h['test_accuracy'] - n['test_accuracy']):+.2f} points. Cross-layer pool: "
                f"{p['test_accuracy']:.4f} ({100 * (p['test_accuracy'] - h['test_accuracy']):+.2f} "
                "points against per layer)."
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
