"""Tune every arm on validation, then train, store and score every point of the sharing-level study."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.sharing_levels import arm_names, config, nets, report, tables
from wsjax import compress, pruning, study
from wsjax.analysis import collision_load
from wsjax.compress.train import retrain, with_theta
from wsjax.results import Store
from wsjax.sharing import (KERNELS, count_params, flatten_paths, free_params, hashed, identity, matcher, tied,
                           tied_in_order)
from wsjax.train import classifier, evaluate

DESCRIPTION = "cross-layer against within-layer hard sharing at equal stored bytes (issue 20)"


def data_for(cfg: config.Config, dataset: str, seed: int):
    """``(train, val, test)``: the first ``train_examples`` images, the next ``validation``, the test set."""
    return study.train_val_test(dataset, seed, cfg.train_examples, cfg.validation, cfg.test_examples)


def hash_compression(unit: dict, params) -> float:
    """The kernels' compression that leaves ``budget * dense`` free parameters with the biases
    (and a pool's per-layer scales): ``hashed`` hashes the kernels (:data:`wsjax.sharing.KERNELS`)."""
    is_kernel = matcher(KERNELS)
    kernels = sum(int(np.size(x)) for p, x in flatten_paths(params).items() if is_kernel(p))
    biases = count_params(params) - kernels
    scales = sum(map(is_kernel, flatten_paths(params))) if unit["arm"] == "hashed_pool_scaled" else 0
    target = unit["budget"] * count_params(params) - biases - scales
    if target < 1:
        raise ValueError(f"budget {unit['budget']} leaves no free parameter for the kernels")
    return min(1.0, target / kernels)


def transform_of(unit: dict, compression: float | None):
    """The weight-space transform of a unit's arm (identity for the dense and narrow nets);
    ``compression``: a hashing arm's (:func:`hash_compression`)."""
    arm, c = unit["arm"], compression
    if arm in (config.DENSE, "narrow"):
        return identity()
    if arm in config.TYING:
        unique, order, multiplex, rank = config.TYING[arm]
        layers = arm_names.tied_layers(unit["model"], unit.get("hidden_layers", 0), unit.get("depth", 0))
        kw = {"multiplex": multiplex, "rank": max(rank, 1)}
        return tied(layers, **kw) if unique == 1 else tied_in_order(layers, unique, order, **kw)
    kw = {"seed": unit["seed"], "init_scale": unit["init_scale"]}
    return {"hashed_layer": lambda: hashed(c, **kw), "hashed_uniform": lambda: hashed(c, budget="uniform", **kw),
            "hashed_pool": lambda: hashed(c, scope="pool", **kw),
            "hashed_pool_scaled": lambda: hashed(c, scope="pool", layer_scale=True, **kw),
            "roast": lambda: hashed(c, scope="pool", block=unit["block"], **kw)}[arm]()


def _train_stored(unit: dict, net, t, state, data, store: Store):
    """Train ``state``'s free parameters through ``t`` with the unit's recipe, store the net and
    score it from its file: ``(trained state, row metrics)``."""
    train, val, test = data
    theta, _, history, seconds = retrain(
        net, compress.Compressed(t, state), train, val, epochs=unit["epochs"], lr=unit["lr"], seed=unit["seed"],
        alpha=unit["final_lr_fraction"], batch_size=unit["batch_size"], loop=study.loop_for(unit["model"]),
        progress=False)
    trained = with_theta(state, theta)
    _, eval_fn = classifier(net.apply)
    score = lambda p: evaluate(eval_fn, p, *test)["accuracy"]  # noqa: E731
    return trained, {**study.stored_row(unit, store, (t, trained), t.apply(trained), score), **_curve(history),
                     "seconds": seconds}


def _masked_sizes(params, masks) -> dict:
    """A pruned net's counts: the surviving kernel weights and every bias are its free params."""
    n = count_params(params)
    kept = sum(int(np.count_nonzero(m)) for m in jax.tree.leaves(masks))
    biases = n - sum(int(np.size(x)) for p, x in flatten_paths(params).items() if matcher(KERNELS)(p))
    return {"dense_bytes": 4 * n, "free_params": kept + biases, "dense_params": n,
            "kept_fraction": float(pruning.density(masks))}


def _curve(history) -> dict:
    return {"val_accuracy": history[-1]["eval_accuracy"], "val_curve": [h["eval_accuracy"] for h in history],
            "train_loss": history[-1]["train_loss"]}


def train_metrics(cfg: config.Config, unit: dict, data, store: Store) -> dict:
    """One net of one arm, trained, stored and scored as read back from its file."""
    from experiments.sharing_levels import derived  # its arms train the dense point through this function

    if unit["arm"] in config.DERIVED:
        return derived.train_pruned(cfg, unit, data, store)
    if unit["arm"] == "dynamic":
        return derived.train_dynamic(unit, data, store)
    if unit["arm"] == config.LOTTERY:
        return derived.train_lottery_round(cfg, unit, data, store)
    if unit["arm"] in config.SOFT:
        return derived.train_soft(cfg, unit, data, store)
    train = data[0]
    dense, model = nets.dense_params(unit), nets.model(unit)
    key = jax.random.key(unit["seed"])
    params = model.init(key, train[0][:1])["params"]
    compression = hash_compression(unit, params) if unit["arm"] in config.HASHING else None
    t = transform_of(unit, compression)
    state = t.init(jax.random.fold_in(key, 1), params)
    trained, row = _train_stored(unit, compress.from_linen(model, params), t, state, data, store)
    row.update(dense_bytes=4 * dense, free_params=free_params(trained), dense_params=dense,
               widths=nets.widths(model))
    if compression is not None:
        load = collision_load(trained)
        row["compression"] = compression
        row["collision_load"] = {p.split("/")[0]: {"load": v["load"], "shared": v["shared"]} for p, v in load.items()}
    return row


def _describe(u: dict) -> str:
    what = f"{u['model']:8s} {u['arm']:18s} {tables.budget_label(u['budget']):8s} seed {u['seed']}"
    return f"tune {what} lr {u['lr']:g} scale {u['init_scale']:g}" if u["kind"] == "tune" else what


def _summary(r: dict) -> str:
    return f"val {r['val_accuracy']:.4f} test {r['test_accuracy']:.4f}, {r['stored_bytes']:,} B ({r['seconds']:.0f} s)"


def _cached(store: Store, units, compute=None, **_) -> list[dict]:
    """The rows ``store`` already has for ``units`` (nothing is trained): a model not run now."""
    return [r for r in map(store.get, units) if r is not None]


def run(cfgs, dataset: str, seed: int, out: str, report_only=()) -> list[dict]:
    """Tune, then train every point of each config (one per model, or one config), then the report;
    the configs in ``report_only`` (models not chosen with ``--models``) add the rows the store
    already has to the report and train nothing."""
    cfgs = [cfgs] if isinstance(cfgs, config.Config) else list(cfgs)
    store = Store(out)
    # loaded and put on the device once, only when a unit needs it (a resumed run may need none)
    data = functools.cache(lambda: jax.tree.map(jnp.asarray, data_for(cfgs[0], dataset, seed)))
    if any((c.train_examples, c.validation, c.test_examples) != (cfgs[0].train_examples, cfgs[0].validation,
                                                                 cfgs[0].test_examples) for c in cfgs):
        raise ValueError("the study's configs must share one data split")
    rows = []
    for cfg in cfgs:
        compute = lambda u, cfg=cfg: train_metrics(cfg, u, data(), store)  # noqa: E731
        units = _cached if cfg in report_only else study.run_units
        run_ = functools.partial(units, store, compute=compute, describe=_describe, summary=_summary)
        # a report-only model's tuning can be unfinished: its points follow only a complete grid
        first = cfg.tune_units(dataset, seed)
        tuned = run_(first)
        done = len(tuned) == len(first)
        if done:  # the derived arms start from the dense point of seed 0, trained with the dense net's setting
            second = cfg.tune_units(dataset, seed, tables.settings_from(tuned))
            more = run_(second)
            tuned, done = tuned + more, len(more) == len(second)
        rows += tuned + (run_(cfg.point_units(dataset, seed, tables.settings_from(tuned))) if done else [])
    print(report.write(rows, cfgs, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    def add(p):
        p.add_argument("--models", nargs="+", choices=arm_names.MODELS, default=None,
                       help="train only these models (the report still shows every model's stored rows)")
        p.add_argument("--report-only", action="store_true",
                       help="train nothing: write the report from the rows the store has")

    args = study.parse_args("sharing_levels", DESCRIPTION, argv=argv, add_arguments=add)
    if args.quick:
        return run([config.quick()], args.dataset, args.seed, args.out)
    cfgs = config.grid()
    rest = [c for c in cfgs if args.report_only or (args.models and c.model not in args.models)]
    return run(cfgs, args.dataset, args.seed, args.out, report_only=rest)
