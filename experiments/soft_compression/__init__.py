"""Soft weight-sharing compression (Ullrich, Meeds & Welling 2017) of LeNet-300-100 and LeNet-5.

Each run retrains the dense reference net (:func:`wsjax.study.pretrained`) under a learned
17-component Gaussian-mixture prior, ``mean cross-entropy + (tau / N) (-log p(w) - log
p(mixture))`` (component 0 at zero with fixed mixing weight pi_0; Gamma hyper-priors on the
precisions; the mixture learned by its own Adam), merges close components, snaps every kernel
weight to its component's mean and stores the result (:func:`wsjax.compress.soft.soft_weight_sharing`,
:func:`wsjax.study.store_and_reload`: the reported bytes are the file's, the accuracy the
loaded file's). Two compositions that are not Ullrich's recipe sit beside it: the snapped
values fine-tuned as Deep Compression codebooks (``+ centroid fine-tune``), and runs starting
from Deep Compression's pruned net (``DC pruning xS``, :func:`wsjax.study.pruned_nets.pruned_net`)
that keep its zeros. The report compares every row with Deep Compression's rows in its store.

The "chosen on validation" table picks a run on a validation split (the last 5k training
images; the dense net saw them, so it is a weak validation). The list of runs grew over
several sessions with earlier runs' test numbers in view; every run made is kept, so the
test-set budget table is an optimistic pick, like Deep Compression's.

Paper (MNIST): LeNet-300-100 64x (error 1.89 -> 1.94 %), LeNet-5-Caffe 162x (0.88 -> 0.97 %).

References: Ullrich, Meeds & Welling, `Soft Weight-Sharing for Neural Network Compression
<https://arxiv.org/abs/1702.04008>`_, ICLR 2017; Nowlan & Hinton 1992; Han, Mao & Dally,
`Deep Compression <https://arxiv.org/abs/1510.00149>`_, ICLR 2016.
"""
