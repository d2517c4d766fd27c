"""Deep Compression end to end on real data: the model read back from the file is the model.

A small LeNet-300-100 is trained on 6k Fashion-MNIST images, pruned to Han et al.'s (2016)
per-layer kept fractions with masked retraining, quantized to 5-bit shared centroids with
centroid retraining, written with ``wsjax.storage.save`` and read back with ``load``. The
loaded params must be bit-identical and score exactly the in-memory test accuracy.
"""

import chex
import jax
import numpy as np
import optax

from wsjax import data, pruning, storage
from wsjax.models import LeNet300100
from wsjax.sharing import bind
from wsjax.sharing.codebook import codebook_bits, quantize
from wsjax.sharing.mask import masked
from wsjax.train import classifier, evaluate, fit

#: Han et al. (2016), Table 4: fraction of LeNet-300-100's weights kept per layer.
HAN_KEPT = {"Dense_0/kernel": 0.08, "Dense_1/kernel": 0.09, "Dense_2/kernel": 0.26}


def _train_through(model, transform, state, train, epochs, lr, seed):
    to_params = bind(transform, state)
    loss_fn, _ = classifier(lambda th, x: model.apply({"params": to_params(th)}, x))
    result = fit(loss_fn, state.theta, optax.adam(lr), train, epochs=epochs, batch_size=100,
                 seed=seed, loop="scan", progress=False)
    return jax.device_get(to_params(result.theta))


def test_pruned_quantized_lenet_loaded_from_file_scores_like_in_memory(tmp_path, offline):
    x, y = data.load("fashion_mnist", "train")
    xt, yt = data.load("fashion_mnist", "test")
    train, test = (x[:6000], y[:6000]), (xt[:2000], yt[:2000])
    model = LeNet300100()
    params = model.init(jax.random.key(0), x[:1])["params"]
    loss_fn, eval_fn = classifier(lambda th, xb: model.apply({"params": th}, xb))
    dense = jax.device_get(fit(loss_fn, params, optax.adam(1e-3), train, epochs=3, batch_size=100,
                               seed=0, loop="scan", progress=False).theta)
    dense_acc = evaluate(eval_fn, dense, *test)["accuracy"]

    masks = pruning.sparsity_masks(dense, {f"^{p}$": 1 - k for p, k in HAN_KEPT.items()})
    t_mask = masked(masks)
    pruned = _train_through(model, t_mask, t_mask.init(jax.random.key(1), dense), train, 1, 1e-3, 1)
    assert pruning.density(masks) < 0.09

    t_quant = quantize(r"kernel$", 5)
    st = t_quant.init(jax.random.key(2), pruned)
    assert set(codebook_bits(st).values()) == {5}
    quantized = _train_through(model, t_quant, st, train, 1, 1e-4, 2)
    for path, keep in HAN_KEPT.items():  # pruned weights stayed zero, at most 32 values per layer
        layer, name = path.split("/")
        w = np.asarray(quantized[layer][name])
        assert np.count_nonzero(w) <= np.count_nonzero(np.asarray(pruned[layer][name]))
        assert np.unique(w[w != 0]).size <= 32

    path = tmp_path / "lenet300100.wsjax"
    report = storage.save(path, quantized)
    loaded = storage.load(path)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, loaded), jax.tree.map(np.asarray, quantized))
    in_memory = evaluate(eval_fn, quantized, *test)["accuracy"]
    from_file = evaluate(eval_fn, loaded, *test)["accuracy"]
    assert from_file == in_memory
    assert report.file_bytes == path.stat().st_size
    compression = 4 * sum(np.size(v) for v in jax.tree.leaves(dense)) / path.stat().st_size
    print(f"dense {dense_acc:.4f} file {from_file:.4f} memory {in_memory:.4f} compression {compression:.1f}x")
    assert compression > 30, compression
    # Real learning survived: far above chance (10 %) and within a few points of dense.
    assert dense_acc > 0.78, dense_acc
    assert from_file > dense_acc - 0.08, (from_file, dense_acc)
