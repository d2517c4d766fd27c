"""Reference models (flax.linen). Models never know they are shared: sharing lives in
parameter space (:mod:`wsjax.sharing`)."""

from wsjax.models.lenet import MLP, LeNet5, LeNet300100, equal_size_lenet5, equal_size_widths, lenet5_params, mlp_params
from wsjax.models.local import LocallyConnected2D
from wsjax.models.lecun89 import LocalNet, Net1, Net2, lecun89_net
from wsjax.models.dynamic import DynamicNet
from wsjax.models.vit import ViT, deep_mlp, equal_size_vit, vit_params
from wsjax.models.factored import FactoredLeNet5, FactoredMLP, factor_params
from wsjax.models.separable import DepthwiseConv2D, Pointwise, SeparableConv, SmallCNN
from wsjax.models.early_exit import MultiExitCNN, accuracy_vs_macs, early_exit_predict, joint_loss
