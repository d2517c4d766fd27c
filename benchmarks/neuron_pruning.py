"""Structured neuron pruning: inference time of LeNet-300-100 before and after removing units.

Unstructured pruning keeps every array dense (no speed-up without sparse kernels); removing
whole hidden units (``wsjax.pruning.prune_neurons``) gives a genuinely narrower MLP. This
benchmark prunes the dense reference LeNet-300-100 (:func:`wsjax.study.pretrained`) to
several widths by the scale-invariant weight score and times the jitted forward pass at
batch sizes 1, 100 and 10,000 (:func:`wsjax.pruning.timing.compare`: best of ``--repeats``
rounds, dense and pruned interleaved), printing FLOPs, parameters, times, speed-ups and the
test accuracy *before* fine-tuning (the ``deep_compression`` study fine-tunes them).

    python benchmarks/neuron_pruning.py [--quick] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import pruning, study
from wsjax.pruning.timing import compare, forward

#: Hidden widths compared with LeNet-300-100's (300, 100).
WIDTHS = ((300, 100), (150, 50), (100, 30), (60, 20))
BATCHES = (1, 100, 10_000)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    model, params, _ = study.pretrained("lenet300100", "fashion_mnist", 0, args.quick)
    _, test = study.splits("fashion_mnist", args.quick)
    x, y = test
    variants = []
    for widths in WIDTHS:
        if tuple(widths) == tuple(model.features[:-1]):
            variants.append(("dense 300-100", model, params))
            continue
        pr = pruning.prune_neurons(model, params, list(widths))
        variants.append((f"{widths[0]}-{widths[1]}", pr.model, pr.params))
    repeats = 2 if args.quick else args.repeats
    batches = (1, 100) if args.quick else BATCHES
    times = compare(variants, x, batches, repeats)
    print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs; accuracy before fine-tuning")
    head = ["hidden", "params", "MFLOP/example", "test acc"] + [f"ms @ batch {b}" for b in batches] + [
        f"speed-up @ {b}" for b in batches]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    dense_name = variants[0][0]
    for name, m, prm in variants:
        logits = forward(m)(prm, jnp.asarray(x))
        acc = float(np.mean(np.argmax(np.asarray(logits), -1) == y))
        cells = [name, f"{pruning.mlp_params(m, 784):,}", f"{pruning.mlp_flops(m, 784) / 1e6:.3f}", f"{acc:.4f}"]
        cells += [f"{1e3 * times[(name, b)]:.3f}" for b in batches]
        cells += [f"{times[(dense_name, b)] / times[(name, b)]:.2f}x" for b in batches]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
