"""The retraining between compression stages, on the one training engine (:func:`wsjax.train.fit`).

Adam with a cosine-decayed learning rate (``optax.cosine_decay_schedule(lr, steps,
alpha)``), batch 100, shuffled from the seed: the recipe every compression study here
retrains with (Han et al. retrain the survivors after pruning and the centroids after
quantization). Extra optax transforms (a soft-sharing penalty, :func:`wsjax.pruning.keep_pruned`)
go around the optimiser.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

from wsjax.sharing.core import SharedParams, bind
from wsjax.train import classifier, fit


def subset(data, examples: int | None):
    """The first ``examples`` pairs of ``data = (x, y)`` (all of them for ``None``)."""
    if data is None or examples is None:
        return data
    return data[0][:examples], data[1][:examples]


def retrain(net, current, train, val, *, epochs: int, lr: float, seed: int, alpha: float = 0.05,
            batch_size: int = 100, loop: str = "auto", progress: bool = True, desc: str = "",
            before: Sequence[optax.GradientTransformation] = (),
            after: Sequence[optax.GradientTransformation] = (), teacher: Any = None,
            temperature: float = 4.0, distill_alpha: float = 0.5):
    """Train ``current.state.theta`` through ``current.transform``; returns
    ``(theta, opt_state, history, seconds)``.

    The optimiser is ``optax.chain(*before, adam(cosine(lr)), *after)``. With ``teacher``
    (params of ``net``, e.g. the dense net a compression starts from) the loss is Hinton's
    distillation loss to the teacher's logits on the training images, computed once
    (:func:`wsjax.distill.hinton_loss`: ``distill_alpha`` on the hard labels, the rest on the
    softened targets at ``temperature``); validation still scores accuracy.
    """
    to_params = bind(current.transform, current.state)
    student = lambda th, x: net.apply(to_params(th), x)  # noqa: E731
    loss_fn, eval_fn = classifier(student)
    if teacher is not None:
        from wsjax import distill

        logits = distill.teacher_logits(net.apply, teacher, train[0])
        train = (train[0], distill.pack_targets(jnp.asarray(train[1]), logits))
        loss_fn = distill.cached_loss_fn(student, distill.method_loss("hinton", temperature=temperature,
                                                                      alpha=distill_alpha))
    steps = max(1, epochs * (len(train[0]) // batch_size))
    adam = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=alpha))
    opt = optax.chain(*before, adam, *after) if (before or after) else adam
    t0 = time.perf_counter()
    result = fit(loss_fn, current.state.theta, opt, train, eval=val, eval_fn=eval_fn if val is not None else None,
                 epochs=epochs, batch_size=batch_size, seed=seed, loop=loop, progress=progress, desc=desc)
    theta = jax.device_get(result.theta)
    return theta, result.opt_state, result.history, time.perf_counter() - t0


def with_theta(state: SharedParams, theta: Any) -> SharedParams:
    """``state`` with new free parameters, as JAX arrays: a transform's ``apply`` then runs
    JAX's ops (bit-identical to storage's decoding), never NumPy's on host arrays."""
    return SharedParams(jax.tree.map(jnp.asarray, theta), state.frozen)
