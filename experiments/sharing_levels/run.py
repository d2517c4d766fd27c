"""Tune every arm on validation, then train, store and score every point of the sharing-level study."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.sharing_levels import config, report
from wsjax import compress, study
from wsjax.analysis import collision_load
from wsjax.compress.train import retrain, with_theta
from wsjax.models import MLP, equal_size_widths, mlp_params
from wsjax.results import Store
from wsjax.sharing import (KERNELS, count_params, flatten_paths, free_params, hashed, identity, matcher, tied,
                           tied_in_order)
from wsjax.train import classifier, evaluate

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


def train_metrics(unit: dict, data, store: Store) -> dict:
    """Train one net of one arm from its random initialisation; score it as read back from its file."""
    train, val, test = data
    dense = mlp_params(_features(unit), 784)
    model = model_of(unit, dense)
    key = jax.random.key(unit["seed"])
    params = model.init(key, train[0][:1])["params"]
    compression = hash_compression(unit, params) if unit["arm"] in config.HASHING else None
    t = transform_of(unit, compression)
    state = t.init(jax.random.fold_in(key, 1), params)
    net = compress.from_linen(model, params)
    theta, _, history, seconds = retrain(
        net, compress.Compressed(t, state), train, val, epochs=unit["epochs"], lr=unit["lr"], seed=unit["seed"],
        alpha=unit["final_lr_fraction"], batch_size=unit["batch_size"], loop=study.loop_for("deep_mlp"),
        progress=False)
    trained = with_theta(state, theta)
    _, eval_fn = classifier(net.apply)
    score = lambda p: evaluate(eval_fn, p, *test)["accuracy"]  # noqa: E731
    in_memory = score(jax.device_get(t.apply(trained)))
    path = store.artifact(unit, ".wsjax")
    _, _, from_file, stored = study.store_and_reload((t, trained), path, score)
    if from_file != in_memory:
        raise RuntimeError(f"{path}: the file's net scores {from_file}, the trained one {in_memory}")
    row = {"test_accuracy": from_file, "in_memory_accuracy": in_memory, "stored_bytes": stored,
           "dense_bytes": 4 * dense, "free_params": free_params(trained), "dense_params": dense,
           "val_accuracy": history[-1]["eval_accuracy"], "val_curve": [h["eval_accuracy"] for h in history],
           "train_loss": history[-1]["train_loss"], "seconds": seconds, "widths": list(model.features),
           "file": os.path.relpath(path, store.folder)}
    if compression is not None:
        load = collision_load(trained)
        row["compression"] = compression
        row["collision_load"] = {p.split("/")[0]: {"load": v["load"], "shared": v["shared"]} for p, v in load.items()}
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
    compute = lambda u: train_metrics(u, data(), store)  # noqa: E731
    tuned = study.run_units(store, cfg.tune_units(dataset, seed), compute, describe=_describe, summary=_summary)
    points = study.run_units(store, cfg.point_units(dataset, seed, report.settings_from(tuned)), compute,
                             describe=_describe, summary=_summary)
    rows = tuned + points
    print(report.write(rows, cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args = study.parse_args("sharing_levels", DESCRIPTION, argv=argv)
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
