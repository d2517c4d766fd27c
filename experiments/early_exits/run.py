"""Train (or read back) the multi-exit and separate nets of the early-exit study, then time
early-exit inference beside the counted cost."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from experiments.early_exits import config, nets, report, timing
from wsjax import study
from wsjax.results import Store


def data_for(cfg: config.Config, dataset: str, seed: int):
    """``(train, val, test)``: the first ``train_examples`` images, the next ``validation``, the test set."""
    return study.train_val_test(dataset, seed, cfg.train_examples, cfg.validation, cfg.test_examples)


def _describe(u: dict) -> str:
    if u["kind"] == "multi_exit":
        return f"multi-exit {u['widths']} {u['weighting']:8s} seed {u['seed']}"
    if u["kind"] == "separate":
        what = f"{u['budget']:.0%} budget" if u["family"] == "narrow" else f"depth {u['depth']}"
        return f"separate {u['family']:9s} {what:10s} {u['widths']} seed {u['seed']}"
    return f"timing seed {u['net']['seed']}"


def _summary(r: dict) -> str:
    if r["config"]["kind"] == "timing":
        full = next(e for e in r["entries"] if e["what"] == "full")["seconds"]
        return " ".join(f"{e['what']}@{e['budget']:.0%} {e['seconds'] / full:.2f}x" for e in r["entries"]
                        if e["what"] != "full") + f" of the full pass ({full:.3f} s)"
    acc = r.get("exit_test_accuracy", [r["test_accuracy"]])
    return "test " + " / ".join(f"{a:.4f}" for a in acc) + f" ({r['seconds']:.0f} s)"


def run(cfg: config.Config, dataset: str, seed: int, out: str) -> list[dict]:
    store = Store(out)
    data = jax.tree.map(jnp.asarray, data_for(cfg, dataset, seed))  # on the device once, for every run
    thresholds = cfg.thresholds()
    train = lambda u: nets.net_metrics(u, data, store, thresholds)
    multi_units = cfg.multi_exit_units(dataset, seed)
    separate_units = cfg.separate_units(dataset, seed, data[2][0].shape[1:])
    nets_ = study.run_units(store, multi_units + separate_units, train, describe=_describe, summary=_summary)
    timings = study.run_units(store, cfg.timing_units(multi_units, separate_units),
                              lambda u: timing.timing_metrics(u, store, data[2]), describe=_describe, summary=_summary)
    rows = nets_ + timings
    print(report.write(rows, cfg, out, dataset))
    return rows


def main(argv=None) -> list[dict]:
    args = study.parse_args("early_exits", "early exits (MSDNet-lite) against separate nets at matched compute",
                            argv=argv, datasets=("fashion_mnist", "mnist", "cifar10"))
    return run(config.quick() if args.quick else config.full(), args.dataset, args.seed, args.out)
