"""2x2 max-pooling whose gradient is cheap on XLA:CPU.

``flax.linen.max_pool`` lowers to ``reduce_window``, whose gradient on XLA:CPU is a
scatter that builds int32 index arrays and scatters serially (LeNet-5's first
pool: about 7 ms of a 40 ms training step). With stride equal to the window (2x2, stride 2),
every input lies in one window, so the pool is a reshape and a max, and its gradient is a
mask: each window's cotangent goes to its first maximum (row-major), which is also the
element the plain gradient chooses. Off CPU the plain ``reduce_window`` runs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from wsjax.nn.backend import on_platform


def _windows(x):
    n, h, w, c = x.shape
    return x[:, : h - h % 2, : w - w % 2].reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def _pool_reshape(x):
    return jnp.max(_windows(x), axis=(2, 4))


def _pool_fwd(x):
    y = _pool_reshape(x)
    return y, (x, y)


def _pool_bwd(res, g):
    x, y = res
    n, h, w, c = x.shape
    win = _windows(x)  # (n, h/2, 2, w/2, 2, c)
    hit = jnp.moveaxis(win == y[:, :, None, :, None, :], 2, 3)  # (n, h/2, w/2, 2, 2, c)
    hit = hit.reshape(n, h // 2, w // 2, 4, c)
    taken = jnp.zeros_like(hit[:, :, :, 0])
    first = []
    for t in range(4):  # the first maximum of each window, in row-major order
        first.append(hit[:, :, :, t] & ~taken)
        taken = taken | hit[:, :, :, t]
    first = jnp.stack(first, axis=3)
    gw = jnp.where(first, g[:, :, :, None, :], jnp.zeros((), g.dtype))
    gw = jnp.moveaxis(gw.reshape(n, h // 2, w // 2, 2, 2, c), 3, 2).reshape(n, h - h % 2, w - w % 2, c)
    return (jnp.pad(gw, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


_pool_reshape.defvjp(_pool_fwd, _pool_bwd)


def _pool_reduce_window(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pool with stride 2 and 'VALID' padding of NHWC ``x`` (an odd last row or column
    is dropped, as ``flax.linen.max_pool(x, (2, 2), strides=(2, 2))`` does)."""
    if x.ndim != 4:
        raise ValueError(f"max_pool_2x2 needs NHWC input, got shape {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"max_pool_2x2 needs a floating dtype, got {x.dtype}")
    return on_platform(_pool_reshape, _pool_reduce_window, x)
