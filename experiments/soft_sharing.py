"""Soft weight-sharing against weight decay and weight elimination on Nowlan & Hinton's problems.

Nowlan & Hinton (1992) report that a learned mixture-of-Gaussians prior on the weights ("soft
weight-sharing") generalises better than weight decay and weight elimination on two small
problems. This script rebuilds both and compares no penalty, L2 weight decay, weight
elimination (w0 = 1) and soft sharing with K = 3, 5 and 10 components:

* **shift detection** (reconstructed from the paper's description): the input is a random
  10-bit pattern followed by a copy of it rotated one place to the left or to the right
  (wrap-around); the target is the direction. The 4 patterns whose two rotations coincide
  (all zeros, all ones, 0101..., 1010...) are ambiguous and excluded, leaving 2040 cases. A
  20-10-1 net (logistic hidden units, logistic output, cross-entropy) is trained on 50
  random cases; test accuracy is measured on all 1990 cases it was not trained on.
* **sunspots** (Weigend et al.'s setup): yearly sunspot numbers 1700-1979 from
  ``statsmodels.datasets.sunspots``, scaled by the 1700-1920 maximum; a 12-8-1 net
  (logistic hidden, linear output, squared error) predicts each year from the 12 before it;
  trained on target years 1712-1920, tested on 1921-1955 and 1956-1979 by the average
  relative variance ``ARV = mean (y - yhat)^2 / var(series 1700-1979)``.

Protocol (identical for every penalty). Full-batch Adam; the first ``warm`` steps train
without a penalty, then the penalty is switched on at a constant strength (the mixture is
initialised at that point: a component at 0 with learned mixing weight starting at 0.5, the
other means spread evenly over the weights' range, Gamma(1, beta) priors on the precisions
against variance collapse). Penalties apply to kernels, not biases. Strengths (and beta) are
chosen per method on **validation**, never on the test set: for shift detection on 10 extra
training draws (seeds disjoint from the reported ones), each scored on 500 cases outside its
training set; for sunspots by 5-fold blocked cross-validation over the training years
1712-1920 (each fold holds out a contiguous block and drops from training the 12 targets
after it, whose inputs overlap the block). The chosen setting is then trained from 10 fresh
seeds (new training draws for shift detection, new initial weights for sunspots, which then
train on all of 1712-1920) and the test metric's mean and standard deviation are reported.

Every (seed, strength) run is one lane of a single ``vmap``-ped, jitted full-batch trainer:
``wsjax.train.fit`` trains one minibatched model at a time, while these nets are tiny and
need hundreds of runs, so each K compiles one program that trains all of them at once.

Run: ``python experiments/soft_sharing.py [--quick] [--seed N] [--out DIR]``.

References: Nowlan & Hinton, `Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, Neural Computation 1992;
Weigend, Rumelhart & Huberman, `Generalization by Weight-Elimination with Application to
Forecasting <https://papers.nips.cc/paper/323>`_, NIPS 3, 1991.
"""

from __future__ import annotations

import json
import os
import time
from typing import NamedTuple

import common
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsjax import penalties as P

KERNELS = r"kernel"
TEST_SEEDS = 10
SUNSPOT_FOLDS = 5
COMPONENTS = (3, 5, 10)
PAPER_CLAIM = (
    "Soft weight-sharing generalises better than weight decay and weight elimination on both "
    "the shift-detection and the sunspot problems (Nowlan & Hinton 1992)."
)


class Task(NamedTuple):
    """A problem, its net and its training recipe."""

    name: str
    model: str
    sizes: tuple  # layer widths, input first
    loss: str  # 'bce' or 'mse'
    steps: int
    warm: int
    lr: float
    mixture_lr: float
    taus: tuple  # strength grid shared by every penalty
    betas: tuple  # Gamma(1, beta) precision hyper-prior grid for soft sharing
    metric: str  # what selection maximises ('accuracy') or minimises ('arv')
    selection_runs: int  # validation runs per setting (training draws, or CV folds)


def tasks(quick: bool) -> dict[str, Task]:
    taus_shift = tuple(10.0 ** np.arange(-5.0, -0.9, 0.5))
    taus_sun = tuple(10.0 ** np.arange(-7.0, -1.9, 0.5))
    if quick:
        taus_shift, taus_sun = (1e-4, 1e-3, 1e-2), (1e-6, 1e-5, 1e-4)
    return {
        "shift": Task("shift", "20-10-1 logistic MLP", (20, 10, 1), "bce",
                      600 if quick else 3000, 100 if quick else 500, 1e-2, 1e-2,
                      taus_shift, (1.0,) if quick else (1.0, 10.0), "accuracy",
                      2 if quick else 10),
        "sunspots": Task("sunspots", "12-8-1 logistic MLP", (12, 8, 1), "mse",
                         800 if quick else 5000, 200 if quick else 1000, 1e-2, 1e-2,
                         taus_sun, (0.01,) if quick else (0.01, 0.1), "arv",
                      2 if quick else SUNSPOT_FOLDS),
    }


# ----------------------------------------------------------------------------- data


def shift_cases(bits: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Every unambiguous (pattern, rotated copy) pair; label 1 = rotated right, 0 = left."""
    patterns = ((np.arange(2**bits)[:, None] >> np.arange(bits)) & 1).astype(np.float32)
    left, right = np.roll(patterns, -1, axis=1), np.roll(patterns, 1, axis=1)
    keep = ~np.all(left == right, axis=1)  # period-2 patterns: direction undefined
    p, l, r = patterns[keep], left[keep], right[keep]
    x = np.concatenate([np.concatenate([p, r], 1), np.concatenate([p, l], 1)])
    y = np.concatenate([np.ones(len(p)), np.zeros(len(p))]).astype(np.float32)
    return x, y


def shift_draws(seeds, n_train: int, n_val: int):
    """Per seed: a random training set (indices), a validation set and its test mask."""
    x, y = shift_cases()
    train, val, test_mask = [], [], []
    for s in seeds:
        order = np.random.default_rng(s).permutation(len(x))
        train.append(order[:n_train])
        val.append(order[n_train:n_train + n_val])
        mask = np.ones(len(x), bool)
        mask[order[:n_train]] = False
        test_mask.append(mask)
    return x, y, np.stack(train), np.stack(val), np.stack(test_mask)


def sunspot_series() -> tuple[np.ndarray, np.ndarray]:
    """Yearly sunspot numbers 1700-1979 (statsmodels ships them; nothing is downloaded)."""
    from statsmodels.datasets import sunspots

    frame = sunspots.load_pandas().data
    years = frame["YEAR"].to_numpy().astype(int)
    keep = (years >= 1700) & (years <= 1979)
    if keep.sum() != 280:
        raise ValueError("statsmodels' sunspot data does not cover 1700-1979")
    return years[keep], frame["SUNACTIVITY"].to_numpy()[keep].astype(np.float64)


def sunspot_windows(lag: int = 12):
    """Inputs (previous ``lag`` years), targets and target years, scaled by the 1700-1920 max."""
    years, values = sunspot_series()
    scale = values[years <= 1920].max()
    z = values / scale
    x = np.stack([z[i - lag:i] for i in range(lag, len(z))]).astype(np.float32)
    return x, z[lag:].astype(np.float32), years[lag:], float(np.var(z))


def sunspot_folds(train_years: np.ndarray, folds: int, lag: int = 12):
    """Blocked cross-validation over the training years: per fold, the training weights
    (0 on the held-out block and on the ``lag`` targets after it, whose inputs overlap the
    block) and the held-out block's mask."""
    weights, blocks = [], []
    for block in np.array_split(np.arange(len(train_years)), folds):
        held = np.zeros(len(train_years), bool)
        held[block] = True
        w = np.ones(len(train_years), np.float32)
        w[block[0]:block[-1] + 1 + lag] = 0.0
        weights.append(w)
        blocks.append(held)
    return np.stack(weights), np.stack(blocks)


# ----------------------------------------------------------------------------- model


def init_mlp(key, sizes):
    """Flax-style params ``{'Dense_i': {'kernel', 'bias'}}``, LeCun-normal kernels."""
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        key, k = jax.random.split(key)
        params[f"Dense_{i}"] = {"kernel": jax.random.normal(k, (a, b)) / np.sqrt(a),
                                "bias": jnp.zeros((b,))}
    return params


def mlp(params, x):
    """Logistic hidden layers, linear last layer; returns ``(batch,)``."""
    n = len(params)
    for i in range(n):
        x = x @ params[f"Dense_{i}"]["kernel"] + params[f"Dense_{i}"]["bias"]
        if i < n - 1:
            x = jax.nn.sigmoid(x)
    return x[..., 0]


def weighted_loss(kind: str):
    def loss(params, x, y, w):
        out = mlp(params, x)
        per = optax.sigmoid_binary_cross_entropy(out, y) if kind == "bce" else jnp.square(out - y)
        return jnp.sum(w * per) / jnp.sum(w)

    return loss


# ----------------------------------------------------------------------------- trainer


def penalties(hyper, k: int, mixture_lr: float):
    """All three penalties in one chain; each lane switches them with its own strengths.

    ``hyper = (tau_l2, tau_elimination, tau_soft, beta)``; a zero strength adds nothing.
    """
    gamma = P.Gamma(1.0, hyper[3])
    return optax.chain(
        P.l2(hyper[0], include=KERNELS),
        P.weight_elimination(hyper[1], 1.0, include=KERNELS),
        P.soft_weight_sharing(
            hyper[2], k, init="even", include=KERNELS, zero_component=True, pi_zero=0.5,
            learn_pi_zero=True, hyper_prior=P.HyperPrior(precision=gamma, zero_precision=gamma),
            mixture_learning_rate=mixture_lr,
        ),
    )


def make_trainer(task: Task, k: int):
    """``(keys (S,), hypers (C, 4), x (S, n, d), y (S, n), w (S, n))`` -> final params,
    (params, mixture) when the penalty switches on, final mixture; all ``(S, C, ...)``."""
    loss = weighted_loss(task.loss)

    def run(tx, params, state, steps, x, y, w):
        def step(carry, _):
            p, s = carry
            updates, s = tx.update(jax.grad(loss)(p, x, y, w), s, p)
            return (optax.apply_updates(p, updates), s), None

        return jax.lax.scan(step, (params, state), None, length=steps)[0]

    def train_one(key, hyper, x, y, w):
        params = init_mlp(key, task.sizes)
        plain = optax.adam(task.lr)
        params, _ = run(plain, params, plain.init(params), task.warm, x, y, w)
        tx = optax.chain(penalties(hyper, k, task.mixture_lr), optax.adam(task.lr))
        state = tx.init(params)
        switch_on = (params, state[0][2].mixture)
        params, state = run(tx, params, state, task.steps - task.warm, x, y, w)
        return params, switch_on, state[0][2].mixture

    per_config = jax.vmap(train_one, in_axes=(None, 0, None, None, None))
    return jax.jit(jax.vmap(per_config, in_axes=(0, None, 0, 0, 0)))


class Config(NamedTuple):
    method: str
    k: int
    tau: float
    beta: float

    def hyper(self):
        tau_l2 = self.tau if self.method == "l2" else 0.0
        tau_we = self.tau if self.method == "weight_elimination" else 0.0
        tau_sws = self.tau if self.method.startswith("soft_sharing") else 0.0
        return (tau_l2, tau_we, tau_sws, self.beta)


def configs(task: Task, components) -> dict[int, list[Config]]:
    """The lanes of each compiled trainer: baselines ride along with the first K."""
    out = {}
    for i, k in enumerate(components):
        lanes = []
        if i == 0:
            lanes.append(Config("none", k, 0.0, task.betas[0]))
            lanes += [Config("l2", k, t, task.betas[0]) for t in task.taus]
            lanes += [Config("weight_elimination", k, t, task.betas[0]) for t in task.taus]
        lanes += [Config(f"soft_sharing_K{k}", k, t, b) for b in task.betas for t in task.taus]
        out[k] = lanes
    return out


# ----------------------------------------------------------------------------- scoring


def accuracy(params, x, y, mask=None):
    correct = (np.asarray(mlp(params, x)) > 0) == (y > 0.5)
    return float(correct.mean() if mask is None else correct[mask].mean())


def arv(params, x, y, variance):
    return float(np.mean((np.asarray(mlp(params, x)) - y) ** 2) / variance)


def lane(tree, s, c):
    return jax.tree.map(lambda a: a[s, c], tree)


def _cache_path(cache_dir, name, k):
    return os.path.join(cache_dir, f"{name}-K{k}.npz")


def save_cached(cache_dir, name, k, tag, outputs, seconds):
    """Keep one trainer call's outputs so an interrupted run resumes where it stopped."""
    os.makedirs(cache_dir, exist_ok=True)
    leaves = jax.tree.leaves(outputs)
    path = _cache_path(cache_dir, name, k)
    np.savez(path + ".tmp.npz", *leaves, tag=np.array(tag), seconds=np.array(seconds))
    os.replace(path + ".tmp.npz", path)


def load_cached(cache_dir, name, k, tag, shapes):
    """The outputs saved by :func:`save_cached` for exactly this configuration, else None."""
    path = _cache_path(cache_dir, name, k)
    if not os.path.exists(path):
        return None
    with np.load(path) as f:
        if str(f["tag"]) != tag:
            return None
        leaves = [f[f"arr_{i}"] for i in range(len(jax.tree.leaves(shapes)))]
        seconds = float(f["seconds"])
    return jax.tree.unflatten(jax.tree.structure(shapes), leaves), seconds


def run_task(task: Task, components, base_seed: int, log, cache_dir: str):
    """Train every lane, select on validation, score the selection on test."""
    sel_seeds = [base_seed + 1000 + i for i in range(task.selection_runs)]
    test_seeds = [base_seed + i for i in range(TEST_SEEDS)]
    seeds = sel_seeds + test_seeds
    n_sel = len(sel_seeds)
    if task.name == "shift":
        x_all, y_all, train_idx, val_idx, test_mask = shift_draws(seeds, 50, 500)
        xs, ys = x_all[train_idx], y_all[train_idx]
        ws = np.ones(ys.shape, np.float32)
        val_score = lambda p, s: accuracy(p, x_all[val_idx[s]], y_all[val_idx[s]])
        test_scores = lambda p, s: {"test_accuracy": accuracy(p, x_all, y_all, test_mask[s]),
                                    "train_accuracy": accuracy(p, xs[s], ys[s])}
    else:
        x, y, years, variance = sunspot_windows()
        train = years <= 1920
        xs = np.broadcast_to(x[train], (len(seeds),) + x[train].shape)
        ys = np.broadcast_to(y[train], (len(seeds),) + y[train].shape)
        fold_w, fold_val = sunspot_folds(years[train], n_sel)
        ws = np.concatenate([fold_w, np.ones((len(test_seeds), int(train.sum())), np.float32)])
        t1, t2 = (years >= 1921) & (years <= 1955), (years >= 1956) & (years <= 1979)
        val_score = lambda p, s: arv(p, x[train][fold_val[s]], y[train][fold_val[s]], variance)
        test_scores = lambda p, s: {"arv_test1": arv(p, x[t1], y[t1], variance),
                                    "arv_test2": arv(p, x[t2], y[t2], variance),
                                    "arv_train": arv(p, x[train], y[train], variance)}
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    results = []  # (config, per-seed val scores, per-seed test dicts, params, mixtures)
    for k, lanes in configs(task, components).items():
        t0 = time.time()
        hypers = jnp.asarray([c.hyper() for c in lanes], jnp.float32)
        trainer = make_trainer(task, k)
        inputs = (keys, hypers, jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(ws))
        tag = repr((task, k, lanes, seeds))
        cached = load_cached(cache_dir, task.name, k, tag, jax.eval_shape(trainer, *inputs))
        if cached is None:
            params, before, after = jax.device_get(trainer(*inputs))
            seconds = time.time() - t0
            save_cached(cache_dir, task.name, k, tag, (params, before, after), seconds)
        else:
            (params, before, after), seconds = cached
        log(f"{task.name}: K={k}, {len(lanes)} configs x {len(seeds)} seeds, "
            f"{seconds:.1f}s{' (cached)' if cached else ''}")
        for c, cfg in enumerate(lanes):
            vals = [val_score(lane(params, s, c), s) for s in range(n_sel)]
            tests = [test_scores(lane(params, s, c), s) for s in range(n_sel, len(seeds))]
            results.append(dict(config=cfg, val=vals, test=tests, seconds=seconds / len(lanes),
                                params=[lane(params, s, c) for s in range(n_sel, len(seeds))],
                                before=[lane(before, s, c) for s in range(n_sel, len(seeds))],
                                after=[lane(after, s, c) for s in range(n_sel, len(seeds))]))
    return select(task, results)


def select(task: Task, results):
    """Per method, the config with the best mean validation score; its test statistics."""
    better = (lambda a, b: a > b) if task.metric == "accuracy" else (lambda a, b: a < b)
    best = {}
    for r in results:
        m = r["config"].method
        score = float(np.mean(r["val"]))
        if m not in best or better(score, best[m][0]):
            best[m] = (score, r)
    rows, picked = [], {}
    n_weights = sum(a * b for a, b in zip(task.sizes[:-1], task.sizes[1:]))
    for m, (score, r) in best.items():
        cfg = r["config"]
        row = {"model": task.model, "method": m, "task": task.name, "strength": cfg.tau}
        if m.startswith("soft"):
            row["beta"] = cfg.beta
        row.update({f"val_{task.metric}": score, "seeds": len(r["test"]),
                    "free_params": n_weights + sum(task.sizes[1:])})
        for key in r["test"][0]:
            vals = np.array([t[key] for t in r["test"]])
            row[key] = float(vals.mean())
            row[f"{key}_std"] = float(vals.std())
        row["seconds"] = r["seconds"]
        rows.append(row)
        picked[m] = r
    sweep = [{"method": r["config"].method, "tau": r["config"].tau, "beta": r["config"].beta,
              f"val_{task.metric}": float(np.mean(r["val"])),
              **{f"test_{k}": float(np.mean([t[k] for t in r["test"]])) for k in r["test"][0]}}
             for r in results]
    return rows, picked, sweep


# ----------------------------------------------------------------------------- plots


def mixture_density(grid, mixture):
    return np.exp(np.asarray(P.log_density(jnp.asarray(grid, jnp.float32), mixture)))


def plot_mixtures(picked, tasks_run, out_dir):
    """Kernel-weight histogram under the mixture density, when the penalty switches on and at
    the end of training (the chosen soft-sharing setting, first test seed)."""
    plt = common.plt()
    fig, axes = plt.subplots(len(tasks_run), 2, figsize=(11, 3.6 * len(tasks_run)), squeeze=False)
    for row, (task, chosen) in enumerate(tasks_run):
        r = picked[task][chosen]
        (params0, mix0), params1, mix1 = r["before"][0], r["params"][0], r["after"][0]
        for col, (label, params, mix) in enumerate(
            (("penalty switched on", params0, mix0), ("end of training", params1, mix1))
        ):
            ax = axes[row, col]
            w = np.concatenate([np.ravel(v) for v in P.selected_leaves(params, KERNELS).values()])
            pad = 0.05 * (w.max() - w.min() + 1e-3)
            grid = np.linspace(w.min() - pad, w.max() + pad, 800)
            ax.hist(w, bins=60, density=True, alpha=0.5, label=f"{w.size} kernel weights")
            ax.plot(grid, mixture_density(grid, mix), "k", lw=1, label="mixture density")
            for m in np.asarray(mix.means):
                ax.axvline(m, color="C3", lw=0.5)
            ax.set_yscale("log")
            ax.set_ylim(1e-3, None)
            ax.set_title(f"{task}, {chosen}: {label}", fontsize=10)
            ax.set_xlabel("weight value (red: component means)")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "soft_sharing_mixture.png"), dpi=110)
    plt.close(fig)


def plot_sweeps(sweeps, out_dir):
    plt = common.plt()
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6 * len(sweeps), 4), squeeze=False)
    for ax, (task, sweep) in zip(axes[0], sweeps.items()):
        metric = "val_accuracy" if task == "shift" else "val_arv"
        for m in sorted({s["method"] for s in sweep} - {"none"}):
            pts = sorted((s["tau"], s[metric]) for s in sweep if s["method"] == m
                         and (s["beta"] == min(x["beta"] for x in sweep if x["method"] == m)))
            ax.plot(*zip(*pts), marker="o", ms=3, label=m)
        none = [s[metric] for s in sweep if s["method"] == "none"]
        if none:
            ax.axhline(none[0], color="k", ls="--", lw=1, label="none")
        ax.set_xscale("log")
        ax.set_xlabel("penalty strength (smallest beta for soft sharing)")
        ax.set_ylabel(metric.replace("_", " ") + " (selection data)")
        ax.set_title(task)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "soft_sharing_sweep.png"), dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- report


def verdict(rows, task, key, higher_better, val_key):
    """Does the soft-sharing K chosen on validation beat both L2 and weight elimination?"""
    by = {r["method"]: r for r in rows if r["task"] == task}
    soft = [r for m, r in by.items() if m.startswith("soft")]
    best_soft = (max if val_key == "val_accuracy" else min)(soft, key=lambda r: r[val_key])
    others = [by[m] for m in ("l2", "weight_elimination") if m in by]
    beats = all((best_soft[key] > r[key]) if higher_better else (best_soft[key] < r[key])
                for r in others)
    winner = (max if higher_better else min)(by.values(), key=lambda r: r[key])
    detail = ", ".join(f"{m} {r[key]:.4f} ± {r[key + '_std']:.4f}" for m, r in sorted(by.items()))
    return beats, best_soft, winner, detail


DISCUSSION = """
## Why our numbers may differ from the paper's

* The shift-detection task is rebuilt from the paper's description, not from its code or
  data; its exact input coding, training-set size, net and optimiser may differ. We picked a
  training set of 50 cases because in a pilot (same net, 100 cases, 6 draws) the net without
  any penalty already reached 95.6% ± 1.5% test accuracy, leaving nothing to regularise.
* Nowlan & Hinton train the mixture jointly from the start (and learn the output noise
  variance); we train unpenalised for the first steps, then initialise the mixture evenly
  over the weights' range with a component fixed at 0 (learned mixing weight) and put
  Gamma(1, beta) priors on the precisions. Without such a prior, pilot runs from scratch
  collapsed the component variances (std ~1e-3) and froze the weights into two or three
  values early, which generalised worse than no penalty.
* All penalties share one recipe (full-batch Adam, same steps, same switch-on point,
  kernels only, weight-elimination scale w0 = 1); only their strengths (and beta) were tuned,
  on validation data. A different recipe or a finer search could change the ranking,
  especially on the shift task where the seed-to-seed spread (std 0.05-0.08) is large.
* Sunspot ARVs are normalised by the variance of the whole 1700-1979 series in our [0, 1]
  scaling; the sunspot numbers are statsmodels' copy, which may differ slightly from the
  series Weigend et al. used.
"""


def report(rows, quick):
    lines = ["## The paper's claim beside our measurement\n", f"Paper: {PAPER_CLAIM}\n",
             "Measured (the chosen strength per method; mean ± std over the test seeds):\n"]
    for task, key, hb, val_key in (("shift", "test_accuracy", True, "val_accuracy"),
                                   ("sunspots", "arv_test1", False, "val_arv"),
                                   ("sunspots", "arv_test2", False, "val_arv")):
        if not any(r["task"] == task for r in rows):
            continue
        beats, best, winner, detail = verdict(rows, task, key, hb, val_key)
        lines.append(
            f"- **{task}, {key}** ({best['seeds']} seeds; {'higher' if hb else 'lower'} is "
            f"better): {detail}. Best here: {winner['method']}. The soft-sharing K chosen on "
            f"validation ({best['method']}) {'beats' if beats else 'does not beat'} both weight "
            f"decay and weight elimination."
        )
    lines += [
        "",
        "Differences smaller than about two standard deviations divided by sqrt(seeds) are not "
        "significant. Strengths (and the soft-sharing beta) were chosen on validation data only "
        "(see the protocol below); `soft_sharing_sweep.png` shows the validation curves and "
        "`grid.json` every setting's validation and test means (the test means there are for "
        "information and were not used to choose). `soft_sharing_mixture.png` shows the learned "
        "mixture over the kernel-weight histogram when the penalty is switched on and after "
        "training. The `seconds` column is the row's share of its batched (vmapped) training run.",
        DISCUSSION,
        "## Protocol",
        "",
        __doc__.split("Run:")[0].split("References:")[0].strip().split("\n\n", 1)[1],
    ]
    if quick:
        lines.insert(0, "**Quick run**: few steps and seeds, a 3-point grid, K=3 only; not a result.\n")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = common.parse_args("soft_sharing", __doc__.splitlines()[0], argv=argv)
    t_start = time.time()
    log = lambda msg: print(f"[{time.time() - t_start:6.1f}s] {msg}", flush=True)
    global TEST_SEEDS
    if args.quick:
        TEST_SEEDS = 2
    components = (3,) if args.quick else COMPONENTS
    all_rows, picked, sweeps = [], {}, {}
    # Per-trainer outputs, kept outside the results folder so that a rerun resumes.
    cache_dir = os.path.join(common.ROOT, "runs", "soft_sharing-cache" + ("-quick" if args.quick else ""))
    for name, task in tasks(args.quick).items():
        rows, chosen, sweep = run_task(task, components, args.seed, log,
                                       cache_dir)
        all_rows += rows
        picked[name], sweeps[name] = chosen, sweep
    with open(os.path.join(args.out, "grid.json"), "w") as f:
        json.dump(sweeps, f, indent=1)
    show = []
    for name, metric, hb in (("shift", "test_accuracy", True), ("sunspots", "arv_test1", False)):
        soft = [r for r in all_rows if r["task"] == name and r["method"].startswith("soft")]
        val_key = "val_accuracy" if hb else "val_arv"
        best = (max if hb else min)(soft, key=lambda r: r[val_key])  # chosen on validation
        show.append((name, best["method"]))
    plot_mixtures(picked, show, args.out)
    plot_sweeps(sweeps, args.out)
    table = common.write_results(args.out, "soft_sharing", "shift-detection+sunspots",
                                 args.quick, all_rows, extra_md=report(all_rows, args.quick))
    print(table)
    log("done")
    return all_rows


if __name__ == "__main__":
    main()
