"""Distillation (Hinton, Vinyals & Dean 2015; Ba & Caruana 2014) into small, shallow and hashed students.

A teacher (LeNet-5 or a 2x1200 MLP, whichever is stronger on validation data) and four
students (2x800, 2x30, a single wide hidden layer, LeNet-300-100 hashed at 1/8), each trained
on hard labels, by Hinton's softened targets at several temperatures and by logit
regression, over several seeds. The hashed students are real ``.wsjax`` files, so a
distilled and a hard-label hashed net are compared at equal stored bytes.

References: Hinton, Vinyals & Dean, `Distilling the Knowledge in a Neural Network
<https://arxiv.org/abs/1503.02531>`_, 2015; Ba & Caruana, `Do Deep Nets Really Need to be
Deep? <https://arxiv.org/abs/1312.6184>`_, 2014; Chen et al., `Compressing Neural Networks
with the Hashing Trick <https://arxiv.org/abs/1504.04788>`_, 2015.
"""
