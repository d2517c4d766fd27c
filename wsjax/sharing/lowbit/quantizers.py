"""Low-bit quantizers of one leaf and their straight-through backward passes.

Every quantizer maps real-valued latent weights ``theta`` (what the optimiser updates) to
low-bit weights ``W``, with an explicit backward pass. ``g = dL/dW``; a *group* is the
whole leaf (scale ``'layer'``) or one output channel, i.e. every axis but the last
(``'channel'``); ``n`` is the size of a group; ``sgn(x) = +1 for x >= 0, else -1``.

``'binary'`` (BinaryConnect; XNOR-Net's scale)::

    b = sgn(theta),  W = alpha * b,   alpha = 1 ('none') | mean_group |theta| | a given value
    dL/dtheta_i = alpha g_i 1[|theta_i| <= 1] + (sgn(theta_i) / n) sum_{j in group(i)} g_j b_j

The first term is the hard-tanh straight-through estimator; the second is the exact
gradient of ``alpha = mean |theta|`` itself (it couples the weights of a group), present only
where alpha is computed from ``theta``; ``d|theta|/dtheta`` is taken as ``sgn(theta)`` (+1 at 0).
Stochastic binarisation draws ``b = +1`` with probability ``p = clip((theta + 1) / 2, 0, 1)``
(so ``E[b] = 2p - 1``) and uses the same backward with the drawn ``b``.

``'ternary'`` (TWN)::

    delta = t * mean_group |theta|  (t = 0.7),  m = |theta| > delta,  T = sgn(theta) m
    alpha = sum_group |theta| m / max(sum_group m, 1),  W = alpha * T   (alpha = 1 for 'none')
    dL/dtheta = dL/dW   (the identity STE: delta and alpha are held constant)

``'uniform'`` and ``'lsq'`` (symmetric k-bit, ``Qn = 2**(k-1)``, ``Qp = 2**(k-1) - 1``)::

    r = theta * (1 / s),  q = clip(round(r), -Qn, Qp),  W = s q        (round half to even)
    dL/dtheta = g 1[-Qn <= r <= Qp]
    dL/ds = (1 / sqrt(N Qp)) sum_group g (q - r 1[-Qn <= r <= Qp])   ('lsq' only)

``r`` is a product with the reciprocal, never ``theta / s``: XLA compiles a division by a
broadcast step as that product in some programs and as a true division in others, and the
two round a latent on a tie (``r`` one ulp from ``k + 1/2``) to neighbouring codes, so a
file would hold a code the trained net did not use; the product rounds alike everywhere.

``'uniform'`` fixes ``s = max_group |theta| / Qp`` at init; ``'lsq'`` learns ``s`` (LSQ's
gradient with its gradient scale, ``N`` the weights per step), initialised as LSQ does,
``s = 2 mean_group |theta| / sqrt(Qp)``. The range test is inclusive at both ends (LSQ
writes strict inequalities; they differ only on the measure-zero boundary, where an
inclusive test keeps the gradient of the weight that set a max-based step).

Leaves of float16 / bfloat16 are computed in float32 and ``W`` is cast back; scales are
kept in float32 (in the leaf's dtype for wider floats).

References: Courbariaux, Bengio & David, `BinaryConnect: Training Deep Neural Networks with
binary weights during propagations <https://arxiv.org/abs/1511.00363>`_, 2015; Rastegari et
al, `XNOR-Net: ImageNet Classification Using Binary Convolutional Neural Networks
<https://arxiv.org/abs/1603.05279>`_, 2016; Li, Zhang & Liu, `Ternary Weight Networks
<https://arxiv.org/abs/1605.04711>`_, 2016; Esser et al, `Learned Step Size Quantization
<https://arxiv.org/abs/1902.08153>`_, 2019.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wsjax import checks

KINDS = ("binary", "ternary", "uniform", "lsq")
SCALES = ("none", "layer", "channel")
MIN_BITS, MAX_BITS = 2, 8  # k of the k-bit quantizers
TWN_THRESHOLD = 0.7  # Li et al.'s delta / mean|theta|


class LowBit(NamedTuple):
    """What one leaf is quantized to (hashable: it travels as static metadata).

    ``bits``: 1 for binary, 2 for ternary (three levels; stored at 1.6 bits, see the
    'lowbit' codec), ``k`` for uniform / lsq. ``threshold`` is ternary's ``delta / mean|theta|``;
    ``stochastic`` draws binary weights instead of taking their sign.
    """

    kind: str
    scale: str
    bits: int
    threshold: float = TWN_THRESHOLD
    stochastic: bool = False


def make_spec(kind: str, *, scale: str | None = None, bits: int | None = None,
              threshold: float = TWN_THRESHOLD, stochastic: bool = False) -> LowBit:
    """A checked :class:`LowBit`; ValueError naming the argument for anything out of range.

    Defaults: scale ``'none'`` for binary, ``'layer'`` for the others; ``bits`` is needed
    (``2..8``) for uniform and lsq only.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    k_bit = kind in ("uniform", "lsq")
    if scale is None:
        scale = "none" if kind == "binary" else "layer"
    allowed = SCALES[1:] if k_bit else SCALES
    if scale not in allowed:
        raise ValueError(f"scale for {kind} must be one of {allowed}, got {scale!r}")
    if k_bit:
        if bits is None:
            raise ValueError(f"{kind} quantization needs bits in [{MIN_BITS}, {MAX_BITS}]")
        bits = checks.integer(bits, "bits", lo=MIN_BITS, hi=MAX_BITS)
    elif bits is not None and bits != (1 if kind == "binary" else 2):
        raise ValueError(f"{kind} weights take no bits argument (got {bits!r})")
    else:
        bits = 1 if kind == "binary" else 2
    # threshold < 1 keeps a stored ternary layer decodable: codes in {-1, 0, 1} as theta
    # have mean |theta| <= 1, so delta < 1 and the +-1 codes stay above it.
    threshold = checks.number(threshold, "threshold", lo=0.0, hi=1.0, hi_open=True)
    if not isinstance(stochastic, bool):
        raise checks.ArgumentTypeError(f"stochastic must be True or False, got {stochastic!r}")
    if stochastic and kind != "binary":
        raise ValueError(f"stochastic quantization is for binary weights, not {kind}")
    return LowBit(kind, scale, bits, threshold if kind == "ternary" else TWN_THRESHOLD,
                  stochastic)


def check_leaf(spec: LowBit, leaf, path: str) -> None:
    """A float leaf of a shape the spec can scale; ValueError (TypeError) otherwise."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise checks.ArgumentTypeError(
            f"low-bit weights need a float leaf; {path!r} is {dtype or type(leaf).__name__}")
    if spec.scale == "channel" and jnp.ndim(leaf) < 2:
        raise ValueError(f"scale='channel' needs a leaf of 2 or more axes (channels last); "
                         f"{path!r} has shape {tuple(jnp.shape(leaf))}")


def levels(spec: LowBit) -> int:
    """Number of distinct codes of one weight."""
    return {"binary": 2, "ternary": 3}.get(spec.kind, 1 << spec.bits)


def code_range(bits: int) -> tuple[int, int]:
    """``(Qn, Qp)``: codes of a symmetric k-bit quantizer lie in ``[-Qn, Qp]``."""
    return 1 << (bits - 1), (1 << (bits - 1)) - 1


def compute_dtype(dtype):
    """float32 for narrower floats, the dtype itself otherwise."""
    return jnp.promote_types(dtype, jnp.float32)


def group_axes(scale: str, ndim: int) -> tuple[int, ...]:
    """The axes a scale reduces over: all of them ('layer'), all but the last ('channel')."""
    return tuple(range(ndim - 1 if scale == "channel" else ndim))


def sgn(x: jax.Array) -> jax.Array:
    """``+1`` where ``x >= 0`` (so ``sgn(0) = +1``), ``-1`` elsewhere, in ``x``'s dtype."""
    return jnp.where(x >= 0, 1, -1).astype(x.dtype)


# ----------------------------------------------------------------------------- straight through


@jax.custom_vjp
def straight_through(theta: jax.Array, value: jax.Array, gate: jax.Array) -> jax.Array:
    """``value`` forward; backward ``dL/dtheta = dL/dvalue * gate`` (``value`` and the bool
    ``gate`` get no gradient)."""
    del theta, gate
    return value


def _straight_through_fwd(theta, value, gate):
    return value, gate


def _straight_through_bwd(gate, g):
    return jnp.where(gate, g, jnp.zeros_like(g)), None, None


straight_through.defvjp(_straight_through_fwd, _straight_through_bwd)


def _sum_to(x: jax.Array, shape: tuple) -> jax.Array:
    """Sum ``x`` over its leading axes down to the trailing ``shape`` (a step's shape)."""
    return jnp.sum(x, axis=tuple(range(x.ndim - len(shape))))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def uniform_weights(theta: jax.Array, step: jax.Array, bits: int) -> jax.Array:
    """``W = s * clip(round(theta * (1 / s)), -Qn, Qp)``, ``s`` broadcast over the last axis
    (shape ``()`` or ``(channels,)``); the backward pass is LSQ's (module docstring)."""
    return step * _codes(steps_of(theta, step), bits)


def steps_of(theta: jax.Array, step: jax.Array) -> jax.Array:
    """``r = theta * (1 / s)``: the latent in steps, the one place it is computed (forward,
    backward and the stored codes), as a product so that every compilation rounds it alike."""
    return theta * (1 / step)


def _codes(r: jax.Array, bits: int) -> jax.Array:
    """``clip(round(r), -Qn, Qp)`` with ``-0`` made ``+0`` (so that ``W = s q`` has one zero)."""
    qn, qp = code_range(bits)
    q = jnp.clip(jnp.round(r), -qn, qp)
    return jnp.where(q == 0, jnp.zeros_like(q), q)


def _uniform_fwd(theta, step, bits):
    return uniform_weights(theta, step, bits), (theta, step)


def _uniform_bwd(bits, res, g):
    theta, step = res
    qn, qp = code_range(bits)
    r = steps_of(theta, step)
    q = _codes(r, bits)
    inside = (r >= -qn) & (r <= qp)
    d_theta = jnp.where(inside, g, jnp.zeros_like(g))
    per_step = theta.size // max(step.size, 1)
    grad_scale = 1.0 / math.sqrt(per_step * qp)
    d_step = grad_scale * _sum_to(g * (q - jnp.where(inside, r, jnp.zeros_like(r))), step.shape)
    return d_theta, d_step.astype(step.dtype)


uniform_weights.defvjp(_uniform_fwd, _uniform_bwd)


# ----------------------------------------------------------------------------- scales


def binary_alpha(x: jax.Array, scale: str) -> jax.Array:
    """XNOR-Net's ``alpha = mean |x|`` per group, written ``mean(x * sgn(x))`` with ``sgn``
    held constant so that its gradient is ``sgn(x) / n`` (module docstring)."""
    return jnp.mean(x * jax.lax.stop_gradient(sgn(x)), axis=group_axes(scale, x.ndim))


def ternary_parts(x: jax.Array, spec: LowBit) -> tuple[jax.Array, jax.Array]:
    """``(T, alpha)`` of TWN: the codes in ``{-1, 0, 1}`` and the per-group scale."""
    axes = group_axes(spec.scale, x.ndim)
    a = jnp.abs(x)
    delta = spec.threshold * jnp.mean(a, axis=axes)
    keep = a > delta  # delta has the group's shape: () or (channels,), broadcast on the last axis
    codes = jnp.where(keep, sgn(x), jnp.zeros_like(x))
    count = jnp.sum(keep, axis=axes).astype(x.dtype)
    alpha = jnp.sum(jnp.where(keep, a, jnp.zeros_like(a)), axis=axes) / jnp.maximum(count, 1)
    return codes, alpha


def initial_step(x: jax.Array, spec: LowBit) -> jax.Array:
    """The k-bit step at init: ``max|x| / Qp`` ('uniform') or LSQ's ``2 mean|x| / sqrt(Qp)``
    ('lsq') per group, in the compute dtype; 1 for a group of zeros."""
    x = x.astype(compute_dtype(x.dtype))
    _, qp = code_range(spec.bits)
    axes = group_axes(spec.scale, x.ndim)
    if spec.kind == "uniform":
        size = jnp.max(jnp.abs(x), axis=axes) / qp
    else:
        size = 2.0 * jnp.mean(jnp.abs(x), axis=axes) / math.sqrt(qp)
    return jnp.where(size > 0, size, jnp.ones_like(size))


# ----------------------------------------------------------------------------- weights


def binary_signs(x: jax.Array, spec: LowBit, key: Any = None) -> jax.Array:
    """``b``: ``sgn(x)``, or for a stochastic spec +1 with probability
    ``clip((x + 1) / 2, 0, 1)`` drawn with ``key``."""
    x = jax.lax.stop_gradient(x)
    if not spec.stochastic:
        return sgn(x)
    if key is None:
        raise ValueError("stochastic binary weights need a key")
    p = jnp.clip((x + 1) / 2, 0, 1)
    draw = jax.random.uniform(key, x.shape, dtype=x.dtype)
    return jnp.where(draw < p, 1, -1).astype(x.dtype)


def weights(spec: LowBit, theta: Any, scale: Any = None, key: Any = None) -> jax.Array:
    """``W`` of one leaf with the backward pass of its kind (module docstring).

    ``theta``: the latent leaf, or ``{'latent': leaf, 'step': s}`` for 'lsq'. ``scale``: a
    given (frozen) scale, the step of 'uniform'; ``None`` computes it from ``theta``.
    ``key``: a stochastic binary leaf's sampling key.
    """
    latent = theta["latent"] if spec.kind == "lsq" else theta
    dtype = latent.dtype
    x = latent.astype(compute_dtype(dtype))
    if spec.kind == "binary":
        w = straight_through(x, binary_signs(x, spec, key), jnp.abs(x) <= 1)
        if scale is not None:
            w = scale * w
        elif spec.scale != "none":
            w = binary_alpha(x, spec.scale) * w
    elif spec.kind == "ternary":
        codes, alpha = ternary_parts(jax.lax.stop_gradient(x), spec)
        alpha = alpha if scale is None else scale
        value = codes if spec.scale == "none" and scale is None else alpha * codes
        w = straight_through(x, value, jnp.ones(x.shape, jnp.bool_))
    else:
        step = theta["step"] if spec.kind == "lsq" else scale
        if step is None:
            raise ValueError("uniform quantization needs its step")
        w = uniform_weights(x, step, spec.bits)
    return w.astype(dtype)


def codes_and_scale(spec: LowBit, theta: Any, scale: Any = None):
    """What a stored leaf holds: ``(symbols, scale)``, the unsigned codes of ``W``
    (binary ``b > 0``; ternary ``T + 1``; k-bit ``q + Qn``) and the scale that ``W``
    multiplies (``None`` where it is 1). A stochastic leaf is stored by its sign."""
    latent = theta["latent"] if spec.kind == "lsq" else theta
    x = jnp.asarray(latent).astype(compute_dtype(latent.dtype))
    if spec.kind == "binary":
        symbols = (sgn(x) > 0).astype(jnp.uint8)
        if scale is None and spec.scale != "none":
            scale = binary_alpha(x, spec.scale)
    elif spec.kind == "ternary":
        codes, alpha = ternary_parts(x, spec)
        symbols = (codes + 1).astype(jnp.uint8)
        if scale is None and spec.scale != "none":
            scale = alpha
    else:
        scale = theta["step"] if spec.kind == "lsq" else scale
        qn, _ = code_range(spec.bits)
        symbols = (_codes(steps_of(x, scale), spec.bits) + qn).astype(jnp.uint8)
    return symbols, scale


def theta_from_codes(spec: LowBit, symbols: jax.Array, scale: Any, dtype) -> Any:
    """A latent ``theta`` that reproduces stored codes exactly: ``+-1`` (binary), ``T`` in
    ``{-1, 0, 1}`` (ternary), ``W = s q`` itself (uniform; with the step for lsq)."""
    symbols = jnp.asarray(symbols).astype(jnp.int32)
    if spec.kind == "binary":
        return jnp.where(symbols > 0, 1, -1).astype(dtype)
    if spec.kind == "ternary":
        return (symbols - 1).astype(dtype)
    qn, _ = code_range(spec.bits)
    latent = (scale * (symbols - qn).astype(scale.dtype)).astype(dtype)
    return {"latent": latent, "step": scale} if spec.kind == "lsq" else latent
