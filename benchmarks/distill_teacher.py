"""Cached teacher logits against a teacher called in every step: seconds per epoch.

``python -m benchmarks.distill_teacher [--examples N] [--epochs E]`` trains a 2x800
student by Hinton's loss (T=4) for ``E`` epochs on ``N`` Fashion-MNIST images both ways, for
each teacher candidate (LeNet-5, the 2x1200 MLP; freshly initialised: the time does not
depend on the weights), and prints the one-off cost of the cached pass and each epoch's time.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

from wsjax import distill, study
from wsjax.models import MLP
from wsjax.train import fit


def _epoch_seconds(loss_fn, theta, train, epochs: int) -> float:
    """Seconds per epoch after the first (compiling) one."""
    fit(loss_fn, theta, optax.adam(1e-3), train, epochs=1, batch_size=100, loop="scan", progress=False)
    t0 = time.perf_counter()
    fit(loss_fn, theta, optax.adam(1e-3), train, epochs=epochs, batch_size=100, loop="scan", progress=False)
    return (time.perf_counter() - t0) / epochs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distill_teacher")
    p.add_argument("--examples", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args(argv)
    (x, y), _ = study.splits("fashion_mnist", False, 0, args.examples, 1)
    x, y = jnp.asarray(x), jnp.asarray(y)
    student = MLP((800, 800, 10))
    s_apply = lambda p, x: student.apply({"params": p}, x)
    theta = student.init(jax.random.key(0), x[:1])["params"]
    loss = distill.method_loss("hinton", temperature=4.0, alpha=0.1)
    for name in ("lenet5", "mlp2x1200"):
        teacher = study.model_by_name(name)
        tp = teacher.init(jax.random.key(1), x[:1])["params"]
        t_apply = lambda p, x, teacher=teacher: teacher.apply({"params": p}, x)
        distill.teacher_logits(t_apply, tp, x[:1000]).block_until_ready()  # compile
        t0 = time.perf_counter()
        packed = distill.pack_targets(y, distill.teacher_logits(t_apply, tp, x))
        packed.block_until_ready()
        once = time.perf_counter() - t0
        cached = _epoch_seconds(distill.cached_loss_fn(s_apply, loss), theta, (x, packed), args.epochs)
        fly = _epoch_seconds(distill.on_the_fly_loss_fn(s_apply, t_apply, tp, loss), theta, (x, y), args.epochs)
        print(f"teacher {name:9s} on {args.examples:,} images: cached pass {once:.2f} s once, then "
              f"{cached:.2f} s/epoch; on the fly {fly:.2f} s/epoch ({fly / cached:.1f}x)", flush=True)


if __name__ == "__main__":
    main()
