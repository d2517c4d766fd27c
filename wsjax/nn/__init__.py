"""Neural-network ops with backward passes chosen per backend (fast on XLA:CPU, plain lax
elsewhere): :func:`conv2d`, :func:`max_pool_2x2`, the drop-in linen layer :class:`Conv`, and
the :func:`compiler_options` the training engine jits with."""

from wsjax.nn.backend import compiler_options, on_platform
from wsjax.nn.conv import conv2d
from wsjax.nn.layers import Conv
from wsjax.nn.pool import max_pool_2x2

__all__ = ["Conv", "compiler_options", "conv2d", "max_pool_2x2", "on_platform"]
