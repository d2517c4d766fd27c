"""How many virtual weights share each hash bucket, by layer: HashedNets' collision load.

Per-layer hashing (Chen et al. 2015) gives every layer its own buckets, so a layer of ``n``
virtual weights hashed into ``K`` buckets loads each with about ``n / K`` weights, all its own.
One global pool (cross-layer hashing) serves every layer from the same buckets: a bucket's
load is the sum over layers, and the fraction of a layer's buckets that other layers also
read says how much it actually shares. The numbers come from the hash itself
(:func:`wsjax.sharing.hashing.hash_indices_numpy`, on the host), not from samples.
"""

from __future__ import annotations

import numpy as np

from wsjax.sharing.core import SharedParams
from wsjax.sharing.hashing import HashSpec, hash_indices_numpy, pool_of


def _hashing_parts(state: SharedParams) -> tuple[dict[str, HashSpec], bool]:
    """``(specs, pooled)`` of a state of :func:`~wsjax.sharing.hashing` or of
    :func:`~wsjax.sharing.hashed` (a select around it)."""
    frozen, theta = state.frozen, state.theta
    if not (isinstance(frozen, dict) and "specs" in frozen):
        raise ValueError("collision_load needs the state of a hashing transform (hashed or hashing)")
    if isinstance(theta, dict) and set(theta) == {"rest", "inner"}:
        theta = theta["inner"]
    return dict(frozen["specs"].value), pool_of(SharedParams(theta, frozen)) is not None


def collision_load(state: SharedParams) -> dict[str, dict]:
    """Per hashed leaf of a hashing ``state``: ``virtual`` (its weights), ``buckets`` (the
    bucket vector's length), ``used`` (the distinct buckets it reads), ``load`` (the mean,
    over the buckets it reads, of the virtual weights of all leaves served by that bucket)
    and ``shared`` (the fraction of the buckets it reads that another leaf reads too; 0
    under per-layer hashing)."""
    specs, pooled = _hashing_parts(state)
    counts = {p: np.bincount(hash_indices_numpy(s)[0].reshape(-1), minlength=s.num_buckets)
              for p, s in specs.items()}
    total = sum(counts.values()) if pooled else None
    out = {}
    for p, spec in specs.items():
        mine = counts[p]
        everyone = mine if total is None else total
        reads = mine > 0
        out[p] = {"virtual": int(spec.size), "buckets": int(spec.num_buckets), "used": int(reads.sum()),
                  "load": float(everyone[reads].mean()),
                  "shared": float(((everyone - mine)[reads] > 0).mean())}
    return out
