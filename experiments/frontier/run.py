"""Run (or resume) the compression frontier: every unit a row of the store, then the report."""

from __future__ import annotations

import hashlib
import json
import os
import re

import jax
import numpy as np

from experiments.frontier import config, report
from wsjax import compress, pruning, storage, study
from wsjax.results import Store, config_key
from wsjax.sharing import count_params, flatten_paths
from wsjax.sharing.paths import KERNELS, matcher
from wsjax.study import pruned_nets as pn

DESCRIPTION = "the compression frontier: our best pipeline, its ablations and TensorFlow Model Optimization"


class Study:
    """One run's store and, per model and seed, its dense net, data splits and scorer."""

    def __init__(self, cfg: config.Config, dataset: str, store: Store):
        self.cfg, self.dataset, self.store, self._setup = cfg, dataset, store, {}

    def setup(self, model_name: str, seed: int):
        """``(model, dense params, (train, val, test), scorer, dense test accuracy)``."""
        key = (model_name, seed)
        if key not in self._setup:
            c = self.cfg
            model, dense, _ = study.pretrained(model_name, self.dataset, seed, c.quick, progress=False,
                                               epochs=c.dense(model_name, self.dataset, seed)["epochs"],
                                               train_examples=c.train_examples)
            data = study.train_val_test(self.dataset, seed, c.train_examples, c.validation, c.test_examples)
            scorer = pn.Scorer(model, data[1], data[2])
            dense = jax.device_get(dense)
            self._setup[key] = (model, dense, data, scorer, scorer(dense))
        return self._setup[key]

    def scan(self, c: dict) -> dict:
        """The sensitivity scan of the dense net and the profile it gives (validation data)."""
        _, dense, _, scorer, _ = self.setup(c["model"], c["seed"])
        val = lambda p: scorer(p, "val")  # noqa: E731
        base = val(dense)
        scan = pruning.sensitivity_scan(dense, val)
        return {"baseline_val": base, "scan": {p: [list(fs) for fs in v] for p, v in scan.items()},
                "profile": pruning.tolerated_kept(scan, base, c["tolerance"])}

    def kept(self, c: dict) -> dict:
        """Per-layer kept fractions of a prune unit's allocation at its level."""
        _, dense, _, _, _ = self.setup(c["model"], c["seed"])
        sizes = {p: int(np.size(w)) for p, w in flatten_paths(dense).items() if matcher(KERNELS)(p)}
        if c["allocation"] == "uniform":
            return {p: c["level"] for p in sizes}
        if c["allocation"] == "global":
            return pruning.layer_density(pruning.sparsity_masks(dense, 1.0 - c["level"], scope="global"))
        profile = study.run_units(self.store, [c["scan"]], self.scan, verbose=False)[0]["profile"]
        return pruning.allocate_kept(profile, sizes, c["level"])

    def prune_metrics(self, c: dict):
        """``(params, masks, metrics)`` of a prune unit, trained now."""
        model, dense, (train, val, _), scorer, _ = self.setup(c["model"], c["seed"])
        targets = {f"^{re.escape(p)}$": 1.0 - k for p, k in self.kept(c).items()}
        if c["schedule"] == "gradual":
            d = c.get("distill") or {}
            stages = [compress.GradualPrune(targets, c["epochs"], c["lr"], end_fraction=c["end_fraction"],
                                            distill_temperature=d.get("temperature"),
                                            distill_alpha=d.get("alpha", 0.5))]
        else:  # Han's rounds: the same epochs, each round a geometric step of the kept fraction
            each, rounds = max(1, c["epochs"] // c["rounds"]), c["rounds"]
            stages = [s for r in range(1, rounds + 1) for s in (
                compress.Prune(pruning.sparsity_at(pruning.iterative(rounds), targets, r)),
                compress.Retrain(each, c["lr"], seed=c["seed"] + r))]
        r = compress.Pipeline(stages).run(compress.from_linen(model, dense), train, val, seed=c["seed"],
                                          loop=study.loop_for(c["model"]), progress=False)
        params, masks = jax.device_get(r.params), r.masks
        return params, masks, {
            "test_accuracy": scorer(params), "val_accuracy": scorer(params, "val"),
            "kept_fraction": pruning.density(masks), "layer_kept": pruning.layer_density(masks),
            "seconds": sum(h.get("seconds", 0.0) for h in r.history)}

    def pruned(self, c: dict):
        """``(params, masks, row)`` of a prune unit: read, or trained (and checked against its
        row when only the large artifact was missing)."""
        path, row = self.store.artifact(c, ".msgpack"), self.store.get(c)
        template = self.setup(c["model"], c["seed"])[1]
        if row is not None and os.path.exists(path):
            return (*pn.read_level(path, template), row)
        params, masks, metrics = self.prune_metrics(c)
        if row is not None and metrics["test_accuracy"] != row["test_accuracy"]:
            raise RuntimeError(f"the pruned net {config_key(c)} trained again scores {metrics['test_accuracy']}, "
                               f"its row {row['test_accuracy']}")
        self.store.write_artifact(c, ".msgpack", pn.level_blob(params, masks))
        return params, masks, row if row is not None else self.store.put(c, metrics)

    def compressed(self, c: dict) -> dict:
        """A pruned net quantized (chosen or Han's bits), retrained, stored, scored from the file."""
        p = c["prune"]
        model, dense, (train, val, _), scorer, dense_acc = self.setup(p["model"], p["seed"])
        params, masks, prow = self.pruned(p)
        net, start = compress.from_linen(model, params), pn.level_net(params, masks)
        loop = study.loop_for(p["model"])
        if c["bits"] == "soft":  # Ullrich: retrain under the mixture prior, snap, then an exact codebook
            sh = c["soft"]
            start = compress.Pipeline([compress.SoftShare(sh["tau"], sh["epochs"], sh["lr"], pi_zero=sh["pi_zero"]),
                                       compress.Snap()]).run(net, train, val, seed=p["seed"], start_from=start,
                                                             loop=loop, progress=False)
            bits = exact_bits(jax.device_get(start.params))
        elif c["bits"] == "han":
            bits = None
        else:
            bits = compress.fewest_bits(net, start, train, lambda w: scorer(w, "val"), candidates=c["bits_candidates"],
                                        tolerance=c["bits_tolerance"], init=c["init"], seed=p["seed"])
        r = compress.Pipeline([compress.Quantize(bits, init=c["init"]),
                               compress.Retrain(c["quant_epochs"], c["quant_lr"])]).run(
            net, train, val, seed=p["seed"], start_from=start, loop=loop, progress=False)
        w = jax.device_get(r.params)
        index_bits = storage.smallest_index_bits(w) if c["index"] == "tuned" else None
        m = study.stored_row(c, self.store, w, w, scorer, index_bits=index_bits)
        rep = storage.size_report(open(os.path.join(self.store.folder, m["file"]), "rb").read())
        n = count_params(dense)
        return {**m, "val_accuracy": scorer(w, "val"), "dense_accuracy": dense_acc,
                "drop_points": 100 * (dense_acc - m["test_accuracy"]), "compression": 4 * n / m["stored_bytes"],
                "fixed_bytes": rep.file_overhead_bytes + sum(x.stored_bytes_fixed for x in rep.layers),
                "dense_bytes": 4 * n, "kept_fraction": prow["kept_fraction"], "layer_kept": prow["layer_kept"],
                "pruned_accuracy": prow["test_accuracy"], "bits": r.history[-2]["bits"], "index_bits": index_bits,
                "prune_seconds": prow["seconds"], "seconds": r.history[-1]["seconds"], "layers": rep.to_rows()}

    def peer_ours(self, c: dict) -> dict:
        """The peer's stripped, clustered weights stored by wsjax's codecs and scored from the file."""
        model, dense, _, scorer, _ = self.setup(c["model"], c["peer_seed"])
        with np.load(os.path.join(peer_folder(self.store.folder), c["weights"])) as z:
            # tfmot's masks leave -0.0 where they pruned a negative weight; a bit-exact codec keeps
            # -0.0 as a value of its own (a 12%-dense kernel then stores as a dense codebook), so
            # the pruned entries are stored as the +0 they mean (the net computes the same)
            flat = {k: np.where(z[k] == 0, np.float32(0), np.asarray(z[k], np.float32)) for k in z.files}
        params = jax.tree_util.tree_map_with_path(lambda kp, t: flat[jax.tree_util.keystr(kp, simple=True,
                                                                                          separator="/")], dense)
        m = study.stored_row(c, self.store, params, params, scorer, index_bits=storage.smallest_index_bits(params))
        return {**m, "compression": 4 * count_params(dense) / m["stored_bytes"]}


def exact_bits(params) -> dict:
    """``{'^path$': bits}``: per kernel the fewest bits whose codebook holds its distinct nonzero
    values (after a snap, an optimal k-means codebook of that size reproduces them exactly)."""
    out = {}
    for path, w in flatten_paths(params).items():
        if matcher(KERNELS)(path):
            n = np.unique(np.asarray(w)[np.asarray(w) != 0]).size
            out[f"^{re.escape(path)}$"] = max(1, int(np.ceil(np.log2(max(n, 2)))))
    return out


def peer_folder(out: str) -> str:
    """``out/peer`` if the peer was run into ``out``, else the committed study's."""
    own = os.path.join(out, "peer")
    return own if os.path.isdir(own) else os.path.join(study.study_folder("frontier", False), "peer")


def peers(out: str, models) -> dict:
    """``{model: the peer's json}`` for the models whose peer run is in :func:`peer_folder`."""
    found = {}
    for m in models:
        path = os.path.join(peer_folder(out), f"{m}.json")
        if os.path.exists(path):
            with open(path) as f:
                found[m] = json.load(f)
            for p in found[m]["points"]:  # a peer_ours row is keyed by the very weights it stored
                with open(os.path.join(peer_folder(out), p["weights"]), "rb") as f:
                    p["weights_sha256"] = hashlib.sha256(f.read()).hexdigest()
    return found


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    s = Study(cfg, dataset, Store(out))
    # the confirmation first: it decides the goal; then the full grid
    rows = study.run_units(s.store, cfg.confirm_units(dataset, seed) + cfg.units(dataset, seed), s.compressed,
                           describe=report.describe, summary=report.summary)
    found = peers(out, cfg.models)
    for peer in found.values() if not cfg.quick else ():  # quick runs show the peer, not re-stored
        rows += study.run_units(s.store, cfg.peer_units(peer, dataset), s.peer_ours, describe=report.describe,
                                summary=report.summary)
    print(report.write(rows, found, cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args, cfg = study.parse_args_with_models("frontier", DESCRIPTION, config.full, config.quick, config.MODELS,
                                             argv=argv)
    return run(cfg, args.dataset, args.seed, args.out)
