"""HashedNets against dense, low-rank and random-edge baselines with equal free parameters.

Chen et al., `Compressing Neural Networks with the Hashing Trick
<https://arxiv.org/abs/1504.04788>`_, 2015, Table 1 / Figure 2: a 3-layer (784-1000-10) and
a 5-layer (784-1000-1000-1000-10) MLP at compression factors 1 ... 1/64 (free / virtual
weights of the weight matrices) as HashedNets (one bucket vector per layer), a cross-layer
hashed pool, an equal-size dense net, a low-rank factorisation and random edge removal.
Every point is a trained net stored in a real ``.wsjax`` file (hashed layers as their
buckets, low-rank ones as their factors, RER as its sparse survivors), read back and scored.
"""
