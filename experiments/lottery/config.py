"""The lottery-ticket study's config.

Run: ``wsjax run lottery [--quick] [--models lenet300100 lenet5] [--seed S]`` (or
``python -m experiments.lottery``); writes ``experiments/results/lottery/`` (``rows.jsonl``,
an ``artifacts/<key>.npz`` of masks per row and a ``<key>.theta.npz`` per dense net, ``results.md``, ``accuracy_vs_weights.png``,
``early_stop_vs_weights.png``). Every (model, round, seed, arm) is a row keyed by its full
config, so a killed run resumes at the first unfinished one (``--models lenet300100`` runs
one model; the report covers every model the store has rows for).

Cost on the shared 2-core CPU: LeNet-300-100 33 s a training on average (measured over the
first 94 of the full run's 174, beside one other study) = about 1.6 h; LeNet-5 was measured
at 6-12 min a training (45-90 s an epoch, load 6-9, before wsjax.nn) x 135 trainings = 13-27 h. ``--quick``: under a
minute (57 s measured at load 6).

Recipe (Frankle & Carbin's, on 2 CPU cores): Adam at 1.2e-3 (constant), batch 60, the first
55,000 training images (the last 5,000 are the validation split), per-round rates 20 %
(hidden) / 10 % (output) on LeNet-300-100 and 10 % (convolutions) / 20 % (fully connected) /
10 % (output) on LeNet-5, rewinding to ``theta_0``. A fixed budget per training of 20 epochs
(18,320 iterations; the paper: 50,000) for LeNet-300-100 and 8 epochs (7,328) for LeNet-5,
whose step costs about 10-20 times LeNet-300-100's here; validation every quarter epoch
(LeNet-300-100) or half epoch (LeNet-5). The budgets converge: in one dense training each
(seed 0) the validation loss was lowest at iteration 5,267 (LeNet-300-100) and 2,748
(LeNet-5), and the best validation accuracy was less than half a point above the value at
about iteration 8,000 (LeNet-300-100) and 3,200 (LeNet-5). Early stopping: the parameters at the highest
validation accuracy (and, the paper's criterion, at the lowest validation loss) are scored
once on the test set; the step is the early-stopping iteration. Each round prunes the
ticket's weights at the end of its budget. 19 rounds for LeNet-300-100
(1.49 % of the weights remain) and 22 for LeNet-5 (1.38 %); seeds S, S+1, S+2 (the seed
draws ``theta_0`` and the data order). Controls every round on LeNet-300-100, every second
round on LeNet-5 (to halve its cost).

Expected (the paper's claims on MNIST): tickets at 10-21 % of the weights match or beat the
dense net and stop earlier; re-initialised tickets and random masks do worse as pruning goes on.

Decision rules, written before the run (means and sample stds over seeds; "at density d"
means the rows of the round whose weights remaining is d):

* tickets *match* the dense net at d if their mean test accuracy >= the dense mean minus the
  dense std, and *beat* it if it exceeds the dense mean plus the dense std;
* tickets *stop earlier* at d if their mean early-stopping iteration is below the dense mean
  minus the dense std;
* a control (re-init, random mask) is *worse* at d if the ticket mean exceeds the control
  mean by more than the two stds together; Liu et al.'s reading (scratch training matches)
  holds at d when it is not;
* a paper's claim holds on the band 10-21.2 % (rounds 7-10 of LeNet-300-100, 8-11 of
  LeNet-5) when its rule holds at every round in the band that has the arm.

The rules are applied twice: with test accuracy and iteration at the best validation
accuracy (the headline), and at the lowest validation loss (Frankle & Carbin's criterion).

The 95 % confidence intervals in the report are Student-t intervals of the mean over seeds.
"""

from __future__ import annotations

import dataclasses

from wsjax.pruning import lottery

MODELS = ("lenet300100", "lenet5")
ARMS = ("ticket", "reinit", "random_mask")
RATES = {"lenet300100": lottery.LENET300100_RATES, "lenet5": lottery.LENET5_RATES}


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple[str, ...] = MODELS
    seeds: int = 3
    rounds: tuple[tuple[str, int], ...] = (("lenet300100", 19), ("lenet5", 22))
    epochs: tuple[tuple[str, int], ...] = (("lenet300100", 20), ("lenet5", 8))
    evals_per_epoch: tuple[tuple[str, int], ...] = (("lenet300100", 4), ("lenet5", 2))
    control_every: tuple[tuple[str, int], ...] = (("lenet300100", 1), ("lenet5", 2))
    arms: tuple[str, ...] = ARMS
    rewind_iteration: int = 0  # 0: theta_0 (Frankle & Carbin); k > 0: theta_k (late rewinding)
    lr: float = 1.2e-3
    batch_size: int = 60
    validation: int = 5000
    train_examples: int | None = None  # all 60,000 (validation included)
    test_examples: int | None = None
    loop: str | None = None  # None: wsjax.study.loop_for(model); not part of a row's key
    quick: bool = False

    def only(self, models) -> "Config":
        unknown = sorted(set(models) - set(MODELS))
        if unknown:
            raise ValueError(f"unknown models {unknown}; known: {list(MODELS)}")
        return dataclasses.replace(self, models=tuple(m for m in MODELS if m in models))

    def unit(self, model: str, dataset: str, seed: int, r: int, arm: str) -> dict:
        """The full config of one training: the key of its row (``rates`` as ``[regex, rate]``
        pairs: their order matters, and a key hashes mappings with sorted keys)."""
        return {"kind": "lottery", "model": model, "dataset": dataset, "seed": seed, "round": r, "arm": arm,
                "rates": [[rx, p] for rx, p in RATES[model].items()], "rewind_iteration": self.rewind_iteration,
                "epochs": dict(self.epochs)[model], "evals_per_epoch": dict(self.evals_per_epoch)[model],
                "optimizer": "adam", "lr": self.lr, "batch_size": self.batch_size, "validation": self.validation,
                "train_examples": self.train_examples, "test_examples": self.test_examples}

    def units(self, dataset: str, seed: int) -> list[dict]:
        """Per model, round by round (all seeds of a round before the next): the dense net at
        round 0, then the ticket and, on control rounds, the controls."""
        out = []
        for model in self.models:
            rounds, every = dict(self.rounds)[model], dict(self.control_every)[model]
            for r in range(rounds + 1):
                arms = ("dense",) if r == 0 else [a for a in self.arms if a == "ticket" or r % every == 0
                                                  or r == rounds]
                out += [self.unit(model, dataset, s, r, a) for s in range(seed, seed + self.seeds) for a in arms]
        return out


def full() -> Config:
    return Config()


def quick() -> Config:
    """About a minute on 2 cores: LeNet-300-100 on 5,000 images, 2 seeds, 2 rounds, 2 epochs."""
    return Config(models=("lenet300100",), seeds=2, rounds=(("lenet300100", 2),), epochs=(("lenet300100", 2),),
                  control_every=(("lenet300100", 2),), validation=1000, train_examples=5000, test_examples=2000,
                  loop="python", quick=True)


def smoke() -> Config:
    """The test suite's: 600 images, 1 epoch, 2 rounds, late rewinding to step 3."""
    return Config(models=("lenet300100",), seeds=1, rounds=(("lenet300100", 2),), epochs=(("lenet300100", 1),),
                  evals_per_epoch=(("lenet300100", 2),), control_every=(("lenet300100", 2),), rewind_iteration=3,
                  validation=200, train_examples=600, test_examples=300, loop="python", quick=True)
