"""Train (or read back) the dense reference nets and write the baseline report."""

from __future__ import annotations

import dataclasses

from experiments.baseline import config, report
from wsjax import study
from wsjax.results import Store


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)
    rows = []
    for unit in cfg.units(dataset, seed):
        _, _, row = study.pretrained(unit["model"], dataset, unit["seed"], cfg.quick, store=store,
                                     epochs=unit["epochs"], train_examples=unit["train_examples"])
        rows.append(row)
        print(f"{unit['model']} seed {unit['seed']}: test accuracy {row['test_accuracy']:.4f}", flush=True)
    # the report covers every model of the config whose rows the store has (a run restricted
    # with --models keeps the others' rows in the table)
    others = [store.get(u) for u in dataclasses.replace(cfg, models=config.MODELS).units(dataset, seed)
              if u["model"] not in cfg.models]
    print(report.write(rows + [r for r in others if r is not None], cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args, cfg = study.parse_args_with_models(
        "baseline", "dense reference nets (LeNet-300-100, LeNet-5, the deep MLP, the small ViT)",
        config.full, config.quick, config.MODELS, argv=argv)
    return run(cfg, args.dataset, args.seed, args.out)
