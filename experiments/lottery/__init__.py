"""Lottery tickets on LeNet-300-100 and LeNet-5: iterative magnitude pruning with rewinding
against a random re-initialisation of the same mask and a random mask of the same per-layer
densities, from 100 % down to about 1.5 % of the weights.

Frankle & Carbin, `The Lottery Ticket Hypothesis <https://arxiv.org/abs/1803.03635>`_, ICLR
2019: test accuracy at early stopping and the early-stopping iteration against weights
remaining (their Figures 3-4) for rewound tickets and both controls, several seeds, the
paper's claims beside ours, and Liu et al., `Rethinking the Value of Network Pruning
<https://arxiv.org/abs/1810.05270>`_, ICLR 2019, beside both. The method is
:mod:`wsjax.pruning.lottery`; the recipe and decision rules are in ``config.py``.
"""
