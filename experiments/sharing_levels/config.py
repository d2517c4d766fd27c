"""The sharing-level study's config: the deep balanced MLP (every arm), LeNet-5 (:func:`lenet5`)
and the small ViT (:func:`vit`).

Run: ``wsjax run sharing_levels [--quick] [--seed N]`` (or ``python -m experiments.sharing_levels``);
writes ``experiments/results/sharing_levels/`` (``rows.jsonl``, one ``artifacts/<key>.wsjax``
per trained net, ``results.md``: the pre-registration, then the results per model; ``pareto_<model>.png``).
Resumable: every finished net is a row of the store and is never trained again.

The rules, grid and protocol are those of ``preregistration.md`` (committed before any run).
Two phases:

* tuning: every arm at the tuning budget (1/8 of the dense file; the tying arms and the dense
  net at their own size), seed 0, for each learning rate of ``lrs`` and, for the hashing arms,
  each ``init_scales`` factor; ``tune_epochs`` epochs (half the points' epochs: the cost of the
  grid, the one detail the pre-registration left open). The setting with the best last-epoch
  validation accuracy is kept for the arm (the smaller learning rate, then the scale nearer 1,
  on a tie);
* points: every budgeted arm at every budget and seed, every tying arm and the dense net at
  every seed, and the controls (``hashed_layer``, ``hashed_pool``) at the tying arms' byte
  fractions, each with its arm's setting, trained for ``epochs`` epochs.

``pruned`` and ``dynamic`` are described in ``derived.py``; budgets, bytes and every later
addition in ``preregistration.md``.

Data: the first 55,000 Fashion-MNIST training images train, the last 5,000 validate, the 10,000
test images score. Seeds ``seed + i`` set the initialisation, the hash seed and the minibatch
order; seed i of every arm shares them.
"""

from __future__ import annotations

import dataclasses

from wsjax.models import lenet5_params, mlp_params, vit_params

from experiments.sharing_levels.arm_names import (BUDGETED, CONTROLS, DENSE, DERIVED, HASHING, LOTTERY, OWN_SIZE,
                                                 SOFT, TYING, tied_layers)
from experiments.sharing_levels.checks import check
from experiments.sharing_levels.nets import tied_position



@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "deep_mlp"  # or "lenet5" (:func:`lenet5`) or "vit" (:func:`vit`)
    width: int = 256  # the MLP's hidden width, the ViT's token width
    hidden_layers: int = 8  # the MLP's
    depth: int = 4  # the ViT's blocks
    budgets: tuple[float, ...] = (1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64)
    arms: tuple[str, ...] = BUDGETED
    tying: tuple[str, ...] = tuple(TYING)
    own_size: tuple[str, ...] = OWN_SIZE
    seeds: int = 3
    extra_seed_budgets: tuple[float, ...] = (1 / 8, 1 / 32)
    extra_seeds: int = 5
    epochs: int = 10
    tune_epochs: int = 5
    tune_budget: float = 1 / 8
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    init_scales: tuple[float, ...] = (0.5, 1.0, 2.0)
    final_lr_fraction: float = 0.01
    batch_size: int = 100
    block: int = 32
    prune_rounds: int = 2  # pruned: geometric rounds of global magnitude pruning, each retrained
    max_repeats: int = 3  # dynamic: the middle layer runs 0..max_repeats times per pass
    lottery_rounds: int = 12  # 0: no lottery arm; 12 rounds keep 0.8^12 = 6.9% of the hidden kernels
    lottery_rate: float = 0.2  # of the surviving weights per round, per layer (Frankle & Carbin)
    lottery_output_rate: float = 0.1  # the output layer's (half the others', as in the paper)
    #: the soft arms' retraining: soft_compression's LeNet-300-100 setting within 0.5 points of its
    #: dense net (tau 1, 10 epochs, pi_0 0.9, the weights' Adam rate 5e-4), not tuned again here
    soft_tau: float = 1.0
    soft_pi_zero: float = 0.9
    soft_lr: float = 5e-4
    train_examples: int = 55_000
    validation: int = 5_000
    test_examples: int | None = None  # all
    quick: bool = False

    def __post_init__(self):
        check(self)

    # ------------------------------------------------------------------ sizes

    def features(self) -> tuple[int, ...]:
        return (self.width,) * self.hidden_layers + (10,)

    def dense_params(self) -> int:
        if self.model == "vit":
            return vit_params(width=self.width, depth=self.depth)
        return mlp_params(self.features(), 784) if self.model == "deep_mlp" else lenet5_params()

    def tied_layers(self) -> list[str]:
        """The same-shape layers a tying arm ties (positions in order): the MLP's hidden layers
        after the first (``Dense_1 ..``), the ViT's blocks (``Block_0 ..``); none in LeNet-5."""
        return tied_layers(self.model, self.hidden_layers, self.depth)

    def tied_params(self, arm: str) -> int:
        """A tying arm's free parameters: the dense net less the copies it drops, plus its
        per-layer extras (a scale and a shift per output column, or a rank-r LoRA, per tied kernel)."""
        unique, _, multiplex, rank = TYING[arm]
        kernels, per_position = tied_position(self.model, self.width)
        positions = len(self.tied_layers())
        # the count below assumes what tying.py does for these arms: every position multiplexed
        # (one copy) and a LoRA rank under every kernel's rows and columns (tying.py caps it)
        if multiplex and unique != 1 or multiplex == "lowrank" and rank > min(min(k) for k in kernels):
            raise ValueError(f"{arm}: tied_params counts multiplexing of one copy with rank <= every kernel's sides")
        extra = sum({None: 0, "scale_shift": 2 * c, "lowrank": rank * (r + c)}[multiplex] for r, c in kernels)
        return self.dense_params() - (positions - unique) * per_position + positions * extra

    def tied_fraction(self, arm: str) -> float:
        return self.tied_params(arm) / self.dense_params()

    def control_budgets(self) -> list[float]:
        """The tying arms' parameter fractions (rounded to 4 places) below 1: where the controls
        run (a LoRA on narrow layers can cost more than tying saves; it gets no control)."""
        return sorted(f for f in {round(self.tied_fraction(a), 4) for a in self.tying} if f < 1)

    # ------------------------------------------------------------------ units

    def dynamic_params(self) -> int:
        """DynamicNet's parameters: the input layer, the one middle layer and the output layer."""
        w = self.width
        return 784 * w + w + w * w + w + w * 10 + 10

    def _base(self, dataset: str) -> dict:
        shape = {"deep_mlp": {"width": self.width, "hidden_layers": self.hidden_layers}, "lenet5": {},
                 "vit": {"width": self.width, "depth": self.depth}}[self.model]
        return {"model": self.model, **shape, "batch_size": self.batch_size, "final_lr_fraction": self.final_lr_fraction, "block": self.block,
                "train_examples": self.train_examples, "validation": self.validation,
                "test_examples": self.test_examples, "dataset": dataset}

    def _extra(self, arm: str, settings: dict | None) -> dict:
        """What an arm's unit adds to the base: a derived arm's start (the dense point's recipe,
        ``settings['dense']``) and rounds, the dynamic net's depth range."""
        if arm in DERIVED:
            # "fit": the last round's mask is fitted to the bytes on the net it prunes (rows without
            # it fitted the dense net's mask, and a later round could overshoot the budget)
            return {"dense_lr": settings[DENSE][0], "dense_epochs": self.epochs, "prune_rounds": self.prune_rounds,
                    "fit": "last_round"}
        if arm == "dynamic":
            return {"max_repeats": self.max_repeats}
        if arm in SOFT:
            return {"dense_lr": settings[DENSE][0], "dense_epochs": self.epochs, "tau": self.soft_tau,
                    "pi_zero": self.soft_pi_zero, "scope": SOFT[arm]}
        if arm == LOTTERY:
            return {"dense_lr": settings[DENSE][0], "dense_epochs": self.epochs, "rate": self.lottery_rate,
                    "output_rate": self.lottery_output_rate}
        return {}

    def tune_units(self, dataset: str, seed: int, settings: dict | None = None) -> list[dict]:
        """The tuning runs; without ``settings`` those of the arms that train from scratch, with
        them (the chosen ``{arm: (lr, init_scale)}``, the dense net's at least) the derived arms'."""
        if settings is not None:
            arms = tuple(a for a in self.arms if a in DERIVED)
        else:
            arms = ((DENSE,) + tuple(a for a in self.arms if a not in DERIVED) + tuple(self.tying)
                    + tuple(a for a in self.own_size if a not in SOFT))  # the soft arms keep their setting
        out = []
        for arm in arms:
            budget = self.tune_budget if arm in BUDGETED else None
            scales = self.init_scales if arm in HASHING else (1.0,)  # the init scale: hashing's only
            for lr, scale in ((lr, s) for lr in self.lrs for s in scales):
                out.append({"kind": "tune", "arm": arm, "budget": budget, "seed": seed, "lr": lr,
                            "init_scale": scale, "epochs": self.tune_epochs, **self._base(dataset),
                            **self._extra(arm, settings)})
        return out

    def dense_point_of(self, unit: dict) -> dict:
        """The dense point a derived arm's ``unit`` starts from: the point unit of the dense net
        at the unit's seed, with the dense net's chosen learning rate (``unit['dense_lr']``)."""
        base = {k: unit[k] for k in self._base(unit["dataset"])}
        return {"kind": "point", "role": "point", "arm": DENSE, "budget": None, "seed": unit["seed"],
                "lr": unit["dense_lr"], "init_scale": 1.0, "epochs": unit["dense_epochs"], **base}

    def seeds_at(self, budget: float | None) -> int:
        return self.extra_seeds if budget in self.extra_seed_budgets else self.seeds

    def point_units(self, dataset: str, seed: int, settings: dict) -> list[dict]:
        """Every point, with ``settings[arm] = (lr, init_scale)`` from the tuning phase."""
        def unit(arm, budget, i, role="point"):
            lr, scale = (self.soft_lr, 1.0) if arm in SOFT else settings[arm]
            return {"kind": "point", "role": role, "arm": arm, "budget": budget, "seed": seed + i, "lr": lr,
                    "init_scale": scale, "epochs": self.epochs, **self._base(dataset), **self._extra(arm, settings)}

        out = [unit(DENSE, None, i) for i in range(self.seeds)]
        out += [unit(arm, b, i) for b in self.budgets for arm in self.arms for i in range(self.seeds_at(b))]
        out += [unit(arm, None, i) for arm in tuple(self.tying) + tuple(self.own_size) for i in range(self.seeds)]
        controls = self.control_budgets()
        out += [unit(arm, b, i, "control") for b in controls for arm in CONTROLS if arm in self.arms
                for i in range(self.seeds)]
        # the ticket trains with the dense net's recipe (Frankle & Carbin): the dense setting
        out += [{**unit(DENSE, None, i, "round"), "arm": LOTTERY, "round": r, **self._extra(LOTTERY, settings)}
                for i in range(self.seeds) for r in range(1, self.lottery_rounds + 1)]
        return out


def full() -> Config:
    return Config()


def lenet5() -> Config:
    """LeNet-5: 1/8, 1/32 and 1/64, 3 seeds, 8 epochs (4 in tuning); narrow, the five hashing
    arms and pruned (no same-shape layers to tie; no lottery or soft arms: ``preregistration.md``)."""
    return Config(model="lenet5", budgets=(1 / 8, 1 / 32, 1 / 64), tying=(), own_size=(), extra_seed_budgets=(),
                  epochs=8, tune_epochs=4, lottery_rounds=0)


def vit() -> Config:
    """The small ViT (7x7 patches, width 64, 4 blocks: 139,018 parameters): 1/4, 1/8 and 1/16
    (its non-kernel 3 % leaves 1/32 almost nothing to hash), 3 seeds, 10 epochs (5 in tuning);
    narrow, hashing, pruned and every tying arm over its blocks (``preregistration.md``)."""
    return Config(model="vit", width=64, depth=4, budgets=(1 / 4, 1 / 8, 1 / 16), own_size=(),
                  extra_seed_budgets=(), epochs=10, tune_epochs=5, lottery_rounds=0)


def grid() -> list[Config]:
    """The full study, in run order: the deep MLP, LeNet-5, the ViT."""
    return [full(), lenet5(), vit()]


def quick() -> Config:
    """About a minute: a 784-64x4-10 net on 2,000 images, one budget, one seed, one setting."""
    return Config(width=64, hidden_layers=4, budgets=(1 / 8,), tying=("tied_all",), seeds=1,
                  extra_seed_budgets=(), epochs=2, tune_epochs=1, lrs=(3e-3,), init_scales=(1.0,), prune_rounds=1,
                  lottery_rounds=2,
                  train_examples=2_000, validation=500, test_examples=1_000, quick=True)


#: what every smoke config shares: one seed, one epoch, one setting, a few hundred images
_SMOKE = dict(budgets=(1 / 8,), seeds=1, extra_seed_budgets=(), epochs=1, tune_epochs=1, lrs=(3e-3,),
              init_scales=(1.0,), prune_rounds=1, train_examples=300, validation=100, test_examples=200, quick=True)


def smoke() -> Config:
    """Seconds, for the test suite: every arm once on a few hundred images."""
    return Config(**_SMOKE, width=16, hidden_layers=4, tying=("tied_cycle_2", "tied_lora_8"), lottery_rounds=2,
                  block=4)


def smoke_lenet5() -> Config:
    """Seconds, for the test suite: LeNet-5's arms (one hashing arm of each scope)."""
    return Config(**_SMOKE, model="lenet5", arms=("narrow", "hashed_layer", "hashed_pool_scaled", "pruned"),
                  tying=(), own_size=(), lottery_rounds=0)


def smoke_vit() -> Config:
    """Seconds, for the test suite: a width-16, 3-block ViT's narrow, block-hashed and one tying
    arm (every tying arm's size is checked against its transform without training)."""
    return Config(**{**_SMOKE, "budgets": (1 / 4,)}, model="vit", width=16, depth=3, arms=("narrow", "roast"),
                  tying=("tied_scale_shift",), own_size=(), tune_budget=1 / 4, lottery_rounds=0, block=4)
