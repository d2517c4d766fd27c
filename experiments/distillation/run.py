"""Train (or read back) the teachers and every student of the distillation study."""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.distillation import config, report
from experiments.distillation.claims import pick_teacher
from wsjax import distill, study
from wsjax.models import MLP, mlp_params
from wsjax.results import Store
from wsjax.sharing import SharedParams, count_params, hashed
from wsjax.train import classifier, evaluate, fit


def data_for(cfg: config.Config, dataset: str, seed: int):
    """``(train, val, test)``: the first ``train_examples`` images, the next ``validation``, the test set."""
    return study.train_val_test(dataset, seed, cfg.train_examples, cfg.validation, cfg.test_examples)


def teacher_net(unit: dict, quick: bool):
    """``(apply, params)`` of a teacher unit, from the baseline store (trained there if missing)."""
    model, params = study.trained_net(unit["dense"], quick)
    return (lambda p, x: model.apply({"params": p}, x)), params


def teacher_metrics(unit: dict, data, quick: bool) -> dict:
    _, val, test = data
    apply, params = teacher_net(unit, quick)
    _, eval_fn = classifier(apply)
    acc = {split: evaluate(eval_fn, params, *xy)["accuracy"] for split, xy in (("val", val), ("test", test))}
    return {"model": unit["model"], "val_accuracy": acc["val"], "test_accuracy": acc["test"],
            "test_errors": round((1 - acc["test"]) * len(test[0])), "test_images": len(test[0]), "free_params": count_params(params)}


@functools.lru_cache(maxsize=None)
def _init(features: tuple):
    return jax.jit(MLP(features).init)  # one compile per architecture, shared by the seeds


@functools.lru_cache(maxsize=8)
def student_net(features: tuple, compression: float | None, seed: int, image_shape: tuple):
    """``(base_eval, transform, state, apply, eval_fn, theta)`` of a freshly initialised student,
    shared by its methods (one compiled evaluation per student and seed)."""
    model = MLP(features)
    key = jax.random.key(seed)
    params = _init(features)(key, jnp.zeros((1, *image_shape)))["params"]
    base = lambda p, x: model.apply({"params": p}, x)
    transform = state = None
    apply, theta = base, params
    if compression is not None:
        transform = hashed(compression, seed=seed)
        state = transform.init(key, params)
        apply, theta = distill.transformed_apply(base, transform, state), state.theta
    return classifier(base)[1], transform, state, apply, classifier(apply)[1], theta


def student_metrics(unit: dict, data, targets, store: Store) -> dict:
    """Train one student (``targets()``: the packed teacher logits on the device) and score it;
    a hashed one is scored as read back from its ``.wsjax`` file."""
    train, val, test = data
    base_eval, transform, state, apply, eval_fn, theta = student_net(
        tuple(unit["features"]), unit["compression"], unit["seed"], tuple(train[0].shape[1:]))
    loss_fn = classifier(apply)[0]
    y = train[1]
    if unit["method"] != "hard":
        loss_fn = distill.cached_loss_fn(apply, distill.method_loss(
            unit["method"], temperature=unit["temperature"], alpha=unit["alpha"]))
        y = targets()
    steps = unit["epochs"] * (len(train[0]) // unit["batch_size"])
    opt = optax.adam(optax.cosine_decay_schedule(unit["lr"], steps, alpha=unit["final_lr_fraction"]))
    t0 = time.perf_counter()
    result = fit(loss_fn, theta, opt, (train[0], y), eval=val, eval_fn=eval_fn, epochs=unit["epochs"],
                 batch_size=unit["batch_size"], seed=unit["seed"], loop=study.loop_for("lenet300100"),
                 progress=False)
    seconds = time.perf_counter() - t0
    theta = jax.device_get(result.theta)
    test_accuracy = evaluate(eval_fn, theta, *test)["accuracy"]
    virtual = mlp_params(unit["features"], int(np.prod(train[0].shape[1:])))
    out = {"test_accuracy": test_accuracy, "val_accuracy": result.history[-1]["eval_accuracy"],
           "test_errors": round((1 - test_accuracy) * len(test[0])), "free_params": count_params(theta),
           "virtual_params": virtual, "dense_bytes": 4 * virtual, "train_loss": result.history[-1]["train_loss"],
           "val_curve": [h["eval_accuracy"] for h in result.history], "seconds": seconds}
    if transform is not None:
        path = store.artifact(unit, ".wsjax")
        _, _, from_file, stored = study.store_and_reload((transform, SharedParams(theta, state.frozen)), path,
                                                         lambda p: evaluate(base_eval, p, *test)["accuracy"])
        if abs(from_file - test_accuracy) > 1e-3:  # the same weights, compiled apart: at most a rounding flip
            raise RuntimeError(f"{path}: the file's net scores {from_file}, the trained one {test_accuracy}")
        out.update(test_accuracy=from_file, in_memory_accuracy=test_accuracy, stored_bytes=stored,
                   test_errors=round((1 - from_file) * len(test[0])), file=os.path.relpath(path, store.folder),
                   compression=4 * virtual / stored)
    return out


def _describe(u: dict) -> str:
    what = {"hard": "hard labels", "logits": "logit regression"}.get(u["method"]) or f"T={u['temperature']:g}"
    return f"{u['student']:14s} {what:16s} seed {u['seed']}"


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)
    data = jax.tree.map(jnp.asarray, data_for(cfg, dataset, seed))  # on the device once, for every run
    teachers = study.run_units(store, cfg.teacher_units(dataset, seed), lambda u: teacher_metrics(u, data, cfg.quick),
                               describe=lambda u: f"teacher {u['model']}",
                               summary=lambda r: f"val {r['val_accuracy']:.4f} test {r['test_accuracy']:.4f}")
    chosen = pick_teacher(teachers)["config"]
    cache = {}

    def targets():  # the chosen teacher's logits on the training images, computed once, on the device
        if "y" not in cache:
            apply, params = teacher_net(chosen, cfg.quick)
            logits = distill.teacher_logits(apply, params, data[0][0])
            cache["y"] = distill.pack_targets(data[0][1], logits)
        return cache["y"]

    students = study.run_units(store, cfg.student_units(dataset, seed, chosen),
                               lambda u: student_metrics(u, data, targets, store), describe=_describe,
                               summary=lambda r: f"test {r['test_accuracy']:.4f} ({r['seconds']:.0f} s)")
    print(report.write(teachers + students, cfg, out, dataset))
    return teachers + students


def main(argv=None) -> list[dict]:
    args = study.parse_args("distillation", "distillation into small, shallow and hashed students", argv=argv,
                            models=lambda a: (config.quick() if a.quick else config.full()).teachers)
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
