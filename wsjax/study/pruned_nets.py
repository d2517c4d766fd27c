"""Deep Compression's pruned nets: the levels of its pruning trajectory, as rows of the
``deep_compression`` study's store, and the quantized, Huffman-coded file of one of them.

A model's *pruning trajectory* (Han, Pool, Tran & Dally 2015; Han, Mao & Dally 2016) visits
Han's per-layer kept fractions (:data:`HAN_KEPT`, the paper's Tables 4-5) times each scale
of ``levels`` (densest first). Level ``i`` prunes the net of level ``i - 1`` (level 0: the
dense reference net, :func:`wsjax.study.pretrained`) by magnitude to those fractions and
retrains the survivors through the mask (``W = theta * M``, :class:`wsjax.compress.Prune`
and :class:`wsjax.compress.Retrain`; Adam, cosine decay, shuffled with ``seed + i``).
:func:`pruned_config` is a level's full config (the scales up to it, the recipe, the data
splits, the dense net's config); :func:`pruned_net` reads the level from the store or
computes it (and every missing level before it), adding each level's row and its
``.msgpack`` artifact (params and masks), so an interrupted trajectory resumes level by level.

Row kinds in the deep_compression store (``Store(study_folder("deep_compression", quick))``;
query with ``store.rows({"kind": ...})``; config entries in ``row["config"]``, metrics at
the top level of the row; :func:`points` flattens both):

* ``"level"`` -- one pruned net (config: :func:`pruned_config`: ``model``, ``dataset``,
  ``seed``, ``scale``, ``level``, ``trajectory``, ``kept``, ``prune_epochs``, ``prune_lr``,
  ``data``, ``dense``). Metrics: ``test_accuracy``, ``val_accuracy``, ``kept_fraction``,
  ``layer_kept``, ``nonzero``, ``dense_bytes``, ``csr_float32_bytes`` (Han's "P" storage,
  counted by :func:`wsjax.pruning.csr.csr_float32_bytes`, not a file), ``epochs`` and
  ``seconds`` (retraining from the dense net up to this level), ``level_seconds``.
* ``"sweep"`` -- a level quantized with Han's bits (8 conv / 5 fc), centroids retrained,
  stored and loaded back (config: ``model``, ``dataset``, ``seed``, ``scale``, ``conv_bits``,
  ``fc_bits``, ``init``, ``quant_epochs``, ``quant_lr``, ``quant_examples``, ``level``: the
  level's config). Metrics: :func:`quantize_and_store`'s -- ``test_accuracy`` (the model
  loaded from the file), ``in_memory_accuracy``, ``val_accuracy``, ``stored_bytes`` (the
  file's size), ``dense_bytes``, ``compression``, ``fixed_bytes`` (the file with every stream
  at fixed width, Han's "P+Q"), ``dense_accuracy``, ``drop_points`` (100 x (dense - test
  accuracy)), ``pruned_accuracy``, ``kept_fraction``, ``accuracy_before_retraining``,
  ``bits``, ``free_params``, ``seconds``, ``layers`` (the file's size report rows), ``file``.
* ``"bits"`` -- the same at fewer fully connected bits (``fc_bits`` 4, 3); same metrics.
* ``"stages"`` -- Han's four stages at scale 1 (config ``stage``: ``dense``, ``pruned``,
  ``pruned+quantized``, ``pruned+quantized+huffman``). Metrics: ``test_accuracy``,
  ``val_accuracy``, ``drop_points``, ``kept_fraction``, ``free_params``, ``dense_bytes``;
  ``stored_bytes`` and ``compression`` where the stage is a file (dense, +Huffman),
  otherwise ``counted_bytes`` and ``counted_compression`` (Han's counting), and ``bytes_from``.
* ``"init"`` -- centroid initialisation (config ``init``, ``bits``, ``epochs``) on the scale-1
  LeNet-300-100: ``accuracy_before_retraining``, ``test_accuracy``, ``val_accuracy``.
* ``"neurons"`` -- structured neuron pruning (config ``hidden``), fine-tuned:
  ``accuracy_before_finetune``, ``test_accuracy``, ``val_accuracy``, ``params``, ``mflops``;
  ``"neuron_timing"``: forward-pass times of those nets (``variants``).

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, ICLR
2016; Han, Pool, Tran & Dally, `Learning both Weights and Connections for Efficient Neural
Networks <https://arxiv.org/abs/1506.02626>`_, 2015.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from flax import serialization

from wsjax import compress, pruning
from wsjax import data as data_
from wsjax.pruning.csr import csr_float32_bytes
from wsjax.results import Store, config_key
from wsjax.sharing import count_params, flatten_paths, path_str
from wsjax.study.args import study_folder
from wsjax.study.files import store_and_reload
from wsjax.study.nets import dense_config, loop_for, model_by_name, pretrained, splits as _splits, train_val

STUDY = "deep_compression"
#: Han et al. (2016) Tables 4-5: the fraction of each layer's weights kept after pruning.
HAN_KEPT = {
    "lenet300100": {"Dense_0/kernel": 0.08, "Dense_1/kernel": 0.09, "Dense_2/kernel": 0.26},
    "lenet5": {"Conv_0/kernel": 0.66, "Conv_1/kernel": 0.12, "Dense_0/kernel": 0.08, "Dense_1/kernel": 0.19},
}
#: The pruning trajectory: ``levels`` as multiples of Han's kept fractions (1.0 = Han),
#: retraining epochs after each pruning step and the Adam peak rate.
FULL = {
    "lenet300100": dict(levels=(4.0, 2.0, 1.5, 1.0, 0.8), prune_epochs=6, prune_lr=1e-3),
    "lenet5": dict(levels=(3.0, 2.0, 1.4, 1.0, 0.85, 0.6, 0.4), prune_epochs=5, prune_lr=5e-4),
}
QUICK = {
    "lenet300100": dict(levels=(1.0,), prune_epochs=1, prune_lr=1e-3),
    "lenet5": dict(levels=(1.0,), prune_epochs=1, prune_lr=5e-4),
}
RETRAIN_ALPHA, BATCH = 0.05, 100


def data_config(model_name: str, quick: bool) -> dict:
    """The study's data: the first ``pool`` training images (None: all; the dense net's
    quick set), the last ``validation`` of them held out, the first ``train_examples`` of
    the rest retrained on (None: all), the first ``test_examples`` test images (None: all)."""
    if not quick:
        return {"pool": None, "validation": 5000, "train_examples": None, "test_examples": None}
    return {"pool": 10_000, "validation": 1000, "train_examples": 2000 if model_name == "lenet5" else None,
            "test_examples": 2000}


def splits(config: dict):
    """``(train, val, test)`` of a config with ``dataset``, ``seed`` and ``data`` entries."""
    d = config["data"]
    pool, test = _splits(config["dataset"], False, config["seed"], train_examples=d["pool"],
                         test_examples=d["test_examples"])
    train, val = train_val(pool, d["validation"])
    if d["train_examples"] is not None:
        train = (train[0][: d["train_examples"]], train[1][: d["train_examples"]])
    return train, val, test


def pruned_config(model_name: str, dataset: str = "fashion_mnist", seed: int = 0, quick: bool = False,
                  scale: float = 1.0, **overrides) -> dict:
    """The full config of the trajectory's level at ``scale`` (the key of its row).

    ``overrides``: the recipe's ``levels``, ``prune_epochs``, ``prune_lr``; the data's
    ``pool``, ``validation``, ``train_examples``, ``test_examples``; the dense net's
    ``dense_epochs`` and ``dense_train_examples`` (see :func:`wsjax.study.dense_config`).
    """
    if model_name not in HAN_KEPT:
        raise ValueError(f"no Han kept fractions for {model_name!r}; known: {sorted(HAN_KEPT)}")
    recipe, data, dense = dict((QUICK if quick else FULL)[model_name]), data_config(model_name, quick), {}
    for k, v in overrides.items():
        target = recipe if k in recipe else data if k in data else dense if k in (
            "dense_epochs", "dense_train_examples") else None
        if target is None:
            raise TypeError(f"pruned_config got an unknown override {k!r}")
        target[k] = v
    levels = [float(s) for s in recipe["levels"]]
    if float(scale) not in levels:
        raise ValueError(f"{model_name}'s pruning levels are {levels}, got scale {scale!r}")
    i = levels.index(float(scale))
    return {"kind": "level", "model": model_name, "dataset": dataset, "seed": seed, "scale": float(scale),
            "level": i, "trajectory": levels[: i + 1], "kept": HAN_KEPT[model_name],
            "prune_epochs": recipe["prune_epochs"], "prune_lr": recipe["prune_lr"], "retrain_alpha": RETRAIN_ALPHA,
            "batch_size": BATCH, "data": data,
            "dense": dense_config(model_name, dataset, seed, quick, dense.get("dense_epochs"),
                                  dense.get("dense_train_examples"))}


class Scorer:
    """Test (or validation) accuracy of params of one model, one compiled eval function."""

    def __init__(self, model, val, test):
        from wsjax.train import classifier

        _, self.eval_fn = classifier(lambda th, x: model.apply({"params": th}, x))
        self.val, self.test = val, test

    def __call__(self, params, split: str = "test") -> float:
        from wsjax.train import evaluate

        x, y = self.test if split == "test" else self.val
        return evaluate(self.eval_fn, params, x, y)["accuracy"]


def _template(model_name: str, dataset: str):
    model = model_by_name(model_name)
    return model.init(jax.random.key(0), jax.numpy.zeros((1, *data_.SHAPES[dataset])))["params"]


def full_masks(params, flat_masks: dict):
    """A masks pytree (None for unpruned leaves) from a flat ``{path: mask}`` dict."""
    return jax.tree_util.tree_map_with_path(
        lambda kp, x: None if path_str(kp) not in flat_masks else np.asarray(flat_masks[path_str(kp)], bool),
        params)


def level_blob(params, masks) -> bytes:
    """A pruned net's ``.msgpack`` artifact (params and masks), as :func:`read_level` reads it."""
    return serialization.msgpack_serialize({"params": serialization.to_state_dict(jax.tree.map(np.asarray, params)),
                                            "masks": {p: np.asarray(m) for p, m in flatten_paths(masks).items()}})


def read_level(path: str, template):
    """``(params, masks)`` of a level's ``.msgpack`` artifact."""
    with open(path, "rb") as f:
        saved = serialization.msgpack_restore(f.read())
    params = serialization.from_state_dict(template, saved["params"])
    return params, full_masks(params, saved["masks"])


def level_net(params, masks) -> compress.Compressed:
    """A pruned net as a pipeline's starting point: ``W = theta * M`` with its masks."""
    from wsjax.sharing.mask import masked

    t = masked(masks)
    return compress.Compressed(t, t.init(jax.random.key(0), params), masks)


def dense_net(config: dict, quick: bool):
    """``(model, dense params)`` of a config's ``dense`` entry, from the baseline store of
    ``quick`` (trained and added there if missing, :func:`wsjax.study.pretrained`)."""
    d = config["dense"]
    model, params, row = pretrained(d["model"], d["dataset"], d["seed"], quick, epochs=d["epochs"],
                                    train_examples=d["train_examples"], progress=False)
    if config_key(row["config"]) != config_key(d):
        raise ValueError(f"the baseline store of quick={quick} has the dense net {row['config']}, not {d}")
    return model, jax.device_get(params)


def _prune_level(model, config, previous, data, scorer, progress):
    """Prune ``previous = (params, masks, epochs, seconds)`` to ``config``'s level; its metrics."""
    train, val, _ = data
    scale, i = config["scale"], config["level"]
    targets = {f"^{p}$": 1.0 - min(1.0, scale * k) for p, k in config["kept"].items()}
    params, masks, epochs, seconds = previous
    start = compress.start(params)._replace(masks=masks)
    pruned = compress.Pipeline([
        compress.Prune(targets),
        compress.Retrain(config["prune_epochs"], config["prune_lr"], alpha=config["retrain_alpha"],
                         seed=config["seed"] + i, batch_size=config["batch_size"]),
    ]).run(compress.from_linen(model, params), train, val, seed=config["seed"], start_from=start,
           loop=loop_for(config["model"]), progress=progress, label=f"{config['model']} prune x{scale:g} ")
    params, masks = jax.device_get(pruned.params), pruned.masks
    sec = pruned.history[-1]["seconds"]
    n = count_params(params)
    metrics = {"test_accuracy": scorer(params), "val_accuracy": scorer(params, "val"),
               "kept_fraction": pruning.density(masks), "layer_kept": pruning.layer_density(masks),
               "nonzero": int(sum(np.count_nonzero(np.asarray(w)) for w in jax.tree.leaves(params))),
               "dense_bytes": 4 * n, "csr_float32_bytes": csr_float32_bytes(params),
               "epochs": epochs + config["prune_epochs"], "seconds": seconds + sec, "level_seconds": sec}
    return params, masks, metrics


def pruned_net(model_name: str, dataset: str = "fashion_mnist", seed: int = 0, quick: bool = False,
               scale: float = 1.0, store: Store | None = None, progress: bool = False, **overrides):
    """``(params, masks, row)`` of the trajectory's level at ``scale`` (:func:`pruned_config`
    with ``overrides``).

    Read from ``store`` (default: the deep_compression study's, ``study_folder(STUDY, quick)``);
    otherwise computed from the deepest level the store has (or the dense net) level by
    level, each level's row and ``.msgpack`` artifact added as soon as it is done.
    """
    store = store if store is not None else Store(study_folder(STUDY, quick))
    target = pruned_config(model_name, dataset, seed, quick, scale, **overrides)
    configs = [pruned_config(model_name, dataset, seed, quick, s, **overrides) for s in target["trajectory"]]
    template = _template(model_name, dataset)
    start, previous = 0, None
    for i in reversed(range(len(configs))):
        row, path = store.get(configs[i]), store.artifact(configs[i], ".msgpack")
        if row is not None and os.path.exists(path):
            params, masks = read_level(path, template)
            if i == len(configs) - 1:
                return params, masks, row
            start, previous = i + 1, (params, masks, row["epochs"], row["seconds"])
            break
    model, dense = dense_net(target, quick)
    if previous is None:
        previous = (dense, None, 0, 0.0)
    data = splits(target)
    scorer = Scorer(model, data[1], data[2])
    for config in configs[start:]:
        params, masks, metrics = _prune_level(model, config, previous, data, scorer, progress)
        store.write_artifact(config, ".msgpack", level_blob(params, masks))
        row = store.put(config, metrics)
        previous = (params, masks, metrics["epochs"], metrics["seconds"])
    return params, masks, row


def quantize_and_store(model, params, masks, data, scorer, path: str, *, seed: int, epochs: int, lr: float,
                       examples: int | None = None, bits=None, init: str = "linear", alpha: float = RETRAIN_ALPHA,
                       loop: str = "auto", label: str = "") -> dict:
    """Deep Compression's stages 2 and 3 on a pruned net: k-means of each layer's survivors
    into ``2**bits`` centroids (``bits`` as :class:`wsjax.compress.Quantize` takes them;
    None: Han's 8 conv / 5 fc), the centroids and biases retrained (``epochs`` on the first
    ``examples`` training images), the result written to ``path`` (relative-index sparse
    layers, Huffman-coded streams) and scored as loaded back. Returns the row's metrics
    (see the module docstring); RuntimeError if the file's model scores differently."""
    train, val, _ = data
    net = compress.from_linen(model, params)
    quantized = compress.Pipeline([compress.Quantize(bits, init=init)]).run(
        net, train, val, seed=seed, start_from=level_net(params, masks), progress=False)
    before = scorer(jax.device_get(quantized.params))
    retrained = compress.Pipeline([compress.Retrain(epochs, lr, alpha=alpha, examples=examples)]).run(
        net, train, val, seed=seed, start_from=quantized, loop=loop, progress=False, label=label)
    w = jax.device_get(retrained.params)
    in_memory = scorer(w)
    report, loaded, from_file, file_bytes = store_and_reload(w, path, scorer)
    if from_file != in_memory:
        raise RuntimeError(f"{path}: loaded accuracy {from_file} != in-memory {in_memory}")
    dense_bytes = 4 * count_params(params)
    return {"test_accuracy": from_file, "in_memory_accuracy": in_memory, "val_accuracy": scorer(loaded, "val"),
            "accuracy_before_retraining": before, "stored_bytes": file_bytes, "dense_bytes": dense_bytes,
            "compression": dense_bytes / file_bytes,
            "fixed_bytes": report.file_overhead_bytes + sum(layer.stored_bytes_fixed for layer in report.layers),
            "file_overhead_bytes": report.file_overhead_bytes, "layers": report.to_rows(),
            "kept_fraction": pruning.density(masks), "free_params": count_params(retrained.state.theta),
            "bits": retrained.history[-2]["bits"], "seconds": retrained.history[-1]["seconds"],
            "file": os.path.basename(path)}


def flat(row: dict) -> dict:
    """A row's config entries (top level), then its metrics: ``row["config"]["model"]`` as
    ``flat(row)["model"]``; a metric of the same name wins."""
    skip = ("key", "config", "wsjax", "commit", "written")
    return {**row["config"], **{k: v for k, v in row.items() if k not in skip}}


def points(kind: str, quick: bool = False, store: Store | None = None, **where) -> list[dict]:
    """The rows of ``kind`` (and config entries ``where``) in the deep_compression store (default:
    ``quick``'s), each flattened (:func:`flat`)."""
    store = store if store is not None else Store(study_folder(STUDY, quick))
    return [flat(r) for r in store.rows({"kind": kind, **where})]
