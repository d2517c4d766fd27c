"""Deep Compression (Han, Mao & Dally 2016) of LeNet-300-100 and LeNet-5, stage by stage.

Pipeline per model, from the shared dense reference net (``common.pretrained``):

1. **prune**: iterative magnitude pruning to Han et al.'s per-layer kept fractions
   (LeNet-300-100: ip1 8 %, ip2 9 %, ip3 26 %; LeNet-5: conv1 66 %, conv2 12 %, ip1 8 %,
   ip2 19 %) in geometric rounds, each followed by retraining the survivors through the mask
   transform ``W = theta * M`` (``wsjax.sharing.mask.masked``);
2. **quantize**: per layer, k-means of the surviving weights into 2^b centroids (b = 8 for
   conv, 5 for fc; linear initialisation), ``W = C[a] * M`` (``wsjax.sharing.codebook``), then
   retrain the centroids (each gets the sum of its members' gradients) and the biases;
3. **Huffman**: store with ``wsjax.storage`` (relative-index CSR with filler zeros, codebooks,
   Huffman-coded cluster indices and gaps), load the file back and evaluate the loaded model,
   which must score exactly what the in-memory model scores.

Stored bytes per stage: *dense* and *+Huffman* are real encodings (``wsjax.storage``); the
*pruned* stage is counted as Han's "P" column, CSR with float32 values and 5-bit (fc) / 8-bit
(conv) relative indices including filler zeros, plus raw biases (the storage format only
holds codebook layers, so this row is computed, not a file); *pruned+quantized* is the same
file with every stream at fixed width (Han's "P+Q"), from the storage size report.

Also: Han's centroid-initialisation study (linear, density, random, k-means++ at 2..8 bits
on the pruned LeNet-300-100, accuracy before and after a short retraining), and structured
neuron pruning of LeNet-300-100 (smaller dense model, fine-tuned; inference speed-up).

Validation: the last 5k training images (held out from retraining; the dense net saw them).
No hyperparameter is chosen on the test set.

Run: ``python experiments/deep_compression.py [--quick]``; resumable per stage (state under
``<out>/state/``). Paper (MNIST): LeNet-300-100 40x (1.64 -> 1.58 % error), LeNet-5 39x
(0.80 -> 0.74 %).

References: Han, Mao & Dally, `Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding <https://arxiv.org/abs/1510.00149>`_, ICLR
2016; Han, Pool, Tran & Dally, `Learning both Weights and Connections for Efficient Neural
Networks <https://arxiv.org/abs/1506.02626>`_, 2015.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, NamedTuple

import common
import jax
import numpy as np
import optax
from flax import serialization

sys.path.insert(0, common.ROOT)
from benchmarks.neuron_pruning import compare as time_variants  # noqa: E402
from wsjax import compress as pipeline  # noqa: E402
from wsjax import pruning, storage  # noqa: E402
from wsjax.sharing import count_params, flatten_paths, han_bits, path_str  # noqa: E402
from wsjax.sharing.codebook import quantize  # noqa: E402
from wsjax.sharing.kmeans import INITS  # noqa: E402
from wsjax.sharing.mask import masked  # noqa: E402
from wsjax.storage.sparse import encode_positions  # noqa: E402
from wsjax.train import classifier, evaluate, fit  # noqa: E402

NAME = "deep_compression"
MODELS = ("lenet300100", "lenet5")
#: Han et al. (2016) Tables 4-5: fraction of each layer's weights kept after pruning.
KEEP = {
    "lenet300100": {"Dense_0/kernel": 0.08, "Dense_1/kernel": 0.09, "Dense_2/kernel": 0.26},
    "lenet5": {"Conv_0/kernel": 0.66, "Conv_1/kernel": 0.12, "Dense_0/kernel": 0.08, "Dense_1/kernel": 0.19},
}
PAPER = {"lenet300100": (40.0, "1.64 -> 1.58 % error"), "lenet5": (39.0, "0.80 -> 0.74 % error")}
#: Schedules: pruning rounds x retraining epochs, quantized retraining epochs, Adam peak rates.
#: ``levels``: the pruning trajectory, as multiples of Han's kept fractions (1.0 = Han).
FULL = {
    "lenet300100": dict(levels=(4.0, 2.0, 1.5, 1.0, 0.8), prune_epochs=6, quant_epochs=3,
                        prune_lr=1e-3, quant_lr=1e-4),
    "lenet5": dict(levels=(3.0, 2.0, 1.4, 1.0, 0.85, 0.6, 0.4), prune_epochs=1, quant_epochs=1,
                   quant_examples=20_000, prune_lr=5e-4, quant_lr=1e-4),
}
QUICK = {
    "lenet300100": dict(levels=(1.0,), prune_epochs=1, quant_epochs=1, prune_lr=1e-3, quant_lr=1e-4),
    "lenet5": dict(levels=(1.0,), prune_epochs=1, quant_epochs=1, prune_lr=5e-4, quant_lr=1e-4),
}
#: Quick LeNet-5 retrains on this many images and is scored on this many test images.
QUICK_LENET5_TRAIN, QUICK_TEST = 2000, 2000
VALIDATION = 5000
BATCH = 100
INIT_STUDY_BITS = tuple(range(2, 9))
#: The bit-width study: the pruned net at this level of the trajectory, fully connected
#: layers quantized to fewer bits than Han's 5 (conv layers keep 8).
BITS_STUDY_SCALE, BITS_STUDY_FC = 2.0, (4, 3)
INIT_STUDY_EPOCHS = 1
NEURON_WIDTHS = ((150, 50), (100, 30), (60, 20))
NEURON_EPOCHS = 5
STAGES = ("dense", "pruned", "pruned+quantized", "pruned+quantized+huffman")


# ----------------------------------------------------------------------------- helpers


def _loop(model_name):
    return common.LOOP[model_name] if jax.default_backend() == "cpu" else "auto"


def _save_state(path, tree):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(serialization.msgpack_serialize(jax.tree.map(np.asarray, tree)))
    os.replace(tmp, path)


def _load_state(path):
    with open(path, "rb") as f:
        return serialization.msgpack_restore(f.read())


def _full_masks(params, flat_masks):
    """A masks pytree (None for unpruned leaves) from a flat ``{path: mask}`` dict."""
    return jax.tree_util.tree_map_with_path(
        lambda kp, x: None if path_str(kp) not in flat_masks else np.asarray(flat_masks[path_str(kp)], bool),
        params,
    )


def csr_float32_bytes(params) -> int:
    """Han's pruning-only ("P") storage: CSR with float32 values and relative indices.

    Every stored entry (nonzero or filler zero) costs 32 value bits plus the relative index
    (8 bits for conv kernels, 5 for the rest, as in ``wsjax.storage``); 1-D leaves are raw
    float32. Headers are not counted (a few bytes per layer).
    """
    bits = 0
    for w in flatten_paths(params).values():
        w = np.asarray(w)
        if w.ndim < 2:
            bits += 32 * w.size
            continue
        index_bits = han_bits(w.ndim)
        gaps, _ = encode_positions(np.flatnonzero(w.ravel()), index_bits)
        bits += gaps.size * (32 + index_bits)
    return math.ceil(bits / 8)


class Scorer:
    """Test/validation accuracy of params pytrees of one model (one compiled eval function)."""

    def __init__(self, model, val, test):
        _, self.eval_fn = classifier(lambda th, x: model.apply({"params": th}, x))
        self.val, self.test = val, test

    def __call__(self, params, split="test"):
        x, y = self.test if split == "test" else self.val
        return evaluate(self.eval_fn, params, x, y)["accuracy"]


def _data(model_name, dataset, seed, quick):
    (x, y), test = common.dataset_splits(dataset, quick, seed)
    n_val = 1000 if quick else VALIDATION
    train, val = (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])
    if quick and model_name == "lenet5":
        train = (train[0][:QUICK_LENET5_TRAIN], train[1][:QUICK_LENET5_TRAIN])
    if quick:
        test = (test[0][:QUICK_TEST], test[1][:QUICK_TEST])
    return train, val, test


# ----------------------------------------------------------------------------- the pipeline


def _kept_targets(model_name, scale):
    """Per-layer sparsity targets for Han's kept fractions times ``scale`` (capped at 1)."""
    return {f"^{p}$": 1.0 - min(1.0, scale * k) for p, k in KEEP[model_name].items()}


def _level_net(params, masks):
    """A trajectory level as a pipeline's starting point: ``W = theta * M``."""
    t = masked(masks)
    return pipeline.Compressed(t, t.init(jax.random.key(0), params), masks)


def _quantize_and_store(model, level_net, cfg, train, val, score, seed, loop, desc, file_path, bits=None):
    """Stages 3 and 4 for one pruned net, as the library's pipeline: k-means of the
    survivors (masks kept), centroid retraining, the file, loaded back.
    ``bits``: per-layer bit widths as ``Quantize`` takes them (None: Han's 8 conv, 5 fc)."""
    net = pipeline.from_linen(model, level_net.params)
    quantized = pipeline.Pipeline([pipeline.Quantize(bits, init="linear")]).run(
        net, train, val, seed=seed, start_from=level_net, progress=False)
    before = score(jax.device_get(quantized.params))
    retrained = pipeline.Pipeline([pipeline.Retrain(cfg["quant_epochs"], cfg["quant_lr"],
                                                    examples=cfg.get("quant_examples"))]).run(
        net, train, val, seed=seed, start_from=quantized, loop=loop, progress=False, label=desc + " ")
    params = jax.device_get(retrained.params)
    report, loaded, in_memory, from_file, stored = common.store_and_reload(params, file_path, score)
    fixed = report.file_overhead_bytes + sum(layer.stored_bytes_fixed for layer in report.layers)
    return dict(
        quantized=params, report=report, accuracy_before_retraining=before,
        in_memory_accuracy=in_memory, file_accuracy=from_file, val_accuracy=score(loaded, "val"),
        fixed_bytes=fixed, file_bytes=stored, free_params=count_params(retrained.state.theta),
        bits=retrained.history[-2]["bits"], seconds=retrained.history[-1]["seconds"],
    )


class Level(NamedTuple):
    """One level of the pruning trajectory: the pruned params, their masks, and the retraining
    seconds and epochs spent from the dense net up to this level."""

    params: Any
    masks: Any
    seconds: float
    epochs: int


class _Pruning(NamedTuple):
    """What every level of one model's pruning trajectory is retrained with."""

    model: Any
    model_name: str
    cfg: dict
    train: tuple
    val: tuple
    seed: int
    loop: str


def _read_level(path, dense) -> Level:
    """A saved trajectory level."""
    saved = _load_state(path)
    params = serialization.from_state_dict(dense, saved["params"])
    return Level(params, _full_masks(params, saved["masks"]), float(saved["seconds"]), int(saved["epochs"]))


def _prune_level(job: _Pruning, i: int, previous: Level, level_path: str) -> Level:
    """Level ``i`` of the pruning trajectory: prune ``previous.params`` (the level before, or
    the dense net) to Han's fractions times ``job.cfg["levels"][i]``, retrain the survivors
    through the mask, save the level's state."""
    scale = job.cfg["levels"][i]
    start = pipeline.start(previous.params)._replace(masks=previous.masks)
    pruned = pipeline.Pipeline([
        pipeline.Prune(_kept_targets(job.model_name, scale)),
        pipeline.Retrain(job.cfg["prune_epochs"], job.cfg["prune_lr"], seed=job.seed + i),
    ]).run(pipeline.from_linen(job.model, previous.params), job.train, job.val, seed=job.seed, start_from=start,
           loop=job.loop, progress=False, label=f"{job.model_name} prune x{scale:g} ")
    params, masks, sec = jax.device_get(pruned.params), pruned.masks, pruned.history[-1]["seconds"]
    level = Level(params, masks, previous.seconds + sec, previous.epochs + job.cfg["prune_epochs"])
    _save_state(level_path, {"params": params, "masks": flatten_paths(masks), "seconds": level.seconds,
                             "epochs": level.epochs})
    return level


def pruned_net(model_name, dataset, seed, quick, scale, out_dir):
    """``(params, masks)`` of the pruning trajectory at level ``scale`` (one of the config's
    ``levels``), as :func:`compress` makes it: read from ``<out_dir>/state/`` where a level's
    state is saved, otherwise pruned and retrained level by level from the dense net (and
    saved). Other experiments start from these nets (``soft_compression``'s composition)."""
    cfg = (QUICK if quick else FULL)[model_name]
    if scale not in cfg["levels"]:
        raise ValueError(f"{model_name}'s pruning levels are {cfg['levels']}, got scale {scale!r}")
    model, dense = common.pretrained(model_name, dataset, seed, quick)
    train, val, _ = _data(model_name, dataset, seed, quick)
    state_dir = os.path.join(out_dir, "state")
    os.makedirs(state_dir, exist_ok=True)
    levels = cfg["levels"][: cfg["levels"].index(scale) + 1]
    paths = [os.path.join(state_dir, f"{model_name}-scale{level:g}.msgpack") for level in levels]
    level = Level(jax.device_get(dense), None, 0.0, 0)
    saved_level = max((i for i, p in enumerate(paths) if os.path.exists(p)), default=-1)
    if saved_level >= 0:  # resume from the deepest level already saved
        level = _read_level(paths[saved_level], dense)
    job = _Pruning(model, model_name, cfg, train, val, seed, _loop(model_name))
    for i in range(saved_level + 1, len(levels)):
        level = _prune_level(job, i, level, paths[i])
    return level.params, level.masks


def compress(model_name, dataset, seed, quick, out_dir):
    """Run (or resume) one model's pruning trajectory and its quantized/Huffman branches.

    The pruning trajectory visits Han's per-layer kept fractions times each ``levels`` scale
    (densest first; every level prunes from the previous one and retrains). At every level
    the pruned net is also quantized, retrained and stored: that is the sweep of accuracy
    against compression. Han's own fractions (scale 1) give the four stage rows.

    Returns ``(stage rows, sweep rows, size report of the scale-1 file, scale-1 pruned params)``.
    """
    cfg = (QUICK if quick else FULL)[model_name]
    model, dense = common.pretrained(model_name, dataset, seed, quick)
    dense = jax.device_get(dense)
    train, val, test = _data(model_name, dataset, seed, quick)
    score = Scorer(model, val, test)
    loop = _loop(model_name)
    state_dir = os.path.join(out_dir, "state")
    os.makedirs(state_dir, exist_ok=True)
    n = count_params(dense)
    dense_bytes = 4 * n
    dense_acc = score(dense)
    sweep_name = "sweep.jsonl"
    done = {(r["model"], r["scale"]): r for r in common.load_partial(out_dir, sweep_name)}

    level = Level(dense, None, 0.0, 0)
    job = _Pruning(model, model_name, cfg, train, val, seed, loop)
    sweep, han = [], None
    for i, scale in enumerate(cfg["levels"]):
        level_path = os.path.join(state_dir, f"{model_name}-scale{scale:g}.msgpack")
        finished = all((model_name, s) in done for s in cfg["levels"][i:])
        if finished and not os.path.exists(level_path):
            # Every remaining level already has its row and file: nothing to retrain.
            level = level._replace(params=None)
        elif os.path.exists(level_path):
            level = _read_level(level_path, dense)
        else:
            level = _prune_level(job, i, level, level_path)
        params, masks, seconds, epochs = level
        if (model_name, scale) in done:
            row = done[(model_name, scale)]
            if scale == 1.0:
                file_path = os.path.join(out_dir, f"{model_name}.wsjax")
                with open(file_path, "rb") as f:
                    han = (row, storage.size_report(f.read()), params)
            sweep.append(row)
            continue
        pruned_acc = score(params)
        file_path = os.path.join(out_dir, f"{model_name}.wsjax" if scale == 1.0 else
                                 f"{model_name}-scale{scale:g}.wsjax")
        q = _quantize_and_store(model, _level_net(params, masks), cfg, train, val, score, seed, loop,
                                f"{model_name} quantized x{scale:g}", file_path)
        row = {
            "model": model_name, "scale": scale, "kept_fraction": pruning.density(masks),
            "layer_kept": pruning.layer_density(masks),
            "pruned_accuracy": pruned_acc, "pruned_val_accuracy": score(params, "val"),
            "pruned_bytes": csr_float32_bytes(params), "prune_epochs": epochs, "prune_seconds": seconds,
            "quantized_accuracy_before_retraining": q["accuracy_before_retraining"],
            "test_accuracy": q["file_accuracy"], "in_memory_accuracy": q["in_memory_accuracy"],
            "val_accuracy": q["val_accuracy"], "fixed_bytes": q["fixed_bytes"], "stored_bytes": q["file_bytes"],
            "dense_bytes": dense_bytes, "compression": dense_bytes / q["file_bytes"],
            "drop_points": 100 * (dense_acc - q["file_accuracy"]), "dense_accuracy": dense_acc,
            "quant_free_params": q["free_params"], "bits": q["bits"], "quant_seconds": q["seconds"],
            "nonzero": int(sum(np.count_nonzero(np.asarray(w)) for w in jax.tree.leaves(params))),
            "file": os.path.basename(file_path),
        }
        common.append_partial(out_dir, row, sweep_name)
        print(f"  {model_name} x{scale:g}: kept {row['kept_fraction']:.4f}, pruned {pruned_acc:.4f}, "
              f"file {row['test_accuracy']:.4f} ({row['drop_points']:+.2f} pts), "
              f"{row['stored_bytes']:,} B, {row['compression']:.1f}x", flush=True)
        sweep.append(row)
        if scale == 1.0:
            han = (row, q["report"], params)
            with open(os.path.join(out_dir, f"{model_name}.layers.md"), "w") as f:
                f.write(q["report"].to_markdown() + "\n")
    if han is None:
        raise ValueError(f"levels {cfg['levels']} of {model_name} must include Han's scale 1.0")
    h, report, han_pruned = han
    dense_report = storage.size_report(dense)
    base = {"model": model_name, "virtual_params": n, "dense_bytes": dense_bytes}
    stage_rows = [
        {**base, "method": "dense", "test_accuracy": dense_acc, "val_accuracy": score(dense, "val"),
         "kept_fraction": 1.0, "free_params": n, "stored_bytes": dense_report.file_bytes,
         "bytes_from": "wsjax.storage encoding (raw)"},
        {**base, "method": "pruned", "test_accuracy": h["pruned_accuracy"], "val_accuracy": h["pruned_val_accuracy"],
         "kept_fraction": h["kept_fraction"], "free_params": h["nonzero"], "stored_bytes": h["pruned_bytes"],
         "bytes_from": "computed: CSR, float32 values + relative indices with fillers (Han's P)",
         "epochs": h["prune_epochs"], "seconds": h["prune_seconds"]},
        {**base, "method": "pruned+quantized", "test_accuracy": h["in_memory_accuracy"],
         "val_accuracy": h["val_accuracy"], "kept_fraction": h["kept_fraction"],
         "free_params": h["quant_free_params"], "stored_bytes": h["fixed_bytes"],
         "bytes_from": "wsjax.storage, every stream at fixed width (Han's P+Q)", "seconds": h["quant_seconds"]},
        {**base, "method": "pruned+quantized+huffman", "test_accuracy": h["test_accuracy"],
         "val_accuracy": h["val_accuracy"], "kept_fraction": h["kept_fraction"],
         "free_params": h["quant_free_params"], "stored_bytes": h["stored_bytes"],
         "bytes_from": f"file {h['file']} (accuracy of the model loaded from it)",
         "loaded_equals_in_memory": h["test_accuracy"] == h["in_memory_accuracy"]},
    ]
    for r in stage_rows:
        r["compression"] = dense_bytes / r["stored_bytes"]
        r["drop_points"] = 100 * (dense_acc - r["test_accuracy"])
    return stage_rows, sweep, report, han_pruned


# ----------------------------------------------------------------------------- centroid initialisation


def init_study(pruned, dataset, seed, quick, out_dir):
    """Han's Sec. 3.2 study on the pruned LeNet-300-100: accuracy per init and bit width."""
    model = common.model_by_name("lenet300100")
    train, val, test = _data("lenet300100", dataset, seed, quick)
    score = Scorer(model, val, test)
    inits = ("linear", "random") if quick else INITS
    bit_widths = (2,) if quick else INIT_STUDY_BITS
    name = "init_study.jsonl"
    done = {(r["init"], r["bits"]): r for r in common.load_partial(out_dir, name)}
    rows = []
    for bits in bit_widths:
        for init in inits:
            if (init, bits) in done:
                rows.append(done[(init, bits)])
                continue
            if pruned is None:
                raise RuntimeError("the init study needs the pruned LeNet-300-100 at Han's sparsity: "
                                   "its state file is missing, delete sweep.jsonl to recompute it")
            t = quantize(r"kernel$", bits, init=init)
            st = t.init(jax.random.key(seed), pruned)
            before = score(jax.device_get(t.apply(st)))
            row = {"init": init, "bits": bits, "accuracy_before_retraining": before}
            if not quick:  # the quick run skips the retraining (compile time)
                w, _, sec = common.retrain_through(model, t, st, train, val, INIT_STUDY_EPOCHS, 1e-4, seed,
                                                   _loop("lenet300100"), f"init {init} {bits} bits", batch_size=BATCH)
                row.update(test_accuracy=score(w), val_accuracy=score(w, "val"), seconds=sec)
            common.append_partial(out_dir, row, name)
            after = f"{row['test_accuracy']:.4f}" if "test_accuracy" in row else "not retrained (--quick)"
            print(f"  init {init:8s} {bits} bits: {before:.4f} -> {after}", flush=True)
            rows.append(row)
    return rows


def bits_study(dataset, seed, quick, out_dir):
    """Han's pipeline with fewer fully connected bits (4, 3) on one pruned net per model.

    The sweep quantizes with Han's widths (8 conv, 5 fc); this asks how much of the ratio a
    smaller codebook buys at the same sparsity, the baseline that soft weight-sharing's
    16-value codebook (``experiments/soft_compression.py``) is compared with.
    """
    scale = 1.0 if quick else BITS_STUDY_SCALE
    models, fc_bits = (("lenet300100",), BITS_STUDY_FC[:1]) if quick else (MODELS, BITS_STUDY_FC)
    name = "bits_study.jsonl"
    done = {(r["model"], r["fc_bits"]): r for r in common.load_partial(out_dir, name)}
    rows = []
    for model_name in models:
        if all((model_name, b) in done for b in fc_bits):
            rows += [done[(model_name, b)] for b in fc_bits]
            continue
        cfg = (QUICK if quick else FULL)[model_name]
        model, dense = common.pretrained(model_name, dataset, seed, quick)
        train, val, test = _data(model_name, dataset, seed, quick)
        score = Scorer(model, val, test)
        dense_acc = score(jax.device_get(dense))
        pruned, pruned_masks = pruned_net(model_name, dataset, seed, quick, scale, out_dir)
        pruned_acc, n = score(pruned), count_params(pruned)
        for b in fc_bits:
            if (model_name, b) in done:
                rows.append(done[(model_name, b)])
                continue
            file_path = os.path.join(out_dir, f"{model_name}-scale{scale:g}-fc{b}bits.wsjax")
            q = _quantize_and_store(model, _level_net(pruned, pruned_masks), cfg, train, val, score, seed,
                                    _loop(model_name),
                                    f"{model_name} x{scale:g} fc {b} bits", file_path,
                                    bits=lambda path, leaf, b=b: han_bits(leaf.ndim) if leaf.ndim == 4 else b)
            row = {"model": model_name, "scale": scale, "fc_bits": b, "conv_bits": 8, "bits": q["bits"],
                   "pruned_accuracy": pruned_acc, "test_accuracy": q["file_accuracy"],
                   "in_memory_accuracy": q["in_memory_accuracy"], "val_accuracy": q["val_accuracy"],
                   "stored_bytes": q["file_bytes"], "compression": 4 * n / q["file_bytes"],
                   "drop_points": 100 * (dense_acc - q["file_accuracy"]), "file": os.path.basename(file_path)}
            common.append_partial(out_dir, row, name)
            print(f"  {model_name} x{scale:g}, fc {b} bits: file {row['test_accuracy']:.4f} "
                  f"({row['drop_points']:+.2f} pts), {row['compression']:.1f}x", flush=True)
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- neuron pruning


def neuron_study(dataset, seed, quick, out_dir):
    """Structured pruning of LeNet-300-100: narrower nets, fine-tuned, accuracy and speed."""
    model, dense = common.pretrained("lenet300100", dataset, seed, quick)
    dense = jax.device_get(dense)
    train, val, test = _data("lenet300100", dataset, seed, quick)
    score = Scorer(model, val, test)
    widths = NEURON_WIDTHS[:1] if quick else NEURON_WIDTHS
    epochs = 1 if quick else NEURON_EPOCHS
    variants, rows = [("300-100 (dense)", model, dense)], []
    name = "neuron_pruning.jsonl"
    done = {r["hidden"]: r for r in common.load_partial(out_dir, name)}
    rows.append({"hidden": "300-100 (dense)", "test_accuracy": score(dense),
                 "accuracy_before_finetune": score(dense)})
    for w in widths:
        label = f"{w[0]}-{w[1]}"
        state_path = os.path.join(out_dir, "state", f"neurons-{label}.msgpack")
        pr = pruning.prune_neurons(model, dense, list(w))
        if label in done and os.path.exists(state_path):
            params = _load_state(state_path)["params"]
            rows.append(done[label])
        else:
            small_score = Scorer(pr.model, val, test)
            before = small_score(pr.params)
            loss_fn, eval_fn = classifier(lambda th, x, m=pr.model: m.apply({"params": th}, x))
            steps = epochs * (len(train[0]) // BATCH)
            t0 = time.perf_counter()
            result = fit(loss_fn, pr.params, optax.adam(optax.cosine_decay_schedule(5e-4, steps, alpha=0.05)),
                         train, eval=val, eval_fn=eval_fn, epochs=epochs, batch_size=BATCH, seed=seed,
                         loop=_loop("lenet300100"), progress=False, desc=f"fine-tune {label}")
            params = jax.device_get(result.theta)
            _save_state(state_path, {"params": params})
            row = {"hidden": label, "accuracy_before_finetune": before, "test_accuracy": small_score(params),
                   "val_accuracy": small_score(params, "val"), "finetune_epochs": epochs,
                   "seconds": time.perf_counter() - t0}
            common.append_partial(out_dir, row, name)
            rows.append(row)
        variants.append((label, pr.model, params))
    batches = (1, 100) if quick else (1, 100, 10_000)
    times = time_variants(variants, test[0], batches, repeats=2 if quick else 5)
    dense_label = variants[0][0]
    for row, (label, m, _) in zip(rows, variants):
        row["params"] = pruning.mlp_params(m, 784)
        row["mflops"] = pruning.mlp_flops(m, 784) / 1e6
        for b in batches:
            row[f"ms_batch{b}"] = 1e3 * times[(label, b)]
            row[f"speedup_batch{b}"] = times[(dense_label, b)] / times[(label, b)]
    return rows


# ----------------------------------------------------------------------------- reporting


def plot(rows, sweep, init_rows, out_dir):
    plt = common.plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for model, color in zip(MODELS, ("C0", "C1")):
        pts = sorted((r["compression"], 100 * r["test_accuracy"], r["method"]) for r in rows if r["model"] == model)
        if not pts:
            continue
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=color,
                     label=f"{model}: stages (Han's sparsity)")
        for c, acc, m in pts:
            axes[0].annotate(m.replace("pruned+quantized", "P+Q").replace("+huffman", "+H"), (c, acc),
                             fontsize=7, textcoords="offset points", xytext=(3, -9))
        sw = sorted((r["compression"], 100 * r["test_accuracy"]) for r in sweep if r["model"] == model)
        if len(sw) > 1:
            axes[0].plot(*zip(*sw), marker="s", ls="--", color=color, alpha=0.6,
                         label=f"{model}: P+Q+H at other sparsities")
        dense_acc = next(r["test_accuracy"] for r in rows if r["model"] == model and r["method"] == "dense")
        axes[0].axhline(100 * dense_acc - 0.5, color=color, lw=0.6, ls=":")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("compression (dense float32 bytes / stored bytes)")
    axes[0].set_ylabel("test accuracy (%)  (dotted: dense - 0.5 points)")
    axes[0].set_title("Deep Compression on Fashion-MNIST")
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    for init in INITS:
        pts = sorted((r["bits"], 100 * r.get("test_accuracy", r["accuracy_before_retraining"]))
                     for r in init_rows if r["init"] == init)
        if pts:
            axes[1].plot(*zip(*pts), marker="o", label=init)
    axes[1].set_xlabel("bits per weight (all layers)")
    axes[1].set_ylabel("test accuracy after retraining (%)")
    axes[1].set_title("centroid initialisation (pruned LeNet-300-100)")
    axes[1].grid(alpha=0.3)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "deep_compression.png"), dpi=120)
    plt.close(fig)


def _fmt_pct(v):
    return f"{100 * v:.2f}"


def target_analysis(rows, sweep):
    """Per model: Han's stages against the target, the best ratio within 0.5 points, and the
    accuracy at the target ratio (from the sweep of sparsities)."""
    md = ["## Targets (relative to each model's own dense accuracy)\n",
          "| model | dense acc % | Han sparsity: acc %, drop, ratio | target | best ratio with drop <= 0.5 "
          "| at >= target ratio | paper (MNIST) |",
          "|---|---|---|---|---|---|---|"]
    for model in MODELS:
        mr = {r["method"]: r for r in rows if r["model"] == model}
        if "pruned+quantized+huffman" not in mr:
            continue
        d, f = mr["dense"], mr["pruned+quantized+huffman"]
        target = PAPER[model][0]
        pts = [r for r in sweep if r["model"] == model]
        ok = [r for r in pts if r["drop_points"] <= 0.5]
        best = max(ok, key=lambda r: r["compression"]) if ok else None
        at_target = [r for r in pts if r["compression"] >= target]
        at = min(at_target, key=lambda r: r["compression"]) if at_target else None
        met = any(r["compression"] >= target and r["drop_points"] <= 0.5 for r in pts)
        best_s = (f"{best['compression']:.1f}x at {_fmt_pct(best['test_accuracy'])} % "
                  f"({best['drop_points']:.2f} pts, kept x{best['scale']:g})") if best else "none"
        at_s = (f"{_fmt_pct(at['test_accuracy'])} % ({at['drop_points']:.2f} pts) at {at['compression']:.1f}x "
                f"(kept x{at['scale']:g})") if at else "no sweep point reached it"
        md.append(f"| {model} | {_fmt_pct(d['test_accuracy'])} | {_fmt_pct(f['test_accuracy'])}, "
                  f"{f['drop_points']:.2f} pts, {f['compression']:.1f}x | >= {target:g}x at <= 0.5 pts: "
                  f"{'met' if met else 'not met'} | {best_s} | {at_s} | {target:g}x, {PAPER[model][1]} |")
    md.append("\nEvery accuracy after Huffman coding is that of the model loaded back from its file; "
              "it equals the in-memory model's (parameters compared bit for bit, accuracies equal).\n")
    md.append("## Sweep: the same pipeline at other sparsities\n")
    md.append("One pruning trajectory per model visits Han's kept fractions times `scale` (densest "
              "first, each level pruned from the previous one and retrained); every level is also "
              "quantized (8-bit conv / 5-bit fc, linear init), retrained and stored.\n")
    cols = ["model", "scale", "kept_fraction", "pruned_accuracy", "test_accuracy", "drop_points",
            "stored_bytes", "compression", "prune_epochs", "file"]
    md.append(common.markdown_table(sweep, cols))
    return md


def _bits_study_md(bits_rows, sweep) -> str:
    """The bit-width study as a table, each model's rows after its sweep point (Han's bits)."""
    md = ["## Fewer bits at the same sparsity\n",
          "The pruned net of one trajectory level quantized with Han's widths (the sweep's point) and with "
          "fewer bits in the fully connected layers (conv layers keep 8); accuracy of the model loaded from "
          "each file.\n",
          "| model | level | fc bits | test acc | drop (points) | stored bytes | compression |",
          "|---|---|---|---|---|---|---|"]

    def line(r, bits):
        return (f"| {r['model']} | x{r['scale']:g} | {bits} | {_fmt_pct(r['test_accuracy'])} | "
                f"{r['drop_points']:.2f} | {r['stored_bytes']:,} | {r['compression']:.1f}x |")

    for model in dict.fromkeys(r["model"] for r in bits_rows):
        mine = [r for r in bits_rows if r["model"] == model]
        han = [p for p in sweep if p["model"] == model and p["scale"] == mine[0]["scale"]]
        md += [line(p, "5 (Han)") for p in han[:1]] + [line(r, r["fc_bits"]) for r in mine]
    return "\n".join(md) + "\n"


def summary_md(rows, sweep, reports, init_rows, neuron_rows, quick, bits_rows=()):
    md = target_analysis(rows, sweep)
    for model, report in reports.items():
        md.append(f"## Per-layer storage: {model} at Han's sparsity (`{model}.wsjax`)\n")
        md.append(report.to_markdown() + "\n")
    if init_rows:
        bits = sorted({r["bits"] for r in init_rows})
        md.append("## Centroid initialisation (Han et al. Sec. 3.2), pruned LeNet-300-100\n")
        md.append(f"Test accuracy (%) after k-means with each initialisation and {INIT_STUDY_EPOCHS} epoch "
                  "of centroid retraining (short, for the CPU budget; before retraining in brackets). "
                  "All three layers use the same number of bits.\n")
        md.append("| init | " + " | ".join(f"{b} bits" for b in bits) + " |")
        md.append("|---|" + "---|" * len(bits))
        for init in INITS:
            cells = []
            for b in bits:
                r = next((r for r in init_rows if r["init"] == init and r["bits"] == b), None)
                after = "n/a" if r is None or "test_accuracy" not in r else _fmt_pct(r["test_accuracy"])
                cells.append("" if r is None else f"{after} ({_fmt_pct(r['accuracy_before_retraining'])})")
            if any(cells):
                md.append(f"| {init} | " + " | ".join(cells) + " |")
        md.append("")
    if bits_rows:
        md.append(_bits_study_md(bits_rows, sweep))
    if neuron_rows:
        md.append("## Structured neuron pruning of LeNet-300-100\n")
        md.append("Hidden units removed by the scale-invariant weight score "
                  "(`wsjax.pruning.prune_neurons`), then fine-tuned; forward-pass time of the jitted "
                  f"model on this machine ({jax.default_backend()}, {os.cpu_count()} CPUs; best of "
                  "interleaved repeats).\n")
        md.append(common.markdown_table(neuron_rows))
    if quick:
        md.append("\n(quick run: Han's sparsity only, pruned in one step with 1 epoch of retraining, "
                  "LeNet-5 retrained on 2k images, 2k test images, no retraining in the "
                  "initialisation study; numbers are a smoke test, not results.)\n")
    return "\n".join(md)


COLUMNS = ["model", "method", "test_accuracy", "drop_points", "val_accuracy", "kept_fraction",
           "free_params", "virtual_params", "stored_bytes", "dense_bytes", "compression", "seconds",
           "epochs", "bytes_from"]


def main(argv=None):
    args = common.parse_args(NAME, __doc__.splitlines()[0], argv=argv, models=MODELS)
    t_start = time.perf_counter()
    rows, sweep, reports, pruned_by_model = [], [], {}, {}
    for m in MODELS:
        print(f"== {m} [{time.perf_counter() - t_start:.1f} s]", flush=True)
        r, sw, report, pruned = compress(m, args.dataset, args.seed, args.quick, args.out)
        rows += r
        sweep += sw
        reports[m] = report
        pruned_by_model[m] = pruned
    print(f"== centroid initialisation study [{time.perf_counter() - t_start:.1f} s]", flush=True)
    init_rows = init_study(pruned_by_model["lenet300100"], args.dataset, args.seed, args.quick, args.out)
    print(f"== bit-width study [{time.perf_counter() - t_start:.1f} s]", flush=True)
    bits_rows = bits_study(args.dataset, args.seed, args.quick, args.out)
    print(f"== structured neuron pruning [{time.perf_counter() - t_start:.1f} s]", flush=True)
    neuron_rows = neuron_study(args.dataset, args.seed, args.quick, args.out)
    extra = summary_md(rows, sweep, reports, init_rows, neuron_rows, args.quick, bits_rows)
    plot(rows, sweep, init_rows, args.out)
    for name, data in (("sweep.json", sweep), ("init_study.json", init_rows), ("neuron_pruning.json", neuron_rows),
                       ("bits_study.json", bits_rows)):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(data, f, indent=1)
    table = common.write_results(args.out, NAME, args.dataset, args.quick, rows, extra_md=extra, columns=COLUMNS)
    print(table)
    print(extra)
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return rows


if __name__ == "__main__":
    main()
