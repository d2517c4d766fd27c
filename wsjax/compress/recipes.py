"""The two pipelines most studies start from, with their papers' settings as defaults."""

from __future__ import annotations

from wsjax import checks
from wsjax.compress.pipeline import Pipeline
from wsjax.compress.stages import Hash, Prune, Quantize, Retrain


def deep_compression(sparsity, *, prune_epochs: int = 6, prune_lr: float = 1e-3, bits=None,
                     quant_epochs: int = 3, quant_lr: float = 1e-4, rounds: int = 1) -> Pipeline:
    """Han et al.'s pipeline: prune to ``sparsity`` (a number or ``{regex: number}``) in
    ``rounds`` geometric steps, each followed by retraining the survivors; quantize the
    survivors (``bits``: Han's 8 conv / 5 fc by default) and retrain the centroids. Storing
    the result gives the relative-index, Huffman-coded file."""
    rounds = checks.positive_int(rounds, "rounds")
    stages = []
    for r in range(1, rounds + 1):
        stages += [Prune(_geometric(sparsity, r, rounds)), Retrain(prune_epochs, prune_lr)]
    return Pipeline(stages + [Quantize(bits), Retrain(quant_epochs, quant_lr)])


def _geometric(sparsity, r: int, rounds: int):
    """Round ``r`` of ``rounds``: the kept fraction ``keep ** (r / rounds)``."""
    def one(s):
        return 1.0 - (1.0 - float(s)) ** (r / rounds)

    if isinstance(sparsity, dict):
        return {k: one(v) for k, v in sparsity.items()}
    return one(sparsity)


def hashednets(compression: float, *, epochs: int = 3, lr: float = 1e-3, scope: str = "layer",
               init: str = "project") -> Pipeline:
    """HashedNets at ``compression`` (free / virtual weights), fitted to the current weights
    (``init='project'``) and retrained."""
    return Pipeline([Hash(compression, scope=scope, init=init), Retrain(epochs, lr, alpha=0.05)])
