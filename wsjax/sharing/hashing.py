"""HashedNets: virtual weights gathered from a few buckets by a hash of their position.

A hashed leaf of shape ``(..., n_out)`` is viewed as a ``rows x cols`` matrix (``cols`` is
the last axis, ``rows`` the product of the others, so dense and conv kernels and biases are
treated alike). Its virtual weights are never stored::

    V[i, j] = xi(layer, i, j) * w[h(layer, i, j)],      h in {0..K-1},  xi in {-1, +1}

where ``w`` holds the ``K`` free bucket values. The gradient of a bucket is the signed sum
of the gradients of the virtual weights hashed into it,
``dL/dw_k = sum_{h(i,j)=k} xi(i,j) dL/dV_ij``.

``h`` and ``xi`` are xxHash32-style mixes of the integer key ``(layer, i, j)`` and a seed,
computed with ``uint32`` arithmetic inside the jitted function. The forward pass recomputes
them and gathers with ``jnp.take``; the custom VJP recomputes them again and segment-sums the
signed cotangent into the buckets, so no index array of the virtual size is kept in the
parameters, the optimizer state or the residuals between forward and backward. With
``precompute=True`` the signed indices are computed once at ``init`` and stored (4 bytes
per virtual weight) in ``SharedParams.frozen``, trading memory for the hash arithmetic.

Two scopes, both with ``compression = free / virtual``:

* ``scope='layer'`` (the paper): every selected leaf has its own ``K_l = round(c * n_l)``
  buckets;
  with ``budget='uniform'`` the same total ``round(c * sum_l n_l)`` is split into equal
  per-leaf bucket counts instead (a leaf never gets more buckets than it has weights; what
  a small leaf cannot use goes to the larger ones);
* ``scope='pool'`` (cross-layer hashing): one vector of ``K = round(c * sum_l n_l)`` buckets
  is shared by all selected leaves; the layer id in the hash key keeps their patterns apart.
  With ``layer_scale=True`` each leaf also learns one scalar ``s_l`` (its sign included):
  ``V_l = s_l * xi * w[h]``, so layers of different scales can share one pool.

Block hashing (ROAST, Desai & Shrivastava 2023): with ``block=Z > 1`` the leaf, flattened
row-major, is cut into chunks of ``Z`` consecutive weights, and a chunk is hashed as a whole:
weight ``o`` of chunk ``c`` is ``xi(layer, c) * w[(h(layer, c) + o) mod K]``, so each chunk
reads a contiguous run of buckets (cache-friendly) and the hash runs once per chunk.

Layer ids are the leaves' positions in the sorted list of selected paths (stable for a
given selection) and travel, with shapes and bucket counts, as :class:`~wsjax.sharing.Static`
metadata.

References: Chen et al, `Compressing Neural Networks with the Hashing Trick
<https://arxiv.org/abs/1504.04788>`_, 2015; Collet, `xxHash
<https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md>`_ (the 32-bit mixing
constants and avalanche); Desai & Shrivastava, `In defense of parameter sharing for model
compression <https://arxiv.org/abs/2310.11611>`_ and Desai et al., ROAST (ICML 2023), block
hashing into one global memory.
"""

from __future__ import annotations

import functools
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks
from wsjax.sharing.core import SharedParams, Static, Transform, select
from wsjax.sharing.paths import KERNELS, KERNELS_AND_BIASES, Include

SCOPES = ("layer", "pool")
BUDGETS = ("proportional", "uniform")
INITS = ("random", "project")

# xxHash32 primes.
_P1 = np.uint32(0x9E3779B1)
_P2 = np.uint32(0x85EBCA77)
_P3 = np.uint32(0xC2B2AE3D)
_P4 = np.uint32(0x27D4EB2F)
_P5 = np.uint32(0x165667B1)
_KEY_BYTES = np.uint32(12)  # the key (layer, i, j) is three 32-bit words
_SIGN_SALT = np.uint32(0x5BD1E995)  # decorrelates the sign hash from the index hash


# ----------------------------------------------------------------------------- the hash


def _rotl(x, r: int):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _absorb(h, word):
    """One xxHash32 short-input round: absorb a 32-bit ``word`` into the state ``h``."""
    return _rotl(h + word * _P3, 17) * _P4


def _avalanche(h):
    h = h ^ (h >> np.uint32(15))
    h = h * _P2
    h = h ^ (h >> np.uint32(13))
    h = h * _P3
    return h ^ (h >> np.uint32(16))


class HashSpec(NamedTuple):
    """Static description of one hashed leaf: where its virtual weights come from."""

    shape: tuple  # the virtual leaf's shape
    num_buckets: int  # K, the length of the bucket vector it gathers from
    layer: int  # layer id, part of the hash key
    seed: int
    block: int = 1  # Z: consecutive weights hashed as one chunk (1: every weight on its own)

    @property
    def rows(self) -> int:
        return int(np.prod(self.shape[:-1])) if len(self.shape) > 1 else 1

    @property
    def cols(self) -> int:
        return int(self.shape[-1]) if self.shape else 1

    @property
    def size(self) -> int:
        return self.rows * self.cols


def _check_spec(spec: HashSpec) -> None:
    if not 1 <= spec.num_buckets < 2**31:
        raise ValueError(f"num_buckets must be in [1, 2**31), got {spec.num_buckets}")
    if not 0 <= spec.layer < 2**32 or not 0 <= spec.seed < 2**32:
        raise ValueError(f"layer and seed must fit in uint32, got {spec.layer}, {spec.seed}")
    if not 1 <= spec.block < 2**31:
        raise ValueError(f"block must be in [1, 2**31), got {spec.block}")


def hash_words(spec: HashSpec, xp=jnp):
    """The two raw ``uint32`` hashes ``(index_hash, sign_hash)`` of every ``(i, j)``, shape ``(rows, cols)``.

    xxHash32's short-input path on the 12-byte key ``(layer, i, j)``: the per-layer and
    per-row rounds are computed on small vectors and only the last round and the avalanche run
    over the broadcast ``rows x cols`` grid.
    """
    _check_spec(spec)
    h = (int(spec.seed) + int(_P5) + int(_KEY_BYTES)) & 0xFFFFFFFF  # wraps like uint32
    h = _absorb(xp.asarray(h, dtype=xp.uint32), xp.asarray(spec.layer, dtype=xp.uint32))
    rows = xp.arange(spec.rows, dtype=xp.uint32)[:, None]
    cols = xp.arange(spec.cols, dtype=xp.uint32)[None, :]
    pre = _absorb(_absorb(h, rows), cols)
    return _avalanche(pre), _avalanche(pre ^ _SIGN_SALT)


def _sign_of(sh, xp):
    return (1.0 - 2.0 * (sh >> np.uint32(31)).astype(xp.float32)).astype(xp.float32)


def _index_and_sign(spec: HashSpec, xp):
    """``(index, sign)`` from the raw hashes, in ``xp`` (``jax.numpy`` or ``numpy``)."""
    k = np.uint32(spec.num_buckets)
    if spec.block == 1:
        ih, sh = hash_words(spec, xp)
        return (ih % k).astype(xp.int32).reshape(spec.shape), _sign_of(sh, xp).reshape(spec.shape)
    z = min(int(spec.block), spec.size)  # a block longer than the leaf is the whole leaf
    chunks = -(-spec.size // z)
    ih, sh = hash_words(spec._replace(shape=(chunks, 1), block=1), xp)  # one key (layer, c, 0) a chunk
    offsets = xp.arange(z, dtype=xp.uint32)[None, :]  # start < 2**31 and o < 2**31: no uint32 wrap
    index = (((ih % k) + offsets) % k).astype(xp.int32).reshape(-1)
    sign = xp.broadcast_to(_sign_of(sh, xp), (chunks, z)).reshape(-1)
    return index[: spec.size].reshape(spec.shape), sign[: spec.size].reshape(spec.shape)


def _pack(index, sign, xp):
    """Index and sign in one int32: ``k`` for ``+w[k]``, ``~k`` (= -k-1) for ``-w[k]``."""
    return xp.where(sign < 0, ~index, index)


def hash_indices_numpy(spec: HashSpec) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hash_indices` computed by NumPy on the host, equal to it bit for bit (the hash
    is uint32 arithmetic, which wraps the same in both). Storage decodes with it, so a file
    with many hashed leaves costs no compilation per leaf."""
    with np.errstate(over="ignore"):
        return _index_and_sign(spec, np)


def hashed_take_numpy(buckets: np.ndarray, spec: HashSpec) -> np.ndarray:
    """:func:`hashed_take` on the host: ``xi * buckets[h]`` (a product with +-1, exact in
    every float format, so the same bits as the jitted gather)."""
    buckets = np.asarray(buckets)
    _check_buckets(buckets, spec)
    index, sign = hash_indices_numpy(spec)
    return sign.astype(buckets.dtype) * buckets[index]


def signed_index_numpy(spec: HashSpec) -> np.ndarray:
    """:func:`signed_index` on the host."""
    return _pack(*hash_indices_numpy(spec), np)


@functools.partial(jax.jit, static_argnums=0)
def hash_indices(spec: HashSpec) -> tuple[jax.Array, jax.Array]:
    """``(index, sign)`` of every virtual weight, each of ``spec.shape``.

    ``index`` is int32 in ``[0, num_buckets)``; ``sign`` is float32 in ``{-1, +1}``. Pure and
    deterministic: the same spec gives the same arrays on every backend. Jitted with the
    spec static (one compiled program per spec when called eagerly; inlined under ``jit``).
    """
    return _index_and_sign(spec, jnp)


@functools.partial(jax.jit, static_argnums=0)
def signed_index(spec: HashSpec) -> jax.Array:
    """Index and sign packed in one int32 array: ``k`` for ``+w[k]``, ``~k`` (= -k-1) for ``-w[k]``."""
    return _pack(*hash_indices(spec), jnp)


def _unpack(packed):
    negative = packed < 0
    index = jnp.where(negative, ~packed, packed)
    return index, negative


# ----------------------------------------------------------------------------- gathers


def _gather(buckets, index, sign):
    values = jnp.take(buckets, index, mode="clip")  # indices are in range by construction
    return sign.astype(buckets.dtype) * values


def _scatter(cotangent, index, sign, num_buckets):
    signed = (sign.astype(cotangent.dtype) * cotangent).reshape(-1)
    return jax.ops.segment_sum(
        signed, index.reshape(-1), num_segments=num_buckets, mode="promise_in_bounds"
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def hashed_take(buckets: jax.Array, spec: HashSpec) -> jax.Array:
    """The virtual leaf ``V = xi * buckets[h]`` of ``spec.shape``, hashing on the fly.

    ``buckets`` is a 1-D vector of length ``spec.num_buckets``. Neither the forward nor the
    backward pass keeps an index array: both recompute ``h`` and ``xi`` from ``spec``.
    """
    index, sign = hash_indices(spec)
    return _gather(buckets, index, sign)


def _hashed_take_fwd(buckets, spec):
    # The only residual is the (static) spec: nothing of the virtual size is saved.
    return hashed_take(buckets, spec), None


def _hashed_take_bwd(spec, residual, cotangent):
    del residual
    index, sign = hash_indices(spec)
    return (_scatter(cotangent, index, sign, spec.num_buckets),)


hashed_take.defvjp(_hashed_take_fwd, _hashed_take_bwd)


def precomputed_take(buckets: jax.Array, packed_index: jax.Array) -> jax.Array:
    """``V = xi * buckets[h]`` from a stored :func:`signed_index` array (autodiff scatters back)."""
    index, negative = _unpack(packed_index)
    return _gather(buckets, index, jnp.where(negative, -1.0, 1.0))


def _check_buckets(buckets, spec: HashSpec):
    if buckets.ndim != 1 or buckets.shape[0] != spec.num_buckets:
        raise ValueError(
            f"bucket vector has shape {buckets.shape}, expected ({spec.num_buckets},)"
        )


# ----------------------------------------------------------------------------- transforms


def num_buckets(compression: float, size: int) -> int:
    """``K = max(1, round(compression * size))``."""
    return max(1, int(round(compression * size)))


def uniform_budgets(sizes: Mapping[str, int], total: int) -> dict[str, int]:
    """``total`` buckets split equally over leaves of ``sizes`` virtual weights, each at least
    1 and at most its size (water-filling from the smallest leaf: the share a leaf cannot use
    goes to the larger ones). The counts sum to ``total`` when ``len(sizes) <= total <=
    sum(sizes)``."""
    order = sorted(sizes, key=lambda p: (sizes[p], p))
    out, remaining = {}, int(total)
    for i, p in enumerate(order):
        out[p] = max(1, min(int(sizes[p]), remaining // (len(order) - i)))
        remaining -= out[p]
    return out


def pool_of(state: SharedParams):
    """``(buckets, scales)`` of a :func:`hashing` state of scope 'pool' (``scales``, the
    ``{path: scalar}`` of ``layer_scale``, or None), or None for scope 'layer': the one place
    that reads the layout of ``theta``."""
    if "layer_scale" in state.frozen:
        return state.theta["pool"], state.theta["scale"]
    return None if isinstance(state.theta, Mapping) else (state.theta, None)


def _check_config(compression, scope, init, seed):
    """``(compression, seed)`` as a Python float and int, or a clear error."""
    compression = checks.number(compression, "compression (free / virtual)", lo=0.0, hi=1.0, lo_open=True)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return compression, checks.seed(seed, "seed", hi=2**32)


def _check_leaves(leaves: Mapping[str, jax.Array]):
    for p, x in leaves.items():
        if not hasattr(x, "dtype") or not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"hashing needs float leaves; {p!r} is {getattr(x, 'dtype', type(x))}")


def _layer_ids(leaves) -> dict[str, int]:
    return {p: i for i, p in enumerate(sorted(leaves))}


def _random_buckets(key, k, scale, dtype):
    return (scale * jax.random.normal(key, (k,), jnp.float32)).astype(dtype)


def _projected_buckets(leaves: dict, specs: dict, k: int, dtype):
    """Least-squares buckets: the mean of ``xi * V`` over the weights hashed into each bucket."""
    sums = jnp.zeros((k,), jnp.float32)
    counts = jnp.zeros((k,), jnp.float32)
    for p, x in leaves.items():
        index, sign = hash_indices(specs[p])
        sums = sums + _scatter(x.astype(jnp.float32), index, sign, k)
        counts = counts + jax.ops.segment_sum(jnp.ones(index.size), index.reshape(-1), k)
    return (sums / jnp.maximum(counts, 1.0)).astype(dtype)


def _rms(leaves) -> jax.Array:
    total = sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves)
    return jnp.sqrt(total / max(sum(int(x.size) for x in leaves), 1))


def _std(x) -> jax.Array:
    x = x.astype(jnp.float32)
    return jnp.std(x) if x.size > 1 else jnp.abs(x).sum()


def hashing(
    compression: float,
    *,
    scope: str = "layer",
    seed: int = 0,
    precompute: bool = False,
    init: str = "random",
    budget: str = "proportional",
    layer_scale: bool = False,
    block: int = 1,
    init_scale: float = 1.0,
) -> Transform:
    """HashedNets over a ``{path: leaf}`` dict (use inside :func:`~wsjax.sharing.select`).

    Args:
      compression: ``free / virtual`` in ``(0, 1]``; e.g. ``1/8`` keeps 8 virtual weights per
        bucket.
      scope: ``'layer'`` (one bucket vector per leaf, the paper) or ``'pool'`` (one bucket
        vector shared by all the leaves; cross-layer hashing).
      budget: scope 'layer' only: ``'proportional'`` (``K_l = round(c * n_l)``, the paper)
        or ``'uniform'`` (the same total split equally: :func:`uniform_budgets`).
      layer_scale: scope 'pool' only: a learned scalar per leaf multiplies its virtual
        weights (initialised, with ``init='random'``, to the leaf's standard deviation over
        the pool's root mean square, so each layer starts at its own scale; to 1 with
        ``'project'``). ``theta`` is then ``{'pool': buckets, 'scale': {path: scalar}}``.
      block: hash chunks of this many consecutive weights as one (ROAST; see the module
        docstring); 1 hashes every weight on its own (the paper).
      seed: the hash seed (uint32).
      precompute: store the signed indices in ``frozen`` (int32, one per virtual weight)
        instead of recomputing the hash in every forward and backward pass.
      init: ``'random'``: buckets ~ N(0, s^2) with ``s`` the standard deviation of the given
        leaf (scope 'layer') or the root mean square of all the given leaves (scope 'pool'),
        so a freshly initialised model's scale is kept; ``'project'``: each bucket is the
        mean of ``xi * V`` over its weights (the least-squares fit of given, e.g. trained,
        weights).
      init_scale: ``init='random'`` only: a factor on the buckets' standard deviation (the
        initialisation scale STABLE-RPS finds shared pools sensitive to; 1 keeps the dense
        scale).

    ``theta`` is ``{path: buckets}`` for scope 'layer' and the bucket vector itself for scope
    'pool'.
    """
    compression, seed = _check_config(compression, scope, init, seed)
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    if budget != "proportional" and scope != "layer":
        raise ValueError(f"budget={budget!r} splits per-layer buckets; scope {scope!r} has one pool")
    if not isinstance(layer_scale, (bool, np.bool_)):
        raise TypeError(f"layer_scale must be True or False, got {type(layer_scale).__name__}")
    if layer_scale and scope != "pool":
        raise ValueError("layer_scale scales the leaves of one pool; use it with scope='pool'")
    block = checks.positive_int(block, "block")
    init_scale = checks.number(init_scale, "init_scale", lo=0.0, lo_open=True)
    if init_scale != 1.0 and init != "random":
        raise ValueError("init_scale scales random buckets; init='project' fits them to the weights")

    def make_specs(leaves):
        ids = _layer_ids(leaves)
        if budget == "uniform":
            sizes = {p: int(x.size) for p, x in leaves.items()}
            ks = uniform_budgets(sizes, num_buckets(compression, sum(sizes.values())))
            return {p: HashSpec(tuple(x.shape), ks[p], ids[p], int(seed), block) for p, x in leaves.items()}
        if scope == "layer":
            return {
                p: HashSpec(tuple(x.shape), num_buckets(compression, x.size), ids[p], int(seed), block)
                for p, x in leaves.items()
            }
        k = num_buckets(compression, sum(int(x.size) for x in leaves.values()))
        return {p: HashSpec(tuple(x.shape), k, ids[p], int(seed), block) for p, x in leaves.items()}

    def init_fn(key, leaves):
        leaves = dict(leaves)
        if not leaves:
            raise ValueError("hashing() got no leaves to hash")
        _check_leaves(leaves)
        specs = make_specs(leaves)
        if scope == "layer":
            keys = dict(zip(sorted(leaves), jax.random.split(key, len(leaves))))
            theta = {}
            for p, x in leaves.items():
                k = specs[p].num_buckets
                if init == "random":
                    theta[p] = _random_buckets(keys[p], k, init_scale * _std(x), x.dtype)
                else:
                    theta[p] = _projected_buckets({p: x}, specs, k, x.dtype)
        else:
            k = next(iter(specs.values())).num_buckets
            dtype = jnp.result_type(*leaves.values())
            rms = _rms(leaves.values())
            if init == "random":
                theta = _random_buckets(key, k, init_scale * rms, dtype)
            else:
                theta = _projected_buckets(leaves, specs, k, dtype)
            if layer_scale:
                ratio = lambda x: _std(x) / jnp.maximum(rms, 1e-30) if init == "random" else 1.0
                theta = {"pool": theta, "scale": {p: jnp.asarray(ratio(x), dtype) for p, x in leaves.items()}}
        frozen = {"specs": Static(tuple(sorted(specs.items())))}
        if layer_scale:
            frozen["layer_scale"] = Static(True)
        if precompute:
            frozen["signed_index"] = {p: signed_index(s) for p, s in specs.items()}
        return SharedParams(theta, frozen)

    def apply_fn(state):
        specs = dict(state.frozen["specs"].value)
        stored = state.frozen.get("signed_index")
        pool, scales = pool_of(state) or (None, None)
        out = {}
        for p, spec in specs.items():
            buckets = state.theta[p] if pool is None else pool
            _check_buckets(buckets, spec)
            if stored is None:
                out[p] = hashed_take(buckets, spec)
            else:
                out[p] = precomputed_take(buckets, stored[p])
            if scales is not None:
                out[p] = scales[p] * out[p]
        return out

    return Transform(init_fn, apply_fn, codec="hashing")


def hashed(
    compression: float,
    *,
    scope: str = "layer",
    seed: int = 0,
    precompute: bool = False,
    biases: bool = False,
    include: Include | None = None,
    init: str = "random",
    budget: str = "proportional",
    layer_scale: bool = False,
    block: int = 1,
    init_scale: float = 1.0,
) -> Transform:
    """HashedNets on a model's params pytree: hash the kernels (and biases if ``biases``).

    ``include`` (a regex searched in '/'-joined paths, or a predicate on them, see
    :func:`wsjax.sharing.paths.matcher`) overrides the default selection
    :data:`~wsjax.sharing.paths.KERNELS` (:data:`~wsjax.sharing.paths.KERNELS_AND_BIASES`
    with ``biases=True``); unselected leaves stay free. The other arguments are those of
    :func:`hashing`.
    """
    if include is None:
        include = KERNELS_AND_BIASES if biases else KERNELS
    return select(
        include,
        hashing(compression, scope=scope, seed=seed, precompute=precompute, init=init, budget=budget,
                layer_scale=layer_scale, block=block, init_scale=init_scale),
    )
