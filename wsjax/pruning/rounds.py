"""Iterative prune -> retrain rounds (Han et al.'s "iterative pruning").

Each round raises every layer's sparsity along a schedule (:mod:`wsjax.pruning.schedules`),
prunes the smallest surviving weights to reach it, and hands the pruned params and masks to
a caller-supplied ``retrain`` (which typically trains ``masked(masks)``'s theta with
:func:`wsjax.train.fit`). Masks only ever shrink across rounds.

References: Han, Pool, Tran & Dally, `Learning both Weights and Connections for Efficient
Neural Networks <https://arxiv.org/abs/1506.02626>`_, 2015.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from wsjax import checks
from wsjax.pruning.magnitude import density, sparsity_masks
from wsjax.pruning.schedules import Schedule, iterative, sparsity_at
from wsjax.sharing.mask import apply_masks
from wsjax.sharing.paths import KERNELS, Include, PerLayer


class PruneRound(NamedTuple):
    """What one round produced: its sparsity targets, masks, retrained params, kept fraction."""

    round: int
    sparsity: Any
    masks: Any
    params: Any
    density: float


def iterative_prune(
    params: Any,
    target: PerLayer,
    retrain: Callable[[Any, Any, int], Any],
    *,
    rounds: int = 3,
    schedule: Schedule | None = None,
    scope: str = "layer",
    include: Include = KERNELS,
    masks: Any = None,
    start_round: int = 1,
    on_round: Callable[[PruneRound], None] | None = None,
) -> list[PruneRound]:
    """Run rounds ``start_round..rounds``; return one :class:`PruneRound` per round run.

    Args:
      params: the (trained) params to prune.
      target: final sparsity, one number or ``{path regex: fraction}``.
      retrain: ``(pruned params, masks, round) -> retrained params`` (pruned entries zero).
      rounds: number of rounds; ``schedule`` defaults to geometric :func:`iterative`.
      scope, include: as in :func:`sparsity_masks`.
      masks, start_round: resume after round ``start_round - 1`` with its masks.
      on_round: called after each round (e.g. to checkpoint it).
    """
    rounds = checks.positive_int(rounds, "rounds")
    start_round = checks.positive_int(start_round, "start_round")
    schedule = schedule or iterative(rounds)
    history = []
    for r in range(start_round, rounds + 1):
        s = sparsity_at(schedule, target, r)
        masks = sparsity_masks(params, s, scope=scope, include=include, current=masks)
        params = retrain(apply_masks(params, masks), masks, r)
        params = apply_masks(params, masks)
        record = PruneRound(r, s, masks, params, density(masks))
        history.append(record)
        if on_round is not None:
            on_round(record)
    return history
