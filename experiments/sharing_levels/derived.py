"""The sharing-level study's derived arms: ``pruned`` and the lottery chain (both from a
trained dense point), the soft-sharing arms (from the dense point, Ullrich's retraining) and
seed 002's DynamicNet; each trained, stored and scored from its file."""

from __future__ import annotations

import time

import jax
import numpy as np
import optax

from experiments.sharing_levels import config
from wsjax import compress, pruning, study
from wsjax.models import DynamicNet
from wsjax.results import Store
from wsjax.sharing import count_params, masked
from wsjax.train import classifier, evaluate, fit
from experiments.sharing_levels import nets
from experiments.sharing_levels.run import _curve, _masked_sizes, _train_stored, train_metrics


def dense_start(cfg: config.Config, unit: dict, data, store: Store):
    """The trained dense net a derived arm starts from: the dense point of the unit's seed."""
    return study.stored_or_rebuilt(store, cfg.dense_point_of(unit), lambda u: train_metrics(cfg, u, data, store),
                                   f"the dense net of seed {unit['seed']}")


def round_epochs(epochs: int, rounds: int) -> list[int]:
    """The retraining epochs of each pruning round: ``epochs`` split as evenly as it goes, the
    remainder to the last rounds."""
    return [epochs // rounds + (1 if i >= rounds - epochs % rounds else 0) for i in range(rounds)]


def train_pruned(cfg: config.Config, unit: dict, data, store: Store) -> dict:
    """Magnitude pruning of the trained dense net at the budget's bytes: the kept fraction that
    fits ``budget x`` the dense float32 bytes in the sparse codec's file, reached in
    ``prune_rounds`` geometric rounds of global magnitude pruning, each followed by retraining
    (Han et al.'s iterative pruning; the last round's net is stored and scored)."""
    from wsjax.compress.pipeline import Pipeline
    from wsjax.compress.stages import Prune, Retrain

    train, val, test = data
    dense = dense_start(cfg, unit, data, store)
    model = nets.model({**unit, "arm": config.DENSE})  # the dense architecture
    n = count_params(dense)
    target = unit["budget"] * 4 * n
    keep = pruning.kept_fraction_for_bytes(dense, target, unit["seed"])  # sets the geometric schedule
    rounds, net = unit["prune_rounds"], compress.from_linen(model, dense)
    kw = {"seed": unit["seed"], "loop": study.loop_for(unit["model"]), "progress": False}
    t0 = time.perf_counter()
    c = compress.start(dense)
    for r, epochs in enumerate(round_epochs(unit["epochs"], rounds), 1):
        if r == rounds:  # the last round's mask is what the file stores: fit it to the bytes on
            # the net this round prunes (earlier rounds' retraining moved the magnitudes)
            keep_r = pruning.kept_fraction_for_bytes(jax.device_get(c.params), target, unit["seed"], current=c.masks)
        else:
            keep_r = keep ** (r / rounds)
        retrain_ = Retrain(epochs, unit["lr"], alpha=unit["final_lr_fraction"], batch_size=unit["batch_size"])
        c = Pipeline([Prune(1.0 - keep_r, scope="global"), retrain_]).run(net, train, val, start_from=c, **kw)
    seconds = time.perf_counter() - t0
    _, eval_fn = classifier(net.apply)
    score = lambda p: evaluate(eval_fn, p, *test)["accuracy"]  # noqa: E731
    history = [e for h in c.history if h["stage"] == "retrain" for e in h["per_epoch"]]
    return {**study.stored_row(unit, store, c.stored, c.params, score), **_masked_sizes(dense, c.masks),
            "target_bytes": target, **_curve(history), "seconds": seconds, "widths": nets.widths(model)}


def _round_params(cfg: config.Config, unit: dict, r: int, data, store: Store):
    """The trained net of round ``r`` of ``unit``'s lottery chain (round 0: the dense point)."""
    if r == 0:
        return dense_start(cfg, unit, data, store)
    return study.stored_or_rebuilt(store, {**unit, "round": r}, lambda u: train_metrics(cfg, u, data, store),
                                   f"lottery round {r} of seed {unit['seed']}")


def train_lottery_round(cfg: config.Config, unit: dict, data, store: Store) -> dict:
    """Round ``unit['round']`` of Frankle & Carbin's iterative magnitude pruning: prune the
    previous round's trained net (round 0: the dense point) by each layer's rate of its
    surviving weights, rewind the survivors to their values at initialisation (the dense net's
    ``theta_0``) and train them with the dense recipe; stored with the sparse codec."""
    train = data[0]
    # Frankle & Carbin's per-layer rates (first match wins): the output layer's, then every kernel's
    rates = {rf"^Dense_{unit['hidden_layers']}/kernel$": unit["output_rate"], r"kernel$": unit["rate"]}
    r = unit["round"]
    previous = _round_params(cfg, unit, r - 1, data, store)
    masks = pruning.lottery.prune_round(previous, pruning.lottery.surviving_masks(previous, rates, r - 1), rates, r)
    model = nets.model({**unit, "arm": config.DENSE})  # the dense architecture
    key = jax.random.key(unit["seed"])
    theta_0 = jax.device_get(model.init(key, train[0][:1])["params"])  # the dense point's own init
    t = masked(masks)
    state = t.init(jax.random.fold_in(key, 1), pruning.lottery.rewind(theta_0, masks))
    _, row = _train_stored(unit, compress.from_linen(model, theta_0), t, state, data, store)
    return {**row, **_masked_sizes(theta_0, masks), "widths": nets.widths(model)}


def train_soft(cfg: config.Config, unit: dict, data, store: Store) -> dict:
    """Ullrich et al.'s soft weight sharing from the dense point of the unit's seed: ``epochs``
    under a learned Gaussian-mixture prior on the kernels (one for all layers, or one per layer:
    ``unit['scope']``), then merged and snapped; the snapped net is stored and scored."""
    from wsjax.compress import soft

    train, val, test = data
    dense = dense_start(cfg, unit, data, store)
    model = nets.model({**unit, "arm": config.DENSE})  # the dense architecture
    net = compress.from_linen(model, dense)
    pipe = soft.soft_weight_sharing(unit["tau"], unit["epochs"], lr=unit["lr"], pi_zero=unit["pi_zero"],
                                    scope=unit["scope"])
    kw = {"seed": unit["seed"], "progress": False}
    t0 = time.perf_counter()
    retrained = compress.Pipeline(pipe.stages[:1]).run(net, train, val, loop=study.loop_for(unit["model"]), **kw)
    c = compress.Pipeline(pipe.stages[1:]).run(net, train, val, start_from=retrained, **kw)
    seconds = time.perf_counter() - t0
    params = jax.device_get(c.params)
    _, eval_fn = classifier(net.apply)
    score = lambda p: evaluate(eval_fn, p, *test)["accuracy"]  # noqa: E731
    learned, snap = c.history[-2], c.history[-1]
    n = count_params(dense)
    # free_params: the nonzero weights and biases (the snapped values come from the merged mixtures)
    return {**study.stored_row(unit, store, params, params, score), "dense_bytes": 4 * n,
            "free_params": sum(int(np.count_nonzero(x)) for x in jax.tree.leaves(params)), "dense_params": n,
            "nonzero_fraction": snap["nonzero_fraction"], "distinct_values": snap["distinct_values"],
            "components": snap["components"], "accuracy_before_snap": score(jax.device_get(retrained.params)),
            **_curve(learned["per_epoch"]), "seconds": seconds, "widths": nets.widths(model)}


def train_dynamic(unit: dict, data, store: Store) -> dict:
    """Seed 002's DynamicNet trained by the engine: the middle layer runs a random 0..max_repeats
    times per step (the depth drawn from the step's key, ``fit(..., loss_takes_key=True)``: one
    compiled step for every depth). Scored at each fixed depth; the depth with the best
    validation accuracy is the arm's, and its test accuracy from the file is the point."""
    train, val, test = data
    model = DynamicNet(hidden=unit["width"], out=10, max_repeats=unit["max_repeats"])
    key = jax.random.key(unit["seed"])
    params = model.init({"params": key, "depth": jax.random.fold_in(key, 1)}, train[0][:1])["params"]

    def loss_fn(theta, x, y, k):
        logits = model.apply({"params": theta}, x, rngs={"depth": k})
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def at_depth(r):
        return classifier(lambda theta, x: model.apply({"params": theta}, x, repeats=r))[1]

    evals = {r: at_depth(r) for r in range(unit["max_repeats"] + 1)}
    steps = max(1, unit["epochs"] * (len(train[0]) // unit["batch_size"]))
    opt = optax.adam(optax.cosine_decay_schedule(unit["lr"], steps, alpha=unit["final_lr_fraction"]))
    t0 = time.perf_counter()
    result = fit(loss_fn, params, opt, train, eval=val, eval_fn=evals[unit["max_repeats"]], epochs=unit["epochs"],
                 batch_size=unit["batch_size"], seed=unit["seed"], loop=study.loop_for(unit["model"]), progress=False,
                 loss_takes_key=True)
    seconds = time.perf_counter() - t0
    theta = jax.device_get(result.theta)
    depth_val = {r: evaluate(f, theta, *val)["accuracy"] for r, f in evals.items()}
    depth = max(depth_val, key=lambda r: (depth_val[r], -r))  # ties: the shallower pass
    score = lambda p: evaluate(evals[depth], p, *test)["accuracy"]  # noqa: E731
    n, dense = count_params(theta), nets.dense_params(unit)
    row = {**study.stored_row(unit, store, theta, theta, score), "dense_bytes": 4 * dense, "free_params": n,
           "dense_params": dense, **_curve(result.history), "seconds": seconds, "depth": depth,
           "depth_val_accuracy": {str(r): v for r, v in depth_val.items()},
           "depth_test_accuracy": {str(r): evaluate(f, theta, *test)["accuracy"] for r, f in evals.items()}}
    row["val_accuracy"] = depth_val[depth]  # the chosen depth's (the curve is the deepest pass's)
    return row
