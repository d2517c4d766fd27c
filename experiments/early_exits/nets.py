"""The study's nets: the jointly trained multi-exit CNN and the separate single-exit CNNs of
the notes' alternative, trained with one recipe, stored in real files and scored per exit."""

from __future__ import annotations

import functools
import os
import time
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from wsjax import study
from wsjax.models import MultiExitCNN, accuracy_vs_macs, joint_loss
from wsjax.models import counting
from wsjax.models.early_exit import ConvBlock, ExitHead, exit_costs
from wsjax.sharing import count_params
from wsjax.train import evaluate, fit

#: the initialisation's PRNG: 'rbg' compiles about 4x faster than threefry on XLA:CPU (as
#: wsjax.train.seeds draws its initialisations)
INIT_PRNG = "rbg"
#: the epoch loop of a small conv net on XLA:CPU (as LeNet-5's, benchmarks/epoch_loop.py)
LOOP_LIKE = "lenet5"


class SingleExitCNN(nn.Module):
    """A separate network of the notes' alternative: the blocks of
    :class:`~wsjax.models.MultiExitCNN` (a 2x2 max-pool before every block but the first) and
    one :class:`~wsjax.models.early_exit.ExitHead` after the last. Returns a one-tuple of
    logits, as the multi-exit net returns one logits array per exit."""

    widths: Sequence[int]
    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        for i, w in enumerate(self.widths):
            x = ConvBlock(int(w), i > 0, name=f"blocks_{i}")(x)
        return (ExitHead(self.num_classes, name="head")(x),)


def build(unit: dict) -> nn.Module:
    widths = tuple(unit["widths"])
    return MultiExitCNN(widths=widths) if unit["kind"] == "multi_exit" else SingleExitCNN(widths)


def weights_of(unit: dict) -> list[float]:
    return unit["weights"] if unit["kind"] == "multi_exit" else [1.0]


@functools.lru_cache(maxsize=256)
def single_exit_macs(widths: tuple, image_shape: tuple) -> int:
    return counting.count(SingleExitCNN(widths), image_shape).macs


@functools.lru_cache(maxsize=64)
def narrow_widths(base: tuple, fraction: float, image_shape: tuple) -> list[int]:
    """The widest ``round(s * base)`` (every width >= 1) whose single-exit net costs at most
    ``fraction`` of the full multi-exit net's multiply-adds (bisection on ``s``: the cost
    only grows with ``s``)."""
    budget = fraction * exit_costs(MultiExitCNN(widths=tuple(base)), image_shape).cumulative[-1]
    scaled = lambda s: tuple(max(1, round(s * w)) for w in base)
    lo, hi = 0.0, 1.0
    if single_exit_macs(scaled(lo), image_shape) > budget:
        raise ValueError(f"no width-scaled net of {base} fits {fraction:.0%} of the full net's multiply-adds")
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if single_exit_macs(scaled(mid), image_shape) <= budget else (lo, mid)
    return list(scaled(lo))


@functools.lru_cache(maxsize=None)
def _init(model: nn.Module):
    return jax.jit(model.init)  # one compile per architecture, shared by the seeds (eager init is slow)


@functools.lru_cache(maxsize=None)
def losses(model: nn.Module, weights: tuple):
    """``(loss_fn, eval_fn)``: the weighted sum of the exits' cross-entropies (MSDNet's joint
    objective; one exit: the plain cross-entropy) and every exit's accuracy. Cached, so that
    the seeds of one net share the jitted evaluation."""
    apply = lambda th, x: model.apply({"params": th}, x)

    def loss_fn(theta, x, y):
        return joint_loss(apply(theta, x), y, weights)

    def eval_fn(theta, x, y):
        zs = apply(theta, x)
        out = {f"accuracy_{i}": jnp.mean(jnp.argmax(z, -1) == y) for i, z in enumerate(zs)}
        return {**out, "loss": joint_loss(zs, y, weights)}

    return loss_fn, eval_fn


def train(unit: dict, data):
    """``(model, params, history, seconds)`` of one net trained by the study's recipe."""
    (x, y), val, _ = data
    model = build(unit)
    params = _init(model)(jax.random.key(unit["seed"], impl=INIT_PRNG), x[:1])["params"]
    loss_fn, eval_fn = losses(model, tuple(weights_of(unit)))
    steps = unit["epochs"] * (len(x) // unit["batch_size"])
    opt = optax.adam(optax.cosine_decay_schedule(unit["lr"], steps, alpha=unit["final_lr_fraction"]))
    t0 = time.perf_counter()
    result = fit(loss_fn, params, opt, (x, y), eval=val, eval_fn=eval_fn, epochs=unit["epochs"],
                 batch_size=unit["batch_size"], seed=unit["seed"], loop=study.loop_for(LOOP_LIKE), progress=False)
    return model, jax.device_get(result.theta), result.history, time.perf_counter() - t0


def exit_accuracies(model, params, split, weights) -> list[float]:
    scores = evaluate(losses(model, tuple(weights))[1], params, *split)
    return [scores[f"accuracy_{i}"] for i in range(len(weights))]


def sweep(model, params, split, thresholds) -> dict:
    """Accuracy, counted average multiply-adds and exit shares of every threshold (columns)."""
    points = accuracy_vs_macs(model, params, split[0], split[1], thresholds, batch_size=1000)
    return {"thresholds": [p.threshold for p in points], "accuracy": [p.accuracy for p in points],
            "avg_macs": [p.avg_macs for p in points], "exit_fractions": [list(p.exit_fractions) for p in points]}


def net_metrics(unit: dict, data, store, thresholds) -> dict:
    """Train one net, store it in a ``.wsjax`` file and score the file's params: every exit's
    validation and test accuracy and, for a multi-exit net, the threshold sweeps."""
    _, val, test = data
    model, params, history, seconds = train(unit, data)
    path = store.artifact(unit, ".wsjax")
    _, params, _, stored = study.store_and_reload(params, path, lambda p: None)  # bit-identical, checked
    weights = weights_of(unit)
    shape = tuple(test[0].shape[1:])
    out = {"free_params": count_params(params), "stored_bytes": stored, "file": os.path.relpath(path, store.folder),
           "seconds": seconds, "train_loss": history[-1]["train_loss"],
           "val_curves": [[h[f"eval_accuracy_{i}"] for h in history] for i in range(len(weights))]}
    val_acc, test_acc = exit_accuracies(model, params, val, weights), exit_accuracies(model, params, test, weights)
    if unit["kind"] == "multi_exit":
        costs = exit_costs(model, shape)
        out.update(exit_val_accuracy=val_acc, exit_test_accuracy=test_acc, test_accuracy=test_acc[-1],
                   val_accuracy=val_acc[-1], exit_macs=list(costs.cumulative), block_macs=list(costs.block_macs),
                   head_macs=list(costs.head_macs), macs=costs.cumulative[-1],
                   val_sweep=sweep(model, params, val, thresholds), test_sweep=sweep(model, params, test, thresholds))
    else:
        out.update(val_accuracy=val_acc[0], test_accuracy=test_acc[0],
                   macs=single_exit_macs(tuple(unit["widths"]), shape))
    out["test_images"] = len(test[0])
    return out


def load(unit: dict, store, image_shape) -> tuple:
    """``(model, params)`` of a trained unit, read back from its ``.wsjax`` file."""
    from wsjax import storage

    model = build(unit)
    template = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *image_shape)))["params"]
    like = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template)
    return model, storage.load(store.artifact(unit, ".wsjax"), like=like)
