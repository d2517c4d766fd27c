"""The LeNets that the compression papers report on.

References: LeCun et al., `Gradient-based learning applied to document recognition
<http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf>`_, 1998; the Caffe variant of LeNet-5
(conv20-conv50-fc500-fc10) used by Han et al., `Deep Compression
<https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from wsjax import nn as wnn


class MLP(nn.Module):
    """A fully connected ReLU net on flattened inputs; ``features`` lists every layer's width.

    ``LeNet300100`` is ``MLP((300, 100, 10))``: 784*300+300 + 300*100+100 + 100*10+10 = 266,610
    parameters on 28x28 inputs.
    """

    features: Sequence[int] = (300, 100, 10)

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        for i, f in enumerate(self.features):
            x = nn.Dense(f, name=f"Dense_{i}")(x)
            if i < len(self.features) - 1:
                x = nn.relu(x)
        return x


def mlp_params(features: Sequence[int], input_dim: int) -> int:
    """Parameters (weights and biases) of ``MLP(features)`` on ``input_dim`` inputs."""
    sizes = (input_dim, *features)
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def equal_size_widths(features: Sequence[int], target: int, input_dim: int) -> tuple:
    """``features`` with every hidden width scaled by one factor so that the dense MLP has
    as close to ``target`` parameters as possible (the output width kept): the "equal-size"
    baseline of Chen et al. 2015 for a compressed net with ``target`` free parameters."""
    hidden, out = tuple(features[:-1]), features[-1]
    if not hidden:
        raise ValueError("equal_size_widths needs at least one hidden layer")
    best, best_gap = None, None
    lo, hi = 1, max(hidden)
    while lo <= hi:  # the count grows with the width: bisect on the first hidden width
        mid = (lo + hi) // 2
        widths = tuple(max(1, round(h * mid / hidden[0])) for h in hidden) + (out,)
        n = mlp_params(widths, input_dim)
        if best_gap is None or abs(n - target) < best_gap:
            best, best_gap = widths, abs(n - target)
        if n < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return best


def LeNet300100(num_classes: int = 10) -> MLP:
    """LeNet-300-100: 784-300-100-10, 266,610 parameters (Han et al. 2016: 1070 KB float32)."""
    return MLP((300, 100, num_classes))


#: The smallest image side LeNet-5's conv + pool stack accepts.
LENET5_MIN_SIZE = 16


class LeNet5(nn.Module):
    """LeNet-5, Caffe variant: conv 20@5x5, max-pool 2, conv 50@5x5, max-pool 2, fc 500, fc 10.

    'VALID' convolutions on 28x28 inputs: 431,080 parameters (Han et al. 2016: 1720 KB).
    The convolutions and pools are :mod:`wsjax.nn`'s (``flax.linen.Conv``'s parameters, a
    backward pass that stays fast inside a scanned epoch on XLA:CPU). Its conv + pool stack needs images of at least :data:`LENET5_MIN_SIZE` (16) pixels a
    side: ``(16 - 4) / 2 = 6``, ``(6 - 4) / 2 = 1``; smaller ones raise ValueError.
    """

    num_classes: int = 10
    #: the two convolutions' channels and the hidden dense width (the Caffe variant's 20, 50, 500)
    features: Sequence[int] = (20, 50, 500)

    @nn.compact
    def __call__(self, x):
        if len(self.features) != 3 or min(self.features) < 1:
            raise ValueError(f"LeNet5.features are (conv channels, conv channels, dense width), got {self.features!r}")
        if x.ndim != 4 or min(x.shape[1:3]) < LENET5_MIN_SIZE:
            raise ValueError(
                f"LeNet-5 needs NHWC images of at least {LENET5_MIN_SIZE}x{LENET5_MIN_SIZE} (two 5x5 "
                f"'VALID' convolutions, each followed by a 2x2 max-pool), got input shape {tuple(x.shape)}"
            )
        c0, c1, hidden = self.features
        x = wnn.Conv(c0, (5, 5), padding="VALID", name="Conv_0")(x)
        x = wnn.max_pool_2x2(x)
        x = wnn.Conv(c1, (5, 5), padding="VALID", name="Conv_1")(x)
        x = wnn.max_pool_2x2(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(hidden, name="Dense_0")(x))
        return nn.Dense(self.num_classes, name="Dense_1")(x)


def lenet5_params(features: Sequence[int] = (20, 50, 500), classes: int = 10, side: int = 28) -> int:
    """Parameters of ``LeNet5(classes, features)`` on ``side`` x ``side`` one-channel images:
    431,080 for the Caffe variant on 28x28."""
    c0, c1, hidden = features
    flat = ((side - 4) // 2 - 4) // 2
    return (25 * c0 + c0) + (25 * c0 * c1 + c1) + (flat * flat * c1 * hidden + hidden) + (hidden * classes + classes)


def equal_size_lenet5(target: int, features: Sequence[int] = (20, 50, 500), classes: int = 10) -> tuple:
    """LeNet-5's widths for about ``target`` parameters on 28x28 images (the narrow net of a
    budget): every width of ``features`` scaled by the one factor that comes nearest
    ``target``, then the dense width alone moved to the count nearest it (the channels are
    coarse steps, the dense width a fine one)."""
    c0, c1, hidden = features

    def widths(k):
        return tuple(max(1, round(f * k / hidden)) for f in features)

    k = min(range(1, 4 * hidden + 1), key=lambda k: abs(lenet5_params(widths(k), classes) - target))
    convs = widths(k)[:2]
    fixed = lenet5_params((*convs, 0), classes)  # the convolutions and the output bias
    per_unit = lenet5_params((*convs, 1), classes) - fixed  # a dense unit: its inputs, bias and outputs
    return (*convs, max(1, round((target - fixed) / per_unit)))
