"""Train Net-1..Net-5 (and the no-sharing controls) on many seeds of each setting; write the report.

Each unit of work is one net trained on every seed of one setting (data set, image shift,
seeds) at once, vmapped (:func:`wsjax.train.seeds.fit_seeds`): one row of the study's
store with the per-seed test accuracies and training errors.
"""

from __future__ import annotations

import time

from experiments.lecun89 import config, report
from wsjax import study
from wsjax.results import Store

DESCRIPTION = "LeCun (1989): Net-1 .. Net-5 on 16x16 digits, 320 training and 160 test examples"


def splits(dataset: str, shift: int, seeds) -> tuple:
    """``(train, test)``, each ``(x, y)`` with the examples axis first and one column per seed."""
    from wsjax.data.augment import shifted_split
    from wsjax.train.seeds import stack_seeds

    return tuple(stack_seeds([shifted_split(dataset, split, s, shift) for s in seeds]) for split in ("train", "test"))


def train(unit: dict) -> dict:
    """Train ``unit``'s net on every one of its seeds; the row's metrics."""
    import jax
    import optax

    from wsjax.models.lecun89 import init_net, lecun89_net, link_count, logits_fn, sum_of_squares
    from wsjax.sharing import free_params
    from wsjax.train.seeds import fit_seeds, init_seeds, seed_errors

    n, shared, seeds = unit["net"], unit["shared"], unit["seeds"]
    train_data, test_data = splits(unit["dataset"], unit["shift"], seeds)
    states = init_seeds(lambda key: init_net(n, key, shared=shared)[2], seeds, impl=unit["init"])
    logits = logits_fn(n, states.frozen, shared)
    t0 = time.perf_counter()
    result = fit_seeds(lambda theta, x, y: sum_of_squares(logits(theta, x), y), states.theta,
                       optax.adam(unit["lr"]), train_data, epochs=unit["epochs"], batch_size=unit["batch_size"],
                       seed=unit["shuffle_seed"], loop=unit["loop"], progress=False, desc=unit["model"])
    train_err = seed_errors(logits, result.theta, *train_data)
    test_err = seed_errors(logits, result.theta, *test_data)
    seconds = (time.perf_counter() - t0) / len(seeds)
    one = jax.tree.map(lambda a: a[0], states)
    return {"model": unit["model"], "method": report.method(n, shared),
            "test_accuracies": [float(1.0 - e) for e in test_err], "train_errors": [float(e) for e in train_err],
            "links": link_count(lecun89_net(n, shared=shared)[1].apply(one)), "free_params": free_params(one),
            "final_train_loss": result.history[-1]["train_loss"] / len(seeds), "seconds": seconds}


def describe(unit: dict) -> str:
    return f"{unit['model']} on {report.setting_title(unit)}"


def summary(row: dict) -> str:
    mean, std = study.mean_std(row["test_accuracies"])
    return f"test accuracy {100 * mean:.1f} ± {100 * std:.1f} %"


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    rows = study.run_units(Store(out), cfg.units(dataset, seed), train, describe, summary)
    print(report.write(rows, cfg, out, dataset, seed))
    return rows


def main(argv=None) -> list[dict]:
    args = study.parse_args("lecun89", DESCRIPTION, argv=argv, default_dataset="lecun89", datasets=config.DATASETS)
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
