"""Gradual pruning as a pipeline stage: prune while training, along Zhu & Gupta's schedule.

:class:`GradualPrune` trains the current (dense) weights for ``epochs`` with
:func:`wsjax.pruning.gradual_pruning` chained after Adam: every ``every`` steps each selected
layer's mask is recomputed from the magnitudes of the updated weights, its sparsity following
``s_t = s_f (1 - (1 - t / t_1)^3)`` from step 0 up to ``t_1 = end_fraction`` of the steps
(then held, so the last part of training recovers at the final sparsity). The result is a
pruned net ``W = theta * M`` with those masks, as :class:`~wsjax.compress.Prune` followed by
:class:`~wsjax.compress.Retrain` leaves one; later stages (Quantize, Retrain, SoftShare)
keep the masks. Against Han's prune-retrain rounds it spreads the same epochs over many
small pruning steps.

References: Zhu & Gupta, `To prune, or not to prune: exploring the efficacy of pruning for
model compression <https://arxiv.org/abs/1710.01878>`_, 2017; Hinton, Vinyals & Dean,
`Distilling the Knowledge in a Neural Network <https://arxiv.org/abs/1503.02531>`_, 2015.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks, pruning, sharing
from wsjax.compress import train as _train
from wsjax.compress.state import Compressed
from wsjax.compress.stages import _check_training, _dense_only, _record
from wsjax.sharing.paths import KERNELS, matcher


@dataclasses.dataclass(frozen=True)
class GradualPrune:
    """Prune the selected layers to ``sparsity`` (a number or ``{regex: number}``) while
    training ``epochs`` (Adam, cosine decay from ``lr`` to ``alpha * lr``, batch
    ``batch_size``), along the cubic schedule ending at ``end_fraction`` of the steps, the
    masks updated every ``every`` steps (more often where a run is too short for that).
    With ``distill_temperature`` the pruned net learns from the net it starts from (Hinton
    et al. 2015: ``distill_alpha`` of the loss on the hard labels, the rest on that net's
    softened outputs), the unpruned net as its own teacher."""

    sparsity: Any
    epochs: int
    lr: float
    end_fraction: float = 0.6
    every: int = 100
    alpha: float = 0.05
    include: Any = KERNELS
    seed: Optional[int] = None
    batch_size: int = 100
    distill_temperature: Optional[float] = None
    distill_alpha: float = 0.5
    name = "gradual_prune"
    trains = True

    def __post_init__(self):
        _check_training(self.epochs, self.lr, self.alpha, self.seed, self.batch_size)
        for key, value in (self.sparsity.items() if isinstance(self.sparsity, dict) else [("", self.sparsity)]):
            checks.number(value, f"sparsity{f'[{key!r}]' if key else ''}", lo=0.0, hi=1.0, hi_open=True)
        checks.number(self.end_fraction, "end_fraction", lo=0.0, hi=1.0, lo_open=True)
        checks.positive_int(self.every, "every")
        matcher(self.include)
        if self.distill_temperature is not None:
            checks.number(self.distill_temperature, "distill_temperature", lo=0.0, lo_open=True)
        checks.number(self.distill_alpha, "distill_alpha", lo=0.0, hi=1.0)

    def run(self, net, c: Compressed, job) -> Compressed:
        _dense_only(c, self.name)
        if c.masks is not None:
            raise ValueError("gradual_prune starts from an unpruned net; it found the masks of an earlier stage")
        steps = self.epochs * (len(job.train[0]) // self.batch_size)
        if steps < 1:
            raise ValueError(f"gradual_prune needs at least one training step: {len(job.train[0])} training "
                             f"examples make no batch of {self.batch_size}")
        end = max(1, int(round(self.end_fraction * steps)))
        schedule = pruning.polynomial(0, end)
        # short runs update the masks more often: a few times before the schedule's end and
        # at least once after it, so that the final masks are at the target
        every = max(1, min(self.every, steps - end, end // 4)) if steps > end else 1

        def compute():
            opt = pruning.gradual_pruning(self.sparsity, schedule, every=every, include=self.include)
            theta, opt_state, history, seconds = _train.retrain(
                net, c, job.train, job.val, epochs=self.epochs, lr=self.lr,
                seed=job.seed if self.seed is None else self.seed, alpha=self.alpha, batch_size=self.batch_size,
                loop=job.loop, progress=job.progress, desc=job.desc(self.name), after=[opt],
                teacher=None if self.distill_temperature is None else jax.device_get(c.params),
                temperature=self.distill_temperature or 1.0, distill_alpha=self.distill_alpha)
            # every leaf gets a mask array (all True where nothing is pruned), so the cache
            # stores and restores one uniform tree
            masks = jax.tree.map(lambda m, p: np.ones(np.shape(p), bool) if m is None else np.asarray(m),
                                 opt_state[-1].masks, theta, is_leaf=lambda x: x is None)
            return {"theta": theta, "masks": masks}, {"seconds": seconds, "history": history}

        template = {"theta": c.state.theta, "masks": jax.tree.map(lambda p: np.ones(np.shape(p), bool),
                                                                  c.state.theta)}
        out, info = job.cached(self, template, compute)
        select = matcher(self.include)
        masks = jax.tree_util.tree_map_with_path(
            lambda kp, m: np.asarray(m, bool) if select(sharing.path_str(kp)) else None, out["masks"])
        theta = jax.tree.map(lambda w, m: w if m is None else np.asarray(w) * np.asarray(m, np.asarray(w).dtype),
                             out["theta"], masks, is_leaf=lambda x: x is None)
        _check_reached(masks, self.sparsity)
        t = sharing.masked(masks)
        state = t.init(jax.random.key(job.seed), jax.device_get(theta))
        last = info["history"][-1] if info["history"] else {}
        return Compressed(t, _train.with_theta(state, state.theta), masks, _record(
            c, stage=self.name, epochs=self.epochs, seconds=info["seconds"], kept_fraction=pruning.density(masks),
            val_accuracy=last.get("eval_accuracy"), per_epoch=info["history"]))



def _check_reached(masks, sparsity) -> None:
    """RuntimeError unless every pruned layer keeps exactly its target's count (the schedule
    ends before training does, so the last mask update is at the target)."""
    from wsjax.sharing.paths import per_layer

    for path, m in sharing.flatten_paths(masks).items():
        s = per_layer(sparsity, path, name="sparsity", default=0.0)
        # the pruner's own count: round(s * size) in float32 (wsjax.pruning.gradual)
        want = m.size - int(jnp.round(jnp.asarray(s, jnp.float32) * m.size))
        if int(np.sum(m)) != want:
            raise RuntimeError(f"gradual_prune: {path} keeps {int(np.sum(m))} weights, its target {want}")
