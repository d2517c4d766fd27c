"""Run (or resume) the deep_compression study: one store row per unit, then the report."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from flax import serialization

from experiments.deep_compression import config, report
from wsjax import compress, pruning, study
from wsjax.pruning.timing import compare
from wsjax.results import Store, config_key
from wsjax.sharing import count_params
from wsjax.study import pruned_nets as pn


class Study:
    """One run's store and, per model, its dense net, data splits and scorer."""

    def __init__(self, cfg: config.Config, dataset: str, seed: int, store: Store):
        self.cfg, self.dataset, self.seed, self.store, self._setup = cfg, dataset, seed, store, {}

    def setup(self, c: dict):
        """``(model, dense params, (train, val, test), scorer, dense accuracy)`` of a config
        with ``dense`` and ``data`` entries."""
        key = json.dumps([c["dense"], c["data"], c["dataset"], c["seed"]], sort_keys=True)
        if key not in self._setup:
            model, dense = pn.dense_net(c, self.cfg.quick)
            data = pn.splits(c)
            scorer = pn.Scorer(model, data[1], data[2])
            self._setup[key] = (model, dense, data, scorer, scorer(dense))
        return self._setup[key]

    def level(self, c: dict):
        """``(params, masks, row)`` of the pruned net of level config ``c``."""
        params, masks, row = pn.pruned_net(c["model"], c["dataset"], c["seed"], self.cfg.quick, c["scale"],
                                           store=self.store, **self.cfg.prune)
        if config_key(row["config"]) != config_key(c):
            raise RuntimeError(f"pruned_net gave the level {row['config']}, not {c}")
        return params, masks, row

    def quantized(self, c: dict) -> dict:
        """A level quantized to ``conv_bits`` / ``fc_bits``, retrained, stored, loaded back."""
        model, _, data, scorer, dense_acc = self.setup(c["level"])
        params, masks, level = self.level(c["level"])
        conv, fc = c["conv_bits"], c["fc_bits"]
        m = pn.quantize_and_store(
            model, params, masks, data, scorer, self.store.artifact(c, ".wsjax"), seed=c["seed"],
            epochs=c["quant_epochs"], lr=c["quant_lr"], examples=c["quant_examples"], init=c["init"],
            alpha=c["quant_alpha"], bits=lambda path, leaf: conv if leaf.ndim == 4 else fc,
            loop=study.loop_for(c["model"]), label=f"{c['model']} x{c['scale']:g} fc {fc} bits ")
        return {**m, "dense_accuracy": dense_acc, "drop_points": 100 * (dense_acc - m["test_accuracy"]),
                "pruned_accuracy": level["test_accuracy"], "prune_epochs": level["epochs"]}

    def stage(self, c: dict) -> dict:
        """One of Han's stages at his sparsity: a file (dense, +Huffman) or Han's count."""
        sweep, level = self.store.get(c["sweep"]), self.store.get(c["sweep"]["level"])
        _, dense, _, scorer, dense_acc = self.setup(c["sweep"]["level"])
        n, stage = count_params(dense), c["stage"]
        quantized = {k: sweep[k] for k in ("val_accuracy", "kept_fraction", "free_params")}
        if stage == "dense":
            path = self.store.artifact(c, ".wsjax")
            _, loaded, acc, nbytes = study.store_and_reload(dense, path, scorer)
            m = {"test_accuracy": acc, "val_accuracy": scorer(loaded, "val"), "kept_fraction": 1.0, "free_params": n,
                 "stored_bytes": nbytes, "file": os.path.basename(path),
                 "bytes_from": f"file {os.path.basename(path)} (wsjax.storage, raw float32)"}
        elif stage == "pruned":
            m = {"test_accuracy": level["test_accuracy"], "val_accuracy": level["val_accuracy"],
                 "kept_fraction": level["kept_fraction"], "free_params": level["nonzero"],
                 "counted_bytes": level["csr_float32_bytes"], "epochs": level["epochs"], "seconds": level["seconds"],
                 "bytes_from": "counted: CSR, float32 values + relative indices with fillers (Han's P)"}
        elif stage == "pruned+quantized":
            m = {**quantized, "test_accuracy": sweep["in_memory_accuracy"], "counted_bytes": sweep["fixed_bytes"],
                 "seconds": sweep["seconds"],
                 "bytes_from": "counted: the +Huffman file with every stream at fixed width (Han's P+Q)"}
        else:
            m = {**quantized, "test_accuracy": sweep["test_accuracy"], "stored_bytes": sweep["stored_bytes"],
                 "file": sweep["file"], "bytes_from": f"file {sweep['file']} (accuracy of the model loaded from it)",
                 "loaded_equals_in_memory": sweep["test_accuracy"] == sweep["in_memory_accuracy"]}
        ratio = "compression" if "stored_bytes" in m else "counted_compression"
        m[ratio] = 4 * n / m.get("stored_bytes", m.get("counted_bytes"))
        return {**m, "virtual_params": n, "dense_bytes": 4 * n, "drop_points": 100 * (dense_acc - m["test_accuracy"])}

    def init(self, c: dict) -> dict:
        """Han's Sec. 3.2: k-means from one initialisation, then (``epochs`` > 0) retrained."""
        model, _, (train, val, _), scorer, _ = self.setup(c["level"])
        params, masks, _ = self.level(c["level"])
        net = compress.from_linen(model, params)
        q = compress.Pipeline([compress.Quantize(c["bits"], init=c["init"])]).run(
            net, train, val, seed=c["seed"], start_from=pn.level_net(params, masks), progress=False)
        m = {"accuracy_before_retraining": scorer(jax.device_get(q.params))}
        if c["epochs"]:
            r = compress.Pipeline([compress.Retrain(c["epochs"], c["lr"], alpha=c["alpha"])]).run(
                net, train, val, seed=c["seed"], start_from=q, loop=study.loop_for(c["model"]), progress=False)
            w = jax.device_get(r.params)
            m.update(test_accuracy=scorer(w), val_accuracy=scorer(w, "val"), seconds=r.history[-1]["seconds"])
        return m

    def neurons(self, c: dict) -> dict:
        """LeNet-300-100 narrowed to ``hidden`` units by their weight score, fine-tuned."""
        model, dense, (train, val, test), _, _ = self.setup(c)
        pr = pruning.prune_neurons(model, dense, list(c["hidden"]), method=c["method"])
        small = pn.Scorer(pr.model, val, test)
        retrain = compress.Retrain(c["epochs"], c["lr"], alpha=c["alpha"], batch_size=c["batch_size"])
        r = compress.Pipeline([retrain]).run(compress.from_linen(pr.model, pr.params), train, val, seed=c["seed"],
                                             loop=study.loop_for(c["model"]), progress=False)
        w = jax.device_get(r.params)
        self.store.write_artifact(c, ".msgpack", serialization.to_bytes(w))
        d = int(np.prod(train[0].shape[1:]))
        return {"accuracy_before_finetune": small(pr.params), "test_accuracy": small(w),
                "val_accuracy": small(w, "val"), "seconds": r.history[-1]["seconds"],
                "params": pruning.mlp_params(pr.model, d), "mflops": pruning.mlp_flops(pr.model, d) / 1e6}

    def timing(self, c: dict) -> dict:
        """Forward-pass times of the dense and the fine-tuned narrow nets, interleaved."""
        model, dense, (_, _, test), _, _ = self.setup(c["neurons"][0])
        variants = [("-".join(map(str, model.features[:-1])) + " (dense)", model, dense)]
        for n in c["neurons"]:
            pr = pruning.prune_neurons(model, dense, list(n["hidden"]), method=n["method"])
            with open(self.store.artifact(n, ".msgpack"), "rb") as f:
                w = serialization.from_bytes(pr.params, f.read())
            variants.append(("-".join(map(str, n["hidden"])), pr.model, w))
        times = compare(variants, test[0], c["batches"], c["repeats"])
        d = int(np.prod(test[0].shape[1:]))
        return {"backend": jax.default_backend(), "cpus": os.cpu_count(), "variants": [
            {"hidden": label, "params": pruning.mlp_params(m, d), "mflops": pruning.mlp_flops(m, d) / 1e6,
             **{f"ms_batch{b}": 1e3 * times[(label, b)] for b in c["batches"]}} for label, m, _ in variants]}


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    s = Study(cfg, dataset, seed, Store(out))

    def units(configs, compute):
        return study.run_units(s.store, configs, compute, describe=report.describe, summary=report.summary)

    rows = []
    for model in cfg.models:
        rows += units(cfg.sweep(model, dataset, seed), s.quantized)
        rows += units(cfg.stages(model, dataset, seed), s.stage)
    if "lenet300100" in cfg.models:
        rows += units(cfg.inits(dataset, seed), s.init)
    rows += units([c for c in cfg.bits(dataset, seed) if c["model"] in cfg.models], s.quantized)
    if "lenet300100" in cfg.models:
        rows += units(cfg.neurons(dataset, seed), s.neurons)
        rows += units([cfg.timing(dataset, seed)], s.timing)
    rows = [s.store.get(cfg.level(m, dataset, seed, scale))
            for m in cfg.models for scale in cfg.levels(m, dataset, seed)] + rows
    print(report.write(rows, cfg, out, dataset, by_seed=seeds_done(s.store, cfg, dataset, seed, rows)))
    return rows


def seeds_done(store: Store, cfg: config.Config, dataset: str, seed: int, rows: list[dict]) -> dict:
    """``{seed: flat sweep rows}`` for this run's seed and every other of ``cfg.seeds``
    whose sweep is complete in the store (``wsjax run deep_compression --seed N`` adds one)."""
    out = {seed: [pn.flat(r) for r in rows if r["config"]["kind"] == "sweep"]}
    for other in cfg.seeds:
        if other != seed:
            got = [store.get(c) for m in cfg.models for c in cfg.sweep(m, dataset, other)]
            if got and all(got):
                out[other] = [pn.flat(r) for r in got]
    return out


def main(argv=None) -> list[dict]:
    args = study.parse_args("deep_compression", "Deep Compression (Han, Mao & Dally 2016) of LeNet-300-100 and "
                            "LeNet-5", argv=argv, models=config.full().models)
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
