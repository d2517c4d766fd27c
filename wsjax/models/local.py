"""A locally connected 2-D layer: a convolution without weight sharing.

Every output position ``(i, j)`` owns its own weights: unit ``(i, j, f)`` computes
``b[i, j, f] + sum_q patch(i, j)[q] * W[i, j, q, f]`` over the ``patch_h * patch_w * in_ch``
inputs of its receptive field. Sharing ``W[i, j]`` across positions turns it into a
convolution; :mod:`wsjax.sharing.local` does exactly that in parameter space.

The kernel has shape ``(out_h, out_w, patch_h * patch_w * in_ch, features)`` and its patch
axis is flattened in ``(patch_h, patch_w, in_ch)`` order, the order of ``nn.Conv``'s
``(kh, kw, in, out)`` kernel, so ``conv_kernel.reshape(-1, features)`` copied to every
position is the same function. Patches come from ``jax.lax.conv_general_dilated_patches``
and are contracted with one ``einsum``: no Python loop over positions.

References: LeCun, `Generalization and network design strategies
<http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, 1989 (Net-3: "local connections
without weight sharing").
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsjax import checks

BIASES = ("unit", "map", None)

Padding = Any  # 'SAME' | 'VALID' | int | sequence of (low, high) pairs or ints


def explicit_padding(
    in_hw: Sequence[int], patch: Sequence[int], strides: Sequence[int], padding: Padding
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))`` zero padding for 'SAME'/'VALID'/int/pairs."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}")
        pads = jax.lax.padtype_to_pads(tuple(in_hw), tuple(patch), tuple(strides), padding.upper())
        return tuple((int(lo), int(hi)) for lo, hi in pads)
    if checks.is_int(padding):
        padding = ((padding, padding), (padding, padding))
    try:
        pads = tuple(
            (p, p) if isinstance(p, int) else tuple(int(v) for v in p) for p in padding
        )
    except TypeError:
        raise ValueError(
            f"padding must be 'SAME', 'VALID', an int or pairs, got {padding!r}"
        ) from None
    if len(pads) != 2 or any(len(p) != 2 or min(p) < 0 for p in pads):
        raise ValueError(f"padding must give non-negative (low, high) for 2 dims, got {padding!r}")
    return pads


def output_size(
    in_hw: Sequence[int], patch: Sequence[int], strides: Sequence[int], padding: Padding
) -> tuple[int, int]:
    """Spatial output size of a patch extraction (the locally connected grid)."""
    patch, strides = checks.positive_pair(patch, "patch_size"), checks.positive_pair(strides, "strides")
    pads = explicit_padding(in_hw, patch, strides, padding)
    out = tuple(
        (n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in zip(in_hw, pads, patch, strides)
    )
    if min(out) < 1:
        raise ValueError(
            f"patch {patch} does not fit the padded input {tuple(in_hw)} with padding {pads}"
        )
    return out


def local_kernel_init(scale: float = 1.0) -> Callable:
    """LeCun-normal init with fan-in = one unit's patch (position axes are batch axes)."""
    return nn.initializers.variance_scaling(
        scale, "fan_in", "truncated_normal", in_axis=-2, out_axis=-1, batch_axis=(0, 1)
    )


class LocallyConnected2D(nn.Module):
    """Per-position weights over ``patch_size`` patches (NHWC in, NHWC out).

    Attributes:
      features: output maps.
      patch_size: ``(patch_h, patch_w)`` (or one int).
      strides: distance between neighbouring units' patches in input pixels.
      padding: 'SAME', 'VALID', an int, or ``((top, bottom), (left, right))`` zero padding.
      bias: 'unit' (one bias per unit, shape ``(out_h, out_w, features)``), 'map' (one per
        feature map, ``(features,)``) or ``None``.
    """

    features: int
    patch_size: Any = (3, 3)
    strides: Any = (1, 1)
    padding: Padding = "VALID"
    bias: str | None = "unit"
    kernel_init: Callable = local_kernel_init()
    bias_init: Callable = nn.initializers.zeros_init()
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"LocallyConnected2D expects NHWC input, got shape {x.shape}")
        if not checks.is_int(self.features) or self.features < 1:
            raise ValueError(f"features must be a positive int, got {self.features!r}")
        if self.bias not in BIASES:
            raise ValueError(f"bias must be one of {BIASES}, got {self.bias!r}")
        patch = checks.positive_pair(self.patch_size, "patch_size")
        strides = checks.positive_pair(self.strides, "strides")
        in_hw, in_ch = x.shape[1:3], x.shape[3]
        pads = explicit_padding(in_hw, patch, strides, self.padding)
        out_h, out_w = output_size(in_hw, patch, strides, pads)
        taps = patch[0] * patch[1]

        kernel = self.param(
            "kernel", self.kernel_init, (out_h, out_w, taps * in_ch, self.features)
        )
        # Patches are channel-major, (in_ch, patch_h, patch_w); the kernel is (patch_h,
        # patch_w, in_ch) like nn.Conv's, so both are viewed with split tap/channel axes.
        patches = jax.lax.conv_general_dilated_patches(
            x,
            patch,
            strides,
            pads,
            dimension_numbers=("NHWC", "OIHW", "NHWC"),
            precision=self.precision,
        )
        patches = patches.reshape(x.shape[0], out_h, out_w, in_ch, taps)
        w = kernel.reshape(out_h, out_w, taps, in_ch, self.features).astype(patches.dtype)
        y = jnp.einsum("nhwct,hwtcf->nhwf", patches, w, precision=self.precision)
        if self.bias == "unit":
            y = y + self.param("bias", self.bias_init, (out_h, out_w, self.features))
        elif self.bias == "map":
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y
