"""The quantization_bits study's config: every unit of work as a config mapping.

Run: ``wsjax run quantization_bits [--quick] [--seed N]`` (or ``python -m
experiments.quantization_bits``); writes ``experiments/results/quantization_bits/``
(``rows.jsonl``, one ``artifacts/<key>.wsjax`` per unit, ``results.md``, ``results.json``,
``accuracy_vs_bytes.png``). Resumable: every finished unit is a row of the store and is
never recomputed. ``--seed N`` runs seeds N, N+1, N+2.

Data: Fashion-MNIST; the first 55,000 training images fine-tune, the last 5,000 validate (the
learning rates below were chosen on them), the 10,000 test images only score. (The committed
dense nets of the baseline store were trained on all 60,000 training images; the validation
accuracy of a fine-tuned net is therefore not independent of its starting point.)

Units, per model and seed (seeds 0, 1, 2; every seed fixes the minibatch order, and the
starting net is the committed dense net of that seed, :func:`wsjax.study.pretrained`):

* ``reference``: the dense net itself, stored as float32 (the compression baseline).
* ``binary`` (1 bit): BinaryConnect's deterministic ``W = alpha sgn(theta)`` with XNOR-Net's
  per-layer ``alpha = mean|theta|`` (LeNet-300-100 has no batch norm, so ``alpha = 1`` would
  blow the activations up); the latents clipped to [-1, 1] after each step (``clip_latent``).
  ``binary_stochastic`` (LeNet-300-100): stochastic binarisation in training, one draw per
  step (``fit(loss_takes_key=True)``), on BinaryConnect's latent scale: a trained net's
  weights are far below 1, where ``p(+1) = hard_sigmoid(theta)`` is about 1/2 for all of
  them, so the latents start as ``theta / (2 mean|theta|)`` per layer (mean ``|theta|`` 1/2,
  as BinaryConnect's uniform init) with ``alpha`` fixed at the dense layer's
  ``mean|theta|`` (:func:`~experiments.quantization_bits.methods.binaryconnect_latents`);
  stored, and scored, as its deterministic sign. ``binary_scratch`` (LeNet-300-100): the
  deterministic binary net trained from a fresh initialisation, as BinaryConnect did, for
  ``scratch_epochs``.
* ``ternary`` (2 bits nominal, stored at 1.6 bits: five trits a byte): TWN, threshold
  0.7 mean|theta|, per-layer alpha.
* ``uniform`` k-bit, k = 2..8 (LeNet-5: 2, 3, 4, 6, 8): symmetric straight-through
  quantization, one fixed step per layer, ``max|theta| / (2**(k-1) - 1)``; ``lsq``: the same
  with LSQ's learned step (k = 2..8 on LeNet-300-100, 2 and 4 on LeNet-5).
* ``kmeans`` k = 1..8 (LeNet-5: 1, 2, 3, 4, 6, 8): Deep Compression's trained quantization,
  ``2**k`` centroids per layer (linear init), centroids and biases retrained; ``kmeans_pruned``: the same on the
  deep_compression study's pruned net at ``prune_scale`` x Han's kept fractions (x2: 16.4%
  of LeNet-300-100's and 16.8% of LeNet-5's weights kept, that study's largest ratio within
  0.5 points), :func:`wsjax.study.pruned_nets.pruned_net` with that study's recipe (levels
  x4 then x2, 6 resp. 5 epochs each). Its committed store has the levels' rows but not their
  params, so the levels are retrained into this study's store (the committed row's accuracy
  is kept beside ours as a check). Both stored by the weights codec (dense-codebook or
  relative-index sparse records, Huffman-coded where smaller); ``fixed_bytes`` is the same
  file at fixed width.

Only kernels are quantized (every layer, the first and the last included, at the same
bits); biases stay float32 and are counted in the file. ``bits`` in a unit is the nominal
width; ``bits_per_weight`` is measured, ``8 * file bytes / kernel weights``, and
``bits_per_kernel_weight`` counts only the kernels' records. Compression is ``4 * params /
file bytes``. Every unit's test accuracy is that of the net loaded from its file; for the
lowbit codec the loaded weights must equal the in-memory ones bit for bit and their
accuracies must be equal (the run raises otherwise), likewise for the weights codec
(:func:`wsjax.study.store_and_reload`).

Recipe: Adam, cosine decay from ``lr`` to ``final_lr_fraction`` (0.05) x ``lr``, batch 100,
the last epoch's net scored; ``epochs`` per model: LeNet-300-100 10, LeNet-5 3 (all methods
alike, the k-means centroids too). Learning rates per method (:data:`LR`): the highest mean
validation accuracy over the piloted bits in a 3-epoch pilot on seed 0 of LeNet-300-100
(validation accuracy %, lr 1e-4 / 3e-4 / 1e-3; the dense net saw these images, hence the
high values, and a smaller rate keeps more of that: the pilot is biased towards it)::

    binary            91.40 / 92.44 / 92.44      ternary        94.24 / 94.26 / 93.40
    uniform 2 bits    18.10 / 54.04 / 76.06      uniform 4      96.18 / 96.02 / 94.86
    lsq 2 bits        95.12 / 95.32 / 94.60      lsq 4          96.78 / 96.60 / 95.64
    kmeans 2 bits     92.84 / 93.12 / 93.76      kmeans 4       96.78 / 96.86 / 96.82
    binary_stochastic (lr 1e-3 / 3e-3 / 1e-2 / 3e-2)   77.76 / 80.22 / 83.30 / 82.76
    binary_scratch (10 epochs, lr 3e-4 / 1e-3 / 3e-3)  86.82 / 88.52 / 88.46

(``binary_stochastic`` drawn from the trained net's raw latents, before the BinaryConnect
scale above, reached 27-51%.)

Decision rules (fixed before any run; means and sample stds over the seeds, test accuracy):

* A *matches* B iff mean(A) >= mean(B) - (std(A) + std(B)).
* k-bit STE matches k-means at k bits iff ``uniform`` (and, separately, ``lsq``) at k
  matches ``kmeans`` at k; "STE matches k-means at the same bits" iff it does at every k
  where both were run.
* Binary is within ``BINARY_POINTS`` (1.0) points of dense iff mean(dense) - mean(binary)
  <= 1.0. BinaryConnect's shape (MNIST: binary 1.29% error, the float net without
  regulariser 1.30%) holds iff the deterministic binary LeNet-300-100 is within 1.0 point
  of its dense net. Stochastic binarisation helps iff mean(stochastic) - mean(deterministic)
  > std(stochastic) + std(deterministic) (paper: 1.18% against 1.29%).
* A method *keeps accuracy* at k bits iff mean(dense) - mean(method, k) <= ``BUDGET`` (0.5
  points, deep_compression's budget); its cheapest such cell is the one of fewest stored bytes.
* Pareto front: a (method, bits) cell is off it iff another cell has no more mean stored
  bytes and no lower mean accuracy, and fewer bytes or a higher accuracy.

Expected: the binary LeNet-300-100 file about 35.5 kB (about 1.07 bits per weight, 30x);
binary 1-2 points below dense on LeNet-300-100 (the 3-epoch pilot: 1.4), so BinaryConnect's
shape (within 1 point) does not quite hold on Fashion-MNIST with a small net without batch
norm, about 1 point on LeNet-5; stochastic binarisation clearly worse than deterministic
when fine-tuning (the pilot: about 8 points); the fixed max step falls far behind k-means at
2-3 bits (most weights round to zero) where LSQ recovers most of it, and matches k-means from
4 bits up; k-means within budget from about 3 bits; pruned k-means on the Pareto front at
the fewest bytes, binary and ternary off it.

Full run, sized for 2 idle CPU cores at about 2.2 hours: 171 units (LeNet-300-100: 35 a
seed, about 18 s each with compilation and scoring, 10 minutes a seed; LeNet-5: 22 a seed at
about 85 s each, 3 epochs of about 24 s plus compilation, k-means and scoring, 30 minutes a
seed) plus the pruned levels kmeans_pruned starts from (LeNet-5: 2 levels x 5 epochs, 4
minutes a seed). Measured: a 1-epoch LeNet-5 unit took 92-105 s of training (binary,
ternary, uniform, lsq, k-means alike) on this machine at a load of 8-10 on its 2 cores,
about 4x its idle time (22 s an epoch, the baseline's figure); the 3-epoch LeNet-300-100
pilot units took 7-13 s under the same load.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from wsjax.study import dense_config
from wsjax.study import pruned_nets

METHODS = ("binary", "binary_stochastic", "binary_scratch", "ternary", "uniform", "lsq", "kmeans", "kmeans_pruned")
LOWBIT = ("binary", "binary_stochastic", "binary_scratch", "ternary", "uniform", "lsq")
KMEANS = ("kmeans", "kmeans_pruned")
#: Adam peak learning rate per method (the pilot's choice on validation images, see the docstring)
LR = {"binary": 1e-3, "binary_stochastic": 1e-2, "binary_scratch": 1e-3, "ternary": 3e-4, "uniform": 1e-3,
      "lsq": 3e-4, "kmeans": 1e-3, "kmeans_pruned": 1e-3}


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple[str, ...] = ("lenet300100", "lenet5")
    seeds: int = 3
    #: fine-tuning epochs per model (every method alike)
    epochs: tuple[tuple[str, int], ...] = (("lenet300100", 10), ("lenet5", 3))
    scratch_epochs: int = 30
    lr: tuple[tuple[str, float], ...] = tuple(LR.items())
    final_lr_fraction: float = pruned_nets.RETRAIN_ALPHA
    batch_size: int = 100
    scale: str = "layer"
    #: the bits of the k-bit methods per model (LeNet-5 skips 5 and 7 to fit the time budget)
    uniform_bits: tuple[tuple[str, tuple[int, ...]], ...] = (("lenet300100", tuple(range(2, 9))),
                                                             ("lenet5", (2, 3, 4, 6, 8)))
    lsq_bits: tuple[tuple[str, tuple[int, ...]], ...] = (("lenet300100", tuple(range(2, 9))), ("lenet5", (2, 4)))
    kmeans_bits: tuple[tuple[str, tuple[int, ...]], ...] = (("lenet300100", tuple(range(1, 9))),
                                                            ("lenet5", (1, 2, 3, 4, 6, 8)))
    stochastic_models: tuple[str, ...] = ("lenet300100",)
    scratch_models: tuple[str, ...] = ("lenet300100",)
    #: kmeans_pruned's level of the deep_compression trajectory and overrides of its recipe
    prune_scale: float = 2.0
    prune: tuple[tuple[str, Any], ...] = ()
    train_examples: int = 55_000
    validation: int = 5_000
    test_examples: int | None = None  # all
    #: the dense nets' recipe overrides (None: :func:`wsjax.study.dense_config`'s)
    dense_epochs: int | None = None
    dense_train_examples: int | None = None
    quick: bool = False

    def __post_init__(self):
        unknown = set(self.models) - set(pruned_nets.HAN_KEPT)
        if unknown:
            raise ValueError(f"quantization_bits runs {sorted(pruned_nets.HAN_KEPT)}, not {sorted(unknown)}")
        missing = set(METHODS) - set(dict(self.lr))
        if missing:
            raise ValueError(f"no learning rate for {sorted(missing)}")
        if not set(self.models) <= set(dict(self.epochs)):
            raise ValueError(f"epochs must name every model of {self.models}")
        for name, lo in (("kmeans_bits", 1), ("uniform_bits", 2), ("lsq_bits", 2)):
            if not all(lo <= b <= 8 for _, bits in getattr(self, name) for b in bits):
                raise ValueError(f"{name} must lie in {lo}..8, got {getattr(self, name)}")

    def grid(self, model: str) -> list[tuple[str, int]]:
        """``(method, nominal bits)`` of every quantized unit of ``model``."""
        cells = [("binary", 1)]
        cells += [("binary_stochastic", 1)] if model in self.stochastic_models else []
        cells += [("binary_scratch", 1)] if model in self.scratch_models else []
        cells += [("ternary", 2)] + [("uniform", b) for b in dict(self.uniform_bits).get(model, ())]
        cells += [("lsq", b) for b in dict(self.lsq_bits).get(model, ())]
        return cells + [(m, b) for m in KMEANS for b in dict(self.kmeans_bits).get(model, ())]

    def dense(self, model: str, dataset: str, seed: int) -> dict:
        return dense_config(model, dataset, seed, self.quick, self.dense_epochs, self.dense_train_examples)

    def data(self) -> dict:
        return {"train_examples": self.train_examples, "validation": self.validation,
                "test_examples": self.test_examples}

    def prune_overrides(self) -> dict:
        """The overrides of :func:`wsjax.study.pruned_nets.pruned_config` (recipe, data, dense net)."""
        dense = {k: v for k, v in (("dense_epochs", self.dense_epochs),
                                   ("dense_train_examples", self.dense_train_examples)) if v is not None}
        return {**dict(self.prune), **dense}

    def pruned(self, model: str, dataset: str, seed: int) -> dict:
        """The config of the pruned level that ``kmeans_pruned`` starts from."""
        return pruned_nets.pruned_config(model, dataset, seed, self.quick, self.prune_scale, **self.prune_overrides())

    def reference(self, model: str, dataset: str, seed: int) -> dict:
        return {"kind": "reference", "model": model, "dataset": dataset, "seed": seed, "method": "dense", "bits": 32,
                "data": self.data(), "dense": self.dense(model, dataset, seed)}

    def unit(self, model: str, method: str, bits: int, dataset: str, seed: int) -> dict:
        """One quantized net: its whole recipe is its key."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {METHODS}")
        scratch = method == "binary_scratch"
        c = {"kind": "quantized", "model": model, "method": method, "bits": int(bits), "dataset": dataset,
             "seed": seed, "epochs": self.scratch_epochs if scratch else dict(self.epochs)[model],
             "lr": dict(self.lr)[method], "final_lr_fraction": self.final_lr_fraction,
             "batch_size": self.batch_size, "data": self.data(), "dense": self.dense(model, dataset, seed),
             "start": "scratch" if scratch else "dense"}
        if method in LOWBIT:
            c["scale"] = self.scale
        else:
            c["init"] = "linear"
        if method == "binary_stochastic":
            c["latents"] = "binaryconnect: theta / (2 mean|theta|), alpha fixed"  # methods.binaryconnect_latents
        if method == "kmeans_pruned":
            c["pruned"] = self.pruned(model, dataset, seed)
        return c

    def units(self, dataset: str, seed: int) -> list[dict]:
        """Every unit of seeds ``seed .. seed + seeds - 1``: per model and seed the reference,
        then every quantized net."""
        out = []
        for model in self.models:
            for s in range(seed, seed + self.seeds):
                out.append(self.reference(model, dataset, s))
                out += [self.unit(model, m, b, dataset, s) for m, b in self.grid(model)]
        return out


def full() -> Config:
    return Config()


def quick() -> Config:
    """Under a minute on an idle 2-core machine: LeNet-300-100 from the quick dense net (2
    epochs on 10,000 images), binary, ternary, 4-bit STE and 2-bit k-means with and without
    pruning (Han's sparsity, the deep_compression quick level), one seed, 1 epoch on 9,000
    images, 2,000 test images."""
    return Config(models=("lenet300100",), seeds=1, epochs=(("lenet300100", 1),), scratch_epochs=1,
                  uniform_bits=(("lenet300100", (4,)),), lsq_bits=(), kmeans_bits=(("lenet300100", (2,)),),
                  stochastic_models=(), scratch_models=(),
                  prune_scale=1.0, train_examples=9000, validation=1000, test_examples=2000, quick=True)


def smoke() -> Config:
    """Seconds, for the test suite: LeNet-300-100 from a tiny dense net (1 epoch on 500
    images), every method once at one width, 500 training images, 1 epoch."""
    prune = (("levels", (1.0,)), ("prune_epochs", 1), ("pool", 600), ("validation", 100), ("test_examples", 200))
    return Config(models=("lenet300100",), seeds=1, epochs=(("lenet300100", 1),), scratch_epochs=1,
                  uniform_bits=(("lenet300100", (2,)),), lsq_bits=(("lenet300100", (3,)),),
                  kmeans_bits=(("lenet300100", (1,)),), batch_size=50,
                  prune_scale=1.0, prune=prune, train_examples=500, validation=100, test_examples=200,
                  dense_epochs=1, dense_train_examples=500, quick=True)
