"""Per-layer sparsity from a sensitivity scan, instead of one global or uniform rate.

Han et al. (2015, Sec. 3 and Fig. 5) prune one layer at a time, without retraining, and
read off how much each layer tolerates; the layer-wise thresholds follow from those curves.
Here:

1. :func:`sensitivity_scan` prunes each selected layer *alone* by magnitude to every kept
   fraction of ``fractions`` and scores the net (``score(params) -> accuracy``, on
   validation data, never test);
2. :func:`tolerated_kept` reads each curve: the smallest kept fraction before the score
   first falls more than ``tolerance`` (in the score's units: 0.01 is one accuracy point) below the unpruned net's (scanning from dense down,
   so a noisy recovery further down does not count);
3. :func:`allocate_kept` scales that profile by one factor so that the layers together
   keep a target fraction of the weights, ``kept_l = min(1, s * p_l)`` with ``s`` found by
   bisection: a sensitive layer keeps more, a tolerant one less, in the same proportions
   at every budget.

References: Han, Pool, Tran & Dally, `Learning both Weights and Connections for Efficient
Neural Networks <https://arxiv.org/abs/1506.02626>`_, 2015 (Sec. 3, the sensitivity
analysis); Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

import numpy as np

from wsjax import checks
from wsjax.pruning.magnitude import sparsity_masks
from wsjax.sharing.core import flatten_paths
from wsjax.sharing.mask import apply_masks
from wsjax.sharing.paths import KERNELS, Include, matcher

#: Kept fractions scanned by default: 1 down to 1 % in steps of about 1.25x.
FRACTIONS = tuple(float(f) for f in np.round(np.geomspace(1.0, 0.01, 21), 4))


def sensitivity_scan(params, score: Callable, fractions: Sequence[float] = FRACTIONS, *,
                     include: Include = KERNELS) -> dict[str, list[tuple[float, float]]]:
    """``{path: [(kept fraction, score), ...]}``: each selected layer pruned alone to each
    kept fraction (densest first), the rest of the net untouched, scored by ``score``."""
    fractions = sorted({checks.number(f, "kept fraction", lo=0.0, hi=1.0, lo_open=True) for f in fractions},
                       reverse=True)
    if not fractions:
        raise ValueError("sensitivity_scan needs at least one kept fraction")
    paths = [p for p in flatten_paths(params) if matcher(include)(p)]
    if not paths:
        raise ValueError(f"sensitivity_scan: include={include!r} selects no leaf")
    out = {}
    for path in paths:
        only = f"^{re.escape(path)}$"
        out[path] = [(f, float(score(apply_masks(params, sparsity_masks(params, {only: 1.0 - f}, include=only)))))
                     for f in fractions]
    return out


def tolerated_kept(scan: Mapping[str, Sequence[tuple[float, float]]], baseline: float,
                   tolerance: float) -> dict[str, float]:
    """``{path: kept}``: per layer, the last kept fraction (from dense down) before the
    scan's score first drops more than ``tolerance`` below ``baseline``; 1.0 if even its
    first fraction does."""
    checks.number(tolerance, "tolerance", lo=0.0)
    out = {}
    for path, curve in scan.items():
        kept = 1.0
        for f, s in sorted(curve, reverse=True):
            if baseline - s > tolerance:
                break
            kept = f
        out[path] = kept
    return out


def allocate_kept(profile: Mapping[str, float], sizes: Mapping[str, int], total_kept: float) -> dict[str, float]:
    """Per-layer kept fractions ``min(1, s * profile[path])`` that keep ``total_kept`` of
    the layers' weights together (``sizes``: weights per layer)."""
    total_kept = checks.number(total_kept, "total_kept", lo=0.0, hi=1.0, lo_open=True)
    if set(profile) != set(sizes) or not profile:
        raise ValueError(f"profile and sizes must name the same layers, got {sorted(profile)} and {sorted(sizes)}")
    p = {k: checks.number(v, f"profile[{k!r}]", lo=0.0, hi=1.0, lo_open=True) for k, v in profile.items()}
    n = sum(sizes.values())

    def kept(s):
        return sum(min(1.0, s * p[k]) * sizes[k] for k in p) / n

    lo, hi = 0.0, 1.0 / min(p.values())  # at hi every layer keeps everything: kept(hi) == 1
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if kept(mid) < total_kept else (lo, mid)
    return {k: min(1.0, hi * p[k]) for k in p}
