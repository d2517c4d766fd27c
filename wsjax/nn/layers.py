"""``Conv``: a linen convolution layer with ``flax.linen.Conv``'s parameters (``kernel`` HWIO,
``bias``), names, initialisers and output, computed by :func:`wsjax.nn.conv2d`. A checkpoint
of a model built with ``nn.Conv`` loads into the same model built with this one."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from wsjax.nn.conv import conv2d


class Conv(nn.Module):
    """2-D convolution, stride 1 by default: ``features`` maps of ``kernel_size`` taps."""

    features: int
    kernel_size: Sequence[int] = (3, 3)
    padding: str | Sequence = "SAME"
    strides: Sequence[int] = (1, 1)
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), jnp.float32)
        y = conv2d(x, kernel, self.padding, self.strides)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32)
        return y
