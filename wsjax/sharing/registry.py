"""The registry of weight-space transformations: a name, a builder from a config, an example.

``build({'name': 'hashing', 'compression': 0.125})`` gives the transform a config names (as
jaxpruner's registry builds a pruner from a config), and every registered transform is
checked by the contract test (``tests/test_contract.py``: jit and eval_shape, gradients,
free <= virtual parameters, a bit-exact storage round trip, linen and NNX models) through
its ``example``: a function of the example model's layer names (module paths, in order)
that returns the transform with a small config. Registering a new transform adds it to
that test.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

from wsjax.sharing.core import Transform, chain, identity, select
from wsjax.sharing.codebook import codebook, quantize
from wsjax.sharing.hashing import hashed
from wsjax.sharing.lowrank import low_rank
from wsjax.sharing.mask import masked
from wsjax.sharing.paths import KERNELS
from wsjax.sharing.predicted import denil_first_layer
from wsjax.sharing.random_edges import random_edges
from wsjax.sharing.shared_basis import shared_basis
from wsjax.sharing.tying import tied, tied_in_order


class Entry(NamedTuple):
    build: Callable[..., Transform]
    example: Callable[[Sequence[str]], Transform]
    #: 'exact' (the contract test checks the backward pass against finite differences) or
    #: 'straight_through' (a quantizer's STE is not the derivative of its forward pass: the
    #: contract checks finite, non-zero gradients of theta's structure; the STE formula is
    #: tested in the transform's own tests)
    gradient: str = "exact"


TRANSFORMS: dict[str, Entry] = {}


def register(name: str, build: Callable[..., Transform], example: Callable[[Sequence[str]], Transform],
             gradient: str = "exact") -> None:
    """Register a transform builder under ``name`` with an example for the contract test
    (``gradient``: see :class:`Entry`)."""
    if gradient not in ("exact", "straight_through"):
        raise ValueError(f"gradient must be 'exact' or 'straight_through', got {gradient!r}")
    if not isinstance(name, str) or not name:
        raise TypeError(f"a transform needs a non-empty string name, got {name!r}")
    if name in TRANSFORMS:
        raise ValueError(f"a transform is already registered as {name!r}")
    TRANSFORMS[name] = Entry(build, example, gradient)


def build(config: Mapping[str, Any]) -> Transform:
    """The transform ``config['name']`` built with the config's other entries."""
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(f"a transform config is a mapping with a 'name', got {config!r}")
    name = config["name"]
    if name not in TRANSFORMS:
        raise KeyError(f"unknown transform {name!r}; registered: {sorted(TRANSFORMS)}")
    kwargs = {k: v for k, v in config.items() if k != "name"}
    return TRANSFORMS[name].build(**kwargs)


def _magnitude_masks(sparsity: float, include=KERNELS):
    from wsjax import pruning  # pruning imports sharing: resolve at call time

    return lambda params: pruning.sparsity_masks(params, sparsity, include=include)


def pruned(sparsity: float, *, include=KERNELS) -> Transform:
    """``masked`` with magnitude masks computed at ``init`` (``sparsity`` of each selected leaf)."""
    return masked(_magnitude_masks(sparsity, include))


def pruned_quantized(sparsity: float, bits=None, *, include=KERNELS) -> Transform:
    """Deep Compression's structure: ``chain(masked(M), select(include, codebook(bits)))``."""
    return chain(pruned(sparsity, include=include), select(include, codebook(bits)))


register("identity", lambda: identity(), lambda layers: identity())
register("pruned", pruned, lambda layers: pruned(0.5))
register("quantize", quantize, lambda layers: quantize(KERNELS, 3))
register("pruned_quantized", pruned_quantized, lambda layers: pruned_quantized(0.6, 2))
register("hashing", hashed, lambda layers: hashed(0.25))
register("hashing_uniform", lambda compression, **kw: hashed(compression, budget="uniform", **kw),
         lambda layers: hashed(0.25, budget="uniform"))
register("hashing_pool", lambda compression, **kw: hashed(compression, scope="pool", **kw),
         lambda layers: hashed(0.25, scope="pool"))
register("hashing_pool_scaled", lambda compression, **kw: hashed(compression, scope="pool", layer_scale=True, **kw),
         lambda layers: hashed(0.25, scope="pool", layer_scale=True))
register("hashing_blocks", lambda compression, **kw: hashed(compression, scope="pool", block=8, **kw),
         lambda layers: hashed(0.25, scope="pool", block=8))  # ROAST-style: chunks of 8 in one pool
register("hashing_precomputed", lambda compression, **kw: hashed(compression, precompute=True, **kw),
         lambda layers: hashed(0.5, precompute=True))
register("low_rank", low_rank, lambda layers: low_rank(rank=3))
register("random_edges", random_edges, lambda layers: random_edges(0.5))
register("tying", tied, lambda layers: tied(layers[1:3]))
register("tying_in_order", tied_in_order,  # the example model has two same-shape layers: one copy
         lambda layers: tied_in_order(layers[1:3], 1, "sequence", multiplex="scale_shift"))
register("tying_scale_shift", lambda layers, **kw: tied(layers, multiplex="scale_shift", **kw),
         lambda layers: tied(layers[1:3], multiplex="scale_shift"))
register("shared_basis", shared_basis,  # Dense_1, Dense_2 kernels share one basis; Dense_0's alone
         lambda layers: shared_basis([[f"{layers[1]}/kernel", f"{layers[2]}/kernel"],
                                      [f"{layers[0]}/kernel"]], rank={0: 4, 1: 3}))
register("predicted", denil_first_layer,  # Dense_0 (12 inputs, a 3x4 image) from half its rows
         lambda layers: denil_first_layer((3, 4), 0.5, layer=layers[0]))
# Low-bit weights (straight-through gradients: see Entry.gradient; formulas in tests/test_lowbit.py)
from wsjax.sharing import lowbit as _lowbit  # noqa: E402

register("lowbit_uniform", _lowbit.uniform, lambda layers: _lowbit.uniform(4, rf"^{layers[0]}/kernel", scale="channel"),
         gradient="straight_through")
# (LSQ, uniform(bits, learned=True), is not registered: its learned step per layer makes the free
# parameters exceed the virtual ones by one per layer, which the contract refuses)
register("binary", _lowbit.binary, lambda layers: _lowbit.binary(scale="layer"), gradient="straight_through")
register("ternary", _lowbit.ternary, lambda layers: _lowbit.ternary(), gradient="straight_through")
