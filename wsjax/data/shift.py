"""Nowlan & Hinton's (1992) shift-detection problem, rebuilt from the paper's description.

The input is a random ``bits``-bit pattern followed by a copy of it rotated one place to the
left or to the right (with wrap-around); the target is the direction (1: right, 0: left).
The patterns whose two rotations coincide (period 1 or 2: all zeros, all ones, 0101...,
1010...) have no defined direction and are left out, so 10 bits give 2 * (1024 - 4) = 2040
cases. A net is trained on a small random draw of them and tested on all the others.

Reference: Nowlan & Hinton, `Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, Neural Computation 1992.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def shift_cases(bits: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Every unambiguous case: inputs ``(n, 2 * bits)`` float32 in {0, 1} (the pattern, then
    its rotated copy) and labels ``(n,)`` float32 (1 = rotated right, 0 = rotated left).

    The first half of the cases are the right rotations, the second half the left ones, of
    the same patterns in the same (ascending binary) order.
    """
    if bits < 3:
        raise ValueError(f"shift detection needs at least 3 bits, got {bits}")
    patterns = ((np.arange(2**bits)[:, None] >> np.arange(bits)) & 1).astype(np.float32)
    left, right = np.roll(patterns, -1, axis=1), np.roll(patterns, 1, axis=1)
    keep = ~np.all(left == right, axis=1)  # period-2 patterns: direction undefined
    p, l, r = patterns[keep], left[keep], right[keep]
    x = np.concatenate([np.concatenate([p, r], 1), np.concatenate([p, l], 1)])
    y = np.concatenate([np.ones(len(p)), np.zeros(len(p))]).astype(np.float32)
    return x, y


def shift_draws(seeds: Sequence[int], n_train: int, n_val: int, bits: int = 10):
    """Per seed a random draw of the cases of :func:`shift_cases`.

    Returns ``(x, y, train, val, test_mask)``: all cases, then per seed (stacked on axis 0)
    the indices of its ``n_train`` training cases, of ``n_val`` validation cases drawn from
    the rest, and a boolean mask of every case not in its training set (the test set). Seed
    ``s`` always draws the same cases (``numpy.random.default_rng(s)``).
    """
    x, y = shift_cases(bits)
    if n_train < 1 or n_val < 0 or n_train + n_val > len(x):
        raise ValueError(f"need 1 <= n_train and n_train + n_val <= {len(x)}, got {n_train} and {n_val}")
    train, val, test_mask = [], [], []
    for s in seeds:
        order = np.random.default_rng(s).permutation(len(x))
        train.append(order[:n_train])
        val.append(order[n_train:n_train + n_val])
        mask = np.ones(len(x), bool)
        mask[order[:n_train]] = False
        test_mask.append(mask)
    if not train:
        empty = np.zeros((0, n_train), np.int64)
        return x, y, empty, np.zeros((0, n_val), np.int64), np.zeros((0, len(x)), bool)
    return x, y, np.stack(train), np.stack(val), np.stack(test_mask)
