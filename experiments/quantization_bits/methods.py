"""How each method of the study turns a starting net into a quantized one.

* The low-bit methods (:mod:`wsjax.sharing.lowbit`): ``W = T(theta)`` with a
  straight-through backward pass, the latents ``theta`` trained by :func:`wsjax.train.fit`
  (BinaryConnect's clipping of binary latents to [-1, 1] last in the optax chain; a
  stochastic binary net draws its weights with the step's key). Stored by the ``lowbit``
  codec (packed codes plus float32 scales).
* The k-means methods (:mod:`wsjax.compress`): Deep Compression's ``Quantize`` (per-layer
  codebook of the surviving weights) and ``Retrain`` (centroids and biases), stored as
  plain weights (dense-codebook or sparse records, Huffman-coded where smaller).

References: Courbariaux, Bengio & David, `BinaryConnect <https://arxiv.org/abs/1511.00363>`_,
2015; Li, Zhang & Liu, `Ternary Weight Networks <https://arxiv.org/abs/1605.04711>`_, 2016;
Esser et al., `Learned Step Size Quantization <https://arxiv.org/abs/1902.08153>`_, 2019; Han,
Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import optax

from wsjax import compress
from wsjax.sharing import SharedParams
from wsjax.sharing import lowbit as lb
from wsjax.sharing.core import Static
from wsjax.train import fit


def lowbit_transform(method: str, bits: int, scale: str):
    """The transform of a low-bit method (kernels only)."""
    if method in ("binary", "binary_scratch"):
        return lb.binary(scale=scale)
    if method == "binary_stochastic":
        return lb.binary(scale=scale, stochastic=True)
    if method == "ternary":
        return lb.ternary(scale=scale)
    if method in ("uniform", "lsq"):
        return lb.uniform(bits, scale=scale, learned=method == "lsq")
    raise ValueError(f"{method!r} is not a low-bit method")


def _is_frozen(x) -> bool:
    return isinstance(x, lb.LowBitFrozen)


def deterministic(frozen):
    """``frozen`` with every stochastic binary leaf made deterministic (``sgn(theta)``, no
    key): the net a file stores and the study scores."""
    def fix(f):
        if not _is_frozen(f) or not f.spec.value.stochastic:
            return f
        return f._replace(spec=Static(f.spec.value._replace(stochastic=False)), key=None)

    return jax.tree.map(fix, frozen, is_leaf=_is_frozen)


def binaryconnect_latents(state: SharedParams) -> SharedParams:
    """A stochastic binary state on BinaryConnect's latent scale.

    BinaryConnect binarises to ``+-H`` with ``p(+H) = hard_sigmoid(theta / H)`` and keeps
    ``theta`` in ``[-H, H]``, initialised uniformly there, so ``mean |theta / H| = 1/2``.
    Drawn from a trained net's small weights (``|theta| << 1``) ``p`` would be about 1/2 for
    every weight: noise. So each binary layer's latents become ``theta / H`` with ``H = 2
    mean|theta|`` (mean ``|theta / H|`` = 1/2, as BinaryConnect starts) and its scale is
    fixed at the starting net's ``mean|theta|`` (XNOR-Net's alpha; a given scale, stored by
    the codec), so that ``W = alpha sgn(theta)`` of the starting latents is unchanged.
    """
    inner = dict(state.theta["inner"])
    frozen = dict(state.frozen)
    for path, f in frozen.items():
        if _is_frozen(f) and f.spec.value.kind == "binary":
            x = jnp.asarray(inner[path], jnp.float32)
            alpha = jnp.mean(jnp.abs(x))
            inner[path] = (x / (2 * alpha)).astype(inner[path].dtype)
            frozen[path] = f._replace(scale=alpha)
    return SharedParams({**state.theta, "inner": inner}, frozen)


def _cross_entropy(model, params, x, y):
    logits = model.apply({"params": params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def initial_state(transform, params, unit: dict) -> SharedParams:
    """The low-bit state a unit starts from (BinaryConnect's latent scale when stochastic)."""
    state = transform.init(jax.random.key(unit["seed"]), params)
    return binaryconnect_latents(state) if unit["method"] == "binary_stochastic" else state


def train_lowbit(model, params, unit: dict, train, val, eval_fn, loop: str):
    """Fine-tune (or, from fresh ``params``, train) a low-bit net; returns ``(transform,
    state, history, seconds)`` with the trained latents in ``state.theta``."""
    t = lowbit_transform(unit["method"], unit["bits"], unit["scale"])
    state = initial_state(t, params, unit)
    frozen, scored = state.frozen, deterministic(state.frozen)
    stochastic = unit["method"] == "binary_stochastic"
    if stochastic:
        def loss_fn(theta, x, y, key):
            return _cross_entropy(model, lb.stochastic_apply(t, SharedParams(theta, frozen), key), x, y)
    else:
        def loss_fn(theta, x, y):
            return _cross_entropy(model, t.apply(SharedParams(theta, frozen)), x, y)
    steps = max(1, unit["epochs"] * (len(train[0]) // unit["batch_size"]))
    opt = optax.adam(optax.cosine_decay_schedule(unit["lr"], steps, alpha=unit["final_lr_fraction"]))
    if unit["method"].startswith("binary"):
        opt = optax.chain(opt, lb.clip_latent(lb.binary_latents(state)))  # BinaryConnect's clip, last
    t0 = time.perf_counter()
    result = fit(loss_fn, state.theta, opt, train, eval=val,
                 eval_fn=lambda th, x, y: eval_fn(t.apply(SharedParams(th, scored)), x, y),
                 epochs=unit["epochs"], batch_size=unit["batch_size"], seed=unit["seed"], loop=loop,
                 progress=False, loss_takes_key=stochastic)
    seconds = time.perf_counter() - t0
    return t, SharedParams(jax.device_get(result.theta), frozen), result.history, seconds


def scored_params(transform, state: SharedParams):
    """The weights the study scores and stores: the deterministic net, on the host."""
    return jax.device_get(transform.apply(SharedParams(state.theta, deterministic(state.frozen))))


def train_kmeans(model, params, masks, unit: dict, train, val, loop: str):
    """Deep Compression's trained quantization: ``2**bits`` centroids per layer of the
    surviving weights (``masks``; None: every weight), then the centroids retrained.
    Returns ``(quantized params before retraining, retrained Compressed, seconds)``."""
    from wsjax.study import pruned_nets

    net = compress.from_linen(model, params)
    begin = compress.start(params) if masks is None else pruned_nets.level_net(params, masks)
    quantized = compress.Pipeline([compress.Quantize(unit["bits"], init=unit["init"])]).run(
        net, train, val, seed=unit["seed"], start_from=begin, progress=False)
    retrain = compress.Retrain(unit["epochs"], unit["lr"], alpha=unit["final_lr_fraction"],
                               batch_size=unit["batch_size"])
    t0 = time.perf_counter()
    retrained = compress.Pipeline([retrain]).run(net, train, val, seed=unit["seed"], start_from=quantized,
                                                 loop=loop, progress=False)
    return jax.device_get(quantized.params), retrained, time.perf_counter() - t0
