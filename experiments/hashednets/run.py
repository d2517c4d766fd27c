"""Train and store every (net, compression, method) point of the HashedNets study."""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

from experiments.hashednets import config, report
from wsjax import compress, study
from wsjax.models import MLP, equal_size_widths, mlp_params
from wsjax.results import Store
from wsjax.sharing import free_params, hashed
from wsjax.train import classifier, evaluate


def method_pipeline(unit: dict) -> compress.Pipeline:
    """The stages that make a point: a re-parameterisation (none for the dense nets), then
    training from the random initialisation."""
    c, seed = unit["compression"], unit["seed"]
    first = {"hashed": [compress.Hash(c, scope="layer", init="random", hash_seed=seed)],
             "hashed_pool": [compress.Hash(c, scope="pool", init="random", hash_seed=seed)],
             "lrd": [compress.LowRank(compression=c)], "rer": [compress.RandomEdges(c)], "nn": []}[unit["method"]]
    train = compress.Retrain(unit["epochs"], unit["lr"], alpha=unit["final_lr_fraction"],
                             batch_size=unit["batch_size"])
    return compress.Pipeline([*first, train])


def widths(unit: dict, params, input_dim: int) -> tuple:
    """The net's widths; for ``nn``, scaled to the free parameters of the per-layer hashed net."""
    features = tuple(unit["features"])
    if unit["method"] != "nn":
        return features
    target = free_params(hashed(unit["compression"]).init(jax.random.key(unit["seed"]), params))
    return equal_size_widths(features, target, input_dim)


def compute(unit: dict, data, store: Store) -> dict:
    train, test = data
    key = jax.random.key(unit["seed"])
    input_dim = int(np.prod(train[0].shape[1:]))
    params = MLP(tuple(unit["features"])).init(key, train[0][:1])["params"]
    features = widths(unit, params, input_dim)
    model = MLP(features)
    if features != tuple(unit["features"]):
        params = model.init(key, train[0][:1])["params"]
    result = method_pipeline(unit).run(model, train, None, params=params, seed=unit["seed"], progress=False,
                                       loop=study.loop_for("lenet300100"))
    _, eval_fn = classifier(lambda p, x: model.apply({"params": p}, x))
    path = store.artifact(unit, ".wsjax")
    rep, _, accuracy, stored = study.store_and_reload(result.stored, path, lambda p: evaluate(eval_fn, p, *test)["accuracy"])
    virtual = mlp_params(unit["features"], input_dim)
    return {"model": unit["net"], "method": unit["method"], "compression_factor": unit["compression"],
            "free_params": free_params(result.state), "virtual_params": virtual, "test_accuracy": accuracy,
            "stored_bytes": stored, "dense_bytes": 4 * virtual, "compression": 4 * virtual / stored,
            "file": os.path.relpath(path, store.folder), "train_loss": result.history[-1]["per_epoch"][-1]["train_loss"],
            "seconds": sum(h.get("seconds", 0.0) for h in result.history),
            "widths": "-".join(map(str, (input_dim, *features)))}


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)
    data = functools.lru_cache(maxsize=1)(lambda s: study.splits(dataset, False, s, cfg.train_examples,
                                                                 cfg.test_examples))
    rows = study.run_units(
        store, cfg.units(dataset, seed), lambda u: compute(u, data(u["seed"]), store),
        describe=lambda u: f"{u['net']} {u['method']:11s} c=1/{round(1 / u['compression'])} seed {u['seed']}",
        summary=lambda r: f"free={r['free_params']} acc={r['test_accuracy']:.4f} {r['stored_bytes']:,} B")
    print(report.write(rows, cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args = study.parse_args("hashednets", "HashedNets against equal-size baselines", argv=argv)
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
