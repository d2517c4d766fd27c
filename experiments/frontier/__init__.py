"""The compression frontier: LeNet-300-100 and LeNet-5 compressed as far as the library goes,
against TensorFlow Model Optimization's pruning + clustering recipe, measured side by side.

Our best pipeline (sensitivity-allocated gradual pruning, per-layer codebook widths chosen on
validation, optimal 1-D k-means, Huffman coding with tuned index widths) and one ablation per
ingredient, 3 seeds, accuracy against the bytes of real files; the peer's points from
``benchmarks/peers/tfmot_frontier.py``. Recipe and decision rule: :mod:`experiments.frontier.config`.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016;
Han, Pool, Tran & Dally, `Learning both Weights and Connections
<https://arxiv.org/abs/1506.02626>`_, 2015; Zhu & Gupta, `To prune, or not to prune
<https://arxiv.org/abs/1710.01878>`_, 2017.
"""
