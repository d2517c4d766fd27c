"""The one training loop every wsjax experiment uses.

``fit`` trains the free parameters ``theta`` of any ``loss_fn(theta, x, y)`` with any optax
transformation. The data set lives on the device; an epoch draws one permutation on the
device and runs either

* ``'scan'``: ``lax.scan`` over chunks of minibatches (one dispatch per chunk), or
* ``'python'``: a Python loop over one jitted step with asynchronous dispatch,

with no host round trip per step (losses are summed on the device and read once an epoch).
``loop='auto'`` times both on the first epoch's shapes and keeps the faster one for the
backend and step (cached per process); on XLA:CPU a scan over conv steps can be several
times slower than the loop, while small dense steps favour the scan (see
``benchmarks/epoch_loop.py``). Both modes compute the same updates.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from wsjax.train import checkpoint as ckpt
from wsjax.train.sharding import DataParallel

LOOPS = ("auto", "scan", "python")
_AUTO_CHOICE: dict[Any, str] = {}


class TrainResult(NamedTuple):
    theta: Any
    opt_state: Any
    history: list


def _check_data(name, data, allow_none=False):
    if data is None and allow_none:
        return None
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (x, y) of arrays, got {type(data).__name__}")
    x, y = data
    if not hasattr(x, "shape") or not hasattr(y, "shape"):
        raise TypeError(f"{name} must hold arrays, got {type(x).__name__}, {type(y).__name__}")
    if len(x) != len(y):
        raise ValueError(f"{name}: {len(x)} inputs but {len(y)} targets")
    if len(x) == 0:
        raise ValueError(f"{name} is empty")
    return x, y


def _check_positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def evaluate(eval_fn, theta, x, y, batch_size: int = 1000, *, _jitted=None) -> dict:
    """Mean of ``eval_fn(theta, xb, yb)`` over all examples, batched on the device."""
    fn = _jitted or jax.jit(eval_fn)
    n = len(x)
    totals, count = None, 0
    for start in range(0, n, batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        m = fn(theta, xb, yb)
        w = len(xb)
        scaled = {k: v * w for k, v in m.items()}
        totals = scaled if totals is None else {k: totals[k] + scaled[k] for k in totals}
        count += w
    return {k: float(v) / count for k, v in jax.device_get(totals).items()}


def classifier(apply_fn: Callable[[Any, jax.Array], jax.Array]):
    """``(loss_fn, eval_fn)`` for softmax cross-entropy on integer labels.

    ``apply_fn(theta, x) -> logits``; ``eval_fn`` returns batch means of 'loss' and 'accuracy'.
    """

    def loss_fn(theta, x, y):
        logits = apply_fn(theta, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def eval_fn(theta, x, y):
        logits = apply_fn(theta, x)
        return {
            "loss": optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(),
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == y),
        }

    return loss_fn, eval_fn


def _make_step(loss_fn, optimizer, dp: DataParallel):
    def step(theta, opt_state, x, y, idx):
        xb, yb = dp.shard_batch(jnp.take(x, idx, axis=0)), dp.shard_batch(jnp.take(y, idx, axis=0))
        loss, grads = jax.value_and_grad(loss_fn)(theta, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, loss

    return step


def fit(
    loss_fn: Callable[[Any, jax.Array, jax.Array], jax.Array],
    theta: Any,
    optimizer: optax.GradientTransformation,
    train,
    *,
    epochs: int,
    batch_size: int,
    eval=None,
    eval_fn: Callable | None = None,
    seed: int = 0,
    loop: str = "auto",
    scan_chunk: int = 25,
    eval_batch_size: int = 1000,
    log_path: str | None = None,
    checkpoint_dir: str | None = None,
    progress: bool = True,
    desc: str = "",
    data_parallel: bool | None = None,
    opt_state: Any = None,
) -> TrainResult:
    """Train ``theta`` to minimise ``loss_fn`` over ``train = (x, y)`` for ``epochs`` epochs.

    Args:
      loss_fn: ``(theta, x_batch, y_batch) -> scalar``.
      theta: the free parameters (any pytree of float arrays).
      optimizer: any optax transformation; ``update(grads, state, theta)`` gets the params.
      train, eval: ``(x, y)`` host or device arrays; ``eval`` is scored with ``eval_fn``
        (``(theta, x, y) -> dict`` of batch means) after every epoch.
      seed: the shuffling seed; a run is a deterministic function of its arguments.
      loop: 'auto', 'scan' or 'python' (see module docstring).
      log_path: JSON-lines file, one record per epoch.
      checkpoint_dir: orbax checkpoints after every epoch; an existing one is resumed from,
        and the resumed run ends with the same parameters as an uninterrupted one.
      data_parallel: shard each batch over all local devices (default: when there are >1).
      opt_state: resume from this optimizer state instead of ``optimizer.init(theta)``.

    Returns:
      ``TrainResult(theta, opt_state, history)``; ``history`` holds one dict per epoch.
    """
    x, y = _check_data("train", train)
    if eval is not None:
        _check_data("eval", eval)
        if eval_fn is None:
            raise ValueError("eval data was given without an eval_fn")
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("scan_chunk", scan_chunk)
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
    n = len(x)
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} training examples")
    if not jax.tree.leaves(theta):
        raise ValueError("theta has no leaves: nothing to train")

    dp = DataParallel.create(data_parallel, batch_size)
    x, y = dp.replicate(jnp.asarray(x)), dp.replicate(jnp.asarray(y))
    num_batches = n // batch_size
    # The jitted steps donate their buffers: train on a copy so the caller's theta survives.
    theta = jax.tree.map(lambda a: jnp.array(a, copy=True), theta)
    if opt_state is None:
        opt_state = optimizer.init(theta)
    else:
        opt_state = jax.tree.map(lambda a: jnp.array(a, copy=True), opt_state)

    start_epoch, history = 0, []
    manager = None
    if checkpoint_dir is not None:
        manager = ckpt.manager(checkpoint_dir)
        restored = ckpt.restore_latest(manager, theta, opt_state)
        if restored is not None:
            theta, opt_state, start_epoch, history = restored

    step = _make_step(loss_fn, optimizer, dp)
    jstep = jax.jit(step, donate_argnums=(0, 1))
    chunk = min(scan_chunk, num_batches)

    def scan_chunk_fn(theta, opt_state, x, y, idx_chunk):
        def body(carry, idx):
            th, st = carry
            th, st, loss = step(th, st, x, y, idx)
            return (th, st), loss

        (theta, opt_state), losses = jax.lax.scan(body, (theta, opt_state), idx_chunk)
        return theta, opt_state, losses.sum()

    jscan = jax.jit(scan_chunk_fn, donate_argnums=(0, 1))
    jeval = jax.jit(eval_fn) if eval_fn is not None else None
    base_key = jax.random.key(seed)

    def batches_for(epoch):
        perm = jax.random.permutation(jax.random.fold_in(base_key, epoch), n)
        return perm[: num_batches * batch_size].reshape(num_batches, batch_size)

    def run_python(theta, opt_state, batches, lo, hi):
        total = jnp.zeros((), jnp.float32)
        for b in range(lo, hi):
            theta, opt_state, loss = jstep(theta, opt_state, x, y, batches[b])
            total = total + loss
        return theta, opt_state, total

    def run_scan(theta, opt_state, batches, lo, hi):
        total = jnp.zeros((), jnp.float32)
        b = lo
        while b + chunk <= hi:
            theta, opt_state, s = jscan(theta, opt_state, x, y, batches[b : b + chunk])
            total, b = total + s, b + chunk
        theta, opt_state, rest = run_python(theta, opt_state, batches, b, hi)
        return theta, opt_state, total + rest

    mode = loop
    if mode == "auto":
        sig = (
            jax.default_backend(),
            jax.tree.structure(theta),
            tuple(np.shape(l) for l in jax.tree.leaves(theta)),
            x.shape,
            batch_size,
            chunk,
            id(loss_fn),
        )
        mode = _AUTO_CHOICE.get(sig) or _AUTO_CHOICE.setdefault(
            sig, _measure(run_python, run_scan, theta, opt_state, batches_for(0), chunk)
        )
    runner = run_scan if mode == "scan" else run_python

    log_file = open(log_path, "a") if log_path else None
    bar = tqdm(
        range(start_epoch, epochs),
        desc=desc or "train",
        disable=not progress,
        initial=start_epoch,
        total=epochs,
        leave=False,
    )
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            theta, opt_state, total = runner(theta, opt_state, batches_for(epoch), 0, num_batches)
            record = {"epoch": epoch + 1, "train_loss": float(total) / num_batches}
            record["seconds"] = time.perf_counter() - t0
            if jeval is not None and eval is not None:
                for k, v in evaluate(eval_fn, theta, *eval, eval_batch_size, _jitted=jeval).items():
                    record[f"eval_{k}"] = v
            record["loop"] = mode
            history.append(record)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if isinstance(v, float)})
            if log_file:
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
            if manager is not None:
                ckpt.save(manager, epoch + 1, theta, opt_state, history)
    finally:
        bar.close()
        if log_file:
            log_file.close()
        if manager is not None:
            manager.wait_until_finished()
            manager.close()
    return TrainResult(theta, opt_state, history)


def _measure(run_python, run_scan, theta, opt_state, batches, chunk, repeats: int = 1) -> str:
    """Time ``chunk`` steps of each loop mode (after a warm-up) on copies of the state."""
    copy = lambda t: jax.tree.map(lambda a: jnp.array(a, copy=True), t)
    times = {}
    for name, run in (("python", run_python), ("scan", run_scan)):
        th, st, tot = run(copy(theta), copy(opt_state), batches, 0, chunk)  # compile + warm
        jax.block_until_ready(tot)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            th, st, tot = run(copy(theta), copy(opt_state), batches, 0, chunk)
            jax.block_until_ready(tot)
            best = min(best, time.perf_counter() - t0)
        times[name] = best
    return min(times, key=times.get)
