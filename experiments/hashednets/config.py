"""The HashedNets study's config.

Run: ``wsjax run hashednets [--quick]`` (or ``python -m experiments.hashednets``); writes
``experiments/results/hashednets/`` (``rows.jsonl``, one ``artifacts/<key>.wsjax`` per
point, ``results.md``, ``accuracy_vs_free_params.png``).

Recipe: Adam with cosine decay from 1e-3 to 1e-5, batch 100, all 60,000 training images,
10 epochs for the 3-layer net and 5 for the 5-layer net (trained to convergence, as issue 20
asks: the first version's 2 and 1 epochs are still in the store under their own keys), seeds
``seed .. seed + seeds - 1`` (3), one run per cell and seed, the 3-layer net's seeds first. The quick run is a smoke test (a
784-200-10 net, 1/64 only, one seed).

Decision rules (fixed before the converged run; test accuracy from the files, paired by seed,
95 % t-intervals): at each compression, ``hashed_pool - hashed`` is *better* / *worse* if its
interval lies above / below 0, else *tied*; the paper's claim "hashed beats equal-size dense
at 1/64" holds on a net iff ``hashed - nn`` at 1/64 is *better*.

Expected: at 1/64 ``hashed`` beats ``nn`` on the 3-layer net (the paper's claim).
"""

from __future__ import annotations

import dataclasses

#: hidden and output widths of each net
NETS = {"3-layer": (1000, 10), "5-layer": (1000, 1000, 1000, 10), "3-layer-small": (200, 10)}
METHODS = ("hashed", "hashed_pool", "nn", "lrd", "rer")


@dataclasses.dataclass(frozen=True)
class Config:
    nets: tuple[str, ...] = ("3-layer", "5-layer")
    compressions: tuple[float, ...] = (1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64)
    methods: tuple[str, ...] = METHODS
    epochs: tuple[tuple[str, int], ...] = (("3-layer", 10), ("5-layer", 5), ("3-layer-small", 1))
    seeds: int = 3
    train_examples: int | None = None  # all
    test_examples: int | None = None  # all
    lr: float = 1e-3
    final_lr_fraction: float = 0.01
    batch_size: int = 100
    quick: bool = False

    def units(self, dataset: str, seed: int) -> list[dict]:
        epochs = dict(self.epochs)
        return [{"kind": "point", "net": net, "features": list(NETS[net]), "method": method, "compression": c,
                 "epochs": epochs[net], "train_examples": self.train_examples, "test_examples": self.test_examples,
                 "lr": self.lr, "final_lr_fraction": self.final_lr_fraction, "batch_size": self.batch_size,
                 "dataset": dataset, "seed": s}
                for net in self.nets for s in range(seed, seed + self.seeds) for c in self.compressions
                for method in self.methods]  # net outermost: the 3-layer net's seeds finish first


def full() -> Config:
    return Config()


def quick() -> Config:
    return Config(nets=("3-layer-small",), compressions=(1 / 64,), train_examples=2000, test_examples=2000,
                  quick=True, seeds=1)


def smoke() -> Config:
    return Config(nets=("3-layer-small",), compressions=(1 / 8,), train_examples=300, test_examples=300,
                  quick=True, seeds=1)
