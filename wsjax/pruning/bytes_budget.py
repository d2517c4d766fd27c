"""A magnitude mask sized by the bytes of its file, not by a count of weights.

A sparse file costs more than its surviving values (relative indices, padding entries, a
header), so "1/8 of the dense bytes" is a smaller kept fraction than 1/8. The size of a
masked net's file depends on the mask, not on the surviving values, so the kept fraction that
fits a byte budget is found by bisection on the encoded size.
"""

from __future__ import annotations

import jax

from wsjax import storage
from wsjax.pruning.magnitude import density, sparsity_masks
from wsjax.sharing.mask import masked
from wsjax.sharing.paths import KERNELS, Include


def kept_fraction_for_bytes(params, target_bytes: float, seed: int = 0, *, current=None,
                            include: Include = KERNELS, steps: int = 14) -> float:
    """The largest kept fraction of the ``include`` leaves (one global magnitude ranking of
    ``params``, cumulative with the ``current`` masks) whose masked net, written with
    :func:`wsjax.storage.encode`, is at most ``target_bytes``. ValueError when not even the
    emptiest mask fits. ``seed`` only initialises the masked transform's state."""
    def size(keep):
        masks = sparsity_masks(params, 1.0 - keep, scope="global", include=include, current=current)
        t = masked(masks)
        return len(storage.encode((t, t.init(jax.random.key(seed), params))))

    lo, hi = 0.0, 1.0 if current is None else float(density(current))
    if size(lo) > target_bytes:
        raise ValueError(f"no kept fraction fits {target_bytes:,.0f} bytes")
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if size(mid) <= target_bytes else (lo, mid)
    return lo
