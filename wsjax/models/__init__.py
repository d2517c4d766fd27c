"""Reference models (flax.linen). Models never know they are shared: sharing lives in
parameter space (:mod:`wsjax.sharing`)."""

from wsjax.models.lenet import MLP, LeNet5, LeNet300100
