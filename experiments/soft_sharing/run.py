"""Train every (seed, setting) lane of each task and K in one vmapped program, score the
lanes on validation and test data, and write the report (selection happens there)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.soft_sharing import config, report
from wsjax import study
from wsjax.data import shift, sunspots
from wsjax.penalties import switchable
from wsjax.results import Store
from wsjax.train import lanes as L


def _data(unit: dict, seeds: list[int]):
    """``(x_all, xs, ys, ws, score)``: every case the nets are scored on, the per-seed
    training inputs, targets and weights, and ``score(preds, s) -> (val, {test metric: v})``
    for the predictions ``preds`` of seed index ``s`` on ``x_all``."""
    d, n_sel = unit["data"], len(unit["selection_seeds"])
    if d["name"] == "shift":
        x, y, train, val, test_mask = shift.shift_draws(seeds, d["n_train"], d["n_val"], d["bits"])
        right = y > 0.5

        def score(p, s):
            hit = (p > 0) == right
            return (float(hit[val[s]].mean()) if s < n_sel else None,
                    {"test_accuracy": float(hit[test_mask[s]].mean()), "train_accuracy": float(hit[train[s]].mean())})

        return x, x[train], y[train], np.ones(train.shape, np.float32), score
    if d["name"] != "sunspots":
        raise ValueError(f"unknown task data {d['name']!r}")
    x, y, years, variance = sunspots.sunspot_windows(d["lag"], d["train_until"])
    train = years <= d["train_until"]
    n = int(train.sum())
    fold_w, fold_held = sunspots.blocked_folds(n, n_sel, d["lag"]) if n_sel else (np.zeros((0, n)),) * 2
    ws = np.concatenate([fold_w, np.ones((len(seeds) - n_sel, n))]).astype(np.float32)
    periods = [(years >= a) & (years <= b) for a, b in d["test_periods"]]
    yt = y[train]

    def score(p, s):
        pt = p[train]
        tests = {f"arv_test{i}": sunspots.arv(p[m], y[m], variance) for i, m in enumerate(periods, 1)}
        tests["arv_train"] = sunspots.arv(pt, yt, variance)
        return (sunspots.arv(pt[fold_held[s]], yt[fold_held[s]], variance) if s < n_sel else None), tests

    tile = lambda a: np.broadcast_to(a, (len(seeds),) + a.shape)
    return x, tile(x[train]), tile(yt), ws, score


def compute(unit: dict, store: Store) -> dict:
    """Train one unit's lanes; its metrics (per lane: validation scores per selection seed,
    test metrics per test seed) and, as its artifact, every lane's weights and mixture on
    the first test seed (when the penalty switched on and at the end)."""
    from flax import serialization

    sel, seeds = unit["selection_seeds"], unit["selection_seeds"] + unit["test_seeds"]
    x_all, xs, ys, ws, score = _data(unit, seeds)
    p = unit["penalty"]
    trainer = L.lane_trainer(
        L.weighted_loss(unit["loss"]), lambda key: L.init_mlp(key, unit["net"]["sizes"]),
        lambda h: switchable.penalty_chain(h, unit["components"], include=p["include"], w0=p["w0"],
                                        pi_zero=p["pi_zero"], mixture_learning_rate=p["mixture_lr"]),
        steps=unit["steps"], warm=unit["warm"], lr=unit["lr"], probe=switchable.mixture_of)
    hypers = jnp.asarray([switchable.hyper(*lane) for lane in unit["lanes"]], jnp.float32)
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    t0 = time.perf_counter()
    params, (params_on, mix_on), mix_end = jax.device_get(
        trainer(keys, hypers, jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(ws)))
    seconds = time.perf_counter() - t0
    preds = np.asarray(jax.jit(jax.vmap(jax.vmap(L.mlp, (0, None)), (0, None)))(params, jnp.asarray(x_all)))
    scores = []
    for c in range(len(unit["lanes"])):
        per_seed = [score(preds[s, c], s) for s in range(len(seeds))]
        tests = [t for _, t in per_seed[len(sel):]]
        scores.append({"val": [v for v, _ in per_seed[:len(sel)]], **{k: [t[k] for t in tests] for k in tests[0]}})
    first = len(sel)  # the first test seed's lanes, for the mixture plot
    state = {"params_on": params_on, "mixture_on": mix_on._asdict(), "params_end": params,
             "mixture_end": mix_end._asdict()}
    state = jax.tree.map(lambda a: np.asarray(a[first]), state)
    store.write_artifact(unit, ".msgpack", serialization.msgpack_serialize(state))
    return {"seconds": seconds, "scores": scores}


def describe(unit: dict) -> str:
    return (f"{unit['task']}{' pilot' if unit['role'] == 'pilot' else ''} K={unit['components']}: "
            f"{len(unit['lanes'])} settings x {len(unit['selection_seeds']) + len(unit['test_seeds'])} seeds")


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    """The study's rows (``dataset`` is not used: the data are the two tasks)."""
    store = Store(out)
    rows = study.run_units(store, cfg.units(seed), lambda u: compute(u, store), describe=describe,
                           summary=lambda r: f"{r['seconds']:.1f}s")
    print(report.write(rows, cfg, out, store))
    return rows


def main(argv=None) -> list[dict]:
    args = study.parse_args("soft_sharing", "soft weight-sharing against weight decay and weight elimination "
                            "(Nowlan & Hinton 1992)", argv=argv, datasets=("shift_and_sunspots",),
                            default_dataset="shift_and_sunspots")
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
