"""Lottery tickets: iterative magnitude pruning with rewinding, and the two controls.

Frankle & Carbin's procedure trains a net from ``theta_0``, removes a fixed fraction ``p``
of each layer's *surviving* weights by magnitude, sets the survivors back to their values
at initialisation and trains again, round after round. With a per-round rate ``p`` a layer
keeps ``(1 - p)^r`` of its weights after ``r`` rounds (on LeNet-300-100 the paper uses
``p = 0.2`` for the hidden layers and ``0.1`` for the small output layer, so a layer's
sparsity target after round ``r`` is ``1 - (1 - p)^r``: :func:`schedule`). Frankle et al.
2020 find that deeper nets need *late rewinding*: the survivors go back to their values
after ``k`` training iterations, ``theta_k``, rather than to ``theta_0``.

What is new here is small; the rest is the existing mask machinery:

* :func:`prune_round`: the pure round function ``(trained, masks, rates, r) -> masks``, a
  call of :func:`wsjax.pruning.sparsity_masks` with the cumulative per-layer target (masks
  only shrink, and a layer's kept count after round ``r`` is exactly
  ``size - round((1 - (1 - p)^r) * size)``);
* :func:`rewind`: the survivors at ``theta_0`` (or ``theta_k``), the rest +0.0
  (:func:`wsjax.sharing.mask.apply_masks`);
* the arms, jaxpruner-style: :class:`Ticket` (the ticket's mask, rewound values) and two
  controls that each override one method -- :class:`Reinit` (the same mask, a fresh draw
  from the initialiser: ``values``) and :class:`RandomMask` (a uniformly random mask with
  the same number of survivors in every layer, rewound values: ``mask``); :func:`arm` builds
  one by name from :data:`ARMS`;
* :func:`find_tickets`: the whole procedure in memory, :func:`wsjax.pruning.iterative_prune`
  with this schedule and a retrain step that rewinds first.

Liu et al. 2019 argue that the value of pruning lies mostly in the architecture it finds:
the pruned net trained from a fresh initialisation does as well as the pruned weights
fine-tuned. For unstructured masks that "scratch" baseline is :class:`Reinit`; they report
that it matches the ticket at moderate sparsity, and that the ticket's edge appears at
high sparsity or with small learning rates (as in Frankle & Carbin's setting).

References: Frankle & Carbin, `The Lottery Ticket Hypothesis: Finding Sparse, Trainable
Neural Networks <https://arxiv.org/abs/1803.03635>`_, ICLR 2019; Frankle, Dziugaite, Roy &
Carbin, `Linear Mode Connectivity and the Lottery Ticket Hypothesis
<https://arxiv.org/abs/1912.05671>`_, ICML 2020 (rewinding to iteration ``k``); Liu, Sun,
Zhou, Huang & Darrell, `Rethinking the Value of Network Pruning
<https://arxiv.org/abs/1810.05270>`_, ICLR 2019.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import jax
import numpy as np

from wsjax import checks
from wsjax.pruning.magnitude import sparsity_masks
from wsjax.pruning.rounds import PruneRound, iterative_prune
from wsjax.pruning.schedules import Schedule, sparsity_at
from wsjax.sharing.mask import apply_masks
from wsjax.sharing.core import flatten_paths
from wsjax.sharing.paths import KERNELS, Include, PerLayer, matcher

#: Frankle & Carbin's per-round rates for LeNet-300-100: 20 % of the surviving hidden-layer
#: weights per round, 10 % of the output layer's (first matching regex wins).
LENET300100_RATES = {r"^Dense_2/kernel$": 0.1, r"kernel$": 0.2}
#: Their Conv-2/4/6 rates (convolutions 10 %, fully connected 20 %, output 10 %) on LeNet-5.
LENET5_RATES = {r"^Conv_\d+/kernel$": 0.1, r"^Dense_1/kernel$": 0.1, r"kernel$": 0.2}


def schedule() -> Schedule:
    """``(rate, r) -> 1 - (1 - rate)^r``: the sparsity after ``r`` rounds that each prune
    ``rate`` of the surviving weights (a :mod:`wsjax.pruning.schedules` schedule)."""
    return lambda rate, r: 1.0 - (1.0 - float(rate)) ** int(r)


def sparsity_after(rates: PerLayer, r: int):
    """The cumulative sparsity target after round ``r``: one number, or ``{regex: sparsity}``
    for a ``{regex: rate}`` dict."""
    r = checks.integer(r, "round", lo=0)
    return sparsity_at(schedule(), rates, r)


def prune_round(trained: Any, masks: Any, rates: PerLayer, r: int, *, include: Include = KERNELS) -> Any:
    """Round ``r``'s masks: ``masks`` (round ``r - 1``'s, or None before the first round)
    with the smallest surviving weights of ``trained`` removed until every included layer
    keeps ``(1 - rate)^r`` of its weights (rounded to whole weights). Pure: the same
    arguments give the same masks."""
    return sparsity_masks(trained, sparsity_after(rates, r), include=include, current=masks)


def surviving_masks(trained: Any, rates: PerLayer, r: int, *, include: Include = KERNELS) -> Any:
    """Round ``r``'s masks read back from its trained net: ``{path: nonzero}`` of every
    included leaf (what :func:`prune_round`'s ``current`` takes), checked against the count
    round ``r`` leaves; ValueError if they differ (a survivor trained to exactly 0.0 would be
    lost). ``None`` for round 0. For a net stored without its masks, e.g. a sparse file."""
    if r == 0:
        return None
    target, masks = sparsity_after(rates, r), {}
    for path, w in flatten_paths(trained).items():
        if not matcher(include)(path):
            continue
        rate = target if not isinstance(target, dict) else next(v for k, v in target.items() if re.search(k, path))
        m = np.asarray(w) != 0
        if int(m.sum()) != m.size - round(rate * m.size):
            raise ValueError(f"round {r}: {path} has {int(m.sum())} nonzero weights, expected "
                             f"{m.size - round(rate * m.size)}")
        masks[path] = m
    return masks


def rewind(theta: Any, masks: Any) -> Any:
    """The survivors of ``masks`` at their values in ``theta`` (``theta_0``, or ``theta_k``
    for late rewinding), pruned entries +0.0."""
    return apply_masks(theta, masks)


def random_masks(masks: Any, key: jax.Array) -> Any:
    """Masks with exactly as many survivors as ``masks`` in every layer, at uniformly random
    positions (leaf ``i`` draws with ``fold_in(key, i)``; None leaves stay None)."""

    def one(i, m):
        if m is None:
            return None
        m = np.asarray(m, bool)
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, i), m.size))
        out = np.zeros(m.size, bool)
        out[order[: int(m.sum())]] = True
        return out.reshape(m.shape)

    leaves, tree = jax.tree.flatten(masks, is_leaf=lambda x: x is None)
    return jax.tree.unflatten(tree, [one(i, m) for i, m in enumerate(leaves)])


class Ticket:
    """An arm of the experiment: how a round's training starts from the ticket's mask.

    The ticket itself keeps the mask and rewinds the survivors. Subclasses override one
    method: :meth:`mask` (which weights train) or :meth:`values` (their starting values).
    """

    name = "ticket"

    def mask(self, masks: Any, key: jax.Array) -> Any:
        del key
        return masks

    def values(self, rewind_to: Any, init: Callable[[jax.Array], Any], key: jax.Array) -> Any:
        del init, key
        return rewind_to

    def start(self, masks: Any, rewind_to: Any, init: Callable[[jax.Array], Any], key: jax.Array):
        """``(params, masks)`` to train: the arm's values under the arm's mask."""
        mask_key, init_key = jax.random.split(key)
        masks = self.mask(masks, mask_key)
        return rewind(self.values(rewind_to, init, init_key), masks), masks


class Reinit(Ticket):
    """Control: the ticket's mask with a fresh draw from the same initialiser (``init(key)``),
    Frankle & Carbin's random re-initialisation and Liu et al.'s scratch-trained net."""

    name = "reinit"

    def values(self, rewind_to, init, key):
        del rewind_to
        return init(key)


class RandomMask(Ticket):
    """Control: a random mask with the ticket's per-layer survivor counts, rewound values."""

    name = "random_mask"

    def mask(self, masks, key):
        return random_masks(masks, key)


ARMS = {cls.name: cls for cls in (Ticket, Reinit, RandomMask)}


def arm(name: str) -> Ticket:
    """The arm called ``name`` (one of :data:`ARMS`)."""
    if name not in ARMS:
        raise ValueError(f"unknown lottery arm {name!r}; known: {sorted(ARMS)}")
    return ARMS[name]()


def find_tickets(trained: Any, rewind_to: Any, rates: PerLayer, train: Callable[[Any, Any, int], Any], *,
                 rounds: int, include: Include = KERNELS, masks: Any = None, start_round: int = 1,
                 on_round: Callable[[PruneRound], None] | None = None) -> list[PruneRound]:
    """Rounds ``start_round..rounds`` of the procedure, in memory.

    ``trained`` is the trained dense net (or round ``start_round - 1``'s trained ticket, with
    its ``masks``), ``rewind_to`` is ``theta_0`` or ``theta_k``, and ``train(params, masks,
    r) -> trained params`` trains a ticket (pruned entries kept at zero, e.g. through
    :func:`wsjax.sharing.mask.masked`). Each round prunes by :func:`prune_round`'s rule and
    trains :func:`rewind` ``(rewind_to, masks)``; the :class:`PruneRound` records hold the
    masks and trained params (see :func:`wsjax.pruning.iterative_prune`).
    """
    return iterative_prune(trained, rates, lambda _, m, r: train(rewind(rewind_to, m), m, r), rounds=rounds,
                           schedule=schedule(), include=include, masks=masks, start_round=start_round,
                           on_round=on_round)

