"""A multi-exit CNN (early exits) and batched, jitted early-exit inference.

:class:`MultiExitCNN` is a lite MSDNet: a chain of conv blocks with a small classifier
(*exit*) after each block; it returns every exit's logits. MSDNet's multi-scale dense
features are left out; what is kept is its training objective, the weighted sum of the
exits' cross-entropies (:func:`joint_loss`, weights 1 by default, as Huang et al. use), and
its *budgeted batch* evaluation: an example leaves at the first exit whose confidence (its
largest softmax probability) reaches a threshold, the last exit otherwise.

Cost. An example that leaves at exit ``i`` ran blocks ``0..i`` and evaluated heads ``0..i``
(heads ``0..i-1`` said "not yet"), so its cost is :func:`exit_costs` ``.cumulative[i]`` =
``sum(block_macs[:i+1]) + sum(head_macs[:i+1])``, counted exactly by
:func:`wsjax.models.counting.count`; the last exit's cumulative cost is the whole model's.

Schedules of :func:`early_exit_predict` (no Python branching on single examples in either):

* ``'masked'``: one jitted forward pass computes every exit for the whole batch, then picks
  per example the first confident exit (:func:`select_exits`). The result is exact and
  jittable, but the compute that ran is the whole model's for every example: the saving is
  only *counted* (``avg_macs``), not realised (``computed_macs`` is the full cost).
* ``'compacting'``: block ``i`` and head ``i`` run jitted on a bucket of the examples still in
  play; after each head the host reads the confidences (one transfer per block), and the
  examples that have not exited are gathered into the next bucket, its size padded up to a
  power of two (capped at the batch size) so that each stage compiles for at most
  ``log2(batch) + 2`` sizes. The work that runs shrinks with the bucket, so measured time can
  drop; ``computed_macs`` counts it, padding rows included. Predictions and exits equal the
  masked schedule's (up to floating-point differences between batch sizes, which could flip
  an example whose confidence is within rounding of the threshold).

:func:`accuracy_vs_macs` runs the exits once and sweeps thresholds on the host.

References: Huang, Chen, Li, Wu, van der Maaten & Weinberger, `Multi-Scale Dense Networks for
Resource Efficient Image Classification <https://arxiv.org/abs/1703.09844>`_, ICLR 2018
(MSDNet; anytime and budgeted batch classification); Teerapittayanon, McDanel & Kung,
`BranchyNet: Fast Inference via Early Exiting from Deep Neural Networks
<https://arxiv.org/abs/1709.01686>`_, 2016 (exits on confidence thresholds).
"""

from __future__ import annotations

import functools
from typing import Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsjax import checks
from wsjax import nn as wnn
from wsjax.models import counting
from wsjax.models.separable import BLOCKS, conv_block

SCHEDULES = ("masked", "compacting")


# ----------------------------------------------------------------------------- the model


class ConvBlock(nn.Module):
    """(2x2 max-pool if ``pool``), then a standard or separable ``k x k`` conv and a ReLU."""

    features: int
    pool: bool = False
    block: str = "standard"
    kernel_size: int = 3

    @nn.compact
    def __call__(self, h):
        if self.pool:
            h = wnn.max_pool_2x2(h)
        return nn.relu(conv_block(self.block, self.features, self.kernel_size, "conv")(h))


class ExitHead(nn.Module):
    """An exit: (a 3x3 conv of ``width`` maps and a ReLU, if ``width``), global average
    pooling, a dense layer to the logits."""

    num_classes: int
    width: int | None = None

    @nn.compact
    def __call__(self, h):
        if self.width:
            h = nn.relu(wnn.Conv(self.width, (3, 3), padding="SAME", name="conv")(h))
        return nn.Dense(self.num_classes, name="dense")(jnp.mean(h, axis=(1, 2)))


class MultiExitCNN(nn.Module):
    """``len(widths)`` conv blocks (block ``i`` has ``widths[i]`` maps; a 2x2 max-pool in front
    of every block but the first), an :class:`ExitHead` after each; ``__call__`` returns the
    tuple of all exits' logits, ``stage(h, i)`` runs block ``i`` and exit ``i`` only.

    Param names: ``blocks_i/conv/...``, ``heads_i/dense/...`` (and ``heads_i/conv`` with
    ``head_width``).
    """

    widths: Sequence[int] = (16, 32, 64)
    num_classes: int = 10
    block: str = "standard"
    kernel_size: int = 3
    head_width: int | None = None

    def setup(self):
        if isinstance(self.widths, (str, bytes)) or not isinstance(self.widths, Sequence) or not self.widths:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {self.widths!r}")
        widths = [checks.positive_int(w, "widths") for w in self.widths]
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block!r}")
        classes = checks.positive_int(self.num_classes, "num_classes")
        head = None if self.head_width is None else checks.positive_int(self.head_width, "head_width")
        k = checks.positive_int(self.kernel_size, "kernel_size")
        self.blocks = [ConvBlock(w, i > 0, self.block, k) for i, w in enumerate(widths)]
        self.heads = [ExitHead(classes, head) for _ in widths]

    def _check_input(self, x):
        need = 2 ** (len(self.widths) - 1)
        if x.ndim != 4 or min(x.shape[1:3]) < need:
            raise ValueError(f"MultiExitCNN with {len(self.widths)} blocks needs NHWC images of at least "
                             f"{need}x{need} ({len(self.widths) - 1} 2x2 max-pools), got shape {tuple(x.shape)}")

    def __call__(self, x):
        self._check_input(x)
        logits = []
        for block, head in zip(self.blocks, self.heads):
            x = block(x)
            logits.append(head(x))
        return tuple(logits)

    def stage(self, h, i: int):
        """``(block_i(h), head_i(block_i(h)))``; ``h`` is the image for ``i = 0``, else block ``i-1``'s output."""
        if i == 0:
            self._check_input(h)
        h = self.blocks[i](h)
        return h, self.heads[i](h)


def num_exits(model: MultiExitCNN) -> int:
    return len(model.widths)


# ----------------------------------------------------------------------------- loss and costs


def _logits_list(logits_list) -> tuple:
    if isinstance(logits_list, (str, bytes)) or not isinstance(logits_list, Sequence) or not logits_list:
        raise ValueError("logits_list must be a non-empty sequence of (batch, classes) arrays, "
                         f"got {type(logits_list).__name__}")
    shapes = {tuple(np.shape(z)) for z in logits_list}
    first = tuple(np.shape(logits_list[0]))
    if len(shapes) != 1 or len(first) != 2:
        raise ValueError(f"every exit's logits must be one (batch, classes) shape, got {sorted(shapes)}")
    return tuple(logits_list)


def _labels(y, batch: int):
    if np.ndim(y) != 1 or np.shape(y)[0] != batch or not jnp.issubdtype(jnp.result_type(y), jnp.integer):
        raise ValueError(f"y must be ({batch},) integer labels, got shape {np.shape(y)} "
                         f"dtype {jnp.result_type(y)}")
    return y


def joint_loss(logits_list, y, weights=None):
    """``sum_i weights[i] * mean_n CE(logits_list[i][n], y[n])`` (MSDNet's objective; ``weights``
    default all 1). ``weights``: one non-negative number per exit (or an array of them)."""
    logits_list = _logits_list(logits_list)
    y = _labels(y, np.shape(logits_list[0])[0])
    e = len(logits_list)
    if weights is None:
        weights = (1.0,) * e
    if isinstance(weights, jax.Array) or isinstance(weights, np.ndarray):
        if weights.shape != (e,):
            raise ValueError(f"weights must have one entry per exit ({e}), got shape {weights.shape}")
    else:
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != e:
            raise ValueError(f"weights must be {e} non-negative numbers (one per exit), got {weights!r}")
        weights = [checks.number(w, "weights", lo=0) for w in weights]
    losses = jnp.stack([optax.softmax_cross_entropy_with_integer_labels(z, y).mean() for z in logits_list])
    return jnp.sum(jnp.asarray(weights, losses.dtype) * losses)


class ExitCosts(NamedTuple):
    """Multiply-adds per example: of each block, each head, and ``cumulative[i]``, the cost of
    leaving at exit ``i`` (blocks and heads ``0..i``). ``params``: the model's total."""

    block_macs: tuple
    head_macs: tuple
    cumulative: tuple
    params: int


def exit_costs(model: MultiExitCNN, input_shape: Sequence[int]) -> ExitCosts:
    """Exact per-exit costs of ``model`` on one example of ``input_shape`` (e.g. (28, 28, 1))."""
    if not isinstance(model, MultiExitCNN):
        raise ValueError(f"model must be a MultiExitCNN, got {type(model).__name__}")
    return _exit_costs(model, tuple(int(d) for d in input_shape))


@functools.lru_cache(maxsize=64)
def _exit_costs(model: MultiExitCNN, input_shape: tuple) -> ExitCosts:
    c = counting.count(model, input_shape)
    e = num_exits(model)
    blocks, heads = [0] * e, [0] * e
    for name, layer in c.per_layer.items():
        top = name.split("/")[0]
        kind, _, i = top.rpartition("_")
        if kind == "blocks":
            blocks[int(i)] += layer.macs
        elif kind == "heads":
            heads[int(i)] += layer.macs
        else:
            raise ValueError(f"exit_costs: a layer {name!r} outside the blocks and heads")
    cumulative = tuple(int(v) for v in np.cumsum(np.asarray(blocks) + np.asarray(heads)))
    return ExitCosts(tuple(blocks), tuple(heads), cumulative, c.params)


# ----------------------------------------------------------------------------- selecting exits


def confidence(logits):
    """The largest softmax probability of each row of ``logits``."""
    return jnp.exp(jnp.max(logits, axis=-1) - jax.nn.logsumexp(logits, axis=-1))


def _first_confident(conf, threshold, xp):
    """Index of the first exit (row of ``conf``, (exits, batch)) with ``conf >= threshold``;
    the last exit where none is."""
    hit = conf >= threshold
    hit = xp.concatenate([hit[:-1], xp.ones_like(hit[-1:])], axis=0)
    return xp.argmax(hit, axis=0)


def select_exits(logits_list, threshold):
    """``(predictions, exits)``: per example the argmax class of, and the index of, the first
    exit whose :func:`confidence` is ``>= threshold`` (the last exit if none). Jittable;
    ``threshold`` may be traced."""
    logits_list = _logits_list(logits_list)
    threshold = checks.number(threshold, "threshold", lo=0, finite=False, traced=True)
    conf = jnp.stack([confidence(z) for z in logits_list])
    exits = _first_confident(conf, jnp.asarray(threshold, conf.dtype), jnp)
    preds = jnp.stack([jnp.argmax(z, axis=-1) for z in logits_list])
    return jnp.take_along_axis(preds, exits[None], axis=0)[0], exits


# ----------------------------------------------------------------------------- inference


class EarlyExit(NamedTuple):
    """One batch's early-exit inference (host arrays).

    ``predictions`` (batch,) classes; ``exits`` (batch,) exit indices; ``avg_macs``: the mean
    counted cost of the exits taken (:class:`ExitCosts` ``.cumulative``); ``computed_macs``:
    multiply-adds per example that actually ran (the whole model for 'masked'; the buckets'
    work, padding included, for 'compacting'); ``exit_fractions``: share of examples per exit;
    ``bucket_sizes``: the rows each stage ran on (all the batch for 'masked')."""

    predictions: np.ndarray
    exits: np.ndarray
    avg_macs: float
    computed_macs: float
    exit_fractions: tuple
    bucket_sizes: tuple


def _variables(params):
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a params tree or {{'params': tree}}, got {type(params).__name__}")
    return params if set(params) == {"params"} else {"params": params}


def _images(model, x):
    if not isinstance(model, MultiExitCNN):
        raise ValueError(f"model must be a MultiExitCNN, got {type(model).__name__}")
    x = jnp.asarray(x)
    need = 2 ** (num_exits(model) - 1)
    if x.ndim != 4 or x.shape[0] < 1 or min(x.shape[1:3]) < need or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be a non-empty float NHWC batch of images of at least {need}x{need}, "
                         f"got shape {tuple(x.shape)} dtype {x.dtype}")
    return x


@functools.cache
def _jitted():
    """(all exits' logits, one stage with its confidences and predictions), jitted once per
    model (a static argument) and shape, with the engine's compiler options."""
    opts = wnn.compiler_options()

    def all_logits(model, variables, x):
        return model.apply(variables, x)

    def stage(model, i, variables, h):
        h, logits = model.apply(variables, h, i, method=MultiExitCNN.stage)
        return h, confidence(logits), jnp.argmax(logits, axis=-1)

    def masked(model, variables, x, threshold):
        return select_exits(model.apply(variables, x), threshold)

    return (jax.jit(all_logits, static_argnums=0, compiler_options=opts),
            jax.jit(stage, static_argnums=(0, 1), compiler_options=opts),
            jax.jit(masked, static_argnums=0, compiler_options=opts))


def _bucket(n: int, cap: int, min_bucket: int) -> int:
    return min(cap, max(min_bucket, 1 << (n - 1).bit_length()))


def _fractions(exits: np.ndarray, e: int) -> tuple:
    return tuple(float(v) for v in np.bincount(exits, minlength=e) / exits.size)


def early_exit_predict(model: MultiExitCNN, params, x, threshold, schedule: str = "masked", *,
                       min_bucket: int = 1) -> EarlyExit:
    """Budgeted-batch inference: each example of ``x`` leaves at its first exit with
    confidence ``>= threshold`` (0: everything at exit 0; above 1: everything at the last).

    ``params``: the model's params tree (or ``{'params': tree}``); ``schedule``: 'masked' or
    'compacting' (see the module docstring); ``min_bucket``: the smallest bucket of the
    compacting schedule (fewer, larger compiles). Returns :class:`EarlyExit`.
    """
    x = _images(model, x)
    variables = _variables(params)
    threshold = checks.number(threshold, "threshold", lo=0, finite=False)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    min_bucket = checks.positive_int(min_bucket, "min_bucket")
    costs = exit_costs(model, x.shape[1:])
    e, n = num_exits(model), x.shape[0]
    _, stage, masked = _jitted()
    cum = np.asarray(costs.cumulative, np.float64)
    if schedule == "masked":
        preds, exits = (np.asarray(a) for a in masked(model, variables, x, threshold))
        return EarlyExit(preds, exits, float(cum[exits].mean()), float(cum[-1]), _fractions(exits, e), (n,) * e)

    preds, exits = np.zeros(n, np.int64), np.zeros(n, np.int64)
    rows = np.arange(n)  # the example each valid row of h holds
    h, sizes, computed = x, [], 0.0
    for i in range(e):
        sizes.append(h.shape[0])
        computed += h.shape[0] * (costs.block_macs[i] + costs.head_macs[i])
        h, conf, pred = stage(model, i, variables, h)
        conf, pred = np.asarray(conf)[: rows.size], np.asarray(pred)[: rows.size]
        done = conf >= np.float32(threshold) if i < e - 1 else np.ones(rows.size, bool)
        preds[rows[done]], exits[rows[done]] = pred[done], i
        keep = np.flatnonzero(~done)
        if keep.size == 0:
            break
        size = _bucket(keep.size, n, min_bucket)
        take = np.concatenate([keep, np.full(size - keep.size, keep[0])])  # pad with a valid row
        h = jnp.take(h, jnp.asarray(take), axis=0)
        rows = rows[keep]
    return EarlyExit(preds, exits, float(cum[exits].mean()), computed / n, _fractions(exits, e), tuple(sizes))


def all_exit_logits(model: MultiExitCNN, params, x, batch_size: int | None = None) -> tuple:
    """Every exit's logits of ``x`` as host arrays, jitted, in chunks of ``batch_size`` rows."""
    x = _images(model, x)
    variables = _variables(params)
    n = x.shape[0]
    step = n if batch_size is None else checks.positive_int(batch_size, "batch_size")
    all_logits = _jitted()[0]
    chunks = [all_logits(model, variables, x[s: s + step]) for s in range(0, n, step)]
    return tuple(np.concatenate([np.asarray(c[i]) for c in chunks]) for i in range(num_exits(model)))


class TradeoffPoint(NamedTuple):
    """One threshold's accuracy, counted average MACs per example and share of examples per exit."""

    threshold: float
    accuracy: float
    avg_macs: float
    exit_fractions: tuple


def accuracy_vs_macs(model: MultiExitCNN, params, x, y, thresholds: Sequence, *,
                     batch_size: int | None = None) -> list:
    """Accuracy against counted compute for each threshold (the exits run once, jitted; the
    selection per threshold is :func:`select_exits`'s rule on the host). Returns a list of
    :class:`TradeoffPoint`, in the order of ``thresholds``."""
    logits = all_exit_logits(model, params, x, batch_size)
    y = np.asarray(_labels(y, logits[0].shape[0]))
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Sequence) or not thresholds:
        raise ValueError(f"thresholds must be a non-empty sequence of numbers >= 0, got {thresholds!r}")
    ts = [checks.number(t, "threshold", lo=0, finite=False) for t in thresholds]
    cum = np.asarray(exit_costs(model, x.shape[1:]).cumulative, np.float64)
    conf = np.stack([np.asarray(confidence(jnp.asarray(z))) for z in logits])
    preds = np.stack([z.argmax(-1) for z in logits])
    out = []
    for t in ts:
        exits = _first_confident(conf, np.float32(t), np)
        chosen = np.take_along_axis(preds, exits[None], axis=0)[0]
        out.append(TradeoffPoint(t, float((chosen == y).mean()), float(cum[exits].mean()),
                                 _fractions(exits, len(logits))))
    return out
