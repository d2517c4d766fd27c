"""Tune every arm on validation, then train, store and score every point of the sharing-level study."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.sharing_levels import config, report
from wsjax import compress, pruning, study
from wsjax.analysis import collision_load
from wsjax.compress.train import retrain, with_theta
from wsjax.models import MLP, DynamicNet, equal_size_widths, mlp_params
from wsjax.results import Store
from wsjax.sharing import (KERNELS, count_params, flatten_paths, free_params, hashed, identity, masked, matcher,
                           tied, tied_in_order)
from wsjax.train import classifier, evaluate, fit

DESCRIPTION = "cross-layer against within-layer hard sharing at equal stored bytes (issue 20)"


def data_for(cfg: config.Config, dataset: str, seed: int):
    """``(train, val, test)``: the first ``train_examples`` images, the next ``validation``, the test set."""
    return study.train_val_test(dataset, seed, cfg.train_examples, cfg.validation, cfg.test_examples)


def _features(unit: dict) -> tuple[int, ...]:
    return (unit["width"],) * unit["hidden_layers"] + (10,)


def hash_compression(unit: dict, params) -> float:
    """The kernels' compression that leaves ``budget * dense`` free parameters with the biases
    (and a pool's per-layer scales): ``hashed`` hashes the kernels (:data:`wsjax.sharing.KERNELS`)."""
    is_kernel = matcher(KERNELS)
    kernels = sum(int(np.size(x)) for p, x in flatten_paths(params).items() if is_kernel(p))
    biases = count_params(params) - kernels
    scales = unit["hidden_layers"] + 1 if unit["arm"] == "hashed_pool_scaled" else 0
    target = unit["budget"] * count_params(params) - biases - scales
    if target < 1:
        raise ValueError(f"budget {unit['budget']} leaves no free parameter for the kernels")
    return min(1.0, target / kernels)


def transform_of(unit: dict, compression: float | None):
    """The weight-space transform of a unit's arm (identity for the dense and narrow nets);
    ``compression``: a hashing arm's (:func:`hash_compression`)."""
    arm, c = unit["arm"], compression
    if arm in (config.DENSE, "narrow"):
        return identity()
    if arm in config.TYING:
        unique, order, multiplex, rank = config.TYING[arm]
        layers, kw = config.tied_layers(unit["hidden_layers"]), {"multiplex": multiplex, "rank": max(rank, 1)}
        return tied(layers, **kw) if unique == 1 else tied_in_order(layers, unique, order, **kw)
    kw = {"seed": unit["seed"], "init_scale": unit["init_scale"]}
    return {"hashed_layer": lambda: hashed(c, **kw), "hashed_uniform": lambda: hashed(c, budget="uniform", **kw),
            "hashed_pool": lambda: hashed(c, scope="pool", **kw),
            "hashed_pool_scaled": lambda: hashed(c, scope="pool", layer_scale=True, **kw),
            "roast": lambda: hashed(c, scope="pool", block=unit["block"], **kw)}[arm]()


def model_of(unit: dict, dense_params: int) -> MLP:
    features = _features(unit)
    if unit["arm"] == "narrow":
        features = equal_size_widths(features, round(unit["budget"] * dense_params), 784)
    return MLP(features)


def _train_stored(unit: dict, net, t, state, data, store: Store):
    """Train ``state``'s free parameters through ``t`` with the unit's recipe, store the net and
    score it from its file: ``(trained state, row metrics)``."""
    train, val, test = data
    theta, _, history, seconds = retrain(
        net, compress.Compressed(t, state), train, val, epochs=unit["epochs"], lr=unit["lr"], seed=unit["seed"],
        alpha=unit["final_lr_fraction"], batch_size=unit["batch_size"], loop=study.loop_for("deep_mlp"),
        progress=False)
    trained = with_theta(state, theta)
    _, eval_fn = classifier(net.apply)
    score = lambda p: evaluate(eval_fn, p, *test)["accuracy"]  # noqa: E731
    return trained, {**study.stored_row(unit, store, (t, trained), t.apply(trained), score), **_curve(history),
                     "seconds": seconds}


def _masked_sizes(params, masks) -> dict:
    """A pruned net's counts: the surviving kernel weights and every bias are its free params."""
    n = count_params(params)
    kept = sum(int(np.count_nonzero(m)) for m in jax.tree.leaves(masks))
    biases = n - sum(int(np.size(x)) for p, x in flatten_paths(params).items() if matcher(KERNELS)(p))
    return {"dense_bytes": 4 * n, "free_params": kept + biases, "dense_params": n,
            "kept_fraction": float(pruning.density(masks))}


def _curve(history) -> dict:
    return {"val_accuracy": history[-1]["eval_accuracy"], "val_curve": [h["eval_accuracy"] for h in history],
            "train_loss": history[-1]["train_loss"]}


def train_metrics(cfg: config.Config, unit: dict, data, store: Store) -> dict:
    """One net of one arm, trained, stored and scored as read back from its file."""
    if unit["arm"] in config.DERIVED:
        return train_pruned(cfg, unit, data, store)
    if unit["arm"] == "dynamic":
        return train_dynamic(unit, data, store)
    if unit["arm"] == config.LOTTERY:
        return train_lottery_round(cfg, unit, data, store)
    if unit["arm"] in config.SOFT:
        return train_soft(cfg, unit, data, store)
    train = data[0]
    dense = mlp_params(_features(unit), 784)
    model = model_of(unit, dense)
    key = jax.random.key(unit["seed"])
    params = model.init(key, train[0][:1])["params"]
    compression = hash_compression(unit, params) if unit["arm"] in config.HASHING else None
    t = transform_of(unit, compression)
    state = t.init(jax.random.fold_in(key, 1), params)
    trained, row = _train_stored(unit, compress.from_linen(model, params), t, state, data, store)
    row.update(dense_bytes=4 * dense, free_params=free_params(trained), dense_params=dense,
               widths=list(model.features))
    if compression is not None:
        load = collision_load(trained)
        row["compression"] = compression
        row["collision_load"] = {p.split("/")[0]: {"load": v["load"], "shared": v["shared"]} for p, v in load.items()}
    return row


# ---------------------------------------------------------------------------- derived arms


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
    model = MLP(_features(unit))
    n = count_params(dense)
    target = unit["budget"] * 4 * n
    keep = pruning.kept_fraction_for_bytes(dense, target, unit["seed"])  # sets the geometric schedule
    rounds, net = unit["prune_rounds"], compress.from_linen(model, dense)
    kw = {"seed": unit["seed"], "loop": study.loop_for("deep_mlp"), "progress": False}
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
            "target_bytes": target, **_curve(history), "seconds": seconds, "widths": list(model.features)}


def _round_params(cfg: config.Config, unit: dict, r: int, data, store: Store):
    """The trained net of round ``r`` of ``unit``'s lottery chain (round 0: the dense point)."""
    if r == 0:
        return dense_start(cfg, unit, data, store)
    return study.stored_or_rebuilt(store, cfg.lottery_round_of(unit, r), lambda u: train_metrics(cfg, u, data, store),
                                   f"lottery round {r} of seed {unit['seed']}")


def train_lottery_round(cfg: config.Config, unit: dict, data, store: Store) -> dict:
    """Round ``unit['round']`` of Frankle & Carbin's iterative magnitude pruning: prune the
    previous round's trained net (round 0: the dense point) by each layer's rate of its
    surviving weights, rewind the survivors to their values at initialisation (the dense net's
    ``theta_0``) and train them with the dense recipe; stored with the sparse codec."""
    train = data[0]
    r, rates = unit["round"], cfg.lottery_rates()
    previous = _round_params(cfg, unit, r - 1, data, store)
    masks = pruning.lottery.prune_round(previous, pruning.lottery.surviving_masks(previous, rates, r - 1), rates, r)
    model = MLP(_features(unit))
    key = jax.random.key(unit["seed"])
    theta_0 = jax.device_get(model.init(key, train[0][:1])["params"])  # the dense point's own init
    t = masked(masks)
    state = t.init(jax.random.fold_in(key, 1), pruning.lottery.rewind(theta_0, masks))
    _, row = _train_stored(unit, compress.from_linen(model, theta_0), t, state, data, store)
    return {**row, **_masked_sizes(theta_0, masks), "widths": list(model.features)}


def train_soft(cfg: config.Config, unit: dict, data, store: Store) -> dict:
    """Ullrich et al.'s soft weight sharing from the dense point of the unit's seed: ``epochs``
    under a learned Gaussian-mixture prior on the kernels (one for all layers, or one per layer:
    ``unit['scope']``), then merged and snapped; the snapped net is stored and scored."""
    from wsjax.compress import soft

    train, val, test = data
    dense = dense_start(cfg, unit, data, store)
    model = MLP(_features(unit))
    net = compress.from_linen(model, dense)
    pipe = soft.soft_weight_sharing(unit["tau"], unit["epochs"], lr=unit["lr"], pi_zero=unit["pi_zero"],
                                    scope=unit["scope"])
    kw = {"seed": unit["seed"], "progress": False}
    t0 = time.perf_counter()
    retrained = compress.Pipeline(pipe.stages[:1]).run(net, train, val, loop=study.loop_for("deep_mlp"), **kw)
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
            **_curve(learned["per_epoch"]), "seconds": seconds, "widths": list(model.features)}


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
                 batch_size=unit["batch_size"], seed=unit["seed"], loop=study.loop_for("deep_mlp"), progress=False,
                 loss_takes_key=True)
    seconds = time.perf_counter() - t0
    theta = jax.device_get(result.theta)
    depth_val = {r: evaluate(f, theta, *val)["accuracy"] for r, f in evals.items()}
    depth = max(depth_val, key=lambda r: (depth_val[r], -r))  # ties: the shallower pass
    score = lambda p: evaluate(evals[depth], p, *test)["accuracy"]  # noqa: E731
    n, dense = count_params(theta), mlp_params(_features(unit), 784)
    row = {**study.stored_row(unit, store, theta, theta, score), "dense_bytes": 4 * dense, "free_params": n,
           "dense_params": dense, **_curve(result.history), "seconds": seconds, "depth": depth,
           "depth_val_accuracy": {str(r): v for r, v in depth_val.items()},
           "depth_test_accuracy": {str(r): evaluate(f, theta, *test)["accuracy"] for r, f in evals.items()}}
    row["val_accuracy"] = depth_val[depth]  # the chosen depth's (the curve is the deepest pass's)
    return row


def _describe(u: dict) -> str:
    what = f"{u['arm']:18s} {report.budget_label(u['budget']):8s} seed {u['seed']}"
    return f"tune {what} lr {u['lr']:g} scale {u['init_scale']:g}" if u["kind"] == "tune" else what


def _summary(r: dict) -> str:
    return f"val {r['val_accuracy']:.4f} test {r['test_accuracy']:.4f}, {r['stored_bytes']:,} B ({r['seconds']:.0f} s)"


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)
    # loaded and put on the device once, only when a unit needs it (a resumed run may need none)
    data = functools.cache(lambda: jax.tree.map(jnp.asarray, data_for(cfg, dataset, seed)))
    compute = lambda u: train_metrics(cfg, u, data(), store)  # noqa: E731
    run_ = functools.partial(study.run_units, store, compute=compute, describe=_describe, summary=_summary)
    tuned = run_(cfg.tune_units(dataset, seed))
    # the derived arms start from the dense point of seed 0, trained with the dense net's setting
    tuned += run_(cfg.tune_units(dataset, seed, report.settings_from(tuned)))
    points = run_(cfg.point_units(dataset, seed, report.settings_from(tuned)))
    rows = tuned + points
    print(report.write(rows, cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args = study.parse_args("sharing_levels", DESCRIPTION, argv=argv)
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
