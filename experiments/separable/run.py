"""Train every arm of the separable study on every seed, time them side by side, write the report."""

from __future__ import annotations

import functools
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.separable import config, report, timing
from wsjax import checks, study
from wsjax.models import SmallCNN
from wsjax.models import counting
from wsjax.results import Store
from wsjax.train import classifier, evaluate, fit

DESCRIPTION = "depthwise separable vs standard convolutions in a small CNN (MobileNet, Howard et al. 2017)"


def data_for(cfg: config.Config, dataset: str, seed: int):
    """``(train, val, test)``: the first ``train_examples`` images, the next ``validation``, the test set."""
    return study.train_val_test(dataset, seed, cfg.train_examples, cfg.validation, cfg.test_examples)


def model_of(net: dict) -> SmallCNN:
    return SmallCNN(net["block"], widths=tuple(net["widths"]), width_multiplier=net["width_multiplier"],
                    depth=net["depth"], kernel_size=net["kernel_size"])


@functools.lru_cache(maxsize=None)
def _compiled(model: SmallCNN):
    """``(init, loss_fn, eval_fn)`` of a model, made once so that the seeds of an arm share
    their compiled init and evaluation (jit caches by function)."""
    loss_fn, eval_fn = classifier(lambda p, x: model.apply({"params": p}, x))
    return jax.jit(model.init), loss_fn, eval_fn


def _kernel(spec, name: str):
    """A conv spec's kernel as ``[kh, kw]`` (None for other layers)."""
    k = getattr(spec, "kernel", None)
    return None if k is None else list(checks.positive_pair(k, f"{name}: kernel"))


def counts_of(net: dict, image_shape) -> dict:
    """The exact counts of a net (:func:`wsjax.models.counting.count`), with its layers."""
    c = counting.count(model_of(net), tuple(image_shape))
    layers = [{"name": name, "in_shape": list(lc.in_shape), "out_shape": list(lc.out_shape), "params": lc.params,
               "macs": lc.macs, "groups": getattr(lc.spec, "groups", None), "kernel": _kernel(lc.spec, name)}
              for name, lc in c.per_layer.items()]
    return {"params": c.params, "macs": c.macs, "layers": layers}


def _loop() -> str:
    """The epoch loop: on XLA:CPU a scanned epoch was faster than the Python loop for every
    arm (5,000 images, load 7-8: 7.2 vs 8.1 s standard, 4.9 vs 7.1 s separable); elsewhere fit measures."""
    return "scan" if jax.default_backend() == "cpu" else "auto"


def train_metrics(unit: dict, data, store: Store) -> dict:
    """Train one arm on one seed from scratch; score it as read back from its ``.wsjax`` file."""
    train, val, test = data
    init, loss_fn, eval_fn = _compiled(model_of(unit))
    params = init(jax.random.key(unit["seed"]), train[0][:1])["params"]
    steps = unit["epochs"] * (len(train[0]) // unit["batch_size"])
    opt = optax.adam(optax.cosine_decay_schedule(unit["lr"], steps, alpha=unit["final_lr_fraction"]))
    t0 = time.perf_counter()
    result = fit(loss_fn, params, opt, train, eval=val, eval_fn=eval_fn, epochs=unit["epochs"],
                 batch_size=unit["batch_size"], seed=unit["seed"], loop=_loop(), progress=False)
    seconds = time.perf_counter() - t0
    params = jax.device_get(result.theta)
    in_memory = evaluate(eval_fn, params, *test)["accuracy"]
    path = store.artifact(unit, ".wsjax")
    _, _, from_file, stored = study.store_and_reload(params, path, lambda p: evaluate(eval_fn, p, *test)["accuracy"])
    if from_file != in_memory:
        raise RuntimeError(f"{path}: the file's net scores {from_file}, the trained one {in_memory}")
    history = result.history
    return {"test_accuracy": from_file, "val_accuracy": history[-1]["eval_accuracy"],
            "val_curve": [h["eval_accuracy"] for h in history], "train_loss": history[-1]["train_loss"],
            **counts_of(unit, train[0].shape[1:]), "stored_bytes": stored, "file": os.path.relpath(path, store.folder),
            "seconds": seconds, "seconds_per_epoch": [h["seconds"] for h in history],
            "test_images": len(test[0])}


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"backend": jax.default_backend(), "cpus": os.cpu_count(), "jax": jax.__version__,
            "machine": platform.machine(), "load_1min": load[0]}


def timing_metrics(unit: dict, data) -> dict:
    """Every net's forward and step times, interleaved in one process (:mod:`.timing`)."""
    train, _, test = data
    image_shape = train[0].shape[1:]
    opt = optax.adam(unit["lr"])
    nets = {}
    for net in unit["nets"]:
        model = model_of(net)
        params = _compiled(model)[0](jax.random.key(unit["seed"]), train[0][:1])["params"]
        nets[net["arm"]] = timing.prepare(model, params, opt)
    before = machine()
    xs, ys = train[0][: unit["step_batch"]], train[1][: unit["step_batch"]]
    times = timing.interleaved(nets, test[0][: unit["forward_batch"]], xs, ys, unit["rounds"],
                               unit["forward_inner"], unit["step_inner"])
    ref = times[config.REFERENCE]
    arms = {}
    for net in unit["nets"]:
        t = times[net["arm"]]
        c = counts_of(net, image_shape)
        arms[net["arm"]] = {"forward_seconds": t["forward"], "step_seconds": t["step"],
                            "forward_median": float(np.median(t["forward"])),
                            "step_median": float(np.median(t["step"])),
                            "forward_ratio": timing.ratio_stats(t["forward"], ref["forward"]),
                            "step_ratio": timing.ratio_stats(t["step"], ref["step"]),
                            "params": c["params"], "macs": c["macs"]}
    return {"arms": arms, "machine": before, "load_1min_after": machine()["load_1min"]}


def _describe(u: dict) -> str:
    if u["kind"] == "timing":
        return f"timing of {len(u['nets'])} nets, {u['rounds']} interleaved rounds"
    return f"{u['arm']:14s} seed {u['seed']}"


def _summary(r: dict) -> str:
    if r["config"]["kind"] == "timing":
        return ", ".join(f"{a} step x{v['step_ratio']['median']:.2f}" for a, v in r["arms"].items())
    return f"test {r['test_accuracy']:.4f}, {r['params']:,} params, {r['macs'] / 1e6:.2f}M MACs ({r['seconds']:.0f} s)"


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)
    cache = {}

    def data():  # loaded and put on the device once, only when a unit needs it
        if "d" not in cache:
            cache["d"] = jax.tree.map(jnp.asarray, data_for(cfg, dataset, seed))
        return cache["d"]

    trained = study.run_units(store, cfg.train_units(dataset, seed), lambda u: train_metrics(u, data(), store),
                              describe=_describe, summary=_summary)
    timed = study.run_units(store, [cfg.timing_unit(dataset, seed)], lambda u: timing_metrics(u, data()),
                            describe=_describe, summary=_summary)
    rows = trained + timed
    print(report.write(rows, cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args = study.parse_args("separable", DESCRIPTION, argv=argv)
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
