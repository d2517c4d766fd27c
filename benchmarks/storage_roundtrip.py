"""Deep Compression storage of LeNet-300-100 and LeNet-5 at the paper's sparsity and bit widths.

Builds each model's params (Flax init, seed 0), prunes every kernel by magnitude to the
fraction of weights Han et al. kept, quantizes the survivors with 1-D k-means (linear
centroid init, as the paper recommends), then stores them with :mod:`wsjax.storage` and
prints the size table, the compression against dense float32, and encode / decode times.
The weights are untrained, so cluster usage is flatter than in a trained net and Huffman
coding gains less than the paper's; the sparsity pattern and bit widths match.

Run: ``python benchmarks/storage_roundtrip.py``.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016,
Tables 2-3 (LeNet-300-100: 40x, LeNet-5: 39x).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import pruning, sharing, storage
from wsjax.models.lenet import LeNet5, LeNet300100

# (layer, kept fraction, bits per cluster index) from Han et al. 2016, Tables 2-3.
LENET_300_100 = {"Dense_0": (0.08, 6), "Dense_1": (0.09, 6), "Dense_2": (0.26, 6)}
LENET_5 = {"Conv_0": (0.66, 8), "Conv_1": (0.12, 8), "Dense_0": (0.08, 5), "Dense_1": (0.19, 5)}
PAPER = {"LeNet-300-100": 40, "LeNet-5": 39}


def prune_and_quantize(params: dict, plan: dict, seed: int = 0) -> dict:
    """Magnitude-prune and k-means-quantize every kernel with the library (Deep Compression's
    structure, ``chain(masked(M), codebook(bits))``); biases become small random floats
    (Flax initialises them to zero, a trained net's are not), stored raw."""
    sparsity = {f"^{layer}/": 1.0 - kept for layer, (kept, _) in plan.items()}
    bits = {f"^{layer}/": b for layer, (_, b) in plan.items()}
    t = sharing.chain(sharing.masked(pruning.sparsity_masks(params, sparsity)),
                      sharing.select(sharing.KERNELS, sharing.codebook(bits)))
    quantized = jax.device_get(t.apply(t.init(jax.random.key(seed), params)))
    rng = np.random.default_rng(seed)
    return {layer: {"kernel": np.asarray(leaves["kernel"], np.float32),
                    "bias": rng.normal(0.0, 0.01, np.shape(leaves["bias"])).astype(np.float32)}
            for layer, leaves in quantized.items()}


def run(name: str, model, input_shape, plan: dict) -> None:
    params = model.init(jax.random.key(0), jnp.zeros(input_shape))["params"]
    params = prune_and_quantize(jax.device_get(params), plan)
    start = time.perf_counter()
    data = storage.encode(params)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = storage.decode(data)
    decode_s = time.perf_counter() - start
    exact = all(
        decoded[layer][leaf].tobytes() == params[layer][leaf].tobytes()
        for layer in params for leaf in params[layer]
    )
    report = storage.size_report(data)
    print(f"\n## {name}\n")
    print(report.to_markdown())
    print(
        f"\n{report.dense_bytes:,} B dense float32 -> {len(data):,} B stored: "
        f"{report.compression:.1f}x (paper: {PAPER[name]}x); before Huffman "
        f"{report.compression_fixed:.1f}x; encode {encode_s:.3f} s, decode {decode_s:.3f} s, "
        f"bit-exact round trip: {exact}"
    )


def main() -> None:
    run("LeNet-300-100", LeNet300100(), (1, 28, 28, 1), LENET_300_100)
    run("LeNet-5", LeNet5(), (1, 28, 28, 1), LENET_5)


if __name__ == "__main__":
    main()
