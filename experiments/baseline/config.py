"""The baseline study's config.

Run: ``wsjax run baseline [--quick]`` (or ``python -m experiments.baseline``); writes
``experiments/results/baseline/`` (``rows.jsonl``, the nets as ``artifacts/<key>.msgpack``,
``results.md``, ``curves.png``).

Recipe: Adam, cosine decay from 1e-3 to 1e-5, batch 100, 30 epochs for LeNet-300-100 and 12
for LeNet-5 on all 60,000 training images (quick: 2 and 1 epochs on 10,000).

Expected (full run, Fashion-MNIST, 2 CPU cores): LeNet-300-100 >= 0.885 and LeNet-5 >= 0.905
test accuracy.
"""

from __future__ import annotations

import dataclasses

from wsjax import study


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple[str, ...] = ("lenet300100", "lenet5")
    quick: bool = False
    #: overrides of the dense recipe (None: the recipe's own, see wsjax.study.dense_config)
    epochs: int | None = None
    train_examples: int | None = None
    #: the accuracy each full-run net is expected to reach (the report's verdict)
    expected: tuple[tuple[str, float], ...] = (("lenet300100", 0.885), ("lenet5", 0.905))

    def units(self, dataset: str, seed: int) -> list[dict]:
        return [study.dense_config(m, dataset, seed, self.quick, self.epochs, self.train_examples)
                for m in self.models]


def full() -> Config:
    return Config()


def quick() -> Config:
    return Config(quick=True)


def smoke() -> Config:
    """The test suite's version: one epoch on 500 images."""
    return Config(quick=True, epochs=1, train_examples=500)
