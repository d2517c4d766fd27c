"""Measured CPU time of early-exit inference beside its counted cost.

One timing unit takes a trained multi-exit net and, for each budget, the threshold chosen on
validation (:func:`claims.at_budget` at the narrow net's multiply-adds), and times over the
test set, in batches, in one process: both schedules of
:func:`wsjax.models.early_exit_predict` at that threshold, the narrow net's jitted forward
pass, and the full net's (:func:`wsjax.pruning.timing.forward`). Every entry runs once to
compile, then ``repeats`` rounds each time every entry once (the order rotated each round, so
that machine noise and cache effects hit all alike); the median round is kept.
"""

from __future__ import annotations

import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.early_exits import claims, nets
from wsjax.models import early_exit_predict
from wsjax.pruning.timing import forward


def _batches(x, size: int) -> list:
    return [x[s: s + size] for s in range(0, x.shape[0], size)]


def early_exit_entry(model, params, xs, threshold: float, schedule: str):
    """A timed callable: early-exit inference of every batch; returns the per-batch results."""
    return lambda: [early_exit_predict(model, params, xb, threshold, schedule) for xb in xs]


def forward_entry(model, params, xs):
    """A timed callable: the jitted forward pass of every batch, waited for."""
    f = forward(model)

    def run():
        out = [f(params, xb) for xb in xs]
        jax.block_until_ready(out)
        return out

    return run


def measure(entries: list, repeats: int) -> list[list[float]]:
    """Seconds of every callable in each of ``repeats`` interleaved rounds (after one untimed
    call each that compiles)."""
    for run in entries:
        run()
    times = [[] for _ in entries]
    for r in range(repeats):
        order = list(range(len(entries)))
        order = order[r % len(order):] + order[: r % len(order)]
        for i in order:
            t0 = time.perf_counter()
            entries[i]()
            times[i].append(time.perf_counter() - t0)
    return times


def _early_exit_result(results, y) -> dict:
    n = sum(r.predictions.size for r in results)
    preds = np.concatenate([r.predictions for r in results])
    weigh = lambda f: float(sum(f(r) * r.predictions.size for r in results) / n)
    return {"accuracy": float(np.mean(preds == y)), "avg_macs": weigh(lambda r: r.avg_macs),
            "computed_macs": weigh(lambda r: r.computed_macs)}


def _forward_result(outputs, y, macs: int) -> dict:
    preds = np.concatenate([np.asarray(o[-1]).argmax(-1) for o in outputs])
    return {"accuracy": float(np.mean(preds == y)), "avg_macs": float(macs), "computed_macs": float(macs)}


def timing_metrics(unit: dict, store, test) -> dict:
    """The entries of one timing unit: what each is, its counted cost, its test accuracy in
    this run, its median seconds over the test set and every round's seconds."""
    shape = tuple(test[0].shape[1:])
    net_row = store.get(unit["net"])
    model, params = nets.load(unit["net"], store, shape)
    params = jax.device_put(params)
    xs, y = _batches(jnp.asarray(test[0]), unit["batch"]), np.asarray(test[1])
    described, entries = [], []
    for budget, narrow in zip(unit["budgets"], unit["narrow"]):
        narrow_row = store.get(narrow)
        pick = claims.at_budget(net_row, narrow_row["macs"])
        if pick is None:
            continue
        for schedule in unit["schedules"]:
            described.append({"what": schedule, "budget": budget, "threshold": pick["threshold"],
                              "sweep_accuracy": pick["accuracy"], "sweep_macs": pick["avg_macs"]})
            entries.append(early_exit_entry(model, params, xs, pick["threshold"], schedule))
        n_model, n_params = nets.load(narrow, store, shape)
        described.append({"what": "narrow", "budget": budget, "widths": narrow["widths"], "macs": narrow_row["macs"]})
        entries.append(forward_entry(n_model, jax.device_put(n_params), xs))
    described.append({"what": "full", "budget": 1.0, "macs": net_row["macs"]})
    entries.append(forward_entry(model, params, xs))
    load_before = os.getloadavg()[0]
    times = measure(entries, unit["repeats"])
    load_after = os.getloadavg()[0]
    out = []
    for d, run, ts in zip(described, entries, times):
        result = run()
        got = (_early_exit_result(result, y) if d["what"] in unit["schedules"]
               else _forward_result(result, y, d["macs"]))
        out.append({**d, **got, "seconds": statistics.median(ts), "rounds": ts})
    return {"entries": out, "test_images": int(y.size), "backend": jax.default_backend(), "cpus": os.cpu_count(),
            "load_before": load_before, "load_after": load_after}
