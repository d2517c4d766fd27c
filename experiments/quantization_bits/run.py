"""Run (or resume) the quantization_bits study: one store row per unit, each unit a real
``.wsjax`` file scored as loaded back, then the report."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.quantization_bits import config, methods, report
from wsjax import pruning, study
from wsjax.results import Store, config_key
from wsjax.sharing import count_params, flatten_paths
from wsjax.study import pruned_nets as pn


class Study:
    """One run's store and, per (model, seed), its dense net, data on the device and scorer."""

    def __init__(self, cfg: config.Config, store: Store):
        self.cfg, self.store, self._setup = cfg, store, {}

    def setup(self, model_name: str, dataset: str, seed: int):
        """``(model, dense params, (train, val, test), scorer)``, built once (the last one kept)."""
        if (model_name, dataset, seed) not in self._setup:
            self._setup = {(model_name, dataset, seed): self._build(model_name, dataset, seed)}
        return self._setup[(model_name, dataset, seed)]

    def _build(self, model_name: str, dataset: str, seed: int):
        model, params = study.trained_net(self.cfg.dense(model_name, dataset, seed), self.cfg.quick)
        train, test = study.splits(dataset, False, seed, self.cfg.train_examples + self.cfg.validation,
                                   self.cfg.test_examples)
        data = jax.tree.map(jnp.asarray, (*study.train_val(train, self.cfg.validation), test))
        return model, params, data, pn.Scorer(model, data[1], data[2])

    def stored(self, unit: dict, what, scorer, in_memory_params) -> dict:
        """Write ``what`` (params or a (transform, state) pair) to the unit's file, read it
        back and score it; RuntimeError unless the loaded net is the in-memory one, bit for
        bit and in accuracy. The size metrics of the row."""
        path = self.store.artifact(unit, ".wsjax")
        rep, loaded, from_file, nbytes = study.store_and_reload(what, path, scorer)
        want, got = flatten_paths(in_memory_params), flatten_paths(loaded)
        if set(want) != set(got) or any(not np.array_equal(np.asarray(want[p]), np.asarray(got[p])) for p in want):
            raise RuntimeError(f"{path}: the loaded weights differ from the in-memory ones")
        in_memory = scorer(in_memory_params)
        if from_file != in_memory:
            raise RuntimeError(f"{path}: the file's net scores {from_file}, the in-memory one {in_memory}")
        n = count_params(in_memory_params)
        kernels = {p: np.size(w) for p, w in want.items() if p.endswith("kernel")}
        kernel_bytes = sum(r.stored_bytes for r in rep.layers if r.name.endswith("kernel"))
        return {"test_accuracy": from_file, "in_memory_accuracy": in_memory, "loaded_equals_in_memory": True,
                "val_accuracy": scorer(loaded, "val"), "stored_bytes": nbytes, "params": n,
                "kernel_weights": sum(kernels.values()), "kernel_bytes": kernel_bytes,
                "bits_per_weight": 8 * nbytes / sum(kernels.values()),
                "bits_per_kernel_weight": 8 * kernel_bytes / sum(kernels.values()), "dense_bytes": 4 * n,
                "compression": 4 * n / nbytes, "fixed_bytes": rep.file_overhead_bytes
                + sum(r.stored_bytes_fixed for r in rep.layers), "file": os.path.relpath(path, self.store.folder)}

    def reference(self, unit: dict) -> dict:
        """The dense net as a float32 file."""
        _, params, _, scorer = self.setup(unit["model"], unit["dataset"], unit["seed"])
        return self.stored(unit, params, scorer, params)

    def quantized(self, unit: dict) -> dict:
        model, dense, (train, val, _), scorer = self.setup(unit["model"], unit["dataset"], unit["seed"])
        loop = study.loop_for(unit["model"])
        if unit["method"] in config.LOWBIT:
            start = dense
            if unit["start"] == "scratch":
                start = jax.device_get(model.init(jax.random.key(unit["seed"]), train[0][:1])["params"])
            t, state, history, seconds = methods.train_lowbit(model, start, unit, train, val, scorer.eval_fn, loop)
            before = scorer(methods.scored_params(t, methods.initial_state(t, start, unit)))
            w = methods.scored_params(t, state)
            m = self.stored(unit, (t, state), scorer, w)
            val_curve = [h["eval_accuracy"] for h in history]
        else:
            params, masks, level = dense, None, {}
            if unit["method"] == "kmeans_pruned":
                params, masks, level = self.pruned(unit)
            quantized, retrained, seconds = methods.train_kmeans(model, params, masks, unit, train, val, loop)
            before = scorer(quantized)
            w = jax.device_get(retrained.params)
            m = self.stored(unit, w, scorer, w)
            m.update(level, kept_fraction=1.0 if masks is None else pruning.density(masks))
            val_curve = [h["eval_accuracy"] for h in retrained.history[-1]["per_epoch"]]
        return {**m, "accuracy_before_training": before, "val_curve": val_curve, "seconds": seconds}

    def pruned(self, unit: dict):
        """``(params, masks, metrics)`` of the deep_compression level ``unit['pruned']``.

        The levels live in this study's store: the deep_compression store keeps their rows
        but not their params (its ``.msgpack`` artifacts are not committed), and a missing
        artifact would make :func:`~wsjax.study.pruned_nets.pruned_net` retrain and append
        rows there. The same recipe and seed retrain them here; the committed row's test
        accuracy, where there is one, is kept beside ours as a check."""
        c = unit["pruned"]
        params, masks, row = pn.pruned_net(c["model"], c["dataset"], c["seed"], self.cfg.quick, c["scale"],
                                           store=self.store, **self.cfg.prune_overrides())
        if config_key(row["config"]) != config_key(c):
            raise RuntimeError(f"pruned_net gave the level {row['config']}, not {c}")
        folder = study.study_folder(pn.STUDY, self.cfg.quick)
        committed = Store(folder).get(c) if os.path.isdir(folder) else None  # read only: Store() makes folders
        return params, masks, {"pruned_accuracy": row["test_accuracy"], "committed_pruned_accuracy":
                               None if committed is None else committed["test_accuracy"]}

    def compute(self, unit: dict) -> dict:
        return self.reference(unit) if unit["kind"] == "reference" else self.quantized(unit)


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    s = Study(cfg, Store(out))
    rows = study.run_units(s.store, cfg.units(dataset, seed), s.compute, describe=report.describe,
                           summary=report.summary)
    print(report.write(rows, cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args = study.parse_args("quantization_bits", "test accuracy against stored bits per weight: binary, ternary, "
                            "k-bit STE and Deep Compression's k-means", argv=argv,
                            models=lambda a: (config.quick() if a.quick else config.full()).models)
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
