"""Redundancy within and between the layers of trained nets (seed 001's open question).

Spectra and effective ranks; how much of a layer its own subspace explains against the other
layers' at equal rank; a cross-layer shared basis against per-layer SVD at equal stored bytes;
Denil's predicted first layers; Denton's factored LeNet-5 with its measured speed; a
bottleneck layer trained from scratch against a factored trained one.

References: Denil et al., `Predicting Parameters in Deep Learning
<https://arxiv.org/abs/1306.0543>`_, 2013; Denton et al., `Exploiting Linear Structure Within
Convolutional Networks for Efficient Evaluation <https://arxiv.org/abs/1404.0736>`_, 2014;
Wang et al., `Basis Sharing: Cross-Layer Parameter Sharing for Large Language Model
Compression <https://arxiv.org/abs/2410.03765>`_, 2024; Kornblith et al., `Similarity of
Neural Network Representations Revisited <https://arxiv.org/abs/1905.00414>`_, 2019.
"""
