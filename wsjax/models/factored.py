"""LeNet-5 and MLPs whose layers run factored, as chains of smaller layers (Denton et al. 2014).

:mod:`wsjax.sharing.lowrank` trains factors but multiplies them back into ``W`` before the
layer runs, so it saves parameters and no time. Here a factored layer *is* the chain:

* low-rank dense ``Dense_i``, rank ``r``: ``(x @ u) @ v + bias`` (``n -> r -> c``, the
  bottleneck layer: linear, then the bias and the activation), ``r (n + c)`` multiply-adds
  instead of ``n c``;
* filter-basis conv (LeNet-5's ``Conv_0``), rank ``r``: a ``kh x kw`` conv ``cin -> r``, then
  a 1x1 ``r -> cout`` (a matrix product over the channel axis) and the bias;
* Tucker-2 conv (LeNet-5's ``Conv_1``), ranks ``(r_in, r_out)``: 1x1 ``cin -> r_in``,
  ``kh x kw`` conv ``r_in -> r_out``, 1x1 ``r_out -> cout``, bias;
* :func:`monochromatic_conv` (not in LeNet-5, whose grayscale first layer it cannot help, see
  :mod:`wsjax.sharing.decompose`): a 1x1 colour transform, then one single-channel filter per
  output map (a depthwise conv on the gathered colour channels).

A layer whose rank is None is the plain LeNet-5 / MLP layer with the same parameter names, so
``FactoredLeNet5({})`` is :class:`~wsjax.models.LeNet5` and takes its params. Factored layers'
params (the layer's name, then): dense ``u (n, r)``, ``v (r, c)``, ``bias``; filter basis
``basis (kh, kw, cin, r)``, ``combine (r, cout)``, ``bias``; Tucker-2 ``a_in (cin, r_in)``,
``core (kh, kw, r_in, r_out)``, ``a_out (cout, r_out)``, ``bias``. Initialised from scratch,
every factor is LeCun-normal over its own fan-in (a product of two such factors has the
variance of one LeCun-normal dense kernel); :func:`factor_params` instead decomposes a trained
LeNet-5 / MLP (biases copied) and :func:`reconstruct_params` multiplies the factors back.
:func:`count` gives exact parameters and multiply-adds per example; :func:`forward_seconds`
times a jitted forward pass.

References: Denton, Zaremba, Bruna, LeCun & Fergus, `Exploiting Linear Structure Within
Convolutional Networks for Efficient Evaluation <https://arxiv.org/abs/1404.0736>`_, 2014;
Kim et al., `Compression of Deep Convolutional Neural Networks for Fast and Low Power Mobile
Applications <https://arxiv.org/abs/1511.06530>`_, 2016 (Tucker-2); Sainath et al., `Low-Rank
Matrix Factorization for Deep Neural Network Training with High-Dimensional Output Targets
<https://doi.org/10.1109/ICASSP.2013.6638949>`_, 2013 (the linear bottleneck).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from wsjax import checks
from wsjax import nn as wnn
from wsjax.models.lenet import LENET5_MIN_SIZE, MLP, LeNet5
from wsjax.sharing import decompose

_init = nn.initializers.lecun_normal()
_init_out = nn.initializers.lecun_normal(in_axis=-1, out_axis=-2)  # a_out is (cout, r_out)

#: LeNet-5's layers that may be factored, and how.
LENET5_FACTORED = {"Conv_0": "filter basis rank r", "Conv_1": "Tucker-2 ranks (r_in, r_out)",
                   "Dense_0": "low-rank rank r"}


# ----------------------------------------------------------------------------- the factored ops


def low_rank_dense(x, u, v, bias=None):
    """``(x @ u) @ v (+ bias)``: a dense layer through a rank-``r`` bottleneck."""
    y = jnp.matmul(jnp.matmul(x, u), v)
    return y if bias is None else y + bias


def filter_basis_conv(x, basis, combine, bias=None, padding="VALID"):
    """Conv NHWC ``x`` with ``basis`` (kh, kw, cin, r), then the 1x1 ``combine`` (r, cout)."""
    y = jnp.matmul(wnn.conv2d(x, basis, padding), combine)
    return y if bias is None else y + bias


def tucker2_conv(x, a_in, core, a_out, bias=None, padding="VALID"):
    """1x1 ``a_in`` (cin, r_in), conv ``core`` (kh, kw, r_in, r_out), 1x1 ``a_out^T``."""
    y = jnp.matmul(wnn.conv2d(jnp.matmul(x, a_in), core, padding), a_out.T)
    return y if bias is None else y + bias


def monochromatic_conv(x, m: decompose.Monochromatic, bias=None, padding="VALID"):
    """Denton's monochromatic layer: ``x @ colours^T`` (cin -> C'), each output map's colour
    channel gathered, then one ``kh x kw`` single-channel filter per map (depthwise)."""
    colour = jnp.take(jnp.matmul(x, m.colours.T), m.assignments, axis=-1)  # (n, h, w, cout)
    kh, kw, cout = m.spatial.shape
    pads = padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)
    y = lax.conv_general_dilated(colour, m.spatial.reshape(kh, kw, 1, cout), (1, 1), pads,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=cout)
    return y if bias is None else y + bias


# ----------------------------------------------------------------------------- layers


class LowRankDense(nn.Module):
    """``features`` outputs through a linear rank-``rank`` bottleneck, then the bias."""

    features: int
    rank: int

    @nn.compact
    def __call__(self, x):
        n = x.shape[-1]
        _check(self.rank, min(n, self.features), f"{self.name}: rank", f"min(n_in, n_out) = min({n}, {self.features})")
        u = self.param("u", _init, (n, self.rank), jnp.float32)
        v = self.param("v", _init, (self.rank, self.features), jnp.float32)
        return low_rank_dense(x, u, v, self.param("bias", nn.initializers.zeros_init(), (self.features,)))


class FilterBasisConv(nn.Module):
    """A conv into ``rank`` basis maps, then their 1x1 combination into ``features`` maps."""

    features: int
    rank: int
    kernel_size: Sequence[int] = (5, 5)
    padding: Any = "VALID"

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel_size
        cin = x.shape[-1]
        _check(self.rank, min(kh * kw * cin, self.features), f"{self.name}: rank",
               f"min(kh*kw*cin, cout) = min({kh * kw * cin}, {self.features})")
        basis = self.param("basis", _init, (kh, kw, cin, self.rank), jnp.float32)
        combine = self.param("combine", _init, (self.rank, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return filter_basis_conv(x, basis, combine, bias, self.padding)


class Tucker2Conv(nn.Module):
    """1x1 ``cin -> r_in``, ``kh x kw`` conv ``r_in -> r_out``, 1x1 ``r_out -> features``."""

    features: int
    ranks: tuple[int, int]
    kernel_size: Sequence[int] = (5, 5)
    padding: Any = "VALID"

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel_size
        cin = x.shape[-1]
        r_in, r_out = self.ranks
        _check(r_in, cin, f"{self.name}: r_in", f"cin = {cin}")
        _check(r_out, self.features, f"{self.name}: r_out", f"cout = {self.features}")
        a_in = self.param("a_in", _init, (cin, r_in), jnp.float32)
        core = self.param("core", _init, (kh, kw, r_in, r_out), jnp.float32)
        a_out = self.param("a_out", _init_out, (self.features, r_out), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return tucker2_conv(x, a_in, core, a_out, bias, self.padding)


# ----------------------------------------------------------------------------- ranks


def _check(r, bound: int, name: str, what: str) -> int:
    r = checks.positive_int(r, name)
    if r > bound:
        raise ValueError(f"{name} {r} exceeds {what}")
    return r


def _mapping(ranks, name: str) -> dict:
    if ranks is None:
        return {}
    if not isinstance(ranks, Mapping):
        raise ValueError(f"{name} ranks must be a mapping from layer name to rank (or None), got {ranks!r}")
    return dict(ranks)


def lenet5_ranks(ranks) -> dict:
    """``ranks`` checked and completed: ``{'Conv_0': r | None, 'Conv_1': (r_in, r_out) | None,
    'Dense_0': r | None}`` (missing keys are None; ``'Dense_1'`` may only be None). Bounds
    that depend on shapes are checked where the shapes are known."""
    given = _mapping(ranks, "LeNet-5")
    unknown = sorted(set(given) - set(LENET5_FACTORED) - {"Dense_1"})
    if unknown:
        raise ValueError(f"LeNet-5 ranks: unknown layer(s) {unknown}; the factored ones are "
                         f"{LENET5_FACTORED} and Dense_1 stays dense")
    if given.get("Dense_1") is not None:
        raise ValueError(f"LeNet-5 ranks: Dense_1 (the classifier) stays dense, got rank {given['Dense_1']!r}")
    out = {}
    for name in LENET5_FACTORED:
        r = given.get(name)
        if r is None:
            out[name] = None
        elif name == "Conv_1":
            if isinstance(r, (str, bytes)) or not isinstance(r, Sequence) or len(r) != 2:
                raise ValueError(f"LeNet-5 ranks: Conv_1 takes a Tucker-2 pair (r_in, r_out), got {r!r}")
            out[name] = (checks.positive_int(r[0], "Conv_1: r_in"), checks.positive_int(r[1], "Conv_1: r_out"))
        else:
            out[name] = checks.positive_int(r, f"{name}: rank")
    return out


def mlp_ranks(ranks, num_layers: int) -> dict:
    """``{'Dense_i': r | None}`` for ``i < num_layers`` from a mapping (missing keys None) or
    a sequence of ``num_layers`` ranks / Nones."""
    names = [f"Dense_{i}" for i in range(num_layers)]
    if ranks is not None and not isinstance(ranks, Mapping):
        if isinstance(ranks, (str, bytes)) or not isinstance(ranks, Sequence) or len(ranks) != num_layers:
            raise ValueError(f"MLP ranks: a mapping or a sequence of {num_layers} ranks/None, got {ranks!r}")
        ranks = dict(zip(names, ranks))
    given = _mapping(ranks, "MLP")
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"MLP ranks: unknown layer(s) {unknown}; the layers are {names}")
    return {n: None if given.get(n) is None else checks.positive_int(given[n], f"{n}: rank") for n in names}


# ----------------------------------------------------------------------------- models


def _lenet5_input(x):
    if x.ndim != 4 or min(x.shape[1:3]) < LENET5_MIN_SIZE:
        raise ValueError(
            f"LeNet-5 needs NHWC images of at least {LENET5_MIN_SIZE}x{LENET5_MIN_SIZE} (two 5x5 "
            f"'VALID' convolutions, each followed by a 2x2 max-pool), got input shape {tuple(x.shape)}")


class FactoredLeNet5(nn.Module):
    """:class:`~wsjax.models.LeNet5` with ``Conv_0`` (filter basis), ``Conv_1`` (Tucker-2)
    and ``Dense_0`` (low rank) run factored where ``ranks`` gives them a rank
    (see :func:`lenet5_ranks`); ``Dense_1`` stays dense. No ranks: LeNet-5 itself."""

    ranks: Mapping[str, Any] | None = None
    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        _lenet5_input(x)
        r = lenet5_ranks(self.ranks)
        if r["Conv_0"] is None:
            x = wnn.Conv(20, (5, 5), padding="VALID", name="Conv_0")(x)
        else:
            x = FilterBasisConv(20, r["Conv_0"], name="Conv_0")(x)
        x = wnn.max_pool_2x2(x)
        if r["Conv_1"] is None:
            x = wnn.Conv(50, (5, 5), padding="VALID", name="Conv_1")(x)
        else:
            x = Tucker2Conv(50, r["Conv_1"], name="Conv_1")(x)
        x = wnn.max_pool_2x2(x)
        x = x.reshape((x.shape[0], -1))
        if r["Dense_0"] is None:
            x = nn.relu(nn.Dense(500, name="Dense_0")(x))
        else:
            x = nn.relu(LowRankDense(500, r["Dense_0"], name="Dense_0")(x))
        return nn.Dense(self.num_classes, name="Dense_1")(x)


class FactoredMLP(nn.Module):
    """:class:`~wsjax.models.MLP` whose ``Dense_i`` with a rank (see :func:`mlp_ranks`) is a
    linear bottleneck ``n -> r -> c`` followed by the bias and the ReLU (none on the last)."""

    features: Sequence[int] = (300, 100, 10)
    ranks: Any = None

    @nn.compact
    def __call__(self, x):
        r = mlp_ranks(self.ranks, len(self.features))
        x = x.reshape((x.shape[0], -1))
        for i, f in enumerate(self.features):
            name = f"Dense_{i}"
            layer = nn.Dense(f, name=name) if r[name] is None else LowRankDense(f, r[name], name=name)
            x = layer(x)
            if i < len(self.features) - 1:
                x = nn.relu(x)
        return x


# ----------------------------------------------------------------------------- trained params <-> factored params


def _kind(kind) -> str:
    if isinstance(kind, (LeNet5, FactoredLeNet5)):
        return "lenet5"
    if isinstance(kind, (MLP, FactoredMLP)):
        return "mlp"
    if isinstance(kind, str) and kind.lower().replace("-", "").replace("_", "") in ("lenet5", "mlp"):
        return kind.lower().replace("-", "").replace("_", "")
    raise ValueError(f"kind must be 'lenet5', 'mlp' or a LeNet5 / MLP module, got {kind!r}")


def _unwrap(params) -> tuple[dict, bool]:
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a params tree (a mapping), got {type(params).__name__}")
    if set(params) == {"params"}:
        return dict(params["params"]), True
    return dict(params), False


def _layer(params: dict, name: str, keys: tuple) -> Mapping:
    if name not in params or not isinstance(params[name], Mapping) or not set(keys) <= set(params[name]):
        raise ValueError(f"params have no {name} with {list(keys)}; layers present: {sorted(params)}")
    return params[name]


def factor_params(kind, params, ranks, *, iterations: int = 10):
    """Params of :class:`FactoredLeNet5` / :class:`FactoredMLP` from a trained LeNet-5 / MLP.

    ``kind``: 'lenet5', 'mlp' or the module. Each layer with a rank is decomposed by
    :mod:`wsjax.sharing.decompose` (``filter_basis``, ``tucker2`` with ``iterations`` HOOI
    steps, ``svd_dense``); biases and unfactored layers are copied. ``{'params': tree}``
    comes back wrapped the same way.
    """
    kind = _kind(kind)
    tree, wrapped = _unwrap(params)
    names = sorted(k for k in tree if k.startswith("Dense_"))
    r = lenet5_ranks(ranks) if kind == "lenet5" else mlp_ranks(ranks, len(names))
    out = dict(tree)
    for name, rank in r.items():
        if rank is None:
            continue
        layer = _layer(tree, name, ("kernel", "bias"))
        k = layer["kernel"]
        try:
            if name == "Conv_0":
                f = decompose.filter_basis(k, rank)
                out[name] = {"basis": f.basis, "combine": f.combine, "bias": layer["bias"]}
            elif name == "Conv_1":
                t = decompose.tucker2(k, *rank, iterations=iterations)
                out[name] = {"a_in": t.a_in, "core": t.core, "a_out": t.a_out, "bias": layer["bias"]}
            else:
                u, v = decompose.svd_dense(k, rank)
                out[name] = {"u": u, "v": v, "bias": layer["bias"]}
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    return {"params": out} if wrapped else out


def reconstruct_params(params):
    """The plain LeNet-5 / MLP params of a factored params tree (factors multiplied back)."""
    tree, wrapped = _unwrap(params)
    out = {}
    for name, layer in tree.items():
        if "basis" in layer:
            w = decompose.reconstruct_filter_basis(decompose.FilterBasis(layer["basis"], layer["combine"]))
        elif "core" in layer:
            w = decompose.reconstruct_tucker2(decompose.Tucker2(layer["core"], layer["a_in"], layer["a_out"]))
        elif "u" in layer:
            w = decompose.reconstruct_dense(layer["u"], layer["v"])
        else:
            out[name] = layer
            continue
        out[name] = {"kernel": w, "bias": layer["bias"]}
    return {"params": out} if wrapped else out


# ----------------------------------------------------------------------------- counting


class Counts(NamedTuple):
    """Exact ``params`` (weights and biases) and ``macs`` (multiply-adds of the weights per
    example; bias adds, activations and pooling not counted), in total and per layer
    (``layers``: ``{name: (params, macs)}``)."""

    params: int
    macs: int
    layers: dict


def _conv_counts(rank, h: int, w: int, cin: int, cout: int, k: int = 5):
    """(params, macs, output side h, w) of a 'VALID' ``k x k`` conv on ``h x w x cin``."""
    ho, wo = h - k + 1, w - k + 1
    if rank is None:
        return k * k * cin * cout + cout, ho * wo * k * k * cin * cout, ho, wo
    if isinstance(rank, tuple):  # Tucker-2: 1x1 on every input pixel, core, 1x1 on the output
        ri, ro = rank
        params = cin * ri + k * k * ri * ro + ro * cout + cout
        return params, h * w * cin * ri + ho * wo * k * k * ri * ro + ho * wo * ro * cout, ho, wo
    return k * k * cin * rank + rank * cout + cout, ho * wo * (k * k * cin * rank + rank * cout), ho, wo


def _dense_counts(rank, n: int, c: int):
    if rank is None:
        return n * c + c, n * c
    return rank * (n + c) + c, rank * (n + c)


def count(ranks=None, kind="lenet5", *, features: Sequence[int] = (300, 100, 10),
          input_shape: Sequence[int] = (28, 28, 1), num_classes: int = 10) -> Counts:
    """Exact parameters and multiply-adds per example of (factored) LeNet-5 or MLP.

    ``ranks`` as for :class:`FactoredLeNet5` / :class:`FactoredMLP` (None: the dense net);
    ``kind`` 'lenet5' (``num_classes``) or 'mlp' (``features``); ``input_shape`` one
    example's (h, w, c). Dense LeNet-5 on 28x28x1: 431,080 params and
    24*24*20*25 + 8*8*50*500 + 800*500 + 500*10 = 2,293,000 multiply-adds.
    """
    kind = _kind(kind)
    shape = tuple(checks.positive_int(d, "input_shape") for d in input_shape)
    layers = {}
    if kind == "lenet5":
        if len(shape) != 3 or min(shape[:2]) < LENET5_MIN_SIZE:
            raise ValueError(f"LeNet-5 needs an (h, w, c) input of at least {LENET5_MIN_SIZE} a side, got {shape}")
        r = lenet5_ranks(ranks)
        h, w, c = shape
        if r["Conv_0"] is not None:
            _check(r["Conv_0"], min(25 * c, 20), "Conv_0: rank", f"min(kh*kw*cin, cout) = {min(25 * c, 20)}")
        p, m, h, w = _conv_counts(r["Conv_0"], h, w, c, 20)
        layers["Conv_0"] = (p, m)
        h, w = h // 2, w // 2
        if r["Conv_1"] is not None:
            _check(r["Conv_1"][0], 20, "Conv_1: r_in", "cin = 20")
            _check(r["Conv_1"][1], 50, "Conv_1: r_out", "cout = 50")
        p, m, h, w = _conv_counts(r["Conv_1"], h, w, 20, 50)
        layers["Conv_1"] = (p, m)
        n = (h // 2) * (w // 2) * 50
        if r["Dense_0"] is not None:
            _check(r["Dense_0"], min(n, 500), "Dense_0: rank", f"min(n_in, n_out) = {min(n, 500)}")
        layers["Dense_0"] = _dense_counts(r["Dense_0"], n, 500)
        layers["Dense_1"] = _dense_counts(None, 500, checks.positive_int(num_classes, "num_classes"))
    else:
        sizes = (int(np.prod(shape)), *(checks.positive_int(f, "features") for f in features))
        r = mlp_ranks(ranks, len(sizes) - 1)
        for i, (n, c) in enumerate(zip(sizes[:-1], sizes[1:])):
            rank = r[f"Dense_{i}"]
            if rank is not None:
                _check(rank, min(n, c), f"Dense_{i}: rank", f"min(n_in, n_out) = {min(n, c)}")
            layers[f"Dense_{i}"] = _dense_counts(rank, n, c)
    return Counts(sum(p for p, _ in layers.values()), sum(m for _, m in layers.values()), layers)


# ----------------------------------------------------------------------------- timing


def forward_seconds(apply_fn: Callable, params, x, repeats: int = 20) -> float:
    """Median wall-clock seconds of one jitted ``apply_fn(params, x)`` (after a compile and
    warm-up call), each run waited for with ``block_until_ready``. For experiments; the
    number depends on the machine and its load. On CPU the jit uses
    :func:`wsjax.nn.compiler_options` as the training engine does."""
    repeats = checks.positive_int(repeats, "repeats")
    fn = jax.jit(apply_fn, compiler_options=wnn.compiler_options())
    jax.block_until_ready(fn(params, x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params, x))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
