"""Run (or resume) the soft_compression study: per model the dense reference, then per run the
soft retraining and snap (Ullrich's recipe) and its centroid fine-tune; write the report."""

from __future__ import annotations

import functools
import os
import time
from typing import NamedTuple

import jax

from experiments.soft_compression import config, report, report_dc
from wsjax import compress, storage, study
from wsjax.compress import soft
from wsjax.results import Store, config_key
from wsjax.sharing import count_params
from wsjax.study import pruned_nets
from wsjax.train import classifier, evaluate


class Data(NamedTuple):
    model: object
    dense: object
    train: tuple
    val: tuple
    test: tuple
    eval_fn: object

    def score(self, params, split="test") -> float:
        return evaluate(self.eval_fn, params, *getattr(self, split))["accuracy"]


@functools.lru_cache(maxsize=2)
def _data(model_name, dataset, seed, quick, epochs, train_examples, validation, test_examples) -> Data:
    model, dense, _ = study.pretrained(model_name, dataset, seed, quick, epochs=epochs, train_examples=train_examples)
    train, test = study.splits(dataset, quick, seed, train_examples=train_examples, test_examples=test_examples)
    train, val = study.train_val(train, validation)
    _, eval_fn = classifier(lambda th, x: model.apply({"params": th}, x))
    return Data(model, jax.device_get(dense), train, val, test, eval_fn)


def data_of(unit: dict, quick: bool) -> Data:
    d = unit["dense"]
    return _data(unit["model"], unit["dataset"], unit["seed"], quick, d["epochs"], d["train_examples"],
                 unit["validation"], unit["test_examples"])


def _stored(params, unit: dict, store: Store, d: Data) -> dict:
    """Write ``params`` as the unit's ``.wsjax`` artifact (and its per-layer byte accounting),
    read it back and score the loaded model."""
    path = store.artifact(unit, ".wsjax")
    size, loaded, acc, file_bytes = study.store_and_reload(params, path, d.score)
    store.write_artifact(unit, ".layers.md", size.to_markdown().encode())
    in_memory, n = d.score(params), count_params(d.dense)
    dense_acc = d.score(d.dense)
    return {"test_accuracy": acc, "in_memory_accuracy": in_memory, "loaded_equals_in_memory": acc == in_memory,
            "val_accuracy": d.score(loaded, "val"), "dense_accuracy": dense_acc, "drop_points": 100 * (dense_acc - acc),
            "free_params": n, "dense_bytes": 4 * n, "stored_bytes": file_bytes, "compression": 4 * n / file_bytes,
            "file": os.path.relpath(path, store.folder)}


def dense_reference(unit, store, d: Data) -> dict:
    return {**_stored(d.dense, unit, store, d), "nonzero_fraction": 1.0}


def soft_share(unit, store, d: Data, cfg: config.Config) -> dict:
    start, extra = compress.start(d.dense), {}
    if unit["start"] is not None:  # its pruning time is Deep Compression's, not counted here
        params, masks, row = pruned_nets.pruned_net(unit["model"], unit["dataset"], unit["seed"], cfg.quick,
                                                    unit["prune_scale"], **dict(cfg.prune_overrides))
        if config_key(row["config"]) != config_key(unit["start"]):
            raise RuntimeError(f"Deep Compression's pruned net has config {row['config']}, not {unit['start']}")
        start = compress.start(jax.device_get(params))._replace(masks=masks)
        extra = {"pruned_accuracy": d.score(params)}
    pipe = soft.soft_weight_sharing(
        unit["tau"], unit["epochs"], lr=unit["lr"], pi_zero=unit["pi_zero"], num_components=unit["num_components"],
        mixture_init=unit["mixture_init"], init_std=unit["init_std"], mixture_lr=unit["mixture_lr"],
        precision_prior=unit["precision_prior"], zero_precision_prior=unit["zero_precision_prior"],
        kl_threshold=unit["kl_threshold"], alpha=unit["alpha"])
    net, seed, loop = compress.from_linen(d.model, d.dense), unit["seed"], study.loop_for(unit["model"])
    t0 = time.perf_counter()
    retrained = compress.Pipeline(pipe.stages[:1]).run(net, d.train, d.val, seed=seed, start_from=start, loop=loop,
                                                        label=config.label(unit) + " ")
    snapped = compress.Pipeline(pipe.stages[1:]).run(net, d.train, d.val, seed=seed, start_from=retrained)
    before = d.score(jax.device_get(retrained.params))
    seconds = time.perf_counter() - t0
    learned, snap = snapped.history[-2], snapped.history[-1]
    params = jax.device_get(snapped.params)
    return {**_stored(params, unit, store, d), **extra, "seconds": seconds, "accuracy_before_snap": before,
            "nonzero_fraction": snap["nonzero_fraction"], "components_after_merge": snap["components"],
            "distinct_values": snap["distinct_values"], "mixture": learned["mixture"], "merged": snap["merged"],
            "per_epoch": learned["per_epoch"]}


def snapped_unit(unit: dict) -> dict:
    """The unit whose snapped net a fine-tune unit starts from."""
    return {**{k: v for k, v in unit.items() if k != "finetune"}, "kind": "soft_share"}


def finetune(unit, store, d: Data) -> dict:
    """Deep Compression's trained quantization of the snapped net read back from its file:
    its values become per-layer codebooks (zeros and assignments kept), the centroids retrained."""
    source = snapped_unit(unit)
    row = store.get(source)
    if row is None:
        raise RuntimeError(f"no snapped row to fine-tune in {store.folder}: run its soft_share unit first")
    snapped, ft, seed = storage.load(store.artifact(source, ".wsjax")), unit["finetune"], unit["seed"]
    net = compress.from_linen(d.model, d.dense)
    quantized = compress.Pipeline([compress.Quantize(ft["bits"], init=ft["init"], include=ft["include"])]).run(
        net, d.train, d.val, seed=seed, start_from=soft.snapped_start(snapped))
    tuned = compress.Pipeline([compress.Retrain(ft["epochs"], ft["lr"], alpha=ft["alpha"])]).run(
        net, d.train, d.val, seed=seed, start_from=quantized, loop=study.loop_for(unit["model"]), progress=False)
    params = jax.device_get(tuned.params)
    carried = {k: row[k] for k in ("accuracy_before_snap", "nonzero_fraction", "components_after_merge",
                                   "pruned_accuracy") if k in row}
    return {**_stored(params, unit, store, d), **carried, "seconds": row["seconds"] + tuned.history[-1]["seconds"],
            "finetune_epochs": ft["epochs"], "distinct_values": soft.distinct_values(params),
            "codebook_max_abs_error": soft.max_abs_difference(jax.device_get(quantized.params), snapped)}


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)

    def compute(unit):
        d = data_of(unit, cfg.quick)
        if unit["kind"] == "dense_reference":
            return dense_reference(unit, store, d)
        if unit["kind"] == "soft_share":
            return soft_share(unit, store, d, cfg)
        return finetune(unit, store, d)

    def describe(unit):
        return f"{unit['model']} " + ("dense" if unit["kind"] == "dense_reference" else config.label(unit))

    def summary(row):
        return f"test accuracy {row['test_accuracy']:.4f}, {row['compression']:.1f}x"

    rows = study.run_units(store, cfg.units(dataset, seed), compute, describe=describe, summary=summary)
    print(report.write(rows, cfg, out, dataset, seed, by_seed=seeds_done(store, cfg, dataset, seed, rows)))
    return rows


def seeds_done(store: Store, cfg: config.Config, dataset: str, seed: int, rows: list[dict]) -> dict:
    """``{seed: (views, Deep Compression points)}`` for this run's seed and every other of
    ``cfg.seeds`` whose units are all in the store (``--seed N`` adds one)."""
    got = {seed: rows}
    for other in cfg.seeds:
        if other != seed:
            done = [store.get(u) for u in cfg.units(dataset, other)]
            if done and all(done):
                got[other] = done
    return {s: ([report.view(r) for r in rs], report_dc.points(cfg, dataset, s)) for s, rs in got.items()}


def main(argv=None) -> list[dict]:
    args, cfg = study.parse_args_with_models("soft_compression", "Soft weight-sharing compression (Ullrich et al. "
                                             "2017)", config.full, config.quick, config.MODELS, argv=argv)
    return run(cfg, args.dataset, args.seed, args.out)
