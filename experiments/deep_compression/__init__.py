"""Deep Compression (Han, Mao & Dally 2016) of LeNet-300-100 and LeNet-5, stage by stage.

From the dense reference nets of the ``baseline`` study: (1) iterative magnitude pruning to
Han et al.'s per-layer kept fractions times each scale of a pruning trajectory, retraining
the survivors through the mask (:mod:`wsjax.study.pruned_nets`); (2) per-layer k-means of
the survivors (8-bit conv, 5-bit fc, linear init) with centroid retraining; (3) the file:
relative-index sparse layers with Huffman-coded streams (:mod:`wsjax.storage`), loaded back
and scored. The stages at Han's sparsity are reported beside the paper's, with the sweep
over sparsities, the centroid-initialisation study (Sec. 3.2), fewer fc bits, and structured
neuron pruning of LeNet-300-100 (a narrower dense net; inference speed-up).

References: Han, Mao & Dally, `Deep Compression: Compressing Deep Neural Networks with
Pruning, Trained Quantization and Huffman Coding <https://arxiv.org/abs/1510.00149>`_, ICLR
2016; Han, Pool, Tran & Dally, `Learning both Weights and Connections for Efficient Neural
Networks <https://arxiv.org/abs/1506.02626>`_, 2015.
"""
