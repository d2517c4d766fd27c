"""Fewer bits where a layer tolerates them: a per-layer codebook size chosen on validation.

Deep Compression gives every fc layer 5 bits and every conv layer 8. Layers differ in how
coarsely they can be shared, so :func:`fewest_bits` quantizes one selected layer at a time
(the others left as they are), for each candidate width from the smallest up, and keeps the
first width whose net scores within ``tolerance`` of the unquantized one, before any
retraining of the centroids (the retraining afterwards only recovers more). ``score`` must
read validation data, never test.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016
(Sec. 3 and Fig. 6: accuracy against bits per layer kind).
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import jax

from wsjax import checks
from wsjax.compress.pipeline import Pipeline
from wsjax.compress.stages import Quantize
from wsjax.compress.state import Compressed
from wsjax.sharing.core import flatten_paths
from wsjax.sharing.paths import KERNELS, matcher


def fewest_bits(net, current: Compressed, train, score: Callable, *, candidates: Sequence[int] = (2, 3, 4, 5),
                tolerance: float = 0.002, init: str = "optimal", include=KERNELS, seed: int = 0) -> dict[str, int]:
    """``{'^path$': bits}`` per selected layer of ``current`` (a pipeline's net, pruned or
    not): the fewest of ``candidates`` bits at which quantizing that layer alone keeps
    ``score(params)`` within ``tolerance`` (score units: 0.01 is one accuracy point) of the
    unquantized net's; the largest candidate if none does. The dict is ``Quantize``'s ``bits``."""
    candidates = sorted({checks.positive_int(b, "bits") for b in candidates})
    if not candidates:
        raise ValueError("fewest_bits needs at least one candidate width")
    checks.number(tolerance, "tolerance", lo=0.0)
    base = score(jax.device_get(current.params))
    paths = [p for p in flatten_paths(current.params) if matcher(include)(p)]
    if not paths:
        raise ValueError(f"fewest_bits: include={include!r} selects no leaf")
    out = {}
    for path in paths:
        only = f"^{re.escape(path)}$"
        out[only] = candidates[-1]
        for b in candidates:
            q = Pipeline([Quantize({only: b}, init=init, include=only)]).run(
                net, train, seed=seed, start_from=current, progress=False)
            if base - score(jax.device_get(q.params)) <= tolerance:
                out[only] = b
                break
    return out
