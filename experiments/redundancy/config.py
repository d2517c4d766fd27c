"""The redundancy study's config: how much of a layer is explained by itself, and how much by
the other layers, at the same parameter budget (seed 001's question).

Run: ``wsjax run redundancy [--quick] [--parts P ...]`` (or ``python -m experiments.redundancy``);
writes ``experiments/results/redundancy/`` (``rows.jsonl``, a ``.wsjax`` file per stored net
under ``artifacts/``, ``results.md``, ``spectra.png``, ``denil.png``, ``basis.png``). Every
unit is a row keyed by its full config, so a killed run resumes at the first unfinished one.

The trained nets are the ``baseline`` study's (seeds 0, 1, 2 of LeNet-300-100, LeNet-5, the
deep MLP 784-256x8-10 and the small ViT; Adam, cosine decay from 1e-3, batch 100, 30 / 12 /
30 / 10 epochs on all 60,000 training images). Where this study trains, it trains on the
first 55,000 and keeps the last 5,000 for validation; every setting chosen, is chosen there.

Parts, in the order the full run does them (the cheap and the acceptance-critical first):

* ``analysis`` (no training): per-layer singular-value spectra and effective rank; Denil's
  within-layer predictability of the first layer (relative error of the held-out rows
  predicted by kernel ridge regression over pixel positions from 5-50 % of them, against the
  same layer with its rows shuffled); for the
  same-shape layers of the deep MLP (``Dense_1 .. Dense_7``) and the ViT (each leaf name across
  ``Block_0 .. Block_3``) the fraction of a layer's energy its own best rank-r subspace holds
  against the other layers' top-r subspace (input and output side) and a random subspace's r/n;
  principal angles, matched-filter cosines and linear CKA of the representations on 2,000
  validation images.
* ``basis``: a cross-layer shared basis (Basis Sharing 2024: one ``B`` for the group, a ``C_l``
  per layer, initialised from the trained net by the SVD of the stacked layers) against
  per-layer SVD (``low_rank``) at equal stored parameters, on the deep MLP's hidden layers and
  the ViT's blocks, at 4 budgets (the group's kernels at 1/2, 1/4, 1/8 and 1/16 of their
  size), 3 seeds: test accuracy straight after factoring and after fine-tuning (all free
  parameters, Adam from 1e-4 cosine, ``finetune_epochs``), each read back from its ``.wsjax``
  file, whose size is the plotted bytes.
* ``denil``: LeNet-300-100's and the deep MLP's first layer predicted (Denil et al. 2013: only
  the weights at a random fraction of the 784 input pixels learned, the rest predicted by
  kernel ridge regression), trained from scratch with the dense recipe, for a smoothness (SE)
  kernel over pixel positions and the data-driven (empirical covariance) kernel, 3 seeds.
* ``denton``: LeNet-5's trained layers replaced by factored layers that run as smaller
  layers (Denton et al. 2014): ``Conv_0`` by a filter basis (grayscale input: the
  monochromatic approximation is exact and saves nothing), ``Conv_1`` by Tucker-2, ``Dense_0``
  by SVD; then the layers above fine-tuned; accuracy, parameters, multiply-adds and the measured
  forward time of the layer and of the net on this CPU.
* ``bottleneck``: seed 003's N -> K -> M layer as LeNet-300-100's first layer, trained from
  scratch, against the trained layer factored by SVD at the same K and fine-tuned.

Decision rules, written before the full run (means over seeds; 95 % Student-t intervals;
``paired`` means the difference per seed, same trained net):

* Denil: the largest fraction of the first layer's weights predicted whose mean test accuracy
  is at most 1 point below the dense net's mean trained the same way (the paper: more than
  95 % predicted with no loss, MNIST).
* Denton: a decomposition is "within 1 %" when its mean accuracy after fine-tuning is at most
  1 point below the trained net's; its speedup is the measured dense / factored forward time
  of the layer (the paper: about 2x faster conv layers within 1 %).
* between-layer redundancy, weights: at rank r, a layer is "explained by the others" to the
  extent ``others`` exceeds the random baseline r/n; the others explain it "as well as itself"
  when ``others >= 0.9 * self``.
* between-layer redundancy, trained: at a budget, the cross-layer basis *beats* per-layer SVD
  when the paired 95 % interval of (shared - per-layer) test accuracy after fine-tuning lies
  above 0, *loses* when it lies below 0, else the two are *tied*. The notes' question is
  answered "yes, there is capacity redundancy between layers" for a model if the shared basis
  beats or ties per-layer SVD at every budget and beats it at one or more; "no" if it loses at
  one or more budgets and beats at none; otherwise "mixed".
"""

from __future__ import annotations

import dataclasses

PARTS = ("analysis", "basis", "denil", "bottleneck", "denton")
MODELS = ("lenet300100", "lenet5", "deep_mlp", "vit")
#: the groups of same-shape layers a cross-layer basis spans, by model
BASIS_GROUPS = {
    "deep_mlp": [[f"Dense_{i}/kernel" for i in range(1, 8)]],
    "vit": [[f"Block_{b}/{leaf}/kernel" for b in range(4)] for leaf in ("query", "key", "value", "out", "mlp_in",
                                                                         "mlp_out")],
}

#: the kernel whose rows are pixels, the image they come from, and the squared-exponential
#: length scale (pixels) of Denil's within-layer prediction in the analysis part: fixed here
#: before the run (3 on 28x28 inputs, as wsjax.sharing.predicted's default; 1 on a 5x5
#: filter or a 7x7 patch)
FIRST_LAYER = {"lenet300100": ("Dense_0/kernel", (28, 28), 3.0), "deep_mlp": ("Dense_0/kernel", (28, 28), 3.0),
               "lenet5": ("Conv_0/kernel", (5, 5), 1.0), "vit": ("embed/kernel", (7, 7), 1.0)}
#: the fractions of those rows seen when the rest are predicted, and the ridge: 1 (the
#: kernel's diagonal), because the trained MLPs' first layers are far from smooth (their
#: border pixels are always 0, so those rows keep their random initial values): with ridge
#: 1e-3 the prediction overshoots (relative error 1.2-1.9 on seed 0's LeNet-300-100 at 10 %
#: seen), with 0.1 or 1 it shrinks to ~0.8-0.94. Chosen on seed 0's LeNet-300-100 and deep MLP
#: before the full run (an analysis of weights: no test data involved).
PREDICT_FRACTIONS = (0.05, 0.1, 0.25, 0.5)
PREDICT_RIDGE = 1.0


@dataclasses.dataclass(frozen=True)
class Config:
    parts: tuple[str, ...] = PARTS
    seeds: int = 3
    # analysis
    analysis_models: tuple[str, ...] = MODELS
    analysis_ranks: tuple[int, ...] = (4, 8, 16, 32, 64)
    representation_examples: int = 2000
    # basis
    basis_models: tuple[str, ...] = ("deep_mlp", "vit")
    budgets: tuple[float, ...] = (1 / 2, 1 / 4, 1 / 8, 1 / 16)
    finetune_epochs: tuple[tuple[str, int], ...] = (("deep_mlp", 5), ("vit", 2), ("lenet5", 2),
                                                    ("lenet300100", 10))
    finetune_lr: float = 1e-4
    # denil
    denil_models: tuple[str, ...] = ("lenet300100", "deep_mlp")
    dictionaries: tuple[str, ...] = ("se", "empirical")
    seen_fractions: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("lenet300100", (0.5, 0.25, 0.1, 0.05, 0.02)), ("deep_mlp", (0.25, 0.1, 0.05, 0.02)))
    #: pixels: wsjax.sharing.predicted's default (about the spacing of the seen pixels at 10 %),
    #: set before this study from synthetic smooth images, not from these data
    length_scale: float = 3.0
    ridge: float = 1e-3
    denil_epochs: tuple[tuple[str, int], ...] = (("lenet300100", 30), ("deep_mlp", 15))
    # denton (LeNet-5): per layer the ranks tried, and one setting with all three factored
    denton: tuple[tuple[str, object], ...] = (
        ("Conv_0", 4), ("Conv_0", 8), ("Conv_1", (6, 12)), ("Conv_1", (10, 20)), ("Conv_1", (14, 28)),
        ("Dense_0", 16), ("Dense_0", 32), ("Dense_0", 64), ("all", (("Conv_0", 8), ("Conv_1", (10, 20)),
                                                                   ("Dense_0", 32))))
    timing_batch: int = 1000
    timing_repeats: int = 20
    # bottleneck (LeNet-300-100's first layer)
    bottleneck_ranks: tuple[int, ...] = (16, 32, 64)
    # data
    lr: float = 1e-3
    final_lr_fraction: float = 0.01
    batch_size: int = 100
    validation: int = 5000
    train_examples: int | None = None  # all 60,000 (validation included)
    test_examples: int | None = None
    dense_epochs: int | None = None  # None: the baseline recipe's (quick: its quick nets)
    dense_train_examples: int | None = None
    quick: bool = False

    def only(self, parts) -> "Config":
        unknown = sorted(set(parts) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown parts {unknown}; known: {list(PARTS)}")
        return dataclasses.replace(self, parts=tuple(p for p in PARTS if p in parts))

    @property
    def models(self) -> tuple[str, ...]:
        """Every model some chosen part uses (the command line checks the data set fits them)."""
        used = set()
        for part, models in (("analysis", self.analysis_models), ("basis", self.basis_models),
                             ("denil", self.denil_models), ("bottleneck", ("lenet300100",)),
                             ("denton", ("lenet5",))):
            if part in self.parts:
                used |= set(models)
        return tuple(m for m in MODELS if m in used)

    def common(self, dataset: str) -> dict:
        return {"dataset": dataset, "validation": self.validation, "train_examples": self.train_examples,
                "test_examples": self.test_examples, "batch_size": self.batch_size}

    def dense(self, model: str, dataset: str, seed: int) -> dict:
        """The baseline net a unit starts from (its full config: part of the unit's key)."""
        from wsjax import study

        return study.dense_config(model, dataset, seed, self.quick, self.dense_epochs, self.dense_train_examples)

    def units(self, dataset: str, seed: int) -> list[dict]:
        seeds = range(seed, seed + self.seeds)
        ft = dict(self.finetune_epochs)
        out = []
        c = self.common(dataset)
        if "analysis" in self.parts:
            out += [{"kind": "analysis", "model": m, "seed": s, "dense": self.dense(m, dataset, s),
                     "ranks": list(self.analysis_ranks), "examples": self.representation_examples, **c}
                    for m in self.analysis_models for s in seeds]
        if "basis" in self.parts:
            for m in self.basis_models:
                for b in self.budgets:
                    for arm in ("shared", "per_layer"):
                        out += [{"kind": "basis", "model": m, "arm": arm, "budget": b, "seed": s,
                                 "groups": BASIS_GROUPS[m], "dense": self.dense(m, dataset, s),
                                 "epochs": ft[m], "lr": self.finetune_lr, **c} for s in seeds]
        if "denil" in self.parts:
            fractions = dict(self.seen_fractions)
            for m in self.denil_models:
                e = dict(self.denil_epochs)[m]
                settings = [(None, 1.0)] + [(d, f) for d in self.dictionaries for f in fractions[m]]
                out += [{"kind": "denil", "model": m, "dictionary": d, "seen": f, "seed": s, "epochs": e,
                         "length_scale": self.length_scale if d == "se" else None,
                         "ridge": None if d is None else self.ridge, "lr": self.lr,
                         "final_lr_fraction": self.final_lr_fraction, **c}
                        for d, f in settings for s in seeds]
        if "bottleneck" in self.parts:
            for k in self.bottleneck_ranks:
                for arm in ("scratch", "factored"):
                    out += [{"kind": "bottleneck", "model": "lenet300100", "arm": arm, "rank": k, "seed": s,
                             "dense": self.dense("lenet300100", dataset, s) if arm == "factored" else None,
                             "epochs": dict(self.denil_epochs)["lenet300100"] if arm == "scratch"
                             else ft["lenet300100"], "lr": self.lr if arm == "scratch" else self.finetune_lr,
                             "final_lr_fraction": self.final_lr_fraction, **c} for s in seeds]
        if "denton" in self.parts:
            for layer, rank in (("none", None),) + self.denton:
                out += [{"kind": "denton", "model": "lenet5", "layer": layer, "rank": _json(rank), "seed": s,
                         "dense": self.dense("lenet5", dataset, s), "epochs": 0 if layer == "none" else ft["lenet5"],
                         "lr": self.finetune_lr, "timing_batch": self.timing_batch,
                         "timing_repeats": self.timing_repeats, **c} for s in seeds]
        return out


def _json(rank):
    """A rank as JSON keeps it: tuples as lists (the key of a row is its JSON)."""
    if isinstance(rank, tuple):
        return [_json(r) for r in rank]
    return rank


def full() -> Config:
    return Config()


def quick() -> Config:
    """About a minute on 2 cores: the cheap nets (LeNet-300-100 and the deep MLP from the
    baseline's quick nets), one seed, one budget, one fraction, a few fine-tuning steps."""
    return Config(seeds=1, parts=("analysis", "basis", "denil", "bottleneck"),
                  analysis_models=("lenet300100", "deep_mlp"), analysis_ranks=(8, 32), representation_examples=500,
                  basis_models=("deep_mlp",), budgets=(1 / 8,), finetune_epochs=(("deep_mlp", 1), ("lenet300100", 1)),
                  denil_models=("lenet300100",), dictionaries=("se",), seen_fractions=(("lenet300100", (0.1,)),),
                  denil_epochs=(("lenet300100", 2),), bottleneck_ranks=(32,), train_examples=6000,
                  validation=1000, test_examples=2000, quick=True)


def smoke() -> Config:
    """Seconds, for the test suite: every part on the cheap nets (no ViT), a few hundred
    examples, one epoch, one setting each."""
    return Config(seeds=1, analysis_models=("lenet300100",), analysis_ranks=(4,), representation_examples=100,
                  basis_models=("deep_mlp",), budgets=(1 / 8,),
                  finetune_epochs=(("deep_mlp", 1), ("lenet5", 1), ("lenet300100", 1)), denil_models=("lenet300100",),
                  dictionaries=("se",), seen_fractions=(("lenet300100", (0.1,)),), denil_epochs=(("lenet300100", 1),),
                  denton=(("Dense_0", 8),), timing_batch=50, timing_repeats=2, bottleneck_ranks=(8,),
                  train_examples=500, validation=200, test_examples=200, dense_epochs=1, dense_train_examples=500,
                  quick=True)
