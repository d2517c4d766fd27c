"""The redundancy study's factored nets: Denton's LeNet-5 (layers that run as smaller layers,
timed on this CPU) and seed 003's bottleneck layer, each fine-tuned or trained by the one
engine and stored as a real file."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from wsjax import nn as wnn
from wsjax.compress.net import from_linen
from wsjax.compress.state import start
from wsjax.compress.train import retrain
from wsjax.models import factored
from wsjax.results import Store
from wsjax.sharing import count_params

from experiments.redundancy.run import accuracy, data_of, loop, store_scored, trained

LENET5_ORDER = ("Conv_0", "Conv_1", "Dense_0", "Dense_1")


def denton_ranks(unit: dict) -> dict:
    """``{layer: rank}`` of a Denton unit (``'none'``: the trained net; ``'all'``: several)."""
    if unit["layer"] == "none":
        return {}
    if unit["layer"] == "all":
        return {layer: tuple(r) if isinstance(r, list) else r for layer, r in unit["rank"]}
    r = unit["rank"]
    return {unit["layer"]: tuple(r) if isinstance(r, list) else r}


def frozen_below(params: dict, ranks: dict) -> dict:
    """``True`` for every leaf of the lowest factored layer and the layers under it: Denton et
    al. fine-tune the layers above an approximated layer."""
    lowest = min(LENET5_ORDER.index(layer) for layer in ranks)
    return {layer: jax.tree.map(lambda _: LENET5_ORDER.index(layer) <= lowest, sub) for layer, sub in params.items()}


def layer_module(layer: str, rank):
    """The linen module that computes ``layer`` of LeNet-5, factored at ``rank`` or dense."""
    if layer == "Conv_0":
        return wnn.Conv(20, (5, 5), padding="VALID") if rank is None else factored.FilterBasisConv(20, rank)
    if layer == "Conv_1":
        return wnn.Conv(50, (5, 5), padding="VALID") if rank is None else factored.Tucker2Conv(50, tuple(rank))
    import flax.linen as nn

    return nn.Dense(500) if rank is None else factored.LowRankDense(500, rank)


LAYER_INPUT = {"Conv_0": (28, 28, 1), "Conv_1": (12, 12, 20), "Dense_0": (800,)}


def layer_seconds(layer: str, rank, params, batch: int, repeats: int) -> float:
    """The measured forward time of one layer alone on a batch (its input shape in LeNet-5)."""
    module = layer_module(layer, rank)
    x = jax.random.normal(jax.random.key(0), (batch, *LAYER_INPUT[layer]))
    return factored.forward_seconds(lambda p, x: module.apply({"params": p}, x), params, x, repeats)


def denton_metrics(unit: dict, store: Store, quick: bool) -> dict:
    _, dense_params = trained(unit, quick)
    train, val, test = data_of(unit)
    ranks = denton_ranks(unit)
    model = factored.FactoredLeNet5(ranks or None)
    params = factored.factor_params("lenet5", dense_params, ranks) if ranks else dense_params
    params = jax.tree.map(jnp.asarray, params)
    net = from_linen(model, params)
    before = accuracy(net.apply, params, test)
    seconds, history = 0.0, []
    if ranks and unit["epochs"] > 0:
        freeze = optax.masked(optax.set_to_zero(), frozen_below(params, ranks))
        theta, _, history, seconds = retrain(net, start(params), train, val, epochs=unit["epochs"], lr=unit["lr"],
                                             seed=unit["seed"], loop=loop("lenet5"), progress=False, after=[freeze])
        params = jax.tree.map(jnp.asarray, theta)
    after = accuracy(net.apply, params, test)
    from_file, size, file = store_scored(store, unit, jax.device_get(params), net.apply, test)
    counts, dense_counts = factored.count(ranks or None, "lenet5"), factored.count(None, "lenet5")
    x = test[0][: unit["timing_batch"]]
    net_s = factored.forward_seconds(net.apply, params, x, unit["timing_repeats"])
    dense_model = factored.FactoredLeNet5(None)
    dense_s = factored.forward_seconds(lambda p, x: dense_model.apply({"params": p}, x), dense_params, x,
                                       unit["timing_repeats"])
    layers = {}
    for layer, rank in ranks.items():
        layers[layer] = {
            "seconds": layer_seconds(layer, rank, params[layer], unit["timing_batch"], unit["timing_repeats"]),
            "dense_seconds": layer_seconds(layer, None, dense_params[layer], unit["timing_batch"],
                                           unit["timing_repeats"]),
            "params": counts.layers[layer][0], "dense_params": dense_counts.layers[layer][0],
            "macs": counts.layers[layer][1], "dense_macs": dense_counts.layers[layer][1]}
    return {"test_accuracy": from_file, "test_accuracy_factored": before, "in_memory_accuracy": after,
            "params": counts.params, "dense_params": dense_counts.params, "macs": counts.macs,
            "dense_macs": dense_counts.macs, "net_seconds": net_s, "dense_net_seconds": dense_s,
            "layers": layers, "stored_bytes": size, "file": file, "seconds": seconds,
            "free_params": count_params(params),
            "val_accuracy": history[-1]["eval_accuracy"] if history else None}


def bottleneck_metrics(unit: dict, store: Store, quick: bool) -> dict:
    """LeNet-300-100 with its first layer 784 -> K -> 300: trained from scratch, or the trained
    layer factored by SVD at K and the whole net fine-tuned."""
    train, val, test = data_of(unit)
    ranks = {"Dense_0": unit["rank"]}
    model = factored.FactoredMLP((300, 100, 10), ranks)
    if unit["arm"] == "scratch":
        params = model.init(jax.random.key(unit["seed"]), train[0][:1])["params"]
    else:
        _, dense_params = trained(unit, quick)
        params = jax.tree.map(jnp.asarray, factored.factor_params("mlp", dense_params, ranks))
    net = from_linen(model, params)
    before = accuracy(net.apply, params, test)
    theta, _, history, seconds = retrain(net, start(params), train, val, epochs=unit["epochs"], lr=unit["lr"],
                                         alpha=unit["final_lr_fraction"], seed=unit["seed"],
                                         loop=loop("lenet300100"), progress=False)
    params = jax.tree.map(jnp.asarray, theta)
    from_file, size, file = store_scored(store, unit, jax.device_get(params), net.apply, test)
    counts = factored.count(ranks, "mlp")
    return {"test_accuracy": from_file, "test_accuracy_start": before, "params": counts.params,
            "dense_params": factored.count(None, "mlp").params, "stored_bytes": size, "file": file,
            "seconds": seconds, "val_accuracy": history[-1]["eval_accuracy"]}
