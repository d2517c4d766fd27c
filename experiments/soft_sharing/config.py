"""The soft_sharing study's config.

Run: ``wsjax run soft_sharing [--quick] [--seed N] [--out DIR]`` (or ``python -m
experiments.soft_sharing``); writes ``experiments/results/soft_sharing/`` (``rows.jsonl``:
one row per compiled trainer call, i.e. per task and K, with every lane's validation and
test scores per seed; ``artifacts/<key>.msgpack``: each lane's weights and mixture on its
first test seed; ``results.md``, ``grid.json``, ``soft_sharing_mixture.png``,
``soft_sharing_sweep.png``). ``--dataset`` is ignored: the study's data are its two tasks.

Recipe (full): full-batch Adam (lr 1e-2; mixture lr 1e-2), the penalty switched on after
500 of 3000 steps (shift) or 1000 of 5000 (sunspots); strengths on a half-decade grid
(10^-5..10^-1 for shift, 10^-7..10^-2 for sunspots), beta in (1, 10) resp. (0.01, 0.1);
selection on 10 validation draws (shift) or 5 blocked folds (sunspots); 10 test seeds;
K = 3, 5, 10; plus the pilot that fixed shift's training-set size (no penalty, 100 cases,
6 draws). About 5 minutes on 2 CPU cores (the trainer calls' own seconds, compilation
included, sum to about 4.5). Quick: 600/800 steps, a 3-point grid, one beta, 2 validation
runs, 2 test seeds, K = 3 (about 30 s on an idle 2-core machine, mostly compilation).

Expected (full run, as committed): no soft-sharing K chosen on validation beats both weight
decay and weight elimination on either task (weight elimination is best on all three test
metrics), i.e. the paper's claim is not reproduced by this reconstruction.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from wsjax.data import sunspots


@dataclasses.dataclass(frozen=True)
class Task:
    """A problem, its net and its training recipe."""

    name: str
    model: str
    sizes: tuple[int, ...]  # layer widths, input first
    loss: str  # 'bce' or 'mse'
    steps: int
    warm: int  # steps without a penalty before it is switched on
    taus: tuple[float, ...]  # strength grid shared by every penalty
    betas: tuple[float, ...]  # Gamma(1, beta) precision hyper-prior grid for soft sharing
    metric: str  # what selection maximises ('accuracy') or minimises ('arv')
    selection_runs: int  # validation runs per setting (training draws, or CV folds)
    data: tuple[tuple[str, object], ...]  # the data set's settings
    lr: float = 1e-2
    mixture_lr: float = 1e-2


def shift_data(n_train: int = 50, n_val: int = 500) -> tuple:
    return (("name", "shift"), ("bits", 10), ("n_train", n_train), ("n_val", n_val))


SUNSPOT_DATA = (("name", "sunspots"), ("source", "statsmodels"), ("years", [sunspots.FIRST_YEAR, sunspots.LAST_YEAR]),
                ("lag", sunspots.LAG), ("train_until", sunspots.TRAIN_UNTIL),
                ("test_periods", [list(p) for p in sunspots.TEST_PERIODS]))


@dataclasses.dataclass(frozen=True)
class Config:
    tasks: tuple[Task, ...]
    components: tuple[int, ...] = (3, 5, 10)
    test_seeds: int = 10
    #: the shift pilot that fixed the training-set size: (training cases, draws); (0, 0): none
    pilot: tuple[int, int] = (100, 6)
    quick: bool = False

    def units(self, seed: int) -> list[dict]:
        """One unit per compiled trainer call: a task and K, all its lanes and seeds. The
        baselines (no penalty, L2, weight elimination) ride along with the first K."""
        units = []
        for task in self.tasks:
            for i, k in enumerate(self.components):
                lanes = [["none", 0.0, task.betas[0]]] if i == 0 else []
                if i == 0:
                    lanes += [[m, t, task.betas[0]] for m in ("l2", "weight_elimination") for t in task.taus]
                lanes += [[f"soft_sharing_K{k}", t, b] for b in task.betas for t in task.taus]
                sel = [seed + 1000 + j for j in range(task.selection_runs)]
                units.append(unit(task, k, lanes, sel, [seed + j for j in range(self.test_seeds)]))
        n_train, draws = self.pilot
        shift = [t for t in self.tasks if t.name == "shift"]
        if draws and shift:
            pilot = dataclasses.replace(shift[0], data=shift_data(n_train, 0))
            units.append(unit(pilot, self.components[0], [["none", 0.0, pilot.betas[0]]], [],
                              [seed + 2000 + j for j in range(draws)], role="pilot"))
        return units


def unit(task: Task, k: int, lanes: list, selection_seeds: list, test_seeds: list, role: str = "comparison") -> dict:
    """The full config of one trainer call (the key of its row)."""
    return {"study": "soft_sharing", "role": role, "task": task.name, "model": task.model, "data": dict(task.data),
            "net": {"sizes": list(task.sizes), "hidden": "logistic", "output": "linear",
                    "init": "normal/sqrt(fan_in), zero biases"},
            "loss": task.loss, "optimizer": "adam", "full_batch": True, "lr": task.lr, "steps": task.steps,
            "warm": task.warm, "metric": task.metric,
            "penalty": {"include": "kernel", "w0": 1.0, "pi_zero": 0.5, "learn_pi_zero": True, "mixture_init": "even",
                        "precision_prior": "gamma(1, beta)", "mixture_lr": task.mixture_lr},
            "components": k, "lanes": lanes, "selection_seeds": selection_seeds, "test_seeds": test_seeds}


def tasks(quick: bool, steps: dict | None = None) -> tuple[Task, ...]:
    taus_shift = tuple(float(t) for t in 10.0 ** np.arange(-5.0, -0.9, 0.5))
    taus_sun = tuple(float(t) for t in 10.0 ** np.arange(-7.0, -1.9, 0.5))
    if quick:
        taus_shift, taus_sun = (1e-4, 1e-3, 1e-2), (1e-6, 1e-5, 1e-4)
    steps = steps or ({"shift": (600, 100), "sunspots": (800, 200)} if quick
                      else {"shift": (3000, 500), "sunspots": (5000, 1000)})
    return (
        Task("shift", "20-10-1 logistic MLP", (20, 10, 1), "bce", *steps["shift"], taus_shift,
             (1.0,) if quick else (1.0, 10.0), "accuracy", 2 if quick else 10, shift_data()),
        Task("sunspots", "12-8-1 logistic MLP", (12, 8, 1), "mse", *steps["sunspots"], taus_sun,
             (0.01,) if quick else (0.01, 0.1), "arv", 2 if quick else 5, SUNSPOT_DATA),
    )


def full() -> Config:
    return Config(tasks(False))


def quick() -> Config:
    return Config(tasks(True), components=(3,), test_seeds=2, quick=True)


def smoke() -> Config:
    """The test suite's version: 20 steps, a 2-point grid, K = 3, one test seed."""
    small = tuple(dataclasses.replace(t, taus=t.taus[:2]) for t in tasks(True, {"shift": (20, 10), "sunspots": (20, 10)}))
    return Config(small, components=(3,), test_seeds=1, pilot=(100, 2), quick=True)
