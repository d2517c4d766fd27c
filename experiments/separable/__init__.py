"""Depthwise separable convolutions (Howard et al. 2017, MobileNets) in a small Fashion-MNIST CNN.

The same :class:`wsjax.models.SmallCNN` built from standard 3x3 blocks and from depthwise
separable blocks (depthwise 3x3 per channel, ReLU, pointwise 1x1) at the same stages, depth
and widths, and separable nets widened by MobileNet's width multiplier until they match the
standard net's parameters and multiply-adds. Exact counts from one function
(:func:`wsjax.models.counting.count`), test accuracy over three seeds, and the forward and
training-step times of every arm measured side by side on this CPU.

References: Howard et al., `MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications <https://arxiv.org/abs/1704.04861>`_, 2017; Sifre, `Rigid-Motion
Scattering for Image Classification <https://www.di.ens.fr/data/publications/papers/phd_sifre.pdf>`_,
PhD thesis, 2014.
"""
