"""Trained quantization: every weight of a layer is one of ``2**bits`` shared centroids.

Per layer, the surviving (non-pruned) weights are clustered by 1-D k-means
(:func:`wsjax.sharing.kmeans.kmeans_1d`) into ``k = 2**bits`` centroids ``C``; each weight keeps
the index ``a_ij`` of its centroid, and the layer becomes ``W = C[a]``. The centroids are
the free parameters (fine-tuned by gradient descent); assignments are frozen. The
backward pass is the hard-sharing rule: each centroid receives the sum of its members'
gradients, ``dL/dC_k = sum_{a_ij = k} dL/dW_ij`` (a segment sum, written as a custom
VJP rather than left to the scatter that autodiff of the gather would produce).

The codebook holds no mask of its own: pruning is :func:`wsjax.sharing.mask.masked` around
it, ``chain(masked(m), codebook())``, which gives ``W = C[a] * M``. The chain tells the
codebook which weights survive (:func:`wsjax.sharing.core.init_within`), so pruned ones
are left out of k-means and cannot drag a centroid towards zero. :func:`quantize` builds
that chain, with the masks read off the params (exact zeros are pruned weights, which is
what ``masked`` leaves behind) unless they are given.

Bits per layer default to Han et al.'s choice: 8 for convolution kernels (4-D leaves) and
5 for fully connected ones. Centroid initialisation (``'linear'``, ``'density'``,
``'random'``, ``'kmeans++'``) is compared in Han et al. Sec. 3.2 (linear is best, because it
keeps centroids at the few large weights); ``init='optimal'`` replaces Lloyd by the exact
least-squares codebook of each layer (:mod:`wsjax.sharing.kmeans_optimal`).

References: Han, Mao & Dally, `Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.sharing import kmeans as _kmeans
from wsjax.sharing.core import SharedParams, Transform, chain, select
from wsjax.sharing.mask import masked
from wsjax.sharing.paths import KERNELS, han_bits, per_layer

BitsSpec = Union[int, Mapping[str, int], Callable[[str, Any], int], None]
MAX_BITS = 16


class CodebookFrozen(NamedTuple):
    """The untrained part of one layer's codebook state."""

    assignments: jax.Array  # uint8 (bits <= 8) or uint16, the layer's shape


def default_bits(path: str, leaf) -> int:
    """Han et al.'s default, :func:`wsjax.sharing.paths.han_bits`: 8 bits for convolution
    kernels (4-D), 5 for the others."""
    del path
    return han_bits(np.ndim(leaf))


def _check_bits(bits: int, path: str) -> int:
    return checks.integer(bits, "bits", lo=1, hi=MAX_BITS, path=path)


def resolve_bits(bits: BitsSpec, path: str, leaf) -> int:
    """Bits of one layer from an int, a ``{regex: bits}`` dict (first match), a callable
    ``(path, leaf) -> bits`` or None (:func:`wsjax.sharing.paths.per_layer`); None, an
    unmatched layer or a None value gets :func:`default_bits`."""
    spec = (lambda p: bits(p, leaf)) if callable(bits) else bits
    return per_layer(spec, path, name="bits", default=default_bits(path, leaf), check=_check_bits)


# ----------------------------------------------------------------------------- the gather and its VJP


@jax.custom_vjp
def codebook_weights(centroids: jax.Array, assignments: jax.Array) -> jax.Array:
    """``W = centroids[assignments]``.

    Gradient: ``dL/dC_k = sum over {a = k} of dL/dW`` (a segment sum); the integer
    assignments get none.
    """
    return jnp.take(centroids, assignments.astype(jnp.int32))


def _codebook_fwd(centroids, assignments):
    return codebook_weights(centroids, assignments), (centroids, assignments)


def _codebook_bwd(res, g):
    centroids, assignments = res
    d_centroids = jax.ops.segment_sum(
        g.ravel(), assignments.astype(jnp.int32).ravel(), num_segments=centroids.shape[0]
    ).astype(centroids.dtype)
    return d_centroids, None


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
    """k-means one layer: ``SharedParams(centroids (2**bits,), CodebookFrozen(a))``.

    ``mask`` (bool, the leaf's shape) marks the weights that take part in the clustering;
    default: all of them. Pruned weights get assignment 0 (the mask around the codebook
    zeroes them). A layer with no surviving weight gets zero centroids.
    ``size`` is passed to :func:`wsjax.sharing.kmeans.kmeans_1d` (compile sharing).
    """
    bits = _check_bits(bits, "leaf")
    w = jnp.asarray(leaf)
    if not jnp.issubdtype(w.dtype, jnp.floating):
        raise TypeError(f"can only quantize float leaves, got dtype {w.dtype}")
    m = jnp.ones(w.shape, jnp.bool_) if mask is None else jnp.asarray(mask).astype(jnp.bool_)
    if m.shape != w.shape:
        raise ValueError(f"mask shape {m.shape} != leaf shape {w.shape}")
    k = 2**bits
    if not bool(jnp.any(m)):
        return SharedParams(jnp.zeros((k,), w.dtype), CodebookFrozen(jnp.zeros(w.shape, _index_dtype(bits))))
    result = _kmeans.kmeans_1d(w, k, init=init, key=key, weights=m, max_iter=max_iter, size=size)
    assignments = jnp.where(m, result.assignments, 0).astype(_index_dtype(bits))
    return SharedParams(result.centroids.astype(w.dtype), CodebookFrozen(assignments))


def codebook(bits: BitsSpec = None, *, init: str = "linear", max_iter: int = 300) -> Transform:
    """Per-layer trained quantization over a flat ``{path: leaf}`` dict (use inside ``select``).

    Args:
      bits: an int for every layer, a ``{path regex: bits}`` dict (unmatched layers get
        :func:`default_bits`), a callable ``(path, leaf) -> bits``, or None for the default.
      init: centroid initialisation, one of :data:`wsjax.sharing.kmeans.INITS`
        (``'optimal'``: the exact k-means optimum, no Lloyd iterations).
      max_iter: Lloyd iterations at most.

    Every weight is clustered, unless the codebook sits inside a pruning mask
    (``chain(masked(m), codebook())``, as :func:`quantize` builds it): then only the
    surviving weights are. ``theta`` is ``{path: centroids}``; ``frozen`` is
    ``{path: CodebookFrozen}``.
    """
    if init not in _kmeans.INITS:
        raise ValueError(f"init must be one of {_kmeans.INITS}, got {init!r}")
    if bits is not None and not isinstance(bits, Mapping) and not callable(bits):
        checks.integer(bits, "bits", lo=1, hi=MAX_BITS)  # one value: say so now, not at init
    checks.integer(max_iter, "max_iter", lo=0)
    init_method = init

    def init(key, leaves: Mapping[str, Any], masks: Mapping[str, Any] | None = None):
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
        return {p: codebook_weights(c, state.frozen[p].assignments) for p, c in state.theta.items()}

    return Transform(init, apply)


def nonzero_masks(leaves: Mapping[str, Any]) -> dict[str, jax.Array]:
    """``{path: leaf != 0}``: the surviving weights of a pruned net (what ``masked`` leaves)."""
    return {p: jnp.asarray(x) != 0 for p, x in leaves.items()}


def quantize(
    include: str = KERNELS,
    bits: BitsSpec = None,
    *,
    init: str = "linear",
    masks: Mapping[str, Any] | None = None,
    max_iter: int = 300,
) -> Transform:
    """Deep Compression's trained quantization of the leaves matching ``include``:
    ``select(include, chain(masked(M), codebook(bits)))``, so ``W = C[a] * M``.

    ``masks`` (``{path: bool array}`` for the selected leaves) says which weights survive;
    by default the nonzero ones do, so a pruned net keeps exactly its zeros. The other
    leaves stay free.
    """
    keep = nonzero_masks if masks is None else (lambda leaves: {p: masks.get(p) for p in leaves})
    return select(include, chain(masked(keep), codebook(bits, init=init, max_iter=max_iter)))


def codebook_bits(state: SharedParams) -> dict[str, int]:
    """``{path: bits}`` of a :func:`codebook` or :func:`quantize` state (log2 of each length)."""
    theta = state.theta
    if isinstance(theta, Mapping) and set(theta) == {"rest", "inner"}:
        theta = theta["inner"]
    return {p: int(np.log2(c.shape[0])) for p, c in theta.items()}
