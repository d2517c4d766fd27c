"""The lecun89 study's config: which nets, data, seeds and recipe.

Run: ``wsjax run lecun89 [--quick] [--seed S] [--dataset lecun89|lecun89_new_drawings|lecun89_centred]``
(or ``python -m experiments.lecun89``); writes ``experiments/results/lecun89/`` (``rows.jsonl``,
``results.md``, ``results.json``, ``accuracy_vs_free_params*.png``).

Recipe (one fixed recipe for every net, chosen on training error alone and never tuned on
the test split): tanh hidden units, sigmoid outputs with one-hot targets in {0, 1}, LeCun's
sum-of-squares loss (:func:`wsjax.models.lecun89.sum_of_squares`), Adam (learning rate
3e-3), minibatches of 32, 500 epochs. Every seed ``s`` is its own draw and split of the data
(``wsjax.data.load(dataset, split, seed=s)``) and its own initialisation
(``jax.random.key(s, impl='rbg')``); the seeds of one net train together, vmapped, in one
``fit`` call (:func:`wsjax.train.seeds.fit_seeds`, loop='scan'), so all seeds see the same
minibatch order of their own split.

The full run trains Net-1..Net-5 and the no-sharing controls of Net-4 and Net-5 on seeds
``S..S+19`` of the main data set (default ``lecun89``), on the next 20 draws (a
replication, pooled with the first), and on seeds ``S..S+19`` of the other settings:
``lecun89_centred``, ``lecun89_centred`` with every image moved by up to 2 pixels, and
``lecun89_new_drawings``. 5 x 7 units of 20 vmapped seeds; 15 to 45 minutes on 2 CPU
cores, depending on how busy they are. ``--quick``: the main data set only, 2 seeds, 10 epochs.

Expected (full run, as LeCun 1989, Table 1, on ``lecun89``): the shared nets Net-4 and Net-5
beat every unshared net (Net-1..3) on mean test accuracy.
"""

from __future__ import annotations

import dataclasses

from wsjax.models.lecun89 import NUM_NETS, net_name

#: The data sets this study runs on (16x16 digits, 320 training and 160 test images).
DATASETS = ("lecun89", "lecun89_new_drawings", "lecun89_centred")
#: (n, shared) of every net: the paper's five, then the sharing controls (Net-4 and Net-5's
#: architectures without the sharing transform: free = links).
NETS = tuple((n, True) for n in range(1, NUM_NETS + 1)) + ((4, False), (5, False))


@dataclasses.dataclass(frozen=True)
class Config:
    quick: bool = False
    nets: tuple[tuple[int, bool], ...] = NETS
    seeds: int = 20
    epochs: int = 500
    lr: float = 3e-3
    batch_size: int = 32
    #: fit's epoch loop ('scan': one dispatch per chunk of steps; the smoke test's single
    #: epoch compiles faster as a 'python' loop of one jitted step: the same updates)
    loop: str = "scan"
    #: further blocks of ``seeds`` draws of the main setting (seeds S+20.., S+40.., ...),
    #: reported on their own and pooled with the main one
    replications: int = 1
    #: other (dataset, max_shift) settings, run on the main seeds
    others: tuple[tuple[str, int], ...] = (("lecun89_centred", 0), ("lecun89_centred", 2),
                                           ("lecun89_new_drawings", 0))

    def settings(self, dataset: str, seed: int) -> list[dict]:
        """The main setting first, then the others, then the replications (the order of the
        report's sections); each a dict of ``dataset``, ``shift`` and ``seeds``."""
        if dataset not in DATASETS:
            raise ValueError(f"the lecun89 study runs on {', '.join(DATASETS)} (16x16, 320 / 160), not {dataset!r}")
        block = lambda first: list(range(first, first + self.seeds))
        main = {"dataset": dataset, "shift": 0, "seeds": block(seed)}
        others = [{"dataset": d, "shift": k, "seeds": block(seed)} for d, k in self.others if (d, k) != (dataset, 0)]
        replications = [{"dataset": dataset, "shift": 0, "seeds": block(seed + self.seeds * r)}
                        for r in range(1, self.replications + 1)]
        return [main, *others, *replications]

    def unit(self, setting: dict, n: int, shared: bool) -> dict:
        """The full config of training Net-``n`` on every seed of ``setting``: a row's key."""
        return {"study": "lecun89", "model": net_name(n, shared), "net": n, "shared": shared, **setting,
                "epochs": self.epochs, "optimizer": "adam", "lr": self.lr, "batch_size": self.batch_size,
                "loss": "sum_of_squares", "outputs": "sigmoid", "hidden": "tanh", "init": "rbg",
                "shuffle_seed": 0, "loop": self.loop}

    def units(self, dataset: str, seed: int) -> list[dict]:
        return [self.unit(s, n, shared) for s in self.settings(dataset, seed) for n, shared in self.nets]


def full() -> Config:
    return Config()


def quick() -> Config:
    """Under a minute on 2 cores: the main setting only, 2 seeds, 10 epochs."""
    return Config(quick=True, seeds=2, epochs=10, replications=0, others=())


def smoke() -> Config:
    """The test suite's version: Net-1 and Net-4 on 2 seeds, 1 epoch, on the main setting and
    one replication."""
    return Config(quick=True, nets=((1, True), (4, True)), seeds=2, epochs=1, loop="python", replications=1,
                  others=())
