"""Dense reference nets: LeNet-300-100 and LeNet-5 (Caffe) trained with the standard recipe.

Every compression study starts from the nets this study trains (:func:`wsjax.study.pretrained`
reads them from its store), so the dense accuracy each compression is measured against is
the one reported here.
"""
