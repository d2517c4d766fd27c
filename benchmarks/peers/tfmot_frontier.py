"""The peer's compression frontier: TensorFlow Model Optimization's pruning + clustering recipe.

Runs in its own environment, never in ``make test`` (it needs TensorFlow, which wsjax does not)::

    python3 -m venv .venv-peers
    .venv-peers/bin/pip install -r benchmarks/peers/requirements.txt
    .venv-peers/bin/python benchmarks/peers/tfmot_frontier.py --model lenet300100
    .venv-peers/bin/python benchmarks/peers/tfmot_frontier.py --model lenet5

The recipe is the one tfmot's guides teach (pruning with Keras, then sparsity-preserving
clustering, then TFLite), run as a researcher would run it, one seed:

1. the dense net (LeNet-300-100 or the Caffe LeNet-5, the same layers as
   :mod:`wsjax.models.lenet`) trained by wsjax's dense recipe, so that both sides' drops are
   measured from nets trained alike: Adam with the rate decayed from 1e-3 to 1e-5 by a
   cosine over ``--dense-epochs`` epochs (30 and 12), batch 100. (Keras' defaults, a
   constant 1e-3 for 30 epochs, ended at 89.29 % on LeNet-300-100, and early stopping on
   validation at 89.09 %, below the issue's 89.96 %: a weaker dense net would make the
   peer's drops look smaller.)
2. ``prune_low_magnitude`` with ``PolynomialDecay`` from 50 % to the final sparsity over
   ``--prune-epochs`` (10) fine-tuning epochs, Adam 1e-3 (the pruning guide's schedule,
   ending at the last step), then ``strip_pruning``;
3. ``cluster_weights`` with k-means++ centroids and ``preserve_sparsity=True``, fine-tuned
   ``--cluster-epochs`` (3) epochs at Adam 1e-5 (the clustering guide's rate), then
   ``strip_clustering``;
4. TFLite with ``Optimize.DEFAULT`` (the float weights become int8), the ``.tflite`` zipped
   with deflate: **its bytes are the zip's size**, as tfmot's guides measure a model.

The data split is wsjax's (:func:`wsjax.study.nets.train_val_test`): the first 55,000
training images train, the last 5,000 validate, the 10,000 test images test; pixels / 255.
The accuracy reported is the TFLite model's, run by the TFLite interpreter on the test set
(the file a user deploys), with the Keras model's beside it.

Each point also writes the stripped, clustered Keras weights (``.npz``, float32 in wsjax's
layout) so that ``experiments/frontier`` can count the same weights with wsjax's codecs:
"our accounting of its weights".

Output (``--out``, default ``experiments/results/frontier/peer``): ``<model>.json`` with
the dense accuracy and one entry per point, and the ``.tflite.zip`` and ``.npz`` files.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import struct
import sys
import time
import zipfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot 0.8 needs Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

#: The issue's points: (final sparsity, clusters).
POINTS = {"lenet300100": [(0.88, 16), (0.92, 16), (0.95, 16)],
          "lenet5": [(0.80, 16), (0.88, 16), (0.92, 16), (0.95, 16)]}
DENSE_EPOCHS = {"lenet300100": 30, "lenet5": 12}  # wsjax's dense recipe (wsjax.study.nets)
FMNIST = "/usr/share/datasets/fashion-mnist"


def _idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, raw[4: 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(folder: str):
    """``(train, val, test)`` as wsjax splits them: 55k / 5k of the training set, the test set."""
    def pair(kind):
        x = _idx(os.path.join(folder, f"{kind}-images-idx3-ubyte.gz")).astype(np.float32)[..., None] / 255.0
        y = _idx(os.path.join(folder, f"{kind}-labels-idx1-ubyte.gz")).astype(np.int32)
        return x, y

    (x, y), test = pair("train"), pair("t10k")
    return (x[:55_000], y[:55_000]), (x[55_000:], y[55_000:]), test


def build(keras, name: str):
    L = keras.layers
    if name == "lenet300100":
        layers = [L.Flatten(), L.Dense(300, activation="relu"), L.Dense(100, activation="relu"), L.Dense(10)]
    else:  # the Caffe LeNet-5: no activation after the convolutions, as wsjax.models.LeNet5
        layers = [L.Conv2D(20, 5), L.MaxPooling2D(2), L.Conv2D(50, 5), L.MaxPooling2D(2), L.Flatten(),
                  L.Dense(500, activation="relu"), L.Dense(10)]
    return keras.Sequential([keras.Input((28, 28, 1)), *layers])


def compile_(keras, model, lr):
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


def accuracy(model, data) -> float:
    logits = model.predict(data[0], batch_size=1000, verbose=0)
    return float(np.mean(np.argmax(logits, 1) == data[1]))


def tflite_accuracy(tf, blob: bytes, data) -> float:
    interp = tf.lite.Interpreter(model_content=blob)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], (1000, 28, 28, 1))
    interp.allocate_tensors()
    hits = 0
    for i in range(0, len(data[0]), 1000):
        interp.set_tensor(inp["index"], data[0][i: i + 1000])
        interp.invoke()
        hits += int(np.sum(np.argmax(interp.get_tensor(out["index"]), 1) == data[1][i: i + 1000]))
    return hits / len(data[0])


def zipped_size(name: str, blob: bytes) -> tuple[bytes, int]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, blob)
    return buf.getvalue(), len(buf.getvalue())


def weights_npz(model, wsjax_names: list[str]) -> bytes:
    """The stripped model's weights under wsjax's parameter paths (``Dense_0/kernel``, ...)."""
    arrays, i = {}, 0
    for layer in model.layers:
        w = layer.get_weights()
        if w:
            arrays[f"{wsjax_names[i]}/kernel"], arrays[f"{wsjax_names[i]}/bias"] = (np.asarray(a, np.float32) for a in w)
            i += 1
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(POINTS), default="lenet300100")
    p.add_argument("--points", default=None, help="sparsity:clusters,... (default: the issue's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense-epochs", type=int, default=None)
    p.add_argument("--prune-epochs", type=int, default=10)
    p.add_argument("--cluster-epochs", type=int, default=3)
    p.add_argument("--data", default=os.environ.get("WSJAX_FMNIST", FMNIST))
    p.add_argument("--out", default="experiments/results/frontier/peer")
    args = p.parse_args(argv)

    import tensorflow as tf
    import tf_keras as keras
    import tensorflow_model_optimization as tfmot

    points = POINTS[args.model] if args.points is None else [
        (float(s), int(k)) for s, k in (item.split(":") for item in args.points.split(","))]
    dense_epochs = args.dense_epochs or DENSE_EPOCHS[args.model]
    names = ["Dense_0", "Dense_1", "Dense_2"] if args.model == "lenet300100" else ["Conv_0", "Conv_1", "Dense_0", "Dense_1"]
    os.makedirs(args.out, exist_ok=True)
    train, val, test = fashion_mnist(args.data)
    keras.utils.set_random_seed(args.seed)
    t0 = time.perf_counter()
    dense = build(keras, args.model)
    steps_per_epoch = len(train[0]) // 100
    compile_(keras, dense, keras.optimizers.schedules.CosineDecay(1e-3, dense_epochs * steps_per_epoch, alpha=0.01))
    history = dense.fit(*train, batch_size=100, epochs=dense_epochs, validation_data=val, verbose=0)
    result = {"peer": f"tensorflow-model-optimization {tfmot.__version__}, tf-keras {keras.__version__}, "
                      f"tensorflow {tf.__version__}", "model": args.model, "seed": args.seed,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "dense_epochs": dense_epochs,
              "prune_epochs": args.prune_epochs, "cluster_epochs": args.cluster_epochs,
              "dense_test_accuracy": accuracy(dense, test), "dense_val_accuracy": accuracy(dense, val),
              "dense_seconds": time.perf_counter() - t0, "dense_val_curve": history.history.get("val_accuracy"),
              "points": []}
    dense_blob = tf.lite.TFLiteConverter.from_keras_model(dense).convert()
    result["dense_tflite_bytes"] = len(dense_blob)
    print(f"dense {args.model}: test {result['dense_test_accuracy']:.4f} ({result['dense_seconds']:.0f} s)", flush=True)
    steps = int(np.ceil(len(train[0]) / 100)) * args.prune_epochs
    for sparsity, clusters in points:
        t0 = time.perf_counter()
        model = keras.models.clone_model(dense)
        model.set_weights(dense.get_weights())
        schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.50, final_sparsity=sparsity,
                                                        begin_step=0, end_step=steps)
        pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
        compile_(keras, pruned, 1e-3)
        pruned.fit(*train, batch_size=100, epochs=args.prune_epochs, validation_data=val, verbose=0,
                   callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        stripped = tfmot.sparsity.keras.strip_pruning(pruned)
        pruned_acc = accuracy(stripped, test)
        C = tfmot.clustering.keras.CentroidInitialization
        clustered = tfmot.clustering.keras.cluster_weights(
            stripped, number_of_clusters=clusters, cluster_centroids_init=C.KMEANS_PLUS_PLUS, preserve_sparsity=True)
        compile_(keras, clustered, 1e-5)
        clustered.fit(*train, batch_size=100, epochs=args.cluster_epochs, validation_data=val, verbose=0)
        final = tfmot.clustering.keras.strip_clustering(clustered)
        converter = tf.lite.TFLiteConverter.from_keras_model(final)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        blob = converter.convert()
        stem = f"{args.model}_s{int(round(100 * sparsity))}_k{clusters}_seed{args.seed}"
        zipped, nbytes = zipped_size(f"{stem}.tflite", blob)
        with open(os.path.join(args.out, f"{stem}.tflite.zip"), "wb") as f:
            f.write(zipped)
        with open(os.path.join(args.out, f"{stem}.npz"), "wb") as f:
            f.write(weights_npz(final, names))
        kernels = [w for layer in final.layers for w in layer.get_weights()[:1]]
        n_all = sum(int(np.prod(layer.get_weights()[0].shape)) + int(np.prod(layer.get_weights()[1].shape))
                    for layer in final.layers if layer.get_weights())
        point = {"sparsity": sparsity, "clusters": clusters, "file": f"{stem}.tflite.zip", "weights": f"{stem}.npz",
                 "test_accuracy": tflite_accuracy(tf, blob, test), "keras_test_accuracy": accuracy(final, test),
                 "val_accuracy": tflite_accuracy(tf, blob, val), "pruned_test_accuracy": pruned_acc,
                 "tflite_bytes": len(blob), "zipped_bytes": nbytes, "compression": 4 * n_all / nbytes,
                 "kept_fraction": float(sum(np.count_nonzero(k) for k in kernels) / sum(k.size for k in kernels)),
                 "distinct_kernel_values": [int(np.unique(k).size) for k in kernels],
                 "seconds": time.perf_counter() - t0}
        point["drop_points"] = 100 * (result["dense_test_accuracy"] - point["test_accuracy"])
        result["points"].append(point)
        print(f"  {sparsity:.0%} sparsity, {clusters} clusters: test {point['test_accuracy']:.4f} "
              f"(drop {point['drop_points']:.2f}), {nbytes:,} B zipped, {point['compression']:.1f}x "
              f"({point['seconds']:.0f} s)", flush=True)
    with open(os.path.join(args.out, f"{args.model}.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
