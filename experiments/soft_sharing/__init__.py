"""Soft weight-sharing against weight decay and weight elimination on Nowlan & Hinton's problems.

Nowlan & Hinton (1992) report that a learned mixture-of-Gaussians prior on the weights
("soft weight-sharing") generalises better than weight decay and weight elimination on two
small problems: shift detection (rebuilt from the paper's description,
:mod:`wsjax.data.shift`) and the yearly sunspot series (:mod:`wsjax.data.sunspots`). This
study trains no penalty, L2, weight elimination and soft sharing with K = 3, 5 and 10
components (:mod:`wsjax.penalties.switchable`) on both with one recipe, chooses every
strength on validation data, and reports the chosen settings' test metrics over fresh seeds.

Paper: Nowlan & Hinton, `Simplifying Neural Networks by Soft Weight-Sharing
<https://www.cs.toronto.edu/~hinton/absps/sunspots.pdf>`_, Neural Computation 1992.
"""
