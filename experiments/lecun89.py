"""LeCun (1989): Net-1 .. Net-5 on 16x16 digits, 320 training and 160 test examples.

Net-4 and Net-5 are Net-3's locally connected modules with more maps plus the
convolution-as-sharing transform (:func:`wsjax.sharing.local.convolution`), so their
"links" are the model's parameters and their "free parameters" the transform's state.

Data: ``lecun89`` (:mod:`wsjax.data.lecun89`) rebuilds the paper's database as we read its
description -- 12 drawings of each digit (scikit-learn's digits at 16x16, squeezed to 13
columns), each at 4 consecutive horizontal positions, 320 training and 160 test images --
with a new draw and split per seed. Other data: ``--dataset lecun89_new_drawings`` (the same
images split by drawing, results in ``<out>/new_drawings/``) and ``--dataset lecun89_centred``
(320 / 160 centred digits, results in ``<out>/centred/``).

Recipe (one fixed recipe for every net, chosen on training error alone and never tuned on
the test split): tanh hidden units, sigmoid outputs with one-hot targets in {0, 1}, LeCun's
sum-of-squares loss ``0.5 * sum_c (sigmoid(z_c) - t_c)^2`` averaged over examples, Adam
(learning rate 3e-3), minibatches of 32, 500 epochs. Every seed ``s`` is its own draw and
split of the data (``wsjax.data.load(dataset, split, seed=s)``) and its own initialisation
(``jax.random.key(s, impl='rbg')``); the seeds of one net train together, vmapped, in one
:func:`wsjax.train.fit` call (loop='scan'): the examples axis comes first, so all seeds see
the same minibatch order of their own split.

Run: ``python experiments/lecun89.py`` (20 seeds; 2 to 25 minutes on 2 CPU cores, depending
on how busy they are), ``--seed 20 --out <dir>`` (a replication on 20 new draws),
``--quick`` (2 seeds, 10 epochs), or the diagnostic ``--shift 2`` (every image moved by a
random offset of up to 2 pixels; results in ``<out>/shift2/``).

References: LeCun, `Generalization and network design strategies
<http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, 1989.
"""

from __future__ import annotations

import os
import time

import common
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsjax import data
from wsjax.models.lecun89 import NUM_NETS, init_net, lecun89_net, link_count
from wsjax.sharing import SharedParams, free_params
from wsjax.train import fit

NAME = "lecun89"
#: LeCun (1989), Table 1: test % correct after 0 training errors.
PAPER = {1: 80.0, 2: 87.0, 3: 88.5, 4: 94.0, 5: 98.4}
PAPER_LINKS = {1: 2570, 2: 3214, 3: 1226, 4: 2266, 5: 5194}
PAPER_FREE = {1: 2570, 2: 3214, 3: 1226, 4: 1132, 5: 1060}
#: Sharing controls: Net-4 and Net-5's architectures trained without the sharing transform
#: (free = links), so "shared vs not" is compared at one architecture.
CONTROLS = (4, 5)
CONTROL_METHOD = "control: no sharing"
CONTROL_ARCH = {4: "2 local 8x8(3x3) / local 4x4(5x5x2)", 5: "2 local 8x8(3x3) / 4 local 4x4(5x5x2)"}
ARCH = {
    1: "256-10",
    2: "256-12-10",
    3: "local 8x8(3x3) / 4x4(5x5)",
    4: "2 shared 8x8(3x3) / local 4x4(5x5x2)",
    5: "2 shared 8x8(3x3) / 4 shared 4x4(5x5x2)",
}

LEARNING_RATE = 3e-3
BATCH_SIZE = 32
EPOCHS, QUICK_EPOCHS = 500, 10
SEEDS, QUICK_SEEDS = 20, 2


def sum_of_squares(z: jax.Array, labels: jax.Array) -> jax.Array:
    """LeCun's loss: ``0.5 * sum_c (sigmoid(z_c) - onehot_c)^2``, mean over examples."""
    target = jax.nn.one_hot(labels, z.shape[-1])
    return 0.5 * jnp.mean(jnp.sum((jax.nn.sigmoid(z) - target) ** 2, axis=-1))


def shift_images(x: np.ndarray, max_shift: int, seed: int) -> np.ndarray:
    """Move every image by its own random (dy, dx) in [-max_shift, max_shift], zero filled."""
    if max_shift == 0:
        return x
    n, h, w, _ = x.shape
    offsets = np.random.default_rng(seed).integers(0, 2 * max_shift + 1, size=(n, 2))
    padded = np.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    return np.stack([padded[i, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])


def stacked_splits(seeds, split, dataset: str = "lecun89", max_shift: int = 0):
    """``(x, y)`` with the examples axis first and one column per seed: (N, S, ...).

    ``max_shift``: the ``--shift`` diagnostic (0: the images as the data set has them)."""
    pairs = [data.load(dataset, split, seed=s) for s in seeds]
    split_id = {"train": 0, "test": 1}[split]
    xs = [shift_images(x, max_shift, 1000 * s + split_id) for s, (x, _) in zip(seeds, pairs)]
    return np.stack(xs, axis=1), np.stack([p[1] for p in pairs], axis=1)


def net_name(n: int, shared: bool = True) -> str:
    return f"Net-{n}" if shared or n < 4 else f"Net-{n} (no sharing)"


def run_net(n: int, seeds, epochs: int, train, test, progress: bool = True, shared: bool = True) -> list[dict]:
    """Train Net-``n`` once per seed (vmapped); one row per seed. ``shared=False``: the
    sharing control (same architecture, no sharing transform)."""
    model, transform = lecun89_net(n, shared=shared)
    # One jitted, vmapped initialisation for all seeds; 'rbg' keys compile far faster than
    # threefry ones on XLA:CPU (the initialisation is otherwise most of a quick run).
    keys = jax.vmap(lambda s: jax.random.key(s, impl="rbg"))(jnp.asarray(seeds))
    states = jax.jit(jax.vmap(lambda k: init_net(n, k, shared=shared)[2]))(keys)
    thetas, frozen = states.theta, states.frozen

    def logits(theta, x):
        return model.apply({"params": transform.apply(SharedParams(theta, frozen))}, x)

    def loss_fn(thetas, xs, ys):  # xs: (batch, seeds, 16, 16, 1)
        per_seed = jax.vmap(lambda th, x, y: sum_of_squares(logits(th, x), y), in_axes=(0, 1, 1))
        return jnp.sum(per_seed(thetas, xs, ys))

    @jax.jit
    def errors(thetas, xs, ys):
        z = jax.vmap(logits, in_axes=(0, 1))(thetas, xs)  # (seeds, N, 10)
        return jnp.mean(jnp.argmax(z, -1) != ys.T, axis=1)

    t0 = time.perf_counter()
    result = fit(
        loss_fn, thetas, optax.adam(LEARNING_RATE), train, epochs=epochs,
        batch_size=BATCH_SIZE, seed=0, loop="scan", progress=progress, desc=net_name(n, shared),
    )
    train_err = np.asarray(errors(result.theta, *train))
    test_err = np.asarray(errors(result.theta, *test))
    seconds = (time.perf_counter() - t0) / len(seeds)
    one = jax.tree.map(lambda a: a[0], states)
    links, free = link_count(transform.apply(one)), free_params(one)
    return [
        {
            "model": net_name(n, shared),
            "seed": int(s),
            "test_accuracy": float(1.0 - test_err[i]),
            "train_error": float(train_err[i]),
            "links": links,
            "free_params": free,
            "final_train_loss": result.history[-1]["train_loss"] / len(seeds),
            "seconds": seconds,
        }
        for i, s in enumerate(seeds)
    ]


#: The paper's five nets by name.
PAPER_NETS = tuple(f"Net-{n}" for n in range(1, NUM_NETS + 1))
#: (n, shared) of every row: the paper's five nets, then the sharing controls.
ENTRIES = tuple((n, True) for n in range(1, NUM_NETS + 1)) + tuple((n, False) for n in CONTROLS)


def method(n: int, shared: bool) -> str:
    if n < 4:
        return "unshared"
    return "conv-shared" if shared else CONTROL_METHOD


def summarise(per_seed: list[dict]) -> list[dict]:
    rows = []
    for n, shared in ENTRIES:
        mine = [r for r in per_seed if r["model"] == net_name(n, shared)]
        if not mine:
            continue
        acc = np.array([r["test_accuracy"] for r in mine])
        paper = n < 4 or shared  # the controls are ours, not in LeCun's table
        rows.append(
            {
                "model": net_name(n, shared),
                "method": method(n, shared),
                "test_accuracy": float(acc.mean()),
                "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "paper_test_accuracy": PAPER[n] / 100 if paper else None,
                "links": mine[0]["links"],
                "free_params": mine[0]["free_params"],
                "virtual_params": mine[0]["links"],
                "paper_links": PAPER_LINKS[n],
                "paper_free": PAPER_FREE[n] if paper else None,
                "max_train_error": max(r["train_error"] for r in mine),
                "seeds": len(mine),
                "seconds": float(np.mean([r["seconds"] for r in mine])),
                "architecture": ARCH[n] if paper else CONTROL_ARCH[n],
                "test_accuracies": [r["test_accuracy"] for r in mine],
            }
        )
    return rows


def paired_comparison(per_seed: list[dict]) -> str:
    """Per-split paired differences: each shared net vs the best unshared net, and vs its
    own architecture without sharing (when the control was run)."""
    from scipy import stats

    def accs(name):
        mine = sorted((r for r in per_seed if r["model"] == name), key=lambda r: r["seed"])
        return np.array([r["test_accuracy"] for r in mine])

    def line(a, b):
        d = accs(a) - accs(b)
        p = stats.ttest_rel(accs(a), accs(b)).pvalue if len(d) > 1 else float("nan")
        return (f"mean {100 * d.mean():+.2f} points, better on {int((d > 0).sum())}/{len(d)} splits, "
                f"paired t-test p = {p:.2g}")

    best = max(("Net-1", "Net-2", "Net-3"), key=lambda name: accs(name).mean())
    lines = [f"- Net-{n} - {best} (best unshared): {line(f'Net-{n}', best)}" for n in (4, 5)]
    for n in CONTROLS:
        control = net_name(n, shared=False)
        if len(accs(control)) == len(accs(f"Net-{n}")) > 0:
            lines.append(f"- Net-{n} - {control} (same architecture): {line(f'Net-{n}', control)}")
    return "\n".join(lines)


#: What each data set is, for results.md.
DATA_TEXT = {
    "lecun89": (
        "`lecun89`: LeCun's database as we read the paper's description -- for each digit 12 "
        "drawings (scikit-learn's digits at 16x16, squeezed to 16x13), each at 4 consecutive "
        "horizontal positions; of those 48 images a random 32 train and 16 test, a new draw and "
        "split per seed. Nearly every test image is a drawing the training set holds at another "
        "position, so the test measures generalisation across positions. Whether LeCun split his "
        "480 images at random or by drawing we could not check here; the split by drawing is "
        "`lecun89_new_drawings`, under Other runs."
    ),
    "lecun89_new_drawings": (
        "`lecun89_new_drawings`: the same 480 images split by drawing -- 8 drawings of each "
        "digit (all 4 positions) train, the other 4 test -- so no test drawing is seen in training."
    ),
    "lecun89_centred": (
        "`lecun89_centred`: 320 training and 160 test images drawn at random from all 1797 "
        "scikit-learn digits at 16x16, every digit centred; a new split per seed."
    ),
}
#: Output subfolder of each data set's run when ``--out`` is not given.
DATA_FOLDER = {"lecun89": "", "lecun89_new_drawings": "new_drawings", "lecun89_centred": "centred"}


def same_setting(row: dict, dataset: str, shift: int, epochs: int) -> bool:
    """Whether a per-seed row was trained on this data, shift and number of epochs."""
    return (row.get("dataset"), row.get("shift"), row.get("epochs")) == (dataset, shift, epochs)


def pooled_section(done: list[dict], more: list[dict]) -> str:
    """This run's seeds and its replications' together: one row per (net, seed), and only
    the seeds every one of Net-1..5 has run (a replication still running adds nothing yet)."""
    by_key = {(r["model"], r["seed"]): r for r in more}
    by_key.update({(r["model"], r["seed"]): r for r in done})
    seeds = sorted(set.intersection(*({s for m, s in by_key if m == net} for net in PAPER_NETS)))
    if len(seeds) <= len({r["seed"] for r in done}):
        return ""
    pooled = [r for (m, s), r in sorted(by_key.items()) if s in seeds]
    rows = summarise(pooled)
    span = f"seeds {seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else "seeds " + ", ".join(map(str, seeds))
    return (f"\n\nPooled with its replications below ({len(seeds)} draws, {span}): "
            + ", ".join(f"{r['model']} {100 * r['test_accuracy']:.1f}" for r in rows) + " %. "
            + verdict(rows) + "\n\n" + paired_comparison(pooled))


def verdict(rows: list[dict]) -> str:
    """The acceptance question, answered from summarised rows."""
    shared_worst = min(r["test_accuracy"] for r in rows if r["method"] == "conv-shared")
    unshared_best = max(r["test_accuracy"] for r in rows if r["method"] == "unshared")
    answer = "yes" if shared_worst > unshared_best else "NO"
    return (f"Do the shared nets (Net-4, Net-5) beat every unshared net (Net-1..3) on mean test "
            f"accuracy? **{answer}** (worst shared {100 * shared_worst:.1f}% vs best unshared "
            f"{100 * unshared_best:.1f}%).")


def replications(out: str, dataset: str, epochs: int) -> list[dict]:
    """Per-seed rows of the same setting (data set, no shift, epochs) kept in the folders under
    ``out``: the experiment on other seeds, e.g. ``--seed 20 --out <out>/seeds20-39``."""
    import glob

    rows = []
    for partial in sorted(glob.glob(os.path.join(out, "*", "partial.jsonl"))):
        rows += [r for r in common.load_partial(os.path.dirname(partial)) if same_setting(r, dataset, 0, epochs)]
    return rows


def other_runs(out: str) -> str:
    """Summaries of the runs kept in folders under ``out`` (replications on other seeds, other
    data, ``--shift`` diagnostics), each with its verdict and paired differences. A folder's
    setting (data set, shift, epochs) is its first row's."""
    import glob

    text = ""
    for partial in sorted(glob.glob(os.path.join(out, "**", "partial.jsonl"), recursive=True)):
        folder = os.path.dirname(partial)
        per_seed = common.load_partial(folder)
        if os.path.realpath(folder) == os.path.realpath(out) or not per_seed:
            continue
        first = per_seed[0]
        per_seed = [r for r in per_seed if same_setting(r, first.get("dataset"), first.get("shift"), first.get("epochs"))]
        rows = summarise(per_seed)
        name = os.path.relpath(folder, out)
        seeds = sorted({r["seed"] for r in per_seed})
        title = f"`{first.get('dataset')}`, seeds {seeds[0]}-{seeds[-1]}" + (
            f", moved by up to ±{first['shift']} pixels" if first.get("shift") else "")
        cells = ", ".join(
            f"{r['model']} {100 * r['test_accuracy']:.1f} ± {100 * r['test_accuracy_std']:.1f}"
            for r in rows
        )
        text += f"\n### {title}\n\nSame recipe: {cells} % (details in [{name}/results.md]({name}/results.md)).\n\n"
        complete = set(PAPER_NETS) <= {r["model"] for r in rows}
        text += (verdict(rows) + "\n\n" + paired_comparison(per_seed) + "\n" if complete
                 else "(unfinished: not every net has run yet)\n")
    return "\n## Other runs\n" + text if text else ""


def plot(rows: list[dict], path: str, dataset: str = NAME) -> None:
    plt = common.plt()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    free = [r["free_params"] for r in rows]
    mean = [100 * r["test_accuracy"] for r in rows]
    std = [100 * r["test_accuracy_std"] for r in rows]
    for controls, style, label in ((False, {}, "wsjax (mean ± std over splits)"),
                                   (True, {"mfc": "none"}, "wsjax, same net without sharing")):
        pick = [i for i, r in enumerate(rows) if (r["method"] == CONTROL_METHOD) == controls]
        if pick:
            ax.errorbar([free[i] for i in pick], [mean[i] for i in pick], yerr=[std[i] for i in pick],
                        fmt="o", color="C0", capsize=3, label=label, **style)
    ax.plot([PAPER_FREE[n] for n in PAPER], list(PAPER.values()), "s", mfc="none", color="C1",
            label="LeCun 1989 (one split)")
    for r, f, m in zip(rows, free, mean):
        ax.annotate(r["model"], (f, m), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=9000)  # room for the labels
    ax.set_xlabel("free parameters")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"LeCun 1989 nets on {dataset} (320 train / 160 test)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    import argparse
    import sys

    extra_flags = argparse.ArgumentParser(add_help=False)
    extra_flags.add_argument(
        "--shift", type=int, default=0,
        help="diagnostic: move every train/test image by a random offset in [-shift, shift] "
        "pixels; results go to <out>/shift<k>/",
    )
    flags, rest = extra_flags.parse_known_args(sys.argv[1:] if argv is None else argv)
    if flags.shift < 0:
        raise SystemExit("--shift must be >= 0")
    out_given = any(a == "--out" or a.startswith("--out=") for a in rest)
    args = common.parse_args(NAME, __doc__.splitlines()[0], default_dataset="lecun89", argv=rest)
    if args.dataset not in DATA_TEXT:
        raise SystemExit(f"this experiment runs on {', '.join(DATA_TEXT)} (16x16, 320/160), "
                         f"not {args.dataset}")
    if not out_given:  # other data and the diagnostics get their own subfolders
        sub = [DATA_FOLDER[args.dataset]] + ([f"shift{flags.shift}"] if flags.shift else [])
        args.out = os.path.join(args.out, *sub)
        os.makedirs(args.out, exist_ok=True)
    n_seeds, epochs = (QUICK_SEEDS, QUICK_EPOCHS) if args.quick else (SEEDS, EPOCHS)
    seeds = list(range(args.seed, args.seed + n_seeds))
    train = stacked_splits(seeds, "train", args.dataset, flags.shift)
    test = stacked_splits(seeds, "test", args.dataset, flags.shift)

    done = [r for r in common.load_partial(args.out)
            if r["seed"] in seeds and same_setting(r, args.dataset, flags.shift, epochs)]
    for n, shared in ENTRIES:
        if {r["seed"] for r in done if r["model"] == net_name(n, shared)} >= set(seeds):
            continue
        new = [dict(r, dataset=args.dataset, shift=flags.shift, epochs=epochs)
               for r in run_net(n, seeds, epochs, train, test, progress=False, shared=shared)]
        for r in new:
            common.append_partial(args.out, r)
        done += new
        acc = np.array([r["test_accuracy"] for r in new])
        spread = acc.std(ddof=1) if len(acc) > 1 else 0.0
        print(f"{net_name(n, shared)}: test accuracy {100 * acc.mean():.1f} ± {100 * spread:.1f} %", flush=True)

    rows = summarise(done)
    note = f", shifted ±{flags.shift} px" if flags.shift else ""
    plot(rows, os.path.join(args.out, "accuracy_vs_free_params.png"), args.dataset + note)
    diagnostic = (
        f"**Diagnostic variant**: every train and test image is moved by its own random "
        f"offset in [-{flags.shift}, {flags.shift}] pixels (zero filled).\n\n"
        if flags.shift else ""
    )
    extra = (
        diagnostic
        + "## Recipe\n\n"
        f"{len(seeds)} seeds (seed = data split = initialisation), {epochs} epochs, Adam "
        f"lr {LEARNING_RATE}, batch {BATCH_SIZE}, tanh hidden units, sigmoid outputs with "
        "one-hot targets in {0, 1} and the sum-of-squares loss; the same recipe for every "
        "net, not tuned on the test split. `test_accuracy` is the mean and "
        "`test_accuracy_std` the standard deviation over splits; `max_train_error` is the "
        "largest final training error over the seeds (LeCun trained every net to 0).\n\n"
        "`links` (connections incl. biases) are the parameters of the locally connected "
        "model and `free_params` those of the sharing transform's state; both equal the "
        "paper's counts (`paper_links`, `paper_free`). The `control: no sharing` rows are "
        "ours, not LeCun's: Net-4's and Net-5's architectures with every link free, so the "
        "difference to Net-4 / Net-5 is what the sharing does at a fixed architecture.\n\n"
        "## Comparison with the paper\n\n"
        + DATA_TEXT[args.dataset] + " LeCun's 480 images were his own drawings, scored on a "
        "single split, and were never published; ours are scikit-learn's 8x8 digits upsampled, "
        "so absolute numbers differ and the ordering is what is compared.\n\n"
        + verdict(rows) + "\n\n"
        + paired_comparison(done)
        + pooled_section(done, replications(args.out, args.dataset, epochs) if not flags.shift else [])
        + "\n\n![accuracy vs free parameters](accuracy_vs_free_params.png)\n"
        + other_runs(args.out)
    )
    columns = [
        "model", "method", "test_accuracy", "test_accuracy_std", "paper_test_accuracy",
        "links", "free_params", "paper_links", "paper_free", "max_train_error", "seeds",
        "seconds", "architecture",
    ]
    table = common.write_results(args.out, NAME, args.dataset, args.quick, rows, extra, columns)
    print(table)
    print(extra)


if __name__ == "__main__":
    main()
