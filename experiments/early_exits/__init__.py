"""Early exits (MSDNet-lite): one multi-exit CNN, confidence-thresholded inference, and
separate small networks at matched compute.

A :class:`wsjax.models.MultiExitCNN` (a classifier after each of its conv blocks) is trained
jointly on the sum of its exits' losses (MSDNet's objective; one other weighting as a
variant); at inference an example leaves at the first exit whose confidence reaches a
threshold. The study sweeps the threshold (test accuracy against counted average
multiply-adds per example), reads off the accuracy at 50% of the full network's
multiply-adds, scores each exit alone, trains the notes' alternative (one separate network
per compute budget) at matched multiply-adds, and measures the CPU time of the jitted
'masked' and 'compacting' schedules beside the counted cost.

References: Huang, Chen, Li, Wu, van der Maaten & Weinberger, `Multi-Scale Dense Networks for
Resource Efficient Image Classification <https://arxiv.org/abs/1703.09844>`_, ICLR 2018;
Teerapittayanon, McDanel & Kung, `BranchyNet <https://arxiv.org/abs/1709.01686>`_, 2016; the
notes of seed 003 ("Dynamic Computation").
"""
