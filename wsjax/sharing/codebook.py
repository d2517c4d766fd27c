"""Trained quantization: every weight of a layer is one of ``2**bits`` shared centroids.

Per layer, the surviving (non-pruned) weights are clustered by 1-D k-means
(:func:`wsjax.sharing.kmeans.kmeans_1d`) into ``k = 2**bits`` centroids ``C``; each weight keeps
the index ``a_ij`` of its centroid, and the layer becomes ``W = C[a] * M``. The centroids are
the free parameters (fine-tuned by gradient descent); assignments and mask are frozen. The
backward pass is the hard-sharing rule: each centroid receives the sum of its members'
gradients, ``dL/dC_k = sum_{a_ij = k} M_ij dL/dW_ij`` (a segment sum, written as a custom
VJP rather than left to the scatter that autodiff of the gather would produce).

The codebook carries the pruning mask instead of being chained after
:func:`wsjax.sharing.mask.masked`: the clustering must see *which* weights survive (pruned
ones are left out of k-means, so they cannot drag a centroid towards zero), and a chained
inner transform only sees the outer one's ``theta``. By default the mask is read off the
params being quantized (exact zeros are pruned weights, which is what ``masked`` leaves
behind); pass ``masks`` to state it explicitly.

Bits per layer default to Han et al.'s choice: 8 for convolution kernels (4-D leaves) and
5 for fully connected ones. Centroid initialisation (``'linear'``, ``'density'``,
``'random'``, ``'kmeans++'``) is compared in Han et al. Sec. 3.2 (linear is best, because it
keeps centroids at the few large weights).

References: Han, Mao & Dally, `Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from wsjax.sharing import kmeans as _kmeans
from wsjax.sharing.core import SharedParams, Transform, select

BitsSpec = Union[int, Mapping[str, int], Callable[[str, Any], int], None]
MAX_BITS = 16


class CodebookFrozen(NamedTuple):
    """The untrained part of one layer's codebook state."""

    assignments: jax.Array  # uint8 (bits <= 8) or uint16, the layer's shape
    mask: jax.Array  # bool, the layer's shape


def default_bits(path: str, leaf) -> int:
    """Han et al.'s default: 8 bits for convolution kernels (4-D), 5 for the others."""
    del path
    return 8 if np.ndim(leaf) == 4 else 5


def _check_bits(bits: int, path: str) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits for {path!r} must be an int, got {bits!r}")
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits for {path!r} must be in 1..{MAX_BITS}, got {bits}")
    return int(bits)


def resolve_bits(bits: BitsSpec, path: str, leaf) -> int:
    """Bits of one layer from an int, a ``{regex: bits}`` dict (first match), a callable or None."""
    if bits is None:
        return _check_bits(default_bits(path, leaf), path)
    if callable(bits):
        return _check_bits(bits(path, leaf), path)
    if isinstance(bits, Mapping):
        for pattern, b in bits.items():
            if re.search(pattern, path):
                return _check_bits(b, path)
        return _check_bits(default_bits(path, leaf), path)
    return _check_bits(bits, path)


# ----------------------------------------------------------------------------- the gather and its VJP


@jax.custom_vjp
def codebook_weights(centroids: jax.Array, assignments: jax.Array, mask: jax.Array) -> jax.Array:
    """``W = centroids[assignments] * mask`` (``mask`` bool or float, broadcast to ``W``).

    Gradients: ``dL/dC_k = sum over {a = k} of mask * dL/dW`` (segment sum),
    ``dL/dmask = C[a] * dL/dW``; the integer assignments get none.
    """
    gathered = jnp.take(centroids, assignments.astype(jnp.int32))
    if mask.dtype == jnp.bool_:
        # where, not multiply: a negative centroid times 0 is -0.0, which storage (bit
        # patterns) would count as a nonzero weight.
        return jnp.where(mask, gathered, jnp.zeros((), gathered.dtype))
    product = gathered * mask.astype(centroids.dtype)
    return jnp.where(mask == 0, jnp.zeros((), gathered.dtype), product)


def _codebook_fwd(centroids, assignments, mask):
    return codebook_weights(centroids, assignments, mask), (centroids, assignments, mask)


def _codebook_bwd(res, g):
    centroids, assignments, mask = res
    idx = assignments.astype(jnp.int32)
    masked_g = g * mask.astype(g.dtype)
    d_centroids = jax.ops.segment_sum(
        masked_g.ravel(), idx.ravel(), num_segments=centroids.shape[0]
    ).astype(centroids.dtype)
    if jnp.issubdtype(mask.dtype, jnp.floating):
        d_mask = (g * jnp.take(centroids, idx)).astype(mask.dtype)
    else:
        d_mask = None
    return d_centroids, None, d_mask


codebook_weights.defvjp(_codebook_fwd, _codebook_bwd)


# ----------------------------------------------------------------------------- the transform


def _index_dtype(bits: int):
    return jnp.uint8 if bits <= 8 else jnp.uint16


def quantize_leaf(
    key: jax.Array,
    leaf: jax.Array,
    bits: int,
    *,
    init: str = "linear",
    mask=None,
    max_iter: int = 300,
    size: int | None = None,
) -> SharedParams:
    """k-means one layer: ``SharedParams(centroids (2**bits,), CodebookFrozen(a, mask))``.

    ``mask`` defaults to ``leaf != 0``. A layer with no surviving weight gets zero centroids.
    ``size`` is passed to :func:`wsjax.sharing.kmeans.kmeans_1d` (compile sharing).
    """
    bits = _check_bits(bits, "leaf")
    w = jnp.asarray(leaf)
    if not jnp.issubdtype(w.dtype, jnp.floating):
        raise TypeError(f"can only quantize float leaves, got dtype {w.dtype}")
    m = (w != 0) if mask is None else jnp.asarray(mask).astype(jnp.bool_)
    if m.shape != w.shape:
        raise ValueError(f"mask shape {m.shape} != leaf shape {w.shape}")
    k = 2**bits
    if not bool(jnp.any(m)):
        centroids = jnp.zeros((k,), w.dtype)
        assignments = jnp.zeros(w.shape, _index_dtype(bits))
        return SharedParams(centroids, CodebookFrozen(assignments, m))
    result = _kmeans.kmeans_1d(w, k, init=init, key=key, weights=m, max_iter=max_iter, size=size)
    assignments = result.assignments.astype(_index_dtype(bits))
    return SharedParams(result.centroids.astype(w.dtype), CodebookFrozen(assignments, m))


def codebook(
    bits: BitsSpec = None,
    *,
    init: str = "linear",
    masks: Mapping[str, Any] | None = None,
    max_iter: int = 300,
) -> Transform:
    """Per-layer trained quantization over a flat ``{path: leaf}`` dict (use inside ``select``).

    Args:
      bits: an int for every layer, a ``{path regex: bits}`` dict (unmatched layers get
        :func:`default_bits`), a callable ``(path, leaf) -> bits``, or None for the default.
      init: centroid initialisation, one of :data:`wsjax.sharing.kmeans.INITS`.
      masks: optional ``{path: bool array}``; by default the nonzero entries survive.
      max_iter: Lloyd iterations at most.

    ``theta`` is ``{path: centroids}``; ``frozen`` is ``{path: CodebookFrozen}``.
    """
    if init not in _kmeans.INITS:
        raise ValueError(f"init must be one of {_kmeans.INITS}, got {init!r}")
    init_method = init

    def init(key, leaves: Mapping[str, Any]):
        # One padded length for every layer: layers with equal bits share one compilation.
        size = max((int(np.size(x)) for x in leaves.values()), default=1)
        keys = jax.random.split(key, max(len(leaves), 1))
        states = {}
        for k, (path, leaf) in zip(keys, leaves.items()):
            mask = None if masks is None else masks.get(path)
            b = resolve_bits(bits, path, leaf)
            states[path] = quantize_leaf(k, leaf, b, init=init_method, mask=mask, max_iter=max_iter, size=size)
        return SharedParams(
            {p: s.theta for p, s in states.items()},
            {p: s.frozen for p, s in states.items()},
        )

    def apply(state):
        return {
            p: codebook_weights(c, state.frozen[p].assignments, state.frozen[p].mask)
            for p, c in state.theta.items()
        }

    return Transform(init, apply)


def quantize(
    pattern: str = r"kernel$",
    bits: BitsSpec = None,
    *,
    init: str = "linear",
    masks: Mapping[str, Any] | None = None,
    max_iter: int = 300,
) -> Transform:
    """:func:`codebook` on the leaves whose path matches ``pattern``; the rest stay free."""
    return select(pattern, codebook(bits, init=init, masks=masks, max_iter=max_iter))


def codebook_bits(state: SharedParams) -> dict[str, int]:
    """``{path: bits}`` of a :func:`codebook` or :func:`quantize` state (log2 of each length)."""
    theta = state.theta
    if isinstance(theta, Mapping) and set(theta) == {"rest", "inner"}:
        theta = theta["inner"]
    return {p: int(np.log2(c.shape[0])) for p, c in theta.items()}
