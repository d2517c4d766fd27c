"""LeCun (1989): Net-1 .. Net-5 on 16x16 digits, 320 training and 160 test examples.

Reproduces Table 1 of LeCun, `Generalization and network design strategies
<http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, 1989: the shared (convolutional)
nets Net-4 and Net-5 generalise better than the unshared Net-1..3. Net-4 and Net-5 are
Net-3's locally connected modules with more maps plus the convolution-as-sharing transform
(:func:`wsjax.sharing.local.convolution`), so their "links" are the model's parameters and
their "free parameters" the transform's state (:mod:`wsjax.models.lecun89`); the same
architectures without the transform are the study's sharing controls.

Data (:mod:`wsjax.data.lecun89`): ``lecun89`` rebuilds the paper's database as we read its
description (12 drawings of each digit, each at 4 horizontal positions, 320 / 160 images,
a new draw and split per seed); ``lecun89_new_drawings`` splits the same images by drawing;
``lecun89_centred`` draws 320 / 160 centred digits. Recipe and settings: ``config.py``.
"""
