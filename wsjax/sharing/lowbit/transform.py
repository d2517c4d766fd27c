"""Low-bit weights as weight-space transformations ``W = T(theta)``.

The free parameters are the real-valued latent weights (and, for LSQ, the steps); the model
sees their binary, ternary or k-bit quantization (:mod:`wsjax.sharing.lowbit.quantizers`
has the formulas and the straight-through backward passes). Per selected leaf:

* ``theta[path]``: the latent leaf, or ``{'latent': leaf, 'step': s}`` for ``'lsq'``;
* ``frozen[path]``: a :class:`LowBitFrozen` with the :class:`~wsjax.sharing.lowbit.LowBit`
  spec, a given scale (the fixed step of ``'uniform'``; ``None`` where the scale is computed
  from ``theta`` or is 1) and, for stochastic binary leaves, the sampling key.

``init`` keeps the given weights as the latents (train from scratch or from a trained
net); a fixed k-bit step is taken from them. The codec ``'lowbit'`` stores the codes at
their bit width plus the scales (:mod:`wsjax.storage.codecs.lowbit`).

Stochastic binary weights: ``apply`` draws with the key in the state, so it stays a pure
function of the state; :func:`resample` puts a fresh key in (once per training step), and
:func:`stochastic_apply` is ``transform.apply(resample(state, key))``. A stored model is
always the deterministic ``alpha * sgn(theta)``.

References: Courbariaux, Bengio & David, `BinaryConnect <https://arxiv.org/abs/1511.00363>`_,
2015; Rastegari et al, `XNOR-Net <https://arxiv.org/abs/1603.05279>`_, 2016; Li, Zhang & Liu,
`Ternary Weight Networks <https://arxiv.org/abs/1605.04711>`_, 2016; Esser et al, `Learned
Step Size Quantization <https://arxiv.org/abs/1902.08153>`_, 2019.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wsjax import checks
from wsjax.sharing.core import SharedParams, Static, Transform, per_leaf, select
from wsjax.sharing.lowbit.quantizers import (TWN_THRESHOLD, LowBit, check_leaf, initial_step,
                                             make_spec, weights)
from wsjax.sharing.paths import KERNELS, Include, PerLayer, per_layer


class LowBitFrozen(NamedTuple):
    """The untrained part of one low-bit leaf's state."""

    spec: Static  # Static(LowBit)
    scale: Any = None  # a given scale (uniform's fixed step, a decoded state's scale) or None
    key: Any = None  # a stochastic binary leaf's sampling key, else None


def _spec_of(spec: PerLayer, path: str) -> LowBit:
    def check(value, path):
        if not isinstance(value, LowBit):
            raise checks.ArgumentTypeError(f"low-bit spec for {path!r} must be a LowBit (see "
                                           f"make_spec), got {value!r}")
        return make_spec(value.kind, scale=value.scale, bits=value.bits,
                         threshold=value.threshold, stochastic=value.stochastic)

    found = per_layer(spec, path, name="spec", check=check)
    if found is None:
        raise ValueError(f"no low-bit spec given for {path!r}")
    return found


def leaf_weights(theta: Any, frozen: LowBitFrozen) -> jax.Array:
    """One leaf's ``W`` from its theta and :class:`LowBitFrozen`."""
    return weights(frozen.spec.value, theta, frozen.scale, frozen.key)


def lowbit_leaves(spec: PerLayer) -> Transform:
    """Quantize every leaf of a flat ``{path: leaf}`` dict (use inside ``select``).

    ``spec``: one :class:`~wsjax.sharing.lowbit.LowBit` (from
    :func:`~wsjax.sharing.lowbit.make_spec`) for all leaves, a ``{regex: LowBit}`` mapping
    (first match wins; every leaf must match) or a callable ``path -> LowBit``, so that
    layers may differ (an 8-bit first layer, binary elsewhere). Float leaves only.
    """
    if isinstance(spec, LowBit):
        spec = _spec_of(spec, "")  # check it now, not at init

    def leaf_init(key, leaf, path):
        s = _spec_of(spec, path)
        check_leaf(s, leaf, path)
        theta = jnp.asarray(leaf)
        scale = None
        if s.kind == "uniform":
            scale = initial_step(theta, s)
        elif s.kind == "lsq":
            theta = {"latent": theta, "step": initial_step(theta, s)}
        return SharedParams(theta, LowBitFrozen(Static(s), scale, key if s.stochastic else None))

    def leaf_apply(state, path):
        del path
        return leaf_weights(state.theta, state.frozen)

    return per_leaf(leaf_init, leaf_apply)._replace(codec="lowbit")


def lowbit_weights(spec: PerLayer, include: Include = KERNELS) -> Transform:
    """Low-bit weights for the leaves matching ``include`` (default: kernels); the rest stay
    float. See :func:`lowbit_leaves` for ``spec``."""
    return select(include, lowbit_leaves(spec))


def binary(include: Include = KERNELS, *, scale: str = "none", stochastic: bool = False
           ) -> Transform:
    """BinaryConnect: ``W = alpha * sgn(theta)`` with ``alpha = 1`` (``scale='none'``),
    ``mean|theta|`` per layer (``'layer'``, XNOR-Net) or per output channel (``'channel'``).

    ``stochastic=True`` draws each weight, +1 with probability ``clip((theta + 1) / 2, 0, 1)``
    (see :func:`resample`). Clip the latents to ``[-1, 1]`` after each update with
    :func:`~wsjax.sharing.lowbit.clip_latent`.
    """
    return lowbit_weights(make_spec("binary", scale=scale, stochastic=stochastic), include)


def ternary(include: Include = KERNELS, *, scale: str = "layer",
            threshold: float = TWN_THRESHOLD) -> Transform:
    """TWN: ``W = alpha * sgn(theta) * 1[|theta| > threshold * mean|theta|]`` with ``alpha``
    the mean of the kept ``|theta|``, per layer (``'layer'``) or output channel."""
    return lowbit_weights(make_spec("ternary", scale=scale, threshold=threshold), include)


def uniform(bits: int, include: Include = KERNELS, *, scale: str = "layer",
            learned: bool = False) -> Transform:
    """Symmetric ``bits``-bit quantization-aware training (``bits`` in 2..8): ``W = s * q``,
    ``q = clip(round(theta * (1 / s)), -2**(bits-1), 2**(bits-1) - 1)``, one step per layer or
    output channel; fixed at ``max|theta| / (2**(bits-1) - 1)`` or, with ``learned=True``,
    trained as in LSQ."""
    if not isinstance(learned, bool):
        raise checks.ArgumentTypeError(f"learned must be True or False, got {learned!r}")
    spec = make_spec("lsq" if learned else "uniform", scale=scale, bits=bits)
    return lowbit_weights(spec, include)


# ----------------------------------------------------------------------------- stochastic


def _is_frozen(x) -> bool:
    return isinstance(x, LowBitFrozen)


def resample(state: SharedParams, key: jax.Array) -> SharedParams:
    """``state`` with a fresh sampling key for each stochastic binary leaf (folded from
    ``key``); jittable. ValueError if the state has no stochastic leaf."""
    nodes, treedef = jax.tree.flatten(state.frozen, is_leaf=_is_frozen)
    out, found = [], False
    for i, node in enumerate(nodes):
        if _is_frozen(node) and node.key is not None:
            node = node._replace(key=jax.random.fold_in(key, i))
            found = True
        out.append(node)
    if not found:
        raise ValueError("resample: the state has no stochastic binary leaf")
    return SharedParams(state.theta, jax.tree.unflatten(treedef, out))


def stochastic_apply(transform: Transform, state: SharedParams, key: jax.Array):
    """The params with stochastic binary weights drawn with ``key``:
    ``transform.apply(resample(state, key))``."""
    return transform.apply(resample(state, key))

