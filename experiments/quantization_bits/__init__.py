"""Test accuracy against stored bits per weight (1 to 8) for low-bit weights and Deep
Compression's codebooks: LeNet-300-100 and LeNet-5 on Fashion-MNIST.

Binary (BinaryConnect, deterministic and stochastic, XNOR-Net's per-layer scale), ternary
(TWN), k-bit straight-through quantization (fixed step and LSQ's learned step) and the
k-means codebook with centroid retraining (Deep Compression, with and without pruning), each
fine-tuned from the committed dense net of its seed, written to a real ``.wsjax`` file and
scored as loaded back from it. BinaryConnect's MNIST result is set beside ours as shape.

References: Courbariaux, Bengio & David, `BinaryConnect: Training Deep Neural Networks with
binary weights during propagations <https://arxiv.org/abs/1511.00363>`_, 2015; Rastegari et
al., `XNOR-Net <https://arxiv.org/abs/1603.05279>`_, 2016; Li, Zhang & Liu, `Ternary Weight
Networks <https://arxiv.org/abs/1605.04711>`_, 2016; Esser et al., `Learned Step Size
Quantization <https://arxiv.org/abs/1902.08153>`_, 2019; Han, Mao & Dally, `Deep
Compression <https://arxiv.org/abs/1510.00149>`_, ICLR 2016.
"""
