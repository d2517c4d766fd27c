"""Depthwise separable convolutions (MobileNet) and a small CNN built from either kind of block.

A standard ``k x k`` convolution from ``N`` to ``M`` channels has ``k^2 N M`` weights and costs
``k^2 N M`` multiply-adds per output position. Its depthwise separable factorisation is a
*depthwise* ``k x k`` convolution (one filter per input channel: ``feature_group_count = N``,
``k^2 N`` weights) followed by a *pointwise* 1x1 convolution ``N -> M`` (``N M`` weights): the
cost ratio is ``1/M + 1/k^2`` (Howard et al. 2017, Section 3.1; 8-9x fewer multiply-adds for
3x3 kernels). Exact counts: :func:`wsjax.models.counting.count`.

* :func:`depthwise_conv2d`: on CPU the depthwise conv is ``k^2`` shifted, per-channel scaled
  copies of the (padded) input summed, differentiated by JAX; on a loaded 2-core x86 machine
  (batch 128, 28x28x32, 3x3, jax 0.10.2) this ran the forward pass in 8 ms against 510 ms for
  XLA:CPU's grouped ``conv_general_dilated``, and forward plus gradient in about 0.3 s
  against 1.3 s. Elsewhere (GPU, TPU) the grouped convolution runs
  (:func:`wsjax.nn.on_platform`).
* :class:`DepthwiseConv2D` and :class:`Pointwise` keep ``flax.linen.Conv``'s kernel layouts
  (``(kh, kw, 1, C)`` for a depthwise conv with ``feature_group_count = C``, ``(1, 1, N, M)``
  for the 1x1) and its LeCun-normal initialiser, so their params load into the ``nn.Conv``
  equivalents; the pointwise conv is a matrix product over the channel axis.
* :class:`SeparableConv`: depthwise, then (by default) a ReLU, then pointwise. MobileNet puts
  batch norm and a ReLU after both convolutions; these models have no batch norm (nothing in
  this project keeps batch statistics), so the ReLU between is the only nonlinearity inside
  the block (``relu_between=False`` drops it, the choice Xception found better: Chollet,
  `Xception <https://arxiv.org/abs/1610.02357>`_, 2017). Both convolutions have biases.
* :class:`SmallCNN`: a Fashion-MNIST-sized CNN (28x28x1) whose only difference between
  ``block='standard'`` and ``block='separable'`` is the kind of block: the same stages, depth
  and widths. As in MobileNet, the first layer (``stem``) stays a standard convolution in
  both (a depthwise conv on one input channel is a single filter, and would be followed by a
  1x1 that mixes nothing). Layout: stem ``3x3 -> w0``, then per stage ``s`` with width
  ``ws``: ``depth`` blocks (the first one changes the channel count), a ReLU after each, and a
  2x2 max-pool between stages; then global average pooling and a dense classifier.
  ``width_multiplier`` (MobileNet's alpha) scales every width (rounded, at least 1).

References: Howard et al., `MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications <https://arxiv.org/abs/1704.04861>`_, 2017; Sifre, `Rigid-Motion
Scattering for Image Classification <https://www.di.ens.fr/data/publications/papers/phd_sifre.pdf>`_,
PhD thesis, 2014 (depthwise separable convolutions).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from wsjax import checks
from wsjax import nn as wnn
from wsjax.models import counting

BLOCKS = ("standard", "separable")

_DN = ("NHWC", "HWIO", "NHWC")


# ----------------------------------------------------------------------------- the depthwise op


def _pads(hw, kernel_hw, strides, padding) -> tuple:
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'VALID' or two (low, high) pairs, got {padding!r}")
        return tuple(tuple(int(v) for v in p)
                     for p in lax.padtype_to_pads(tuple(hw), tuple(kernel_hw), tuple(strides), padding.upper()))
    try:
        pads = tuple(tuple(int(v) for v in p) for p in padding)
    except TypeError:
        raise ValueError(f"padding must be 'SAME', 'VALID' or two (low, high) pairs, got {padding!r}") from None
    if len(pads) != 2 or any(len(p) != 2 or min(p) < 0 for p in pads):
        raise ValueError(f"padding must be 'SAME', 'VALID' or two non-negative (low, high) pairs, got {padding!r}")
    return pads


def _depthwise_shifted(x, kernel, strides, pads):
    kh, kw, c = kernel.shape
    sh, sw = strides
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    ho = (xp.shape[1] - kh) // sh + 1
    wo = (xp.shape[2] - kw) // sw + 1
    y = None
    for a in range(kh):
        for b in range(kw):
            tap = xp[:, a: a + sh * (ho - 1) + 1: sh, b: b + sw * (wo - 1) + 1: sw, :] * kernel[a, b]
            y = tap if y is None else y + tap
    return y


def _depthwise_grouped(x, kernel, strides, pads):
    kh, kw, c = kernel.shape
    return lax.conv_general_dilated(x, kernel.reshape(kh, kw, 1, c), tuple(strides), pads,
                                    dimension_numbers=_DN, feature_group_count=c)


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, padding="SAME", strides: Sequence[int] = (1, 1)) -> jax.Array:
    """Depthwise conv of NHWC ``x`` with ``kernel`` ``(kh, kw, C)`` or ``(kh, kw, 1, C)``:
    channel ``c`` of the output is channel ``c`` of ``x`` cross-correlated with filter ``c``
    (``flax.linen.Conv(C, feature_group_count=C)``'s function)."""
    if x.ndim != 4:
        raise ValueError(f"depthwise_conv2d needs NHWC input, got shape {tuple(x.shape)}")
    if kernel.ndim == 4:
        if kernel.shape[2] != 1:
            raise ValueError(f"a depthwise kernel is (kh, kw, C) or (kh, kw, 1, C), got {tuple(kernel.shape)}")
        kernel = kernel[:, :, 0, :]
    if kernel.ndim != 3 or kernel.shape[2] != x.shape[3]:
        raise ValueError(f"depthwise_conv2d: input has {x.shape[3]} channels, kernel shape {tuple(kernel.shape)}")
    strides = tuple(int(s) for s in strides)
    if len(strides) != 2 or min(strides) < 1:
        raise ValueError(f"strides must be two positive ints, got {strides!r}")
    pads = _pads(x.shape[1:3], kernel.shape[:2], strides, padding)
    for n, (lo, hi), k in zip(x.shape[1:3], pads, kernel.shape[:2]):
        if n + lo + hi < k:
            raise ValueError(f"depthwise_conv2d: a {kernel.shape[0]}x{kernel.shape[1]} kernel does not fit a "
                             f"{x.shape[1]}x{x.shape[2]} input padded by {pads}")
    return wnn.on_platform(functools.partial(_depthwise_shifted, strides=strides, pads=pads),
                           functools.partial(_depthwise_grouped, strides=strides, pads=pads), x, kernel)


# ----------------------------------------------------------------------------- layers


def scaled_width(width, width_multiplier) -> int:
    """MobileNet's thinned width: ``round(alpha * width)``, at least 1."""
    width = checks.positive_int(width, "width")
    alpha = checks.number(width_multiplier, "width_multiplier", lo=0, lo_open=True)
    return max(1, int(round(alpha * width)))


class DepthwiseConv2D(nn.Module):
    """One ``kernel_size`` filter per input channel; params ``kernel`` (kh, kw, 1, C), ``bias`` (C,)."""

    kernel_size: Any = (3, 3)
    strides: Any = (1, 1)
    padding: Any = "SAME"
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x):
        if x.ndim != 4:
            raise ValueError(f"DepthwiseConv2D needs NHWC input, got shape {tuple(x.shape)}")
        kh, kw = checks.positive_pair(self.kernel_size, "kernel_size")
        c = x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (kh, kw, 1, c), jnp.float32)
        y = depthwise_conv2d(x, kernel, self.padding, checks.positive_pair(self.strides, "strides"))
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (c,), jnp.float32)
        return y

    @nn.nowrap
    def count_spec(self, in_shape):
        """The :mod:`~wsjax.models.counting` spec of this layer on one example of ``in_shape``."""
        return counting.depthwise(checks.positive_pair(self.kernel_size, "kernel_size"), in_shape[-1],
                                  checks.positive_pair(self.strides, "strides"), self.padding, self.use_bias)


class Pointwise(nn.Module):
    """A 1x1 conv ``N -> features`` (a matrix product over channels); params ``kernel`` (1, 1, N, M), ``bias``."""

    features: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x):
        m = checks.positive_int(self.features, "features")
        kernel = self.param("kernel", self.kernel_init, (1, 1, x.shape[-1], m), jnp.float32)
        y = jnp.matmul(x, kernel[0, 0])
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (m,), jnp.float32)
        return y

    @nn.nowrap
    def count_spec(self, in_shape):
        """The :mod:`~wsjax.models.counting` spec of this layer."""
        return counting.pointwise(in_shape[-1], self.features, self.use_bias)


class SeparableConv(nn.Module):
    """Depthwise ``kernel_size`` conv, ReLU (if ``relu_between``), pointwise 1x1 to
    ``scaled_width(features, width_multiplier)`` channels. Submodules ``depthwise``, ``pointwise``."""

    features: int
    kernel_size: Any = (3, 3)
    width_multiplier: float = 1.0
    strides: Any = (1, 1)
    padding: Any = "SAME"
    relu_between: bool = True
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        out = scaled_width(self.features, self.width_multiplier)
        y = DepthwiseConv2D(self.kernel_size, self.strides, self.padding, self.use_bias, name="depthwise")(x)
        if self.relu_between:
            y = nn.relu(y)
        return Pointwise(out, self.use_bias, name="pointwise")(y)


# ----------------------------------------------------------------------------- the small CNN


def _widths(widths) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
    return tuple(checks.positive_int(w, "widths") for w in widths)


def _block(block) -> str:
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
    return block


def conv_block(block: str, features: int, kernel_size: int, name: str):
    """A standard ``k x k`` conv (:class:`wsjax.nn.Conv`) or a :class:`SeparableConv`, 'SAME' padding."""
    if _block(block) == "standard":
        return wnn.Conv(features, (kernel_size, kernel_size), padding="SAME", name=name)
    return SeparableConv(features, (kernel_size, kernel_size), name=name)


class SmallCNN(nn.Module):
    """Stem conv, ``len(widths)`` stages of ``depth`` standard or separable blocks (2x2 max-pool
    between stages), global average pooling, dense classifier (see the module docstring).

    Param names: ``stem``, ``stage{s}_block{d}`` (a ``wsjax.nn.Conv``'s ``kernel``/``bias``, or
    ``depthwise``/``pointwise``), ``classifier``.
    """

    block: str = "standard"
    widths: Sequence[int] = (32, 64, 128)
    width_multiplier: float = 1.0
    depth: int = 1
    kernel_size: int = 3
    num_classes: int = 10

    def _config(self):
        widths = tuple(scaled_width(w, self.width_multiplier) for w in _widths(self.widths))
        return (_block(self.block), widths, checks.positive_int(self.depth, "depth"),
                checks.positive_int(self.kernel_size, "kernel_size"), checks.positive_int(self.num_classes, "num_classes"))

    @nn.compact
    def __call__(self, x):
        block, widths, depth, k, classes = self._config()
        need = 2 ** (len(widths) - 1)
        if x.ndim != 4 or min(x.shape[1:3]) < need:
            raise ValueError(f"SmallCNN with {len(widths)} stages needs NHWC images of at least {need}x{need} "
                             f"({len(widths) - 1} 2x2 max-pools), got input shape {tuple(x.shape)}")
        x = nn.relu(wnn.Conv(widths[0], (k, k), padding="SAME", name="stem")(x))
        for s, w in enumerate(widths):
            if s:
                x = wnn.max_pool_2x2(x)
            for d in range(depth):
                x = nn.relu(conv_block(block, w, k, f"stage{s}_block{d}")(x))
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(classes, name="classifier")(x)


def small_cnn_specs(model: SmallCNN, input_shape: Sequence[int] = (28, 28, 1)) -> list:
    """The :mod:`~wsjax.models.counting` spec list of ``model``, written out by hand (the
    tests check it against the traced model): ``counting.count(small_cnn_specs(m), shape)``."""
    block, widths, depth, k, classes = model._config()
    h, w, c = (int(d) for d in input_shape)
    specs = [counting.Conv(k, c, widths[0], name="stem")]
    c = widths[0]
    for s, width in enumerate(widths):
        if s:
            specs.append(counting.Pool(2, name=f"pool{s}"))
        for d in range(depth):
            name = f"stage{s}_block{d}"
            if block == "standard":
                specs.append(counting.Conv(k, c, width, name=name))
            else:
                specs += [counting.depthwise(k, c, name=f"{name}/depthwise"),
                          counting.pointwise(c, width, name=f"{name}/pointwise")]
            c = width
    return specs + [counting.GlobalPool(name="gap"), counting.Dense(c, classes, name="classifier")]
