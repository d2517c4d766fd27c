"""Run (or read back) every unit of the redundancy study: analyses of the trained nets, the
cross-layer basis against per-layer SVD, Denil's predicted first layers, the bottleneck
layer and Denton's factored LeNet-5."""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.redundancy import config, report
from wsjax import study
from wsjax.compress.net import from_linen
from wsjax.compress.state import Compressed
from wsjax.compress.train import retrain, with_theta
from wsjax.results import Store
from wsjax.sharing import count_params, flatten_paths, identity, low_rank
from wsjax.sharing.lowrank import rank_for_compression
from wsjax.sharing.predicted import (MatrixDictionary, choose_alpha, empirical_kernel, fraction_predicted,
                                     kernel_spec, predicted, ridge_dictionary)
from wsjax.sharing.shared_basis import shared_basis
from wsjax.train import classifier, evaluate


@functools.lru_cache(maxsize=4)
def data_for(dataset: str, train_examples, validation: int, test_examples):
    """``(train, val, test)`` on the device: the first ``train_examples`` training images
    (all: ``None``) less their last ``validation``, those ``validation``, the test set."""
    train, test = study.splits(dataset, False, 0, train_examples, test_examples)
    train, val = study.train_val(train, validation)
    return jax.tree.map(jnp.asarray, (train, val, test))


def data_of(unit: dict):
    return data_for(unit["dataset"], unit["train_examples"], unit["validation"], unit["test_examples"])


def trained(unit: dict, quick: bool):
    """``(model, params)`` of the baseline net ``unit['dense']`` (trained there if missing)."""
    return study.trained_net(unit["dense"], quick)


def accuracy(apply, params, xy) -> float:
    return evaluate(classifier(apply)[1], params, *xy)["accuracy"]


def loop(model_name: str) -> str:
    return study.loop_for(model_name)


# ----------------------------------------------------------------------------- basis


def basis_transform(unit: dict, params):
    """The unit's arm at its budget: per-layer SVD of each group member at the rank holding
    ``budget`` of its size, or the shared basis with at most those parameters."""
    leaves = flatten_paths(params)
    per_layer = [rank_for_compression(unit["budget"], tuple(leaves[g[0]].shape)) for g in unit["groups"]]
    if unit["arm"] == "per_layer":
        ranks = {p: r for g, r in zip(unit["groups"], per_layer) for p in g}
        members = frozenset(ranks)
        return low_rank(rank=ranks, include=lambda path: path in members)
    return shared_basis(unit["groups"], per_layer_rank={i: r for i, r in enumerate(per_layer)})


def _group_size(unit, params) -> int:
    leaves = flatten_paths(params)
    return sum(int(np.prod(leaves[p].shape)) for g in unit["groups"] for p in g)


def store_scored(store: Store, unit: dict, stored, apply, test) -> tuple[float, int, str]:
    """Write ``stored`` to the unit's ``.wsjax`` file and score the net read back from it."""
    path = store.artifact(unit, ".wsjax")
    _, _, from_file, size = study.store_and_reload(stored, path, lambda p: accuracy(apply, p, test))
    return from_file, size, os.path.relpath(path, store.folder)


def basis_metrics(unit: dict, store: Store, quick: bool) -> dict:
    model, params = trained(unit, quick)
    train, val, test = data_of(unit)
    net = from_linen(model, params)
    transform = basis_transform(unit, params)
    state = transform.init(jax.random.key(unit["seed"]), params)
    before = accuracy(net.apply, transform.apply(state), test)
    current = Compressed(transform, state)
    theta, _, history, seconds = retrain(net, current, train, val, epochs=unit["epochs"], lr=unit["lr"],
                                         seed=unit["seed"], loop=loop(unit["model"]), progress=False,
                                         desc=f"{unit['arm']} {unit['budget']:g}")
    state = with_theta(state, theta)
    in_memory = accuracy(net.apply, transform.apply(state), test)
    from_file, size, file = store_scored(store, unit, (transform, state), net.apply, test)
    if abs(from_file - in_memory) > 1e-3:
        raise RuntimeError(f"{file}: the file's net scores {from_file}, the trained one {in_memory}")
    selected = _group_size(unit, params)
    free = count_params(theta)
    rest = count_params(params) - selected
    return {"test_accuracy_factored": before, "test_accuracy": from_file, "in_memory_accuracy": in_memory,
            "val_accuracy": history[-1]["eval_accuracy"], "stored_bytes": size, "file": file,
            "free_params": free, "group_params": free - rest, "group_dense_params": selected,
            "dense_bytes": 4 * count_params(params), "seconds": seconds,
            "dense_test_accuracy": accuracy(net.apply, params, test)}


# ----------------------------------------------------------------------------- denil


def denil_transform(unit: dict, train_x, shape):
    """The first layer's prediction (or the identity for the dense control)."""
    if unit["dictionary"] is None:
        return identity()
    n = int(np.prod(shape))
    alpha = choose_alpha(jax.random.key(unit["seed"]), n, unit["seen"])
    if unit["dictionary"] == "se":
        spec = kernel_spec(shape, unit["length_scale"], unit["ridge"], alpha)
    else:  # Denil et al.'s data-driven kernel: the inputs' empirical covariance
        kernel = _empirical_kernel(train_x)
        spec = MatrixDictionary(ridge_dictionary(kernel, alpha, unit["ridge"]).astype(np.float32),
                                     tuple(int(a) for a in alpha))
    return predicted(spec, include=r"^Dense_0/kernel$")


def _empirical_kernel(train_x) -> np.ndarray:
    x = np.asarray(train_x[:10_000], np.float64)
    return empirical_kernel(x.reshape(len(x), -1))


def denil_metrics(unit: dict, store: Store) -> dict:
    train, val, test = data_of(unit)
    model = study.model_by_name(unit["model"])
    params = model.init(jax.random.key(unit["seed"]), train[0][:1])["params"]
    net = from_linen(model, params)
    transform = denil_transform(unit, train[0], tuple(train[0].shape[1:]))
    state = transform.init(jax.random.key(unit["seed"]), params)
    current = Compressed(transform, state)
    theta, _, history, seconds = retrain(net, current, train, val, epochs=unit["epochs"], lr=unit["lr"],
                                         alpha=unit["final_lr_fraction"], seed=unit["seed"],
                                         loop=loop(unit["model"]), progress=False)
    state = with_theta(state, theta)
    in_memory = accuracy(net.apply, transform.apply(state), test)
    from_file, size, file = store_scored(store, unit, (transform, state), net.apply, test)
    if abs(from_file - in_memory) > 1e-3:
        raise RuntimeError(f"{file}: the file's net scores {from_file}, the trained one {in_memory}")
    first = int(np.prod(params["Dense_0"]["kernel"].shape))
    predicted = 0.0 if unit["dictionary"] is None else fraction_predicted(state)
    return {"test_accuracy": from_file, "val_accuracy": history[-1]["eval_accuracy"],
            "fraction_predicted": predicted, "first_layer_weights": first,
            "first_layer_free": round(first * (1 - predicted)), "free_params": count_params(theta),
            "stored_bytes": size, "file": file, "seconds": seconds,
            "val_curve": [h["eval_accuracy"] for h in history]}


# ----------------------------------------------------------------------------- run


def _describe(u: dict) -> str:
    return f"{u['kind']} {u['model']} {report.setting(u)} seed {u['seed']}"


def _summary(r: dict) -> str:
    return f"test {r['test_accuracy']:.4f}" + (f" ({r['seconds']:.0f} s)" if "seconds" in r else "")


def compute(unit: dict, store: Store, quick: bool) -> dict:
    kind = unit["kind"]
    if kind == "analysis":
        from experiments.redundancy.analysis_units import analysis_metrics

        return analysis_metrics(unit, quick)
    if kind == "basis":
        return basis_metrics(unit, store, quick)
    if kind == "denil":
        return denil_metrics(unit, store)
    from experiments.redundancy import factored_runs

    if kind == "bottleneck":
        return factored_runs.bottleneck_metrics(unit, store, quick)
    return factored_runs.denton_metrics(unit, store, quick)


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)
    rows = study.run_units(store, cfg.units(dataset, seed), lambda u: compute(u, store, cfg.quick),
                           describe=_describe, summary=_summary)
    # the report covers every part the store has rows for (a run of some --parts keeps the others')
    done = {r["key"] for r in rows}
    others = [store.get(u) for u in dataclasses.replace(cfg, parts=config.PARTS).units(dataset, seed)]
    print(report.write(rows + [r for r in others if r is not None and r["key"] not in done], cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    def add(p):
        p.add_argument("--parts", nargs="+", choices=config.PARTS, default=None,
                       help="run only these parts (default: all of the config's)")

    def chosen(a):
        cfg = config.quick() if a.quick else config.full()
        return cfg.only(a.parts) if a.parts else cfg

    args = study.parse_args("redundancy", "redundancy within and between layers", argv=argv,
                            models=lambda a: chosen(a).models, add_arguments=add)
    return run(chosen(args), args.dataset, args.seed, args.out)
