"""2-D convolution (NHWC input, HWIO kernel, stride 1) with a backward pass XLA:CPU runs fast.

JAX differentiates ``conv_general_dilated`` into two more convolutions whose dimension
numbers are not the canonical NHWC/HWIO ones. XLA:CPU converts convolutions to the layout
its fast (Eigen) kernels need only in a program's entry computation, so inside the body of
a ``lax.scan`` -- an epoch of the training engine -- those backward convolutions compile to
naive loops, and a scanned LeNet-5 epoch ran 4x slower than a Python loop over the same
step (``benchmarks/RESULTS.md``). Here the backward pass is written out by hand:

* the kernel gradient ``dK[a, b, c, o] = sum_{n,i,j} x[n, i+a, j+b, c] g[n, i, j, o]`` is one
  canonical convolution of ``x`` seen as ``(C, H, W, N)`` (channels as the batch, examples as
  the features) with ``g`` seen as an ``(Ho, Wo, N, O)`` kernel;
* the input gradient is ``g K^T`` (one matrix product per output position, giving every
  tap's contribution) folded back onto the input by shifted adds (col2im); on LeNet-5 this
  measured faster than the zero-padded full correlation JAX uses (17.2 vs 19.2 ms a scanned
  step, ``benchmarks/epoch_loop.py`` conditions).

Both are ordinary in any computation, so the scanned epoch keeps the fast kernels. Padding
('SAME' or explicit) is a ``jnp.pad`` in front, differentiated by JAX. Other strides,
dilations and feature groups use ``lax.conv_general_dilated`` and JAX's own gradient, as
every op does off CPU (:func:`wsjax.nn.backend.on_platform`).

Reference: the layout fact is from XLA's CPU backend (``ConvCanonicalization`` runs on the
entry computation); the rest is the textbook convolution gradient (e.g. Chellapilla et al.,
`High performance convolutional neural networks for document processing`, 2006, for im2col).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from wsjax.nn.backend import on_platform

_DN = ("NHWC", "HWIO", "NHWC")


def _conv_valid(x, k):
    return lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=_DN)


@jax.custom_vjp
def _conv_valid_cpu(x, k):
    return _conv_valid(x, k)


def _fwd(x, k):
    return _conv_valid(x, k), (x, k)


def _kernel_grad(x, g):
    out = _conv_valid(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)))
    return jnp.transpose(out, (1, 2, 0, 3))  # (C, kh, kw, O) -> (kh, kw, C, O)


def _input_grad(g, k):
    """col2im of ``g K^T``: the taps' contributions summed along the width first, then along
    the height (10 shifted adds of smaller arrays instead of 25 of the input's size)."""
    kh, kw, c, o = k.shape
    n, ho, wo, _ = g.shape
    taps = (g.reshape(-1, o) @ k.reshape(kh * kw * c, o).T).reshape(n, ho, wo, kh, kw, c)
    rows = sum(jnp.pad(taps[:, :, :, :, b], ((0, 0), (0, 0), (b, kw - 1 - b), (0, 0), (0, 0)))
               for b in range(kw))  # (n, ho, W, kh, c)
    return sum(jnp.pad(rows[:, :, :, a], ((0, 0), (a, kh - 1 - a), (0, 0), (0, 0))) for a in range(kh))


def _bwd(res, g):
    x, k = res
    return _input_grad(g, k), _kernel_grad(x, g)


_conv_valid_cpu.defvjp(_fwd, _bwd)


def _pads(padding, kernel_hw) -> tuple:
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0), (0, 0))
        if mode == "SAME":  # stride 1: total k - 1, the extra one at the end (as lax does)
            return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_hw)
        raise ValueError(f"padding must be 'VALID', 'SAME' or two (low, high) pairs, got {padding!r}")
    pads = tuple(tuple(int(v) for v in p) for p in padding)
    if len(pads) != 2 or any(len(p) != 2 or min(p) < 0 for p in pads):
        raise ValueError(f"padding must be 'VALID', 'SAME' or two non-negative (low, high) pairs, got {padding!r}")
    return pads


def conv2d(x: jax.Array, kernel: jax.Array, padding="VALID", strides: Sequence[int] = (1, 1)) -> jax.Array:
    """Convolve NHWC ``x`` with an HWIO ``kernel`` (cross-correlation, like ``flax.linen.Conv``).

    ``padding``: 'VALID', 'SAME' or ``((top, bottom), (left, right))``. With unit strides on
    CPU the backward pass is the hand-written one above; otherwise ``lax.conv_general_dilated``.
    """
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"conv2d needs NHWC input and an HWIO kernel, got shapes {tuple(x.shape)} "
                         f"and {tuple(kernel.shape)}")
    if x.shape[3] != kernel.shape[2]:
        raise ValueError(f"conv2d: input has {x.shape[3]} channels, the kernel expects {kernel.shape[2]}")
    pads = _pads(padding, kernel.shape[:2])
    strides = tuple(int(s) for s in strides)
    if strides != (1, 1):
        return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=_DN)
    if any(pads[0] + pads[1]):
        x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    if x.shape[1] < kernel.shape[0] or x.shape[2] < kernel.shape[1]:
        raise ValueError(f"conv2d: a {kernel.shape[0]}x{kernel.shape[1]} kernel does not fit a "
                         f"{x.shape[1]}x{x.shape[2]} (padded) input")
    return on_platform(_conv_valid_cpu, _conv_valid, x, kernel)
