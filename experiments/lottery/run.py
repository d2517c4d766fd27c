"""Train every (model, round, seed, arm) of the lottery-ticket study; write the report.

Round 0 trains the dense net from ``theta_0 = model.init(key(seed))``; its artifacts are
round 1's masks (``<key>.npz``) and ``theta_0`` with the rewinding target ``theta_k`` when
``k > 0`` (``<key>.theta.npz``, 1-2 MB: too large to commit; for ``k = 0`` drawn again,
exactly, when missing). Round ``r``'s ticket starts from round ``r - 1``'s ``next_mask``
(:func:`wsjax.pruning.lottery.prune_round` of that ticket's trained weights) with the
survivors rewound to ``theta_k``; the controls take the same mask
(:class:`~wsjax.pruning.lottery.Reinit`: a fresh initialisation drawn with
``fold_in(key(seed), r)``; :class:`~wsjax.pruning.lottery.RandomMask`: a random mask of the
same per-layer counts). Every training runs through ``W = theta * M``
(:func:`wsjax.sharing.mask.masked`) in :func:`wsjax.train.fit` with the data order of the
seed, early stopping tracked on the device (:mod:`wsjax.train.early_stopping`). Artifacts
are ``.npz`` files (masks bit-packed, 30-110 KB; params float32); one missing when a later
round needs it is recomputed (the same training, deterministic) without adding a row.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import os
import time

import jax
import numpy as np
import optax

from experiments.lottery import config, report
from wsjax import pruning, study
from wsjax.pruning import lottery
from wsjax.results import Store, config_key
from wsjax.sharing import bind, flatten_paths, mask_counts, masked
from wsjax.sharing.core import path_str
from wsjax.train import classifier, early_stopping, evaluate, fit

THETA = ".theta.npz"  # the dense net's theta_0 (and theta_k): 1-2 MB, the masks' files are small
DESCRIPTION = "Lottery tickets (Frankle & Carbin 2019) with random re-init and random-mask controls"


def data_for(cfg: config.Config, dataset: str):
    """``(train, validation, test)``: the validation split is the training set's last images."""
    train, test = study.splits(dataset, False, 0, cfg.train_examples, cfg.test_examples)
    return (*study.train_val(train, cfg.validation), test)


def save(store: Store, unit: dict, suffix: str, **trees) -> str:
    """Write ``unit``'s artifact ``<key><suffix>``: each tree's leaves as ``<name>/<path>``
    (masks bit-packed)."""
    arrays = {}
    for name, tree in trees.items():
        for path, a in flatten_paths(tree).items():
            a = np.asarray(a)
            arrays[f"{name}/{path}"] = np.packbits(a.ravel()) if a.dtype == bool else a
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return store.write_artifact(unit, suffix, buf.getvalue())


def read(path: str, template) -> dict:
    """An artifact's trees, shaped like ``template`` (masks: None where nothing was stored)."""
    with np.load(path) as f:
        arrays = dict(f)
    out = {}
    for name in {k.split("/", 1)[0] for k in arrays}:
        def leaf(kp, t, name=name):
            a = arrays.get(f"{name}/{path_str(kp)}")
            if a is None or a.dtype != np.uint8:
                return a
            return np.unpackbits(a, count=math.prod(t.shape)).astype(bool).reshape(t.shape)
        out[name] = jax.tree_util.tree_map_with_path(leaf, template)
    return out


def train_arm(unit: dict, params, masks, data, loop, snapshot_at=None):
    """Train ``params`` under ``masks`` for the unit's budget; ``(metrics, final W, theta_k)``."""
    model = study.model_by_name(unit["model"])
    train, val, test = data
    t = masked(masks)
    state = t.init(None, params)
    to_params = bind(t, state)
    _, eval_fn = loss_and_eval = classifier(lambda th, x: model.apply({"params": to_params(th)}, x))
    per_epoch = len(train[0]) // unit["batch_size"]
    total, every = unit["epochs"] * per_epoch, max(1, per_epoch // unit["evals_per_epoch"])
    tracker = early_stopping.early_stopping(early_stopping.validation_fn(eval_fn, *val), every, total, snapshot_at)
    t0 = time.perf_counter()
    result = fit(loss_and_eval[0], state.theta, optax.chain(optax.adam(unit["lr"]), tracker), train,
                 epochs=unit["epochs"], batch_size=unit["batch_size"], seed=unit["seed"], loop=loop, progress=False)
    tr = jax.device_get(result.opt_state[1])
    seconds = time.perf_counter() - t0
    kept = mask_counts(state.frozen)
    steps = early_stopping.eval_steps(every, total)
    metrics = {"model": unit["model"], "arm": unit["arm"], "round": unit["round"],
               "density": pruning.density(state.frozen), "weights_remaining": sum(k for k, _ in kept.values()),
               "layer_density": pruning.layer_density(state.frozen),
               "es_iteration": int(tr.best_step[1]), "val_accuracy": float(tr.best[1]),
               "test_accuracy": evaluate(eval_fn, tr.best_theta[1], *test)["accuracy"],
               "es_iteration_loss": int(tr.best_step[0]), "val_loss": float(tr.best[0]),
               "test_accuracy_loss": evaluate(eval_fn, tr.best_theta[0], *test)["accuracy"],
               "final_val_accuracy": float(tr.curve[-1, 1]), "iterations": total, "eval_every": every,
               "curve": [[int(s), float(l), float(a)] for s, (l, a) in zip(steps, tr.curve)],
               "train_loss": result.history[-1]["train_loss"], "seconds": seconds}
    snapshot = None if tr.snapshot is None else to_params(tr.snapshot)
    return metrics, jax.device_get(to_params(result.theta)), snapshot


class Trainer:
    """``compute(unit)`` for :func:`wsjax.study.run_units`, and the artifacts it builds on."""

    def __init__(self, cfg: config.Config, dataset: str, store: Store):
        self.cfg, self.store, self.data = cfg, store, data_for(cfg, dataset)

    @functools.cache
    def _init(self, model_name: str):
        model, x = study.model_by_name(model_name), self.data[0][0][:1]
        return jax.jit(lambda key: model.init(key, x)["params"])  # one compile, not one per draw

    def init(self, model_name: str, key):
        return self._init(model_name)(key)

    def artifact(self, unit: dict, suffix: str = ".npz") -> dict:
        path = self.store.artifact(unit, suffix)
        if not os.path.exists(path):
            self.compute(unit)  # the same training again; its row is already in the store
        return read(path, jax.eval_shape(self._init(unit["model"]), jax.random.key(0)))

    def rewind_target(self, unit: dict):
        """``theta_k`` of ``unit``'s seed: from the dense net's ``.theta.npz`` (for ``k = 0``
        drawn again if missing: it is ``init(key(seed))``, exactly)."""
        dense = {**unit, "round": 0, "arm": "dense"}
        if unit["rewind_iteration"] == 0 and not os.path.exists(self.store.artifact(dense, THETA)):
            return self.init(unit["model"], jax.random.key(unit["seed"]))
        values = self.artifact(dense, THETA)
        return values.get("theta_k", values["theta0"])

    def compute(self, unit: dict) -> dict:
        r, name = unit["round"], unit["model"]
        loop = self.cfg.loop or study.loop_for(name)
        rates, k = dict(map(tuple, unit["rates"])), unit["rewind_iteration"]
        extra = {}
        if unit["arm"] == "dense":
            theta0 = self.init(name, jax.random.key(unit["seed"]))
            masks = pruning.sparsity_masks(theta0, 0.0)  # every weight kept
            metrics, trained, snap = train_arm(unit, theta0, masks, self.data, loop, snapshot_at=k or None)
            theta = save(self.store, unit, THETA, theta0=theta0, **({"theta_k": snap} if k else {}))
            extra = {"theta_artifact": os.path.basename(theta), "theta_artifact_bytes": os.path.getsize(theta)}
            path = save(self.store, unit, ".npz", next_mask=lottery.prune_round(trained, masks, rates, 1))
        else:
            before = self.artifact({**unit, "round": r - 1, "arm": "ticket" if r > 1 else "dense"})
            params, masks = lottery.arm(unit["arm"]).start(
                before["next_mask"], self.rewind_target(unit), lambda key: self.init(name, key),
                jax.random.fold_in(jax.random.key(unit["seed"]), r))
            metrics, trained, _ = train_arm(unit, params, masks, self.data, loop)
            nxt = {"next_mask": lottery.prune_round(trained, masks, rates, r + 1)} if unit["arm"] == "ticket" else {}
            path = save(self.store, unit, ".npz", mask=masks, **nxt)
        return {**metrics, "artifact": os.path.basename(path), "artifact_bytes": os.path.getsize(path), **extra}


def describe(unit: dict) -> str:
    return f"{unit['model']} seed {unit['seed']} round {unit['round']:2d} {unit['arm']:11s}"


def summary(row: dict) -> str:
    return (f"{100 * row['density']:6.2f} % weights, test {row['test_accuracy']:.4f} at iteration "
            f"{row['es_iteration']} ({row['seconds']:.0f} s)")


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)
    trainer = Trainer(cfg, dataset, store)
    rows = study.run_units(store, cfg.units(dataset, seed), trainer.compute, describe=describe, summary=summary)
    # the report covers every model of the recipe that the store has rows for (a --models run adds to it)
    every = dataclasses.replace(cfg, models=tuple(m for m in config.MODELS if m in dict(cfg.rounds)))
    stored = {r["key"]: r for r in store.rows()}
    found = [stored.get(config_key(u)) for u in every.units(dataset, seed)]
    print(report.write([r for r in found if r is not None], every, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args, cfg = study.parse_args_with_models("lottery", DESCRIPTION, config.full, config.quick, config.MODELS,
                                             argv=argv)
    return run(cfg, args.dataset, args.seed, args.out)
