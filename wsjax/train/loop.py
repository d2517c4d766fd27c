"""The one training loop every wsjax experiment uses.

``fit`` trains the free parameters ``theta`` of any ``loss_fn(theta, x, y)`` with any optax
transformation. The data set lives on the device; an epoch draws one permutation on the
device and runs either

* ``'scan'``: ``lax.scan`` over chunks of minibatches (one dispatch per chunk), or
* ``'python'``: a Python loop over one jitted step with asynchronous dispatch,

with no host round trip per step (losses are summed on the device and read once an epoch).

``loop='auto'`` times both on the first epoch's own steps (a chunk of each mode compiles,
the next is timed; shorter epochs time copies) and keeps the faster one for the backend
and step (cached per process); on XLA:CPU a scan over conv steps can be several
times slower than the loop, while small dense steps favour the scan (see
``benchmarks/epoch_loop.py``). Both modes compute the same updates. The environment
variable ``WSJAX_LOOP`` (``'scan'`` or ``'python'``) fixes the loop of every fit asked for
``'auto'``, without measuring (one compile per net instead of two).

Before training, ``fit`` checks its data against the model: one ``jax.eval_shape`` of the
loss on a batch (an error naming the shapes), finite inputs, and for a :func:`classifier`
integer labels in ``[0, num_classes)``. During training, ``on_nonfinite`` says what a step
with a non-finite loss does:

* ``'raise'`` (default): the epoch ends in :class:`NonFiniteLossError` naming the epoch
  and the first bad step, carrying the last finite parameters (``err.theta``,
  ``err.opt_state``) and the history so far; the last checkpoint written is that of the
  previous epoch;
* ``'skip'``: a step whose loss or gradients are not finite keeps the old parameters and
  optimizer state (``train_loss`` averages the finite steps; the record counts
  ``skipped_steps``);
* ``'continue'``: train on regardless (the record counts ``nonfinite_steps``).

'raise' and 'continue' cost nothing per step: the epoch's loss sum, read once an epoch
anyway, is finite exactly when every step's loss is; only when it is not are the epoch's
per-step losses (kept on the device) read to find the first bad step, and 'raise' replays
the epoch from a copy of its starting state up to that step. 'skip' selects between the
new and old state inside the jitted step (about a fifth slower on a small dense net).

A loss may be random (dropout, stochastic binarisation as in Courbariaux et al.'s
BinaryConnect, `arXiv:1511.00363 <https://arxiv.org/abs/1511.00363>`_, a layer applied a
random number of times): ``fit(..., loss_takes_key=True)`` calls ``loss_fn(theta, x, y,
key)`` with the step's key :func:`step_key` ``(seed, epoch, step)``, derived inside the
jitted step from traced epoch and step counters, so it changes every step without a
retrace or a host read, is the same under every ``loop``, and is recomputed, not stored, by
a resumed run. The choice is an explicit keyword rather than a look at the loss's
signature, which misreads ``functools.partial`` objects, lambdas with defaults and
``*args`` wrappers. Evaluation is deterministic: ``eval_fn(theta, x, y)`` never gets a key.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from wsjax import checks
from wsjax import nn as wnn
from wsjax.train import checkpoint as ckpt
from wsjax.train.sharding import DataParallel

LOOPS = ("auto", "scan", "python")
#: the environment variable that fixes the loop of every ``fit`` asked for ``'auto'`` (no
#: measuring: one compile per net instead of two; both loops compute the same updates)
LOOP_ENV = "WSJAX_LOOP"
ON_NONFINITE = ("raise", "skip", "continue")
_AUTO_CHOICE: dict[Any, str] = {}
# The loss keys' stream: ``fold_in(key(seed), LOSS_KEY_STREAM)``, apart from the shuffles'
# ``fold_in(key(seed), epoch)`` (an epoch index never reaches 2**32 - 1). Folding the step
# straight into the shuffle key would reuse its bits: with JAX's partitionable threefry,
# ``split(k) == [fold_in(k, 0), fold_in(k, 1)]``, the keys ``permutation(k)`` consumes.
LOSS_KEY_STREAM = 2**32 - 1


class TrainResult(NamedTuple):
    theta: Any
    opt_state: Any
    history: list


class NonFiniteLossError(FloatingPointError):
    """A training step had a non-finite loss (or gradient) under ``on_nonfinite='raise'``.

    Attributes:
      epoch: the 1-based epoch; ``step``: the 1-based step within it (``steps`` per epoch);
      theta, opt_state: the parameters and optimizer state before that step, the last
        finite ones; history: the records of the epochs completed before.
    """

    def __init__(self, message, *, epoch, step, steps, theta, opt_state, history):
        super().__init__(message)
        self.epoch, self.step, self.steps = epoch, step, steps
        self.theta, self.opt_state, self.history = theta, opt_state, history


def step_key(seed, epoch, step) -> jax.Array:
    """The PRNG key :func:`fit` gives a ``loss_takes_key`` loss at 0-based ``epoch`` and
    0-based ``step`` within it: ``fold_in(fold_in(fold_in(key(seed), LOSS_KEY_STREAM),
    epoch), step)``. Jittable (``epoch`` and ``step`` may be traced int scalars)."""
    root = jax.random.fold_in(jax.random.key(seed), LOSS_KEY_STREAM)
    return jax.random.fold_in(jax.random.fold_in(root, epoch), step)


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


def _check_inputs(loss_fn, theta, x, y, batch_size, key=None):
    """Before training: the loss runs on a batch (``jax.eval_shape``, nothing computed) and
    gives a scalar; inputs are finite; a classifier's labels are class indices in range.
    ``key``: the key a ``loss_takes_key`` loss gets as its fourth argument."""
    classes = getattr(loss_fn, "classifier_apply", None)
    if classes is not None and not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(
            f"a classifier's labels must be integer class indices, got dtype {y.dtype} "
            f"(e.g. y.astype(np.int32) if they hold whole numbers)"
        )
    xb = jax.ShapeDtypeStruct((batch_size, *x.shape[1:]), x.dtype)
    yb = jax.ShapeDtypeStruct((batch_size, *y.shape[1:]), y.dtype)
    args = (theta, xb, yb) if key is None else (theta, xb, yb, key)
    try:
        out = jax.eval_shape(loss_fn, *args)
    except Exception as e:  # shape errors come as TypeError, ValueError or Flax's own errors
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, TypeError) and "positional argument" in first:  # a likely mismatch
            first += (" (fit(..., loss_takes_key=True) calls loss_fn(theta, x, y, key); without "
                      "it, loss_fn(theta, x, y))")
        raise (TypeError if isinstance(e, TypeError) else ValueError)(
            f"the loss does not run on training inputs of shape {tuple(x.shape)} (a batch of "
            f"{tuple(xb.shape)}, {x.dtype}) with targets of shape {tuple(y.shape)} ({y.dtype}): {first}"
        ) from e
    if getattr(out, "shape", None) != ():
        raise ValueError(f"loss_fn must return a scalar, got shape {getattr(out, 'shape', type(out))}")
    if jnp.issubdtype(x.dtype, jnp.inexact) and not bool(_all_finite(x)):
        bad = int(_count_nonfinite(x))
        raise ValueError(f"the training inputs hold {bad} NaN or infinite values (of {x.size})")
    if classes is not None:
        logits = jax.eval_shape(classes, theta, xb)
        k = int(logits.shape[-1])
        lo, hi = (int(v) for v in jax.device_get((jnp.min(y), jnp.max(y))))
        if lo < 0 or hi >= k:
            raise ValueError(
                f"labels must lie in [0, {k}) for the model's {k} outputs, got labels from {lo} to {hi}"
            )


_all_finite = jax.jit(lambda a: jnp.all(jnp.isfinite(a)))
_count_nonfinite = jax.jit(lambda a: jnp.sum(~jnp.isfinite(a)))


def evaluate(eval_fn, theta, x, y, batch_size: int = 1000, *, _jitted=None) -> dict:
    """Mean of ``eval_fn(theta, xb, yb)`` over all examples, batched on the device."""
    fn = _jitted or jax.jit(eval_fn, compiler_options=wnn.compiler_options())
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
    :func:`fit` checks, before training, that a classifier's labels are integers in
    ``[0, logits.shape[-1])``.
    """

    def loss_fn(theta, x, y):
        logits = apply_fn(theta, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss_fn.classifier_apply = apply_fn  # lets fit check labels against the number of outputs

    def eval_fn(theta, x, y):
        logits = apply_fn(theta, x)
        return {
            "loss": optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(),
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == y),
        }

    return loss_fn, eval_fn


def _finite(loss, grads) -> jax.Array:
    ok = jnp.isfinite(loss)
    for g in jax.tree.leaves(grads):
        if jnp.issubdtype(g.dtype, jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(g))
    return ok


def _make_step(loss_fn, optimizer, dp: DataParallel, skip_nonfinite: bool = False, key_seed=None):
    """One training step ``(theta, opt_state, x, y, idx, at) -> (theta, opt_state, loss)``.

    With ``key_seed`` (an int) the loss is ``loss_fn(theta, xb, yb, key)`` with
    ``key = step_key(key_seed, *at)``, ``at = (epoch, step)`` traced int scalars; without
    it the loss is ``loss_fn(theta, xb, yb)`` and ``at`` is None.

    With ``skip_nonfinite`` a step whose loss or gradients are not all finite keeps the old
    parameters and optimizer state and reports its loss as NaN (so the epoch's per-step
    losses say which steps were skipped). Without it the step is the plain update: the
    default checks cost nothing per step (see :func:`fit`).
    """

    def step(theta, opt_state, x, y, idx, at):
        xb, yb = dp.shard_batch(jnp.take(x, idx, axis=0)), dp.shard_batch(jnp.take(y, idx, axis=0))
        keys = () if key_seed is None else (step_key(key_seed, *at),)
        loss, grads = jax.value_and_grad(loss_fn)(theta, xb, yb, *keys)
        updates, new_opt_state = optimizer.update(grads, opt_state, theta)
        new_theta = optax.apply_updates(theta, updates)
        if skip_nonfinite:
            finite = _finite(loss, grads)
            pick = lambda new, old: jnp.where(finite, new, old)
            new_theta = jax.tree.map(pick, new_theta, theta)
            new_opt_state = jax.tree.map(pick, new_opt_state, opt_state)
            loss = jnp.where(finite, loss, jnp.nan).astype(loss.dtype)
        return new_theta, new_opt_state, loss

    return step


def _step_losses(losses) -> np.ndarray:
    """The epoch's per-step losses (device scalars and chunk vectors) as one host array."""
    return np.concatenate([np.ravel(a) for a in jax.device_get(losses)])


def _tree_finite(tree) -> bool:
    return all(bool(_all_finite(a)) for a in jax.tree.leaves(tree)
               if jnp.issubdtype(jnp.result_type(a), jnp.inexact))


def fit(
    loss_fn: Callable[..., jax.Array],
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
    on_nonfinite: str = "raise",
    loss_takes_key: bool = False,
) -> TrainResult:
    """Train ``theta`` to minimise ``loss_fn`` over ``train = (x, y)`` for ``epochs`` epochs.

    Args:
      loss_fn: ``(theta, x_batch, y_batch) -> scalar``; with ``loss_takes_key``,
        ``(theta, x_batch, y_batch, key) -> scalar``.
      theta: the free parameters (any pytree of float arrays).
      optimizer: any optax transformation; ``update(grads, state, theta)`` gets the params.
      train, eval: ``(x, y)`` host or device arrays; ``eval`` is scored with ``eval_fn``
        (``(theta, x, y) -> dict`` of batch means) after every epoch. Evaluation is
        deterministic: ``eval_fn`` never gets a key (switch dropout etc. off in it).
      seed: the seed of the shuffles and of the loss keys; a run is a deterministic
        function of its arguments.
      loop: 'auto', 'scan' or 'python' (see module docstring).
      log_path: JSON-lines file, one record per epoch.
      checkpoint_dir: orbax checkpoints after every epoch; an existing one is resumed from,
        and the resumed run ends with the same parameters as an uninterrupted one.
      data_parallel: shard each batch over all local devices (default: when there are >1).
      opt_state: resume from this optimizer state instead of ``optimizer.init(theta)``.
      on_nonfinite: what a step with a non-finite loss or gradient does: 'raise' (stop with
        :class:`NonFiniteLossError` at the end of its epoch, keeping the last finite
        parameters), 'skip' (drop its update) or 'continue' (see the module docstring).
      loss_takes_key: pass ``loss_fn`` a fourth argument, a PRNG key that differs every
        step: :func:`step_key` ``(seed, epoch, step)`` with the 0-based epoch and step
        within it (for dropout, stochastic binarisation, random depth). It is computed in
        the jitted step from traced counters (one compile for all steps, no host read), is
        the same under every ``loop``, in a replay of a non-finite epoch and in a resumed
        run (a pure function of seed, epoch and step: nothing to checkpoint); ``opt_state=``
        without a checkpoint restarts at epoch 0, and so do the keys. Random control flow
        traces once if it is traced: ``lax.switch(jax.random.randint(key, (), 0, 4),
        branches, h)``, or ``fori_loop`` over a fixed maximum with ``jnp.where(i < depth, f(h),
        h)``; a ``fori_loop`` with a traced trip count is a ``while_loop``, which JAX cannot
        differentiate in reverse mode. An explicit flag, not read from the signature
        (partials, defaults and ``*args`` would misread); a mismatch fails before training.

    Returns:
      ``TrainResult(theta, opt_state, history)``; ``history`` holds one dict per epoch.

    Raises:
      TypeError / ValueError before training: bad arguments, a loss that does not run on the
      data's shapes, non-finite inputs, a classifier's non-integer or out-of-range labels.
      NonFiniteLossError: a non-finite step under ``on_nonfinite='raise'``.
    """
    x, y = _check_data("train", train)
    if eval is not None:
        _check_data("eval", eval)
        if eval_fn is None:
            raise ValueError("eval data was given without an eval_fn")
    epochs = checks.positive_int(epochs, "epochs")
    batch_size = checks.positive_int(batch_size, "batch_size")
    scan_chunk = checks.positive_int(scan_chunk, "scan_chunk")
    eval_batch_size = checks.positive_int(eval_batch_size, "eval_batch_size")
    seed = checks.seed(seed)
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
    if loop == "auto" and os.environ.get(LOOP_ENV):
        loop = os.environ[LOOP_ENV]
        if loop not in LOOPS:
            raise ValueError(f"{LOOP_ENV} must be one of {LOOPS}, got {loop!r}")
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {ON_NONFINITE}, got {on_nonfinite!r}")
    n = len(x)
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} training examples")
    if not jax.tree.leaves(theta):
        raise ValueError("theta has no leaves: nothing to train")
    if not isinstance(loss_takes_key, (bool, np.bool_)):
        raise TypeError(f"loss_takes_key must be True or False, got {type(loss_takes_key).__name__}")
    keyed = bool(loss_takes_key)

    dp = DataParallel.create(data_parallel, batch_size)
    x, y = dp.replicate(jnp.asarray(x)), dp.replicate(jnp.asarray(y))
    _check_inputs(loss_fn, theta, x, y, batch_size, step_key(seed, 0, 0) if keyed else None)
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

    step = _make_step(loss_fn, optimizer, dp, skip_nonfinite=on_nonfinite == "skip",
                      key_seed=seed if keyed else None)
    options = wnn.compiler_options()  # XLA:CPU: convolutions on Eigen, not YNNPACK (wsjax.nn)
    jstep = jax.jit(step, donate_argnums=(0, 1), compiler_options=options)
    chunk = min(scan_chunk, num_batches)
    if loop == "auto" and num_batches >= 4:  # short epochs: chunks small enough to measure in one
        chunk = min(chunk, num_batches // 4)

    def scan_chunk_fn(theta, opt_state, x, y, idx_chunk, epoch, lo):
        # the steps' 0-based indices within the epoch: lo, lo + 1, ... (traced, for the keys)
        steps = lo + jnp.arange(idx_chunk.shape[0], dtype=jnp.int32) if keyed else None

        def body(carry, xs):
            (th, st), (idx, s) = carry, xs
            th, st, loss = step(th, st, x, y, idx, None if s is None else (epoch, s))
            return (th, st), loss

        (theta, opt_state), losses = jax.lax.scan(body, (theta, opt_state), (idx_chunk, steps))
        return theta, opt_state, losses.sum(), losses

    jscan = jax.jit(scan_chunk_fn, donate_argnums=(0, 1), compiler_options=options)
    jeval = jax.jit(eval_fn, compiler_options=options) if eval_fn is not None else None
    base_key = jax.random.key(seed)

    def batches_for(epoch):
        perm = jax.random.permutation(jax.random.fold_in(base_key, epoch), n)
        return perm[: num_batches * batch_size].reshape(num_batches, batch_size)

    # Each runner trains steps [lo, hi) of an epoch and also returns the per-step losses it
    # already computed (device arrays, read only when the epoch's sum is not finite). The
    # epoch and step indices reach the jitted functions as int arguments (traced: one
    # compile for all values) and only for a keyed loss.
    def run_python(theta, opt_state, batches, epoch, lo, hi):
        total, losses = jnp.zeros((), jnp.float32), []
        for b in range(lo, hi):
            at = (epoch, b) if keyed else None
            theta, opt_state, loss = jstep(theta, opt_state, x, y, batches[b], at)
            total = total + loss
            losses.append(loss)
        return theta, opt_state, total, losses

    def run_scan(theta, opt_state, batches, epoch, lo, hi):
        total, losses = jnp.zeros((), jnp.float32), []
        b = lo
        while b + chunk <= hi:
            at = (epoch, b) if keyed else (None, None)
            theta, opt_state, s, chunk_losses = jscan(theta, opt_state, x, y, batches[b : b + chunk], *at)
            total, b = total + s, b + chunk
            losses.append(chunk_losses)
        theta, opt_state, rest, rest_losses = run_python(theta, opt_state, batches, epoch, b, hi)
        return theta, opt_state, total + rest, losses + rest_losses

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
            keyed,
        )
        mode = _AUTO_CHOICE.get(sig)
        if mode is None and (num_batches < 4 or start_epoch >= epochs):
            mode = _AUTO_CHOICE.setdefault(
                sig, _measure(run_python, run_scan, theta, opt_state, batches_for(0), chunk))
    runners = {"scan": run_scan, "python": run_python}

    def run_measuring(theta, opt_state, batches, epoch, lo, hi):
        """The first epoch of an unmeasured ``loop='auto'``: its own first four chunks time
        the modes (a chunk of each compiles and warms, the next is timed), the faster one
        runs the rest. Training steps, not copies: measuring costs one extra compile."""
        nonlocal mode
        total, losses, times = jnp.zeros((), jnp.float32), [], {}
        b = lo
        for name in ("python", "scan"):
            for timed in (False, True):
                jax.block_until_ready(total)
                t0 = time.perf_counter()
                theta, opt_state, s, chunk_losses = runners[name](theta, opt_state, batches, epoch, b, b + chunk)
                total = total + s
                jax.block_until_ready(total)
                if timed:
                    times[name] = time.perf_counter() - t0
                losses += chunk_losses
                b += chunk
        mode = _AUTO_CHOICE.setdefault(sig, min(times, key=times.get))
        theta, opt_state, rest, rest_losses = runners[mode](theta, opt_state, batches, epoch, b, hi)
        return theta, opt_state, total + rest, losses + rest_losses

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
            batches = batches_for(epoch)
            start = (theta, opt_state) if on_nonfinite == "raise" else None
            if start is not None:  # the steps donate their inputs: keep the epoch's start
                start = jax.tree.map(lambda a: jnp.array(a, copy=True), start)
            runner = run_measuring if mode is None else runners[mode]
            theta, opt_state, total, losses = runner(theta, opt_state, batches, epoch, 0, num_batches)
            runner = runners[mode]  # a replay of a bad epoch (below) uses the chosen mode
            total = float(total)  # the epoch's one read of the device
            finite_steps, bad = num_batches, 0
            if not np.isfinite(total):
                per_step = _step_losses(losses)
                bad_steps = np.flatnonzero(~np.isfinite(per_step))
                bad = len(bad_steps)
                if on_nonfinite == "raise" and bad:
                    _raise_nonfinite(runner, start, batches, int(bad_steps[0]), epoch, num_batches,
                                     history, manager is not None)
                if on_nonfinite == "skip":
                    finite_steps = num_batches - bad
                    total = float(np.sum(per_step[np.isfinite(per_step)], dtype=np.float32))
            del losses, start
            record = {"epoch": epoch + 1,
                      "train_loss": total / finite_steps if finite_steps else float("nan")}
            if bad:
                record["skipped_steps" if on_nonfinite == "skip" else "nonfinite_steps"] = bad
                warnings.warn(
                    f"epoch {epoch + 1}: {bad} of {num_batches} steps had a non-finite loss"
                    + (" or gradient; their updates were dropped" if on_nonfinite == "skip" else ""),
                    RuntimeWarning, stacklevel=2,
                )
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


def _raise_nonfinite(runner, start, batches, first_bad, epoch, num_batches, history, checkpointed):
    """Replay the epoch from its start up to ``first_bad`` (0-based) and raise with those
    parameters; if they are themselves not finite (a gradient overflowed a step earlier, with
    a finite loss), step back one more, else fall back to the epoch's start."""
    theta, opt_state = start
    kept = 0
    for k in (first_bad, first_bad - 1):
        if k <= 0:
            break
        copy = jax.tree.map(lambda a: jnp.array(a, copy=True), start)
        th, st, _, _ = runner(*copy, batches, epoch, 0, k)
        if _tree_finite(th):
            theta, opt_state, kept = th, st, k
            break
    where = f"after step {kept}" if kept else "at the start of the epoch"
    saved = f"; the last checkpoint is that of epoch {epoch}" if checkpointed and epoch else ""
    raise NonFiniteLossError(
        f"non-finite training loss at epoch {epoch + 1}, step {first_bad + 1} of {num_batches}; "
        f"training stopped with the last finite parameters ({where}: err.theta, err.opt_state{saved}). "
        f"Pass on_nonfinite='skip' to drop such steps' updates or 'continue' to train on.",
        epoch=epoch + 1, step=first_bad + 1, steps=num_batches, theta=theta, opt_state=opt_state,
        history=list(history),
    )


def _measure(run_python, run_scan, theta, opt_state, batches, chunk, repeats: int = 1) -> str:
    """Time ``chunk`` steps of each loop mode (after a warm-up) on copies of the state."""
    copy = lambda t: jax.tree.map(lambda a: jnp.array(a, copy=True), t)
    times = {}
    for name, run in (("python", run_python), ("scan", run_scan)):
        th, st, tot, _ = run(copy(theta), copy(opt_state), batches, 0, 0, chunk)  # compile + warm
        jax.block_until_ready(tot)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            th, st, tot, _ = run(copy(theta), copy(opt_state), batches, 0, 0, chunk)
            jax.block_until_ready(tot)
            best = min(best, time.perf_counter() - t0)
        times[name] = best
    return min(times, key=times.get)
