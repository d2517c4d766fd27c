"""Train (or read back) the dense reference nets and write the baseline report."""

from __future__ import annotations

from experiments.baseline import config, report
from wsjax import study
from wsjax.results import Store


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)
    rows = []
    for unit in cfg.units(dataset, seed):
        _, _, row = study.pretrained(unit["model"], dataset, seed, cfg.quick, store=store,
                                     epochs=unit["epochs"], train_examples=unit["train_examples"])
        rows.append(row)
        print(f"{unit['model']}: test accuracy {row['test_accuracy']:.4f}", flush=True)
    print(report.write(rows, cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args = study.parse_args("baseline", "dense reference nets (LeNet-300-100, LeNet-5)", argv=argv,
                            models=config.full().models)
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
