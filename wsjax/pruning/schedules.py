"""Sparsity schedules: how much of a layer's final target is pruned at a given step or round.

A schedule is a function ``(target, step) -> sparsity`` (``target`` the final fraction
pruned; ``step`` a round number or an optimiser step, a Python int or a traced integer):

* :func:`one_shot`: the whole target at once (then retrain);
* :func:`iterative`: prune-retrain rounds ``1..rounds``; ``geometric`` rounds remove the same
  fraction of the *surviving* weights each time (as the lottery-ticket procedure's 20 % per
  round does), ``linear`` ones the same number of weights;
* :func:`polynomial`: Zhu & Gupta's gradual schedule
  ``s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (t_1 - t_0))^3`` between steps ``t_0`` and ``t_1``
  (``power`` generalises the cube), pruning fast early and slowly near the end.

:func:`sparsity_at` applies a schedule to one target or a ``{path regex: target}`` dict.

References: Han, Pool, Tran & Dally, `Learning both Weights and Connections
<https://arxiv.org/abs/1506.02626>`_, 2015 (iterative pruning); Zhu & Gupta, `To prune, or
not to prune <https://arxiv.org/abs/1710.01878>`_, 2017 (polynomial schedule); Frankle &
Carbin, `The Lottery Ticket Hypothesis <https://arxiv.org/abs/1803.03635>`_, 2019.
"""

from __future__ import annotations

from typing import Callable, Mapping, Union

import jax.numpy as jnp

from wsjax import checks

Schedule = Callable[[float, "int | jnp.ndarray"], "float | jnp.ndarray"]


def one_shot() -> Schedule:
    """Prune the whole target at every step (a single prune, then retrain)."""
    return lambda target, step: target


def iterative(rounds: int, *, geometric: bool = True) -> Schedule:
    """Rounds ``1..rounds`` reach ``target`` at the last; round 0 prunes nothing."""
    rounds = checks.positive_int(rounds, "rounds")

    def schedule(target, step):
        r = jnp.clip(jnp.asarray(step, jnp.float32), 0, rounds) / rounds
        if geometric:
            return 1.0 - jnp.power(1.0 - jnp.asarray(target, jnp.float32), r)
        return target * r

    return schedule


def polynomial(begin_step: int, end_step: int, *, initial: float = 0.0, power: float = 3.0) -> Schedule:
    """Zhu & Gupta's gradual schedule from ``initial`` at ``begin_step`` to the target at ``end_step``."""
    begin_step = checks.integer(begin_step, "begin_step", lo=0)
    end_step = checks.integer(end_step, "end_step", lo=0)
    if not begin_step < end_step:
        raise ValueError(f"need 0 <= begin_step < end_step, got {begin_step}, {end_step}")
    initial = checks.number(initial, "initial sparsity", lo=0.0, hi=1.0, hi_open=True)
    power = checks.number(power, "power", lo=0.0, lo_open=True)

    def schedule(target, step):
        t = jnp.clip((jnp.asarray(step, jnp.float32) - begin_step) / (end_step - begin_step), 0.0, 1.0)
        s = target + (initial - target) * jnp.power(1.0 - t, power)
        return jnp.where(jnp.asarray(step) < begin_step, 0.0, s)

    return schedule


def sparsity_at(
    schedule: Schedule, target: Union[float, Mapping[str, float]], step
) -> Union[float, dict]:
    """The schedule's sparsity at ``step`` for one target or each entry of a dict (as floats)."""
    if isinstance(target, Mapping):
        return {k: float(schedule(float(v), step)) for k, v in target.items()}
    return float(schedule(float(target), step))
