"""The depthwise separable study's config.

Run: ``wsjax run separable [--quick] [--seed N]`` (or ``python -m experiments.separable``);
writes ``experiments/results/separable/`` (``rows.jsonl``, one ``artifacts/<key>.wsjax`` per
trained net, ``results.md``, ``results.json``, ``accuracy_vs_cost.png``, ``time_ratios.png``,
``val_curves.png``). Resumable: every finished unit is a row of the store, never recomputed.

Data: Fashion-MNIST; the first 55,000 training images train every net, the last 5,000 are
the validation set (the curve kept in each row; no choice in this study is made on test
data); the 10,000 test images only score.

Arms (:class:`wsjax.models.SmallCNN`, 28x28x1 input: a standard 3x3 stem, then per stage
``s`` one block of width ``w_s`` and a ReLU, 2x2 max-pools between the stages, global
average pooling, a dense classifier; base widths (16, 32, 64), depth 1, 3x3 kernels):

* ``standard``: standard 3x3 blocks (the reference: every ratio is to it);
* ``separable``: depthwise separable blocks at the *same* stages, depth and widths;
* ``separable x3``: separable at width multiplier 3 (widths 48, 96, 192): about the standard
  net's parameters (30,010 vs 26,266) and multiply-adds (4.42M vs 3.73M), so the block kinds
  are also compared at (roughly) matched size;
* ``standard x0.5``: standard at width multiplier 0.5 (8, 16, 32): the standard block near the
  separable net's size (6,802 params and 0.96M MACs vs 4,378 and 0.67M).

(A separable x2 arm, 14,378 params and 2.14M MACs, matches nothing and cost as much time as
x3 here; it is left out to keep the full run within its budget.)

Every count (parameters; multiply-adds per example) is :func:`wsjax.models.counting.count`
of the linen model; the report checks each block's count against MobileNet's formula
(``k^2 N + N M`` vs ``k^2 N M`` per output position, ratio ``1/M + 1/k^2``) and counts seed
002's first layer (3x3x32 on 192x192, shared vs locally connected) with the same function.

Recipe: trained from scratch with Adam, cosine decay from 1e-3 to 1e-5 over ``epochs`` epochs,
batch 100 (``wsjax.train.fit``), the final epoch scored (no early stopping: the schedule
runs to a learning rate near zero; the validation curve shows the plateau). Seeds ``seed,
seed+1, seed+2`` set the initialisation and the minibatch order; the arms of one seed share
the minibatch order. Each trained net is written to a ``.wsjax`` file and scored as read back.

Timing (one unit, after the trainings, in the same process): every arm's jitted forward pass
(batch 256 test images, :func:`wsjax.pruning.timing.time_forward`) and training step
(batch 100: jitted ``value_and_grad`` of the cross-entropy and an Adam update, chained over
the step's own outputs), warmed up and compiled first, then ``timing_rounds`` rounds; a
round times every arm once (each measurement the mean of ``forward_inner`` /
``step_inner`` calls waited for with ``block_until_ready``), the arms' order rotated each
round. A time is the median over rounds; a ratio to ``standard`` is taken within each round
(the same machine load for both) and reported as the median with its quartiles.

Decision rules (fixed before any run; ``mean`` and ``std`` over the seeds of test accuracy):

* Counting: exact iff, for every block of every separable arm, the count's multiply-adds per
  output position are ``k^2 N + N M``, those of the standard block on the same input are
  ``k^2 N M``, and their ratio is exactly ``1/M + 1/k^2``.
* Accuracy cost at equal widths: ``cost = mean(standard) - mean(separable)`` in points.
  MobileNet's trade holds here in shape iff ``cost <= 1.1 + std(standard) + std(separable)``
  (the paper loses 1.1 points on ImageNet, 71.7 % -> 70.6 %) while the count gives the
  separable net at least 5x fewer multiply-adds.
* Matched size: an arm *matches* ``standard`` iff the two means differ by at most the sum of
  their stds; it is *better* (or *worse*) iff its mean is higher (lower) by more than that.
* Speed: with ``r`` an arm's per-round time ratio to ``standard``, the arm *runs faster here*
  iff the upper quartile of ``r`` is below 1, *slower* iff the lower quartile is above 1,
  else the difference is not measurable; "the smaller count runs faster here" is answered
  for every arm with fewer multiply-adds than ``standard``, for the forward pass and the
  training step. Its speed *follows the count* iff the counted ratio (multiply-adds) lies
  between the quartiles of ``r``.
* Convergence: an arm is trained to convergence iff its mean validation accuracy gains at
  most 0.5 points over the last quarter of the epochs.

Expected: the count cuts each 3x3 block's cost by 1/(1/M + 1/9) = 5.8-7.9x at widths 16-64
and 7.7-8.6x at 48-192 (MobileNet: 8-9x at its widths), the whole net's by 5.6x; at equal
widths the separable net loses one to two points; widened to the standard net's size (x3) it
matches it. On XLA:CPU the count does not carry over to time (the sizing runs below already
hint at it: an epoch of the separable net took as long as the standard one's, x3 2.6x
longer): the depthwise conv (k^2 shifted, scaled copies of the input, wsjax.models.separable)
moves memory rather than multiplying, so the separable nets are not faster in proportion to
their count, and the widened one is slower than the standard net at about its count.

Full run (3 seeds x 4 arms x 10 epochs, then the timing unit): about 1.3 hours on an idle
2-core machine (a background run on the same cores stretches it 2-5x). Estimated, not run:
one 55,000-image epoch (``fit``, scanned, from 2,500-image epochs) measured at 1-minute load
8-10 on the shared 2 cores took standard 121 s, separable 125 s, separable x3 320 s, standard
x0.5 39 s (605 s for all four); at that load LeNet-5's training step took 115 ms wall and
86 ms CPU against the 22.8 ms of ``benchmarks/RESULTS.md`` (load 2-3), so the load inflates
wall time about 5x (and the four arms' 534 CPU-seconds an epoch at least 1.9x). Scaled: 120-140
s for an epoch of all four arms, 3,600-4,200 s for 3 seeds x 10 epochs, plus about 20 s of
compiling and scoring per training and 1-2 minutes of timing. 10 epochs is the most that fits
~1.5 hours; the validation curves (kept in the rows) say whether they converged (the rule
above). ``--quick``: 147 s measured at load 10 (78 s of CPU), under a minute idle; its
accuracies (one epoch on 2,000 images) only check the pipeline.
"""

from __future__ import annotations

import dataclasses

from wsjax.models.separable import BLOCKS

#: ``(name, block, width multiplier)`` of every arm; ``REFERENCE`` is the standard net.
ARMS = (("standard", "standard", 1.0), ("separable", "separable", 1.0), ("separable x3", "separable", 3.0),
        ("standard x0.5", "standard", 0.5))
REFERENCE = "standard"


@dataclasses.dataclass(frozen=True)
class Config:
    arms: tuple[tuple[str, str, float], ...] = ARMS
    widths: tuple[int, ...] = (16, 32, 64)
    depth: int = 1
    kernel_size: int = 3
    seeds: int = 3
    epochs: int = 10
    lr: float = 1e-3
    final_lr_fraction: float = 0.01
    batch_size: int = 100
    train_examples: int = 55_000
    validation: int = 5_000
    test_examples: int | None = None  # all
    forward_batch: int = 256
    step_batch: int = 100
    timing_rounds: int = 15
    forward_inner: int = 5
    step_inner: int = 3
    quick: bool = False

    def __post_init__(self):
        names = [a[0] for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        for name, block, alpha in self.arms:
            if block not in BLOCKS:
                raise ValueError(f"arm {name!r}: block must be one of {BLOCKS}, got {block!r}")
            if not alpha > 0:
                raise ValueError(f"arm {name!r}: width multiplier must be > 0, got {alpha!r}")
        if (REFERENCE, "standard", 1.0) not in [tuple(a) for a in self.arms]:
            raise ValueError(f"the arms must include the reference {(REFERENCE, 'standard', 1.0)}, got {self.arms}")
        for field in ("seeds", "epochs", "batch_size", "timing_rounds", "forward_inner", "step_inner",
                      "forward_batch", "step_batch"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)!r}")

    def net(self, arm: tuple) -> dict:
        """The architecture of one arm (the part of a unit that makes the model)."""
        name, block, alpha = arm
        return {"arm": name, "block": block, "width_multiplier": float(alpha), "widths": list(self.widths),
                "depth": self.depth, "kernel_size": self.kernel_size}

    def train_units(self, dataset: str, seed: int) -> list[dict]:
        """Every (arm, seed) training: seeds ``seed .. seed + seeds - 1``, arms within a seed."""
        return [{"kind": "train", **self.net(arm), "epochs": self.epochs, "lr": self.lr,
                 "final_lr_fraction": self.final_lr_fraction, "batch_size": self.batch_size,
                 "train_examples": self.train_examples, "validation": self.validation,
                 "test_examples": self.test_examples, "dataset": dataset, "seed": seed + i}
                for i in range(self.seeds) for arm in self.arms]

    def timing_unit(self, dataset: str, seed: int) -> dict:
        """The one side-by-side timing of every arm (untrained nets: time does not depend on the values)."""
        return {"kind": "timing", "nets": [self.net(a) for a in self.arms], "forward_batch": self.forward_batch,
                "step_batch": self.step_batch, "rounds": self.timing_rounds, "forward_inner": self.forward_inner,
                "step_inner": self.step_inner, "lr": self.lr, "dataset": dataset, "seed": seed}


def full() -> Config:
    return Config()


def quick() -> Config:
    """About a minute on an idle 2-core machine (compiling is most of it): the standard and
    separable arms at widths (8, 16, 32), two seeds, one epoch on 2,000 images (validation and
    test sets of one size: one compiled evaluation per arm), three timing rounds."""
    return Config(arms=ARMS[:2], widths=(8, 16, 32), seeds=2, epochs=1, train_examples=2000, validation=1000,
                  test_examples=1000, forward_batch=128, step_batch=100, timing_rounds=3, forward_inner=2,
                  step_inner=2, quick=True)


def smoke() -> Config:
    """Seconds, for the test suite: the standard and separable arms at widths (4, 8), one
    seed (every training compiles its step: compiling is most of a smoke run), one epoch on
    300 images, two timing rounds on tiny batches (validation and test sets of one size: one
    compiled evaluation per arm)."""
    return Config(arms=ARMS[:2], widths=(4, 8), seeds=1, epochs=1, batch_size=50, train_examples=300,
                  validation=100, test_examples=100, forward_batch=32, step_batch=50, timing_rounds=2,
                  forward_inner=1, step_inner=1, quick=True)
