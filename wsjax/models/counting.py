"""Exact parameters and multiply-adds per example, of a list of layer specs or of a linen model.

One function, :func:`count`, takes either

* a sequence of layer specs -- :class:`Conv` (standard, grouped, depthwise, pointwise),
  :class:`Dense`, :class:`Local` (a locally connected layer), :class:`Pool`,
  :class:`GlobalPool`, :class:`Flatten` -- applied in order to one example of
  ``input_shape`` (``(h, w, c)`` or ``(n,)``), or
* a ``flax.linen`` module, traced abstractly (``jax.eval_shape`` of its ``init`` on one
  example, nothing compiled) while every call of a ``flax.linen.Conv``, ``flax.linen.Dense``,
  :class:`wsjax.nn.Conv`, :class:`~wsjax.models.LocallyConnected2D`, or of any module with a
  ``count_spec(in_shape) -> spec`` method (the separable layers of
  :mod:`wsjax.models.separable`) is intercepted and turned into a spec with its real input
  shape.

Both paths count through the same per-spec rule, so a model and its hand-written spec list
give the same numbers. Conventions (as :func:`wsjax.models.factored.count` uses them):

* ``params``: weights and biases;
* ``macs``: multiply-adds of the weights per example -- a conv layer costs
  ``out_h * out_w * kh * kw * (cin / groups) * cout`` (padding zeros included, as is usual),
  a dense layer ``n * c`` per position it is applied at, a locally connected layer one
  multiply-add per weight; bias adds, activations and pooling cost nothing here.

Exactness is checked, not assumed: when a model is traced, every intercepted layer's
predicted output shape and parameter count are compared with the traced ones, and every
parameter of the model must belong to a counted layer, else :func:`count` raises. A module
called several times (cross-layer weight sharing) has its parameters counted once and its
multiply-adds once per call.

Worked numbers (tests/test_separable.py): a 3x3 conv from ``N`` to ``M`` channels has
``9 N M`` weights; its depthwise separable version (depthwise 3x3 on each of the ``N``
channels, then a 1x1 ``N -> M``) has ``9 N + N M``, the ratio ``1/M + 1/k^2`` of Howard et al.
(their ``1/N + 1/D_K^2``, with their ``N`` the output channels); the multiply-adds have the
same ratio. Seed 002's "a 3x3x32 first layer on a 192x192 input: 288 shared weights, about
1.2 million without sharing" is ``192 * 192 * 32 = 1,179,648``, one weight per output unit;
unshared 3x3 filters give exactly that only with stride 3 (``64 * 64 * 288``), and ``192^2 *
288 = 10,616,832`` with stride 1 and 'SAME' padding (``190^2 * 288 = 10,396,800`` 'VALID').

References: Howard et al., `MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications <https://arxiv.org/abs/1704.04861>`_, 2017 (the cost of standard and
depthwise separable convolutions, Section 3.1); LeCun, `Generalization and network design
strategies <http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf>`_, 1989 (locally connected vs
shared weights).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from wsjax import checks

# ----------------------------------------------------------------------------- specs


class Conv(NamedTuple):
    """A 2-D convolution: ``kernel`` (int or (kh, kw)) from ``cin`` to ``cout`` channels in
    ``groups`` groups (``groups == cin``: depthwise; ``kernel == 1``: pointwise)."""

    kernel: Any
    cin: int
    cout: int
    stride: Any = 1
    padding: Any = "SAME"
    groups: int = 1
    bias: bool = True
    name: str | None = None


class Dense(NamedTuple):
    """A dense layer ``n -> c`` on the last axis (at every position of a spatial input)."""

    n: int
    c: int
    bias: bool = True
    name: str | None = None


class Local(NamedTuple):
    """A locally connected layer (a convolution without sharing across positions): one
    ``kernel`` patch of weights ``cin -> cout`` per output position; ``bias`` 'unit' (one per
    output unit), 'map' (one per output channel) or None, as in
    :class:`~wsjax.models.LocallyConnected2D`."""

    kernel: Any
    cin: int
    cout: int
    stride: Any = 1
    padding: Any = "VALID"
    bias: str | None = "unit"
    name: str | None = None


class Pool(NamedTuple):
    """A ``window`` pooling with ``stride`` (default: the window), 'VALID': no params, no MACs."""

    window: Any = 2
    stride: Any = None
    name: str | None = None


class GlobalPool(NamedTuple):
    """Global (average or max) pooling ``(h, w, c) -> (c,)``: no params, no MACs."""

    name: str | None = None


class Flatten(NamedTuple):
    """``(h, w, c) -> (h * w * c,)``."""

    name: str | None = None


SPECS = (Conv, Dense, Local, Pool, GlobalPool, Flatten)


def depthwise(kernel, channels: int, stride=1, padding="SAME", bias: bool = True, name=None) -> Conv:
    """The spec of a depthwise ``kernel`` conv: one filter per channel (``groups = channels``)."""
    return Conv(kernel, channels, channels, stride, padding, channels, bias, name)


def pointwise(cin: int, cout: int, bias: bool = True, name=None) -> Conv:
    """The spec of a pointwise (1x1) conv ``cin -> cout``."""
    return Conv(1, cin, cout, 1, "VALID", 1, bias, name)


# ----------------------------------------------------------------------------- results


class LayerCount(NamedTuple):
    """One layer: its spec, ``params``, ``macs`` per example (summed over ``calls``), and one
    example's input and output shapes (of its first call)."""

    spec: Any
    params: int
    macs: int
    in_shape: tuple
    out_shape: tuple
    calls: int = 1


class Counts(NamedTuple):
    """Totals and ``per_layer`` (``{name: LayerCount}``, in call order). ``out_shape``: one
    example's output shape (of the spec list; of a model, its first output)."""

    params: int
    macs: int
    per_layer: dict
    out_shape: tuple


# ----------------------------------------------------------------------------- the one rule


def _out_side(n: int, k: int, s: int, padding, axis: int, what: str) -> int:
    if isinstance(padding, str):
        mode = padding.upper()
        if mode in ("SAME", "CIRCULAR"):  # CIRCULAR wraps instead of zeros: the same grid
            return -(-n // s)
        if mode != "VALID":
            raise ValueError(f"{what}: padding must be 'SAME', 'VALID', an int or (low, high) pairs, "
                             f"got {padding!r}")
        lo = hi = 0
    elif checks.is_int(padding):
        lo = hi = int(padding)
    else:
        try:
            pair = tuple(padding)[axis]
            lo, hi = (pair, pair) if checks.is_int(pair) else (int(pair[0]), int(pair[1]))
        except (TypeError, IndexError, ValueError):
            raise ValueError(f"{what}: padding must be 'SAME', 'VALID', an int or (low, high) pairs, "
                             f"got {padding!r}") from None
    if min(lo, hi) < 0:
        raise ValueError(f"{what}: negative padding {padding!r}")
    out = (n + lo + hi - k) // s + 1
    if n + lo + hi < k:
        raise ValueError(f"{what}: a {k}-wide window does not fit a side of {n} padded by ({lo}, {hi})")
    return out


def _spatial(in_shape, what):
    if len(in_shape) != 3:
        raise ValueError(f"{what} needs an (h, w, c) input, got shape {in_shape}")
    return in_shape


def layer_count(spec, in_shape: Sequence[int]) -> LayerCount:
    """The count of one spec on one example of ``in_shape``; ValueError if it does not fit."""
    in_shape = tuple(int(d) for d in in_shape)
    kind = type(spec).__name__
    what = f"{kind} {spec.name!r}" if getattr(spec, "name", None) else kind
    if isinstance(spec, (Conv, Local)):
        h, w, c = _spatial(in_shape, what)
        kh, kw = checks.positive_pair(spec.kernel, f"{what}: kernel")
        sh, sw = checks.positive_pair(spec.stride, f"{what}: stride")
        cin = checks.positive_int(spec.cin, f"{what}: cin")
        cout = checks.positive_int(spec.cout, f"{what}: cout")
        if c != cin:
            raise ValueError(f"{what}: expects {cin} input channels, the input has {c} (shape {in_shape})")
        ho = _out_side(h, kh, sh, spec.padding, 0, what)
        wo = _out_side(w, kw, sw, spec.padding, 1, what)
        if isinstance(spec, Conv):
            g = checks.positive_int(spec.groups, f"{what}: groups")
            if cin % g or cout % g:
                raise ValueError(f"{what}: groups {g} must divide cin {cin} and cout {cout}")
            weights = kh * kw * (cin // g) * cout
            params = weights + (cout if spec.bias else 0)
            macs = ho * wo * weights
        else:
            if spec.bias not in ("unit", "map", None):
                raise ValueError(f"{what}: bias must be 'unit', 'map' or None, got {spec.bias!r}")
            weights = ho * wo * kh * kw * cin * cout
            params = weights + {"unit": ho * wo * cout, "map": cout, None: 0}[spec.bias]
            macs = weights
        return LayerCount(spec, params, macs, in_shape, (ho, wo, cout))
    if isinstance(spec, Dense):
        n = checks.positive_int(spec.n, f"{what}: n")
        c = checks.positive_int(spec.c, f"{what}: c")
        if not in_shape or in_shape[-1] != n:
            raise ValueError(f"{what}: expects {n} inputs on the last axis, got shape {in_shape} "
                             f"(put a Flatten or GlobalPool in front of a classifier)")
        positions = math.prod(in_shape[:-1])
        return LayerCount(spec, n * c + (c if spec.bias else 0), positions * n * c, in_shape,
                          in_shape[:-1] + (c,))
    if isinstance(spec, Pool):
        h, w, c = _spatial(in_shape, what)
        kh, kw = checks.positive_pair(spec.window, f"{what}: window")
        sh, sw = checks.positive_pair(spec.window if spec.stride is None else spec.stride, f"{what}: stride")
        return LayerCount(spec, 0, 0, in_shape,
                          (_out_side(h, kh, sh, "VALID", 0, what), _out_side(w, kw, sw, "VALID", 1, what), c))
    if isinstance(spec, GlobalPool):
        return LayerCount(spec, 0, 0, in_shape, (_spatial(in_shape, what)[2],))
    if isinstance(spec, Flatten):
        return LayerCount(spec, 0, 0, in_shape, (math.prod(in_shape),))
    raise ValueError(f"not a layer spec: {spec!r}; the specs are {[s.__name__ for s in SPECS]}")


def _input_shape(input_shape) -> tuple:
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be one example's shape, e.g. (28, 28, 1), got {input_shape!r}") from None
    if not shape:
        raise ValueError("input_shape must be one example's shape, e.g. (28, 28, 1), got ()")
    return tuple(checks.positive_int(d, "input_shape") for d in shape)


def count(layers, input_shape: Sequence[int]) -> Counts:
    """Exact parameters and multiply-adds per example.

    Args:
      layers: a sequence of specs (:class:`Conv`, :class:`Dense`, :class:`Local`,
        :class:`Pool`, :class:`GlobalPool`, :class:`Flatten`) applied in order, or a
        ``flax.linen`` module (traced abstractly on one example, see the module docstring).
      input_shape: one example's shape, without the batch axis, e.g. ``(28, 28, 1)``.

    Returns:
      :class:`Counts`; ``per_layer`` is keyed by the spec's ``name`` (default
      ``'<index>_<kind>'``) or by the module's '/'-joined path.

    Raises:
      ValueError: a spec that does not fit its input, or a model with parameters outside
        the layers counted here.
    """
    shape = _input_shape(input_shape)
    if isinstance(layers, nn.Module):
        return _count_module(layers, shape)
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise ValueError(f"layers must be a sequence of layer specs or a flax.linen Module, got {layers!r}")
    per_layer = {}
    for i, spec in enumerate(layers):
        c = layer_count(spec, shape)
        name = getattr(spec, "name", None) or f"{i}_{type(spec).__name__.lower()}"
        if name in per_layer:
            raise ValueError(f"two layers are named {name!r}")
        per_layer[name] = c
        shape = c.out_shape
    return Counts(sum(c.params for c in per_layer.values()), sum(c.macs for c in per_layer.values()),
                  per_layer, shape)


# ----------------------------------------------------------------------------- linen models


def _spec_of_module(module, in_shape):
    """The spec of a recognised layer module called on one example of ``in_shape``, else None."""
    from wsjax import nn as wnn  # noqa: PLC0415 (wsjax.nn imports nothing from here)
    from wsjax.models.local import LocallyConnected2D  # noqa: PLC0415

    if hasattr(type(module), "count_spec"):
        return module.count_spec(in_shape)
    if isinstance(module, nn.Conv):
        for attr in ("input_dilation", "kernel_dilation"):
            d = getattr(module, attr)
            if d not in (None, 1) and tuple(np.atleast_1d(d)) != (1,) * len(np.atleast_1d(d)):
                raise ValueError(f"count: {module.name}: {attr} {d!r} is not counted here")
        kernel = module.kernel_size if checks.is_int(module.kernel_size) else tuple(module.kernel_size)
        return Conv(kernel, in_shape[-1], module.features, module.strides or 1, module.padding,
                    module.feature_group_count, module.use_bias)
    if isinstance(module, wnn.Conv):
        return Conv(tuple(module.kernel_size), in_shape[-1], module.features, tuple(module.strides),
                    module.padding, 1, module.use_bias)
    if isinstance(module, nn.Dense):
        return Dense(in_shape[-1], module.features, module.use_bias)
    if isinstance(module, LocallyConnected2D):
        return Local(module.patch_size, in_shape[-1], module.features, module.strides, module.padding,
                     module.bias)
    return None


def _size(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _subtree(params, path):
    for p in path:
        params = params[p]
    return params


def _count_module(model: nn.Module, shape: tuple) -> Counts:
    calls = []  # (path, spec, in_shape, out_shape), outermost recognised calls only
    depth = [0]

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name != "__call__" or depth[0] or not args:
            return next_fun(*args, **kwargs)
        x = args[0]
        in_shape = tuple(getattr(x, "shape", ()))[1:]
        spec = _spec_of_module(context.module, in_shape)
        if spec is None:
            return next_fun(*args, **kwargs)
        depth[0] += 1
        try:
            y = next_fun(*args, **kwargs)
        finally:
            depth[0] -= 1
        calls.append((tuple(context.module.scope.path), spec, in_shape, tuple(y.shape)[1:]))
        return y

    x = jax.ShapeDtypeStruct((1,) + shape, jnp.float32)
    with nn.intercept_methods(interceptor):
        out, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
    params = variables.get("params", {})
    per_layer: dict = {}
    for path, spec, in_shape, out_shape in calls:
        name = "/".join(path) or type(model).__name__
        c = layer_count(spec._replace(name=name), in_shape)
        if c.out_shape != out_shape:
            raise ValueError(f"count: {name}: predicted output shape {c.out_shape}, traced {out_shape} "
                             f"(a configuration this counter does not model)")
        if name in per_layer:  # the same module called again: shared weights, more MACs
            prev = per_layer[name]
            per_layer[name] = prev._replace(macs=prev.macs + c.macs, calls=prev.calls + 1)
            continue
        actual = _size(_subtree(params, path)) if path else _size(params)
        if c.params != actual:
            raise ValueError(f"count: {name}: predicted {c.params} params, the module has {actual}")
        per_layer[name] = c
    counted = sum(c.params for c in per_layer.values())
    total = _size(params)
    if counted != total:
        flat = jax.tree_util.tree_flatten_with_path(params)[0]
        names = ["/".join(str(getattr(k, "key", k)) for k in p) for p, _ in flat]
        missing = [n for n in names if not any(n.startswith(layer + "/") for layer in per_layer)]
        if calls and not calls[0][0]:  # the model itself is the one counted layer
            missing = []
        raise ValueError(f"count: the model has {total} params, the counted layers {counted}; not counted: "
                         f"{missing[:8]}{' ...' if len(missing) > 8 else ''} (a layer type this counter does "
                         f"not know: give it a count_spec(in_shape) method)")
    first = jax.tree.leaves(out)[0]
    return Counts(total, sum(c.macs for c in per_layer.values()), per_layer, tuple(first.shape)[1:])
