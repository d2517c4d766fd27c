"""Compression pipelines: stages compose, keep earlier masks, resume from their cache, and
work on linen and NNX models alike."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from wsjax import compress, storage
from wsjax.models import MLP
from wsjax.sharing import KERNELS, flatten_paths

RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 12)).astype(np.float32)
Y = (X[:, :5].argmax(1)).astype(np.int32)  # learnable labels
TRAIN, VAL = (X[:300], Y[:300]), (X[300:], Y[300:])


def _linen():
    model = MLP((32, 32, 5))
    return model, model.init(jax.random.key(0), X[:1])["params"]


class NNXMLP(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List([nnx.Linear(12, 32, rngs=rngs), nnx.Linear(32, 32, rngs=rngs),
                                nnx.Linear(32, 32, rngs=rngs), nnx.Linear(32, 5, rngs=rngs)])

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x))
        return self.layers[-1](x)


def _kernels(params):
    return {p: np.asarray(w) for p, w in flatten_paths(jax.device_get(params)).items() if p.endswith("kernel")}


def test_prune_retrain_quantize_retrain_keeps_the_masks_and_the_codebooks():
    model, params = _linen()
    dense = compress.Pipeline([compress.Retrain(40, 1e-2)]).run(model, TRAIN, VAL, params=params, progress=False)
    result = compress.deep_compression(0.75, prune_epochs=10, prune_lr=1e-2, bits=3, quant_epochs=5,
                                       quant_lr=1e-3).run(model, TRAIN, VAL, params=params, start_from=dense,
                                                          progress=False)
    assert [h["stage"] for h in result.history] == ["retrain", "prune", "retrain", "quantize", "retrain"]
    masks = flatten_paths(result.masks)
    for path, k in _kernels(result.params).items():
        m = np.asarray(masks[path])
        assert m.mean() == pytest.approx(0.25, abs=0.01)
        assert np.all(k[~m] == 0) and not np.any(np.signbit(k[~m]))
        assert np.count_nonzero(k[m]) == m.sum()
        assert len(np.unique(k[m])) <= 8
    assert dense.history[-1]["val_accuracy"] > 0.7  # it learned: chance is 0.2
    assert result.history[-1]["val_accuracy"] > 0.6


def test_a_rerun_reads_every_training_stage_from_the_cache(tmp_path, monkeypatch):
    model, params = _linen()
    pipe = compress.Pipeline([compress.Prune(0.5), compress.Retrain(1, 1e-3), compress.Quantize(2),
                              compress.Retrain(1, 1e-4)])
    first = pipe.run(model, TRAIN, VAL, params=params, out_dir=str(tmp_path), progress=False)
    assert len(list(tmp_path.glob("*.msgpack"))) == 2  # one file per training stage
    import wsjax.compress.train as train_module

    def no_training(*args, **kwargs):
        raise AssertionError("a cached stage was retrained")

    monkeypatch.setattr(train_module, "fit", no_training)
    again = pipe.run(model, TRAIN, VAL, params=params, out_dir=str(tmp_path), progress=False)
    chex.assert_trees_all_equal(jax.device_get(first.params), jax.device_get(again.params))
    # another seed, or other data, is another config: it never reuses these results
    with pytest.raises(AssertionError, match="retrained"):
        pipe.run(model, TRAIN, VAL, params=params, seed=1, out_dir=str(tmp_path), progress=False)
    with pytest.raises(AssertionError, match="retrained"):
        pipe.run(model, (X[:200], Y[:200]), VAL, params=params, out_dir=str(tmp_path), progress=False)


def test_stage_order_and_bad_pipelines_give_clear_errors():
    model, params = _linen()
    with pytest.raises(ValueError, match="must come before"):
        compress.Pipeline([compress.Quantize(2), compress.Prune(0.5)]).run(model, TRAIN, params=params)
    with pytest.raises(ValueError, match="soft_share stage before it"):
        compress.Pipeline([compress.Snap()]).run(model, TRAIN, params=params)
    with pytest.raises(ValueError, match="at least one stage"):
        compress.Pipeline([])
    with pytest.raises(TypeError, match="not a pipeline stage"):
        compress.Pipeline([lambda c: c])
    with pytest.raises(ValueError, match="seed"):
        compress.Pipeline([compress.Prune(0.5)]).run(model, TRAIN, params=params, seed=True)


def test_soft_sharing_then_snap_keeps_pruned_zeros_and_leaves_few_values():
    model, params = _linen()
    pipe = compress.Pipeline([compress.Prune(0.5), compress.Retrain(1, 1e-3),
                              compress.SoftShare(tau=2.0, epochs=2, lr=1e-3, pi_zero=0.9, num_components=5,
                                                 init_std=0.05),
                              compress.Snap(kl_threshold=0.1)])
    result = pipe.run(model, TRAIN, VAL, params=params, progress=False)
    pruned = flatten_paths(pipe.stages[0].run(compress.from_linen(model, params), compress.start(params),
                                              type("J", (), {"seed": 0})()).masks)
    for path, k in _kernels(result.params).items():
        assert np.all(k[~np.asarray(pruned[path])] == 0)  # pruned before soft sharing: still zero
    values = np.concatenate([k.ravel() for k in _kernels(result.params).values()])
    assert len(np.unique(values)) <= 5  # at most one value per mixture component
    snap = result.history[-1]
    assert snap["stage"] == "snap" and snap["components"] <= 5


def _soft(scope, include=KERNELS):
    return compress.Pipeline([compress.SoftShare(tau=2.0, epochs=2, lr=1e-3, pi_zero=0.9, num_components=5,
                                                 init_std=0.05, include=include, scope=scope),
                              compress.Snap(kl_threshold=0.1, include=include)])


def test_a_prior_per_layer_snaps_each_kernel_to_its_own_mixture():
    model, params = _linen()
    result = _soft("layer").run(model, TRAIN, VAL, params=params, progress=False)
    soft, snap = result.history[-2], result.history[-1]
    kernels = _kernels(result.params)
    assert set(soft["mixtures"]) == set(snap["merged"]) == set(kernels) and "mixture" not in soft
    for path, k in kernels.items():
        means = np.asarray(snap["merged"][path]["means"])
        assert set(np.unique(k)) <= set(means.astype(np.float32)) | {0.0}  # the leaf's own components
        assert len(np.unique(k)) <= snap["components"][path] <= 5
    assert len({tuple(np.round(m["means"], 6)) for m in soft["mixtures"].values()}) == len(kernels)
    # one selected leaf: a prior per layer is the shared prior, bit for bit
    one = r"^Dense_1/kernel$"
    a = _soft("layer", one).run(model, TRAIN, VAL, params=params, progress=False)
    b = _soft("global", one).run(model, TRAIN, VAL, params=params, progress=False)
    chex.assert_trees_all_equal(jax.device_get(a.params), jax.device_get(b.params))
    assert a.history[-2]["mixtures"]["Dense_1/kernel"] == b.history[-2]["mixture"]
    with pytest.raises(ValueError, match="scope"):
        compress.SoftShare(tau=1.0, epochs=1, scope="pool")


@pytest.mark.parametrize("stage", [compress.Hash(0.25), compress.Hash(0.25, scope="pool"),
                                   compress.LowRank(rank=4), compress.Tie(["layers/1", "layers/2"])],
                         ids=["hash", "hash_pool", "low_rank", "tie"])
def test_reparameterising_stages_on_an_nnx_model_store_their_free_state(stage, tmp_path):
    model = NNXMLP(nnx.Rngs(0))
    net = compress.from_nnx(model)
    result = compress.Pipeline([stage, compress.Retrain(1, 1e-3)]).run(model, TRAIN, VAL, progress=False)
    report = storage.save(tmp_path / "m.wsjax", result.stored)
    assert report.file_bytes == (tmp_path / "m.wsjax").stat().st_size
    loaded = storage.load(tmp_path / "m.wsjax")
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, loaded),
                                jax.tree.map(np.asarray, jax.device_get(result.params)))
    logits = jax.jit(net.apply)(jax.tree.map(jnp.asarray, loaded), X[:4])
    assert logits.shape == (4, 5)
    assert {layer.codec for layer in report.layers} != {"weights"}  # the free state, not W, is stored
    assert report.file_bytes < storage.size_report(jax.device_get(result.params)).file_bytes


def test_prune_stages_on_different_layers_keep_each_others_masks():
    model, params = _linen()
    result = compress.Pipeline([compress.Prune(0.8, include="Dense_0/kernel"), compress.Retrain(1, 1e-3),
                                compress.Prune(0.5, include="Dense_1/kernel"), compress.Retrain(1, 1e-3)]).run(
        model, TRAIN, VAL, params=params, progress=False)
    k = _kernels(result.params)
    assert (k["Dense_0/kernel"] == 0).mean() == pytest.approx(0.8, abs=0.01)
    assert (k["Dense_1/kernel"] == 0).mean() == pytest.approx(0.5, abs=0.01)


def test_quantize_clusters_only_the_survivors_of_a_magnitude_pruned_layer():
    from wsjax.sharing.kmeans import kmeans_1d

    model, params = _linen()
    result = compress.Pipeline([compress.Prune(0.9), compress.Quantize(3)]).run(model, TRAIN, params=params)
    w0 = flatten_paths(params)["Dense_0/kernel"]
    keep = np.asarray(flatten_paths(result.masks)["Dense_0/kernel"])
    centroids = np.asarray(result.state.theta["inner"]["Dense_0/kernel"])
    assert np.all(centroids != 0)  # the pruned zeros (90 % of the layer) did not pull a centroid to 0
    want = kmeans_1d(jnp.asarray(np.asarray(w0)[keep]), 8).centroids
    np.testing.assert_allclose(np.sort(centroids), np.sort(np.asarray(want)), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("a,b", [
    (compress.Prune(np.float32(0.5)), compress.Prune(np.float32(0.9))),
    (compress.Prune({"Dense": 0.5, "Dense_0": 0.9}), compress.Prune({"Dense_0": 0.9, "Dense": 0.5})),
    (compress.SoftShare(1.0, 1, mixture_optimizer=lambda: optax.adam(1e-3)),
     compress.SoftShare(1.0, 1, mixture_optimizer=lambda: optax.adam(5e-4))),
], ids=["numpy-scalars", "dict-order", "lambda-constants"])
def test_different_stage_configs_never_share_a_cache_key(a, b):
    from wsjax.compress.pipeline import stage_config

    assert stage_config(a) != stage_config(b)


def test_an_nnx_model_in_training_mode_with_dropout_gets_a_clear_error():
    class WithDropout(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(12, 5, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.fc(x))

    model = WithDropout(nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"drop \(Dropout\) is in training mode.*model.eval\(\)"):
        compress.from_nnx(model)
    model.eval()
    result = compress.Pipeline([compress.Retrain(1, 1e-3)]).run(model, TRAIN, VAL, progress=False)
    assert result.history[-1]["val_accuracy"] is not None
