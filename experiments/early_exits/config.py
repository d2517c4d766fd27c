"""The early-exit study's config.

Run: ``wsjax run early_exits [--quick] [--seed N]`` (or ``python -m experiments.early_exits``);
writes ``experiments/results/early_exits/`` (``rows.jsonl``, one ``artifacts/<key>.wsjax`` per
trained net, ``results.md``, ``results.json``, ``accuracy_vs_macs.png``, ``time_vs_macs.png``).
Resumable: every finished unit is a row of the store and is never recomputed.

Data: Fashion-MNIST; the first 55,000 training images train every net, the last 5,000 are the
validation set on which every choice is made (the threshold that meets a compute budget);
the 10,000 test images only score.

Nets. The multi-exit net is :class:`wsjax.models.MultiExitCNN` with widths (16, 32, 64):
three 3x3 conv blocks (a 2x2 max-pool before blocks 1 and 2), each followed by an exit (global
average pooling, a dense layer to the 10 logits). Counted multiply-adds per example
(:func:`wsjax.models.early_exit.exit_costs`): leaving at exit 0, 1, 2 costs 113,056,
1,016,544 and 1,920,352 (6%, 53%, 100% of the full net). It is trained jointly on
``sum_i w_i CE_i`` (:func:`wsjax.models.joint_loss`): ``uniform`` weights 1 (MSDNet's choice)
and, as a variant, ``linear`` weights (i+1)/3 (the deeper exits count more). The separate
networks of the notes' alternative are single-exit CNNs (the same blocks and exit head,
:class:`experiments.early_exits.nets.SingleExitCNN`) trained alone on the plain cross-entropy:
``narrow`` nets, all three blocks with every width scaled by one factor, the largest whose
counted multiply-adds stay within 25%, 50% and 75% of the full multi-exit net's (one net per
budget: widths (8, 15, 31), (11, 22, 45), (14, 27, 55)); and ``truncated`` nets, the first 1
and all 3 blocks of the multi-exit net with one exit (exit 0's cost; depth 3 is the full net
trained alone, MSDNet's control for what the intermediate classifiers cost the last one).

Recipe (every net): Adam, cosine decay from 1e-2 to 1e-4 over 6 epochs, batch 100, the last
epoch's net scored (no early stopping: the schedule ends at a learning rate near zero; the
validation curve of every exit is kept in each row). The learning rate was chosen in a pilot
on validation data (20,000 training images, 3 epochs, the last exit's validation accuracy:
1e-3 0.72, 3e-3 0.78, 1e-2 0.83; the global-average-pooling exits learn slowly at 1e-3).
Seeds ``seed, seed+1, seed+2`` set the initialisation (the 'rbg' PRNG) and the minibatch
order; the nets of one seed index share the order.

Inference. An example leaves at the first exit whose confidence (largest softmax probability)
is at least the threshold ``t``. The sweep: ``t`` = 0, ``1 - 10**-k`` for k = 0.05, 0.10, ...,
6.00, and 2 (no early exit); every threshold's accuracy and counted average multiply-adds on
validation and on test (:func:`wsjax.models.accuracy_vs_macs`). For a budget of ``B``
multiply-adds the threshold is chosen on validation: the one with the highest validation
accuracy among those whose validation average stays within ``B`` (the cheaper on a tie); it is
then scored on test. Timing: for each seed of the uniform net, at the thresholds chosen for the
three budgets, the 'masked' and 'compacting' schedules of
:func:`wsjax.models.early_exit_predict`, the full net's jitted forward pass and each budget's
narrow net, run over the test set in batches of 1,000 in one process, interleaved over 7
repeats (the order rotated each round); the median of each is kept beside its counted (and,
for compacting, computed) multiply-adds.

Decision rules (fixed before any run; accuracy is test accuracy; ``mean``, ``std`` and the 95%
t-interval are over the seeds; the paired difference of a seed is taken within its net):

* The 50% line: with ``B`` = 50% of the full net's multi-exit multiply-adds, early exit is as
  good as the full net iff the 95% t-interval of the paired difference (early exit at ``B``
  minus the same net's last exit) lies above -0.5 points; better iff it lies above 0; worse
  otherwise.
* Matched compute: at each budget, with ``B`` = the narrow net's counted multiply-adds, one
  multi-exit net beats the separate nets iff mean(early exit) - mean(narrow) > std + std (the
  sum of the two stds); loses iff mean(narrow) - mean(early exit) > std + std; ties otherwise.
* MSDNet's budgeted-batch claim (one early-exit net beats separately trained nets at every
  budget) holds iff the multi-exit net beats the narrow nets at all three budgets.
* MSDNet's interference finding (intermediate classifiers cost the last one): holds iff
  mean(truncated depth 3) - mean(last exit) > std + std.
* The notes' "accuracy varies a lot" at intermediate classifiers: holds iff the last exit's
  mean accuracy is more than 5 points above the first exit's.
* The notes' "separate networks take a lot of storage": holds iff the stored bytes of one
  narrow net per budget plus the full-depth net alone exceed 1.5 times the one multi-exit
  net's file.
* Time: the compacting schedule realises the counted saving at a budget iff its median time
  divided by the full forward pass's is at most ``1 - (1 - m) / 2``, with ``m`` its counted
  average multiply-adds divided by the full net's (at least half the counted saving); the
  masked schedule is expected not to (it computes every exit).

Expected (from the pilot): exit 0 (one conv layer, global average pooling, a linear layer) is
weak (about 45%), exit 1 about 73% and the last about 85%; exit 1 costs 53%, so at 50% of the
multiply-adds many examples must leave at the weak exit 0 and early exit is worse than the full
net by a few points; the narrow nets (the 25% one reached 79% in the pilot) beat early exit at
25% and 50% and tie or win at 75%, so MSDNet's claim does not hold for this lite net without
multi-scale features or stronger exit heads; joint training helps the last exit (pilot: 83%
against 82% for the full net alone: deep supervision), so the interference finding does not
hold; the notes' two remarks hold (exit accuracies far apart; the separate nets about 2.5x the
storage); compacting realises part of the counted saving, masked none.

Full run: about 1.5 hours on the 2 CPU cores at load 5 (2 hours at load 10; under an hour
idle). Measured per-epoch times on 5,000 images at load 10: the multi-exit net 7.0 s, the
narrow nets 4.4, 6.0 and 6.0 s, the truncated nets 1.9 (depth 1) and 3.4 s (depth 3); at load
5 the multi-exit net took 5.3 s. Per seed and epoch of 55,000 images: 2 multi-exit nets + 3
narrow + 2 truncated = 36 s x 11 = 390 s at load 10; x 3 seeds x 6 epochs = 7,000 s (about
5,300 s at load 5). The threshold sweeps and the timing units add about a minute a seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: joint-loss weights per exit, by name (n exits)
WEIGHTINGS = {"uniform": lambda n: [1.0] * n, "linear": lambda n: [(i + 1) / n for i in range(n)]}
FAMILIES = ("narrow", "truncated")


def _check(cfg: "Config") -> None:
    if not cfg.widths or any(int(w) != w or w < 1 for w in cfg.widths):
        raise ValueError(f"widths must be positive ints, got {cfg.widths!r}")
    unknown = [w for w in cfg.weightings if w not in WEIGHTINGS]
    if unknown or not cfg.weightings:
        raise ValueError(f"weightings must be some of {sorted(WEIGHTINGS)}, got {cfg.weightings!r}")
    if cfg.weightings[0] != "uniform":
        raise ValueError("the first weighting must be 'uniform' (MSDNet's; the timing and the claims use it)")
    if any(not 0 < b < 1 for b in cfg.budgets):
        raise ValueError(f"budgets are fractions of the full net's multiply-adds in (0, 1), got {cfg.budgets!r}")
    if any(not 1 <= d <= len(cfg.widths) for d in cfg.depths):
        raise ValueError(f"depths must be between 1 and {len(cfg.widths)}, got {cfg.depths!r}")
    if cfg.seeds < 1 or cfg.epochs < 1 or cfg.repeats < 1:
        raise ValueError("seeds, epochs and repeats must be positive")


@dataclasses.dataclass(frozen=True)
class Config:
    widths: tuple[int, ...] = (16, 32, 64)
    weightings: tuple[str, ...] = ("uniform", "linear")
    budgets: tuple[float, ...] = (0.25, 0.5, 0.75)
    depths: tuple[int, ...] = (1, 3)
    seeds: int = 3
    epochs: int = 6
    lr: float = 1e-2
    final_lr_fraction: float = 0.01
    batch_size: int = 100
    train_examples: int = 55_000
    validation: int = 5_000
    test_examples: int | None = None  # all
    threshold_decades: float = 6.0
    threshold_steps: int = 120
    timing_batch: int = 1000
    repeats: int = 7
    quick: bool = False

    def __post_init__(self):
        _check(self)

    def thresholds(self) -> list[float]:
        """0, ``1 - 10**-k`` for k on an even grid of ``threshold_steps`` up to
        ``threshold_decades``, and 2 (above any confidence: no early exit)."""
        ks = np.linspace(self.threshold_decades / self.threshold_steps, self.threshold_decades, self.threshold_steps)
        return [0.0] + [float(1 - 10.0 ** -k) for k in ks] + [2.0]

    def _recipe(self, dataset: str, seed: int) -> dict:
        return {"epochs": self.epochs, "lr": self.lr, "final_lr_fraction": self.final_lr_fraction,
                "batch_size": self.batch_size, "train_examples": self.train_examples,
                "validation": self.validation, "test_examples": self.test_examples, "dataset": dataset, "seed": seed}

    def multi_exit_units(self, dataset: str, seed: int) -> list[dict]:
        """One jointly trained multi-exit net per weighting and seed."""
        n = len(self.widths)
        return [{"kind": "multi_exit", "widths": list(self.widths), "weighting": w, "weights": WEIGHTINGS[w](n),
                 "threshold_decades": self.threshold_decades, "threshold_steps": self.threshold_steps,
                 **self._recipe(dataset, seed + i)}
                for w in self.weightings for i in range(self.seeds)]

    def separate_units(self, dataset: str, seed: int, image_shape) -> list[dict]:
        """The notes' alternative: a narrow net per budget and a truncated net per depth, per seed."""
        from experiments.early_exits import nets

        shapes = [("narrow", b, None, nets.narrow_widths(self.widths, b, tuple(image_shape))) for b in self.budgets]
        shapes += [("truncated", None, d, list(self.widths[:d])) for d in self.depths]
        return [{"kind": "separate", "family": f, "budget": b, "depth": d, "widths": list(w),
                 **self._recipe(dataset, seed + i)}
                for f, b, d, w in shapes for i in range(self.seeds)]

    def timing_units(self, nets_: list[dict], separate: list[dict]) -> list[dict]:
        """One timing unit per seed of the uniform multi-exit net, with that seed's narrow nets."""
        out = []
        for net in nets_:
            if net["weighting"] != "uniform":
                continue
            narrow = [s for s in separate if s["family"] == "narrow" and s["seed"] == net["seed"]]
            out.append({"kind": "timing", "net": net, "narrow": narrow, "budgets": list(self.budgets),
                        "schedules": ["masked", "compacting"], "batch": self.timing_batch, "repeats": self.repeats})
        return out


def full() -> Config:
    return Config()


def quick() -> Config:
    """Under a minute on an idle 2-core machine: the uniform net and the 50% narrow net, one
    seed, two epochs on 5,000 images (50 steps an epoch: two whole scan chunks, one compile),
    a coarse threshold grid, two timing repeats on 1,000 test images."""
    return Config(weightings=("uniform",), budgets=(0.5,), depths=(), seeds=1, epochs=2, train_examples=5000,
                  validation=1000, test_examples=1000, threshold_steps=30, timing_batch=500, repeats=2, quick=True)


def smoke() -> Config:
    """Seconds, for the test suite: a tiny (4, 8, 8) net with uniform weights and the narrow
    net of one budget (no truncated nets: the same code as the narrow ones), two seeds, a few
    steps."""
    return Config(widths=(4, 8, 8), weightings=("uniform",), budgets=(0.5,), depths=(), seeds=2, epochs=1,
                  batch_size=50,
                  train_examples=300, validation=200, test_examples=200, threshold_steps=12, timing_batch=100,
                  repeats=2, quick=True)
