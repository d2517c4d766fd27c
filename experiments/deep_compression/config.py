"""The deep_compression study's config: every unit of work as a config mapping.

Run: ``wsjax run deep_compression [--quick]`` (or ``python -m experiments.deep_compression``);
writes ``experiments/results/deep_compression/`` (``rows.jsonl``, the pruned nets and the
compressed files under ``artifacts/``, ``results.md``, ``deep_compression.png``).

Recipe (full): the pruning trajectories of :mod:`wsjax.study.pruned_nets` (LeNet-300-100:
Han's kept fractions x 4, 2, 1.5, 1, 0.8, 6 epochs of retraining per level at 1e-3;
LeNet-5: x 3, 2, 1.4, 1, 0.85, 0.6, 0.4, 5 epochs per level at 5e-4); every level quantized
(8-bit conv / 5-bit fc, linear init) and retrained (3 epochs at 1e-4, both models; until
wsjax.nn made LeNet-5 fast on CPU its recipe was 1 epoch per level and 1 quantization epoch
on 20k images, the rows still in the store under their own keys); the centroid-initialisation study at 2..8 bits on the scale-1 LeNet-300-100 (1
epoch); fc layers at 4 and 3 bits at level x2; LeNet-300-100 narrowed to 150-50, 100-30 and
60-20 hidden units, fine-tuned 5 epochs. Validation: the last 5k training images.

Expected (full run, Fashion-MNIST; seed 0 of the 1-epoch LeNet-5 recipe): at Han's sparsity
about 36x (LeNet-300-100) and 35x (LeNet-5) with 1.3-1.5 points lost; within 0.5 points
about 22x and 21x (kept x2). The 5-epoch LeNet-5 recipe should lose less at each level. Paper
(MNIST): 40x and 39x at no loss. The quick run (Han's sparsity only, 1 epoch) is a smoke test.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from wsjax.sharing.kmeans import INITS
from wsjax.study import pruned_nets

#: Retraining of the quantized centroids per model (epochs, Adam peak rate, images).
QUANT_FULL = {"lenet300100": dict(quant_epochs=3, quant_lr=1e-4, quant_examples=None),
              "lenet5": dict(quant_epochs=3, quant_lr=1e-4, quant_examples=None)}
QUANT_QUICK = {m: dict(quant_epochs=1, quant_lr=1e-4, quant_examples=None) for m in QUANT_FULL}
STAGES = ("dense", "pruned", "pruned+quantized", "pruned+quantized+huffman")
HAN_FC_BITS, HAN_CONV_BITS = 5, 8


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple[str, ...] = ("lenet300100", "lenet5")
    quick: bool = False
    #: the seeds the report gathers from the store (each run adds its own ``--seed``)
    seeds: tuple[int, ...] = (0, 1, 2)
    #: overrides of the pruning recipe and data (:func:`wsjax.study.pruned_nets.pruned_config`)
    prune: dict = dataclasses.field(default_factory=dict)
    quant: dict = dataclasses.field(default_factory=lambda: QUANT_FULL)
    #: centroid initialisation study (Han Sec. 3.2): inits x bits, retrained epochs (0: none)
    init_inits: tuple[str, ...] = INITS
    init_bits: tuple[int, ...] = tuple(range(2, 9))
    init_epochs: int = 1
    init_lr: float = 1e-4
    #: fewer fc bits at one level of the trajectory (conv layers keep 8)
    bits_models: tuple[str, ...] = ("lenet300100", "lenet5")
    bits_scale: float = 2.0
    bits_fc: tuple[int, ...] = (4, 3)
    #: structured neuron pruning of LeNet-300-100, fine-tuned, then timed
    neuron_widths: tuple[tuple[int, int], ...] = ((150, 50), (100, 30), (60, 20))
    neuron_epochs: int = 5
    neuron_lr: float = 5e-4
    timing_batches: tuple[int, ...] = (1, 100, 10_000)
    timing_repeats: int = 5

    def level(self, model: str, dataset: str, seed: int, scale: float) -> dict:
        return pruned_nets.pruned_config(model, dataset, seed, self.quick, scale, **self.prune)

    def levels(self, model: str, dataset: str, seed: int) -> list[float]:
        last = self.prune.get("levels", (pruned_nets.QUICK if self.quick else pruned_nets.FULL)[model]["levels"])
        return self.level(model, dataset, seed, float(last[-1]))["trajectory"]

    def quantized(self, model: str, dataset: str, seed: int, scale: float, fc_bits: int = HAN_FC_BITS,
                  kind: str = "sweep") -> dict:
        """A pruned level quantized, retrained and stored (kind ``sweep``: Han's bits)."""
        return {"kind": kind, "model": model, "dataset": dataset, "seed": seed, "scale": float(scale),
                "conv_bits": HAN_CONV_BITS, "fc_bits": fc_bits, "init": "linear", **self.quant[model],
                "quant_alpha": pruned_nets.RETRAIN_ALPHA, "level": self.level(model, dataset, seed, scale)}

    def sweep(self, model: str, dataset: str, seed: int) -> list[dict]:
        return [self.quantized(model, dataset, seed, s) for s in self.levels(model, dataset, seed)]

    def stages(self, model: str, dataset: str, seed: int) -> list[dict]:
        han = self.quantized(model, dataset, seed, 1.0)
        return [{"kind": "stages", "stage": s, "model": model, "dataset": dataset, "seed": seed, "sweep": han}
                for s in STAGES]

    def inits(self, dataset: str, seed: int) -> list[dict]:
        level = self.level("lenet300100", dataset, seed, 1.0)
        return [{"kind": "init", "model": "lenet300100", "dataset": dataset, "seed": seed, "init": init,
                 "bits": b, "epochs": self.init_epochs, "lr": self.init_lr, "alpha": pruned_nets.RETRAIN_ALPHA,
                 "level": level} for b in self.init_bits for init in self.init_inits]

    def bits(self, dataset: str, seed: int) -> list[dict]:
        return [self.quantized(m, dataset, seed, self.bits_scale, b, kind="bits")
                for m in self.bits_models for b in self.bits_fc]

    def neurons(self, dataset: str, seed: int) -> list[dict]:
        level = self.level("lenet300100", dataset, seed, 1.0)
        return [{"kind": "neurons", "model": "lenet300100", "dataset": dataset, "seed": seed, "hidden": list(w),
                 "method": "weight", "epochs": self.neuron_epochs, "lr": self.neuron_lr,
                 "alpha": pruned_nets.RETRAIN_ALPHA, "batch_size": pruned_nets.BATCH, "data": level["data"],
                 "dense": level["dense"]} for w in self.neuron_widths]

    def timing(self, dataset: str, seed: int) -> dict:
        return {"kind": "neuron_timing", "model": "lenet300100", "dataset": dataset, "seed": seed,
                "neurons": self.neurons(dataset, seed), "batches": list(self.timing_batches),
                "repeats": self.timing_repeats}


def full() -> Config:
    return Config()


def quick() -> Config:
    """Han's sparsity only, 1 epoch per retraining, LeNet-5 on 2k images, 2k test images."""
    return Config(quick=True, quant=QUANT_QUICK, init_inits=("linear", "random"), init_bits=(2,), init_epochs=0,
                  bits_models=("lenet300100",), bits_scale=1.0, bits_fc=(4,), neuron_widths=((150, 50),),
                  neuron_epochs=1, timing_batches=(1, 100), timing_repeats=2)


def smoke() -> Config:
    """The test suite's version: LeNet-300-100 on a few hundred images, one level."""
    prune: dict[str, Any] = dict(dense_epochs=1, dense_train_examples=500, pool=600, validation=100,
                                 test_examples=200, levels=(1.0,))
    return dataclasses.replace(quick(), models=("lenet300100",), prune=prune, init_inits=("linear",),
                               neuron_widths=((60, 20),), timing_batches=(1,), timing_repeats=1)
