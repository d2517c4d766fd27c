"""The compression frontier's config: our best pipeline, its ablations and the peer.

Run: ``wsjax run frontier [--quick] [--models lenet300100]`` (or ``python -m
experiments.frontier``); writes ``experiments/results/frontier/`` (``rows.jsonl``, the pruned
nets and every compressed file under ``artifacts/``, ``results.md``, ``results.json``,
``frontier_<model>.png``). The peer's points come from ``benchmarks/peers/tfmot_frontier.py``
(its own environment), read from ``experiments/results/frontier/peer/<model>.json``.
Resumable: every finished unit is a row of the store.

Data: Fashion-MNIST, the first 55,000 training images train (the dense net too), the last
5,000 validate (every choice below is made on them), the 10,000 test images only score.
Each seed has its own dense net (:func:`wsjax.study.dense_config`, 55,000 images).

The best pipeline, per model, seed and *level* (the fraction of kernel weights kept):

1. **sensitivity** (Han et al. 2015 Sec. 3): each layer of the dense net pruned alone,
   without retraining, to 1 .. 1 % kept (:data:`wsjax.pruning.FRACTIONS`); a layer's profile
   value is the last fraction before it costs more than ``tolerance`` (1 point) of
   validation accuracy; a level's per-layer kept fractions are that profile scaled to keep
   the level's fraction of all kernel weights (:func:`wsjax.pruning.allocate_kept`);
2. **gradual** pruning (Zhu & Gupta 2017) to those fractions while training ``prune_epochs``
   from the dense net (Adam, cosine decay from ``prune_lr``), the cubic schedule ending at
   60 % of the steps (:class:`wsjax.compress.GradualPrune`);
3. **fewer bits** where a layer tolerates them: each layer's codebook width the fewest of
   ``bits_candidates`` that costs at most ``bits_tolerance`` of validation accuracy before
   retraining (:func:`wsjax.compress.fewest_bits`);
4. **optimal** codebooks: exact 1-D k-means by dynamic programming (``init='optimal'``),
   then the centroids and biases retrained ``quant_epochs`` at ``quant_lr`` (Han);
5. **Huffman** coding of values and gaps, with each sparse layer's **index width** the one
   that makes its record smallest (:func:`wsjax.storage.smallest_index_bits`).

An addition, ``distilled``: the best pipeline whose gradual pruning learns from the dense net
(Hinton et al. 2015, :data:`DISTILL`). Written before its run: the pipeline called *ours* in
the verdict is whichever of ``best`` and ``distilled`` has the higher mean *validation*
accuracy over all levels and seeds; the other is reported beside it.

Ablations, one ingredient dropped at a time (everything else as the best pipeline):
``global`` (per-layer fractions from one global magnitude threshold on the dense net) and
``uniform`` (every layer the level's fraction, as tfmot prunes) instead of sensitivity;
``iterative`` (Han's prune-retrain rounds, 4 geometric rounds of ``prune_epochs / 4``
epochs) instead of gradual; ``han_bits`` (5 fc / 8 conv bits) instead of fewer bits;
``linear`` (Han's linear centroid initialisation) instead of optimal; ``han_index`` (5-bit
fc / 8-bit conv gaps) instead of tuned widths; ``soft`` (Ullrich et al.'s soft weight sharing
as the quantizer: :data:`SOFT` epochs under a Gaussian-mixture prior from the pruned net,
snapped to the merged components, each layer's snapped values then an exact codebook whose
centroids are retrained as in step 4) instead of k-means; ``no_huffman`` (the best file with every
stream at fixed width, counted from its size report, not a separate file).

Decision rule (written before the full run; test accuracy and bytes of real files, mean
over the seeds; a *drop* is in points against each side's own dense net):

* For a budget ``b`` in :data:`BUDGETS`, our size is the largest mean compression over
  levels whose mean drop is at most ``b``; the peer's is the largest compression (zipped
  TFLite, its users' count) over its points with drop at most ``b``.
* **Met** iff at ``b = 0.5`` ours is at least 1.5x the peer's, and at every budget ours is
  larger. Reported with the peer's weights also stored by wsjax's codecs ("our accounting").
* An ingredient's worth: at ``b = 0.5`` and ``b = 1.0``, the best pipeline's compression
  divided by the ablation's (its bytes at the same accuracy budget).

Expected (from the first probe, seed 0): about 34x within 0.5 points on LeNet-300-100.

**Confirmation on fresh seeds** (written 2026-12-04, after the full run missed the goal on
LeNet-300-100 (1.29x within 0.5 points) and before this run). The full run's test numbers
suggested two ingredients that each lowered the drop near 0.12 kept: distillation (the
chosen pipeline) and the global allocation (an ablation, 36.3x at a 0.46 drop). Read on test
after the fact, that is a hypothesis, not evidence, so it is tested on seeds the full run
never saw (:data:`CONFIRM`: 3, 4, 5, each with its own dense net), with ``distilled`` run
beside it as the control:

* candidates ``global_distilled`` (global allocation + distilled gradual pruning, the best
  recipe's 20 pruning epochs) and ``global_distilled_long`` (the same with 40 pruning
  epochs, Zhu & Gupta's longer schedule); the one *ours* in the confirmation is the candidate
  with the higher mean **validation** accuracy over its levels and seeds;
* the verdict rule is the full run's (budgets, 1.5x at 0.5 points, ahead at every budget,
  only cells with all 3 seeds), on the confirmation's rows only;
* ``candidate - distilled`` per level, paired by seed, 95 % t-interval, says whether the
  change itself helped or the seeds were kind.
"""

from __future__ import annotations

import dataclasses

from wsjax import study

MODELS = ("lenet300100", "lenet5")
BUDGETS = (0.5, 1.0, 1.5, 2.5)
#: In run order: the two candidates, the ablations that reuse best's pruned nets, those that prune anew.
VARIANTS = ("best", "distilled", "han_bits", "linear", "han_index", "global", "uniform", "iterative", "soft")
#: What each variant changes: (allocation, schedule, bits, init, index).
CHOICES = {"best": ("sensitivity", "gradual", "chosen", "optimal", "tuned"),
           "distilled": ("sensitivity", "gradual", "chosen", "optimal", "tuned"),
           "global": ("global", "gradual", "chosen", "optimal", "tuned"),
           "uniform": ("uniform", "gradual", "chosen", "optimal", "tuned"),
           "iterative": ("sensitivity", "iterative", "chosen", "optimal", "tuned"),
           "han_bits": ("sensitivity", "gradual", "han", "optimal", "tuned"),
           "linear": ("sensitivity", "gradual", "chosen", "linear", "tuned"),
           "han_index": ("sensitivity", "gradual", "chosen", "optimal", "han"),
           "soft": ("sensitivity", "gradual", "soft", "optimal", "tuned"),
           "global_distilled": ("global", "gradual", "chosen", "optimal", "tuned"),
           "global_distilled_long": ("global", "gradual", "chosen", "optimal", "tuned")}
#: Variants whose gradual pruning learns from the dense net (:data:`DISTILL`).
DISTILLED = ("distilled", "global_distilled", "global_distilled_long")
#: Variants pruned for a multiple of the recipe's pruning epochs.
LONGER = {"global_distilled_long": 2}
#: The confirmation on fresh seeds (see the module docstring): its seeds, levels and variants,
#: and which of them are the candidates for *ours*.
CONFIRM = {"seeds": (3, 4, 5), "levels": {"lenet300100": (0.13, 0.12, 0.11, 0.10)},
           "variants": ("distilled", "global_distilled", "global_distilled_long"),
           "candidates": ("global_distilled", "global_distilled_long")}
#: The soft variant's retraining: soft_compression's LeNet-300-100 setting (as the sharing-level study's).
SOFT = {"tau": 1.0, "epochs": 10, "pi_zero": 0.9, "lr": 5e-4}
#: The distilled pipeline's gradual pruning learns from the dense net it starts from (Hinton's
#: loss: ``alpha`` on the hard labels); one probe on seed 1 at 13 % kept, not a tuned setting.
DISTILL = {"temperature": 4.0, "alpha": 0.7}
LEVELS = {"lenet300100": (0.16, 0.13, 0.12, 0.11, 0.10, 0.09, 0.07, 0.05), "lenet5": (0.16, 0.11, 0.08, 0.06, 0.04)}
#: The ablations run at every second level from the densest (to fit the machine); an
#: ingredient's worth compares them with the best pipeline at the same levels only.
ABLATION_LEVELS = {m: levels[::2] for m, levels in LEVELS.items()}
RECIPE = {"lenet300100": dict(prune_epochs=20, prune_lr=1e-3, bits_candidates=(2, 3, 4, 5)),
          "lenet5": dict(prune_epochs=12, prune_lr=5e-4, bits_candidates=(2, 3, 4, 5, 6, 7, 8))}


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple[str, ...] = MODELS
    quick: bool = False
    seeds: int = 3
    variants: tuple[str, ...] = VARIANTS
    levels: dict = dataclasses.field(default_factory=lambda: LEVELS)
    ablation_levels: dict | None = dataclasses.field(default_factory=lambda: ABLATION_LEVELS)
    recipe: dict = dataclasses.field(default_factory=lambda: RECIPE)
    train_examples: int = 55_000
    validation: int = 5_000
    test_examples: int | None = None
    dense_epochs: int | None = None  # None: the dense recipe's (wsjax.study.nets.DENSE_EPOCHS)
    tolerance: float = 0.01
    bits_tolerance: float = 0.002
    quant_epochs: int = 3
    quant_lr: float = 1e-4
    confirm: dict | None = dataclasses.field(default_factory=lambda: CONFIRM)

    def only(self, models) -> "Config":
        unknown = sorted(set(models) - set(MODELS))
        if unknown:
            raise ValueError(f"unknown models {unknown}; known: {list(MODELS)}")
        return dataclasses.replace(self, models=tuple(m for m in MODELS if m in models))

    def data(self) -> dict:
        return {"train_examples": self.train_examples, "validation": self.validation,
                "test_examples": self.test_examples}

    def dense(self, model: str, dataset: str, seed: int) -> dict:
        return study.dense_config(model, dataset, seed, self.quick, self.dense_epochs, self.train_examples)

    def scan(self, model: str, dataset: str, seed: int) -> dict:
        return {"kind": "scan", "model": model, "dataset": dataset, "seed": seed, "tolerance": self.tolerance,
                "data": self.data(), "dense": self.dense(model, dataset, seed)}

    def prune(self, model: str, dataset: str, seed: int, level: float, allocation: str, schedule: str,
              distill: dict | None = None, longer: int = 1) -> dict:
        r = self.recipe[model]
        return {**({"distill": dict(distill)} if distill else {}), "kind": "prune", "model": model,
                "dataset": dataset, "seed": seed, "level": level, "allocation": allocation, "schedule": schedule,
                "epochs": longer * r["prune_epochs"], "lr": r["prune_lr"],
                "end_fraction": 0.6, "rounds": 4, "scan": self.scan(model, dataset, seed)}

    def compress(self, model: str, dataset: str, seed: int, level: float, variant: str) -> dict:
        allocation, schedule, bits, init, index = CHOICES[variant]
        soft = {"soft": dict(SOFT)} if bits == "soft" else {}
        return {**soft, "kind": "compress", "variant": variant, "bits": bits, "init": init, "index": index,
                "bits_candidates": list(self.recipe[model]["bits_candidates"]), "bits_tolerance": self.bits_tolerance,
                "quant_epochs": self.quant_epochs, "quant_lr": self.quant_lr,
                "prune": self.prune(model, dataset, seed, level, allocation, schedule,
                                    DISTILL if variant in DISTILLED else None, LONGER.get(variant, 1))}

    def units(self, dataset: str, seed: int) -> list[dict]:
        """Per model: the best pipeline at every seed and level first, then each ablation."""
        return [self.compress(m, dataset, s, lv, v) for m in self.models for v in self.variants
                for s in range(seed, seed + self.seeds) for lv in self.levels_of(m, v)]

    def confirm_units(self, dataset: str, seed: int) -> list[dict]:
        """The confirmation on fresh seeds (none in quick runs); its seeds must not be the full run's."""
        if self.confirm is None:
            return []
        overlap = sorted(set(self.confirm["seeds"]) & set(range(seed, seed + self.seeds)))
        if overlap:
            raise ValueError(f"confirmation seeds {overlap} are also the run's seeds {seed}..{seed + self.seeds - 1}")
        return [self.compress(m, dataset, s, lv, v) for m in self.models if m in self.confirm["levels"]
                for v in self.confirm["variants"] for s in self.confirm["seeds"] for lv in self.confirm["levels"][m]]

    def is_confirm(self, row: dict) -> bool:
        """Whether a compress row belongs to the confirmation (its seed is one of its seeds)."""
        c = row["config"]
        return self.confirm is not None and c.get("kind") == "compress" and c["prune"]["seed"] in self.confirm["seeds"]

    def levels_of(self, model: str, variant: str) -> tuple:
        if variant in ("best", "distilled") or self.ablation_levels is None:
            return self.levels[model]
        return tuple(lv for lv in self.levels[model] if lv in self.ablation_levels[model])

    def peer_units(self, peer: dict, dataset: str) -> list[dict]:
        """The peer's points stored by wsjax's codecs (``peer``: its ``<model>.json``)."""
        return [{"kind": "peer_ours", "model": peer["model"], "dataset": dataset, "weights": p["weights"],
                 "weights_sha256": p.get("weights_sha256"), "negative_zeros": "stored as +0",
                 "sparsity": p["sparsity"], "clusters": p["clusters"], "peer_seed": peer["seed"],
                 "data": self.data()} for p in peer["points"]]


def full() -> Config:
    return Config()


def quick() -> Config:
    """LeNet-300-100, one seed, two levels, the best pipeline and two ablations, 2 pruning
    epochs on 10k images: under a minute."""
    return Config(models=("lenet300100",), quick=True, seeds=1, variants=("best", "uniform", "han_bits"),
                  ablation_levels=None, confirm=None,
                  levels={"lenet300100": (0.12, 0.08), "lenet5": (0.1,)},
                  recipe={m: {**r, "prune_epochs": 2} for m, r in RECIPE.items()}, train_examples=10_000,
                  validation=1000, test_examples=2000, dense_epochs=2, quant_epochs=1)


def smoke() -> Config:
    """The test suite's version: a few hundred images, one level, one epoch."""
    return dataclasses.replace(quick(), variants=("best", "distilled", "iterative"), levels={"lenet300100": (0.1,)},
                               recipe={m: {**r, "prune_epochs": 1} for m, r in quick().recipe.items()},
                               train_examples=600, validation=200, test_examples=300, dense_epochs=1)
