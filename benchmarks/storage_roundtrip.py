"""Deep Compression storage of LeNet-300-100 and LeNet-5: file sizes, and decode / encode speed.

Builds each model's params (Flax init, seed 0), prunes every kernel by magnitude to the
fraction of weights Han et al. kept, quantizes the survivors with 1-D k-means (linear
centroid init, as the paper recommends), then stores them with :mod:`wsjax.storage` and
prints the size table and the compression against dense float32. The weights are untrained,
so cluster usage is flatter than in a trained net and Huffman coding gains less than the
paper's; the sparsity pattern and bit widths match.

Then it times decoding (:func:`wsjax.storage.decode`) and encoding
(:func:`wsjax.storage.encode`) of these files and of the committed Deep Compression files of
both nets (``experiments/results/deep_compression``, the trained, pruned, quantized and
Huffman-coded models), in MB/s of the dense float32 model they hold (LeNet-5: 431,080 params
= 1,724,320 bytes), side by side with ``np.load`` / ``np.savez_compressed`` of a compressed
``.npz`` of the same params (the ratio columns: wsjax's speed over NumPy's). Each time is the
best of ``--repeats`` calls after a warm-up. Goals (issue 15): decode >= 250 MB/s and encode
>= 100 MB/s on the LeNet-5 file, its bytes unchanged (the committed file re-encodes to itself).

Run: ``python benchmarks/storage_roundtrip.py [--repeats 20] [--write]``; ``--write``
replaces the storage section of ``benchmarks/RESULTS.md`` with this run's tables.

References: Han, Mao & Dally, `Deep Compression <https://arxiv.org/abs/1510.00149>`_, 2016,
Tables 2-3 (LeNet-300-100: 40x, LeNet-5: 39x).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from wsjax import pruning, sharing, storage
from wsjax.models.lenet import LeNet5, LeNet300100
from wsjax.study import markdown_table, write_section

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.environ.get("WSJAX_BENCH_RESULTS") or os.path.join(HERE, "RESULTS.md")
COMMITTED = os.path.join(HERE, "..", "experiments", "results", "deep_compression")
SECTION = "storage round trip"

# (layer, kept fraction, bits per cluster index) from Han et al. 2016, Tables 2-3.
LENET_300_100 = {"Dense_0": (0.08, 6), "Dense_1": (0.09, 6), "Dense_2": (0.26, 6)}
LENET_5 = {"Conv_0": (0.66, 8), "Conv_1": (0.12, 8), "Dense_0": (0.08, 5), "Dense_1": (0.19, 5)}
PAPER = {"LeNet-300-100": 40, "LeNet-5": 39}
MODEL_KEYS = {"LeNet-300-100": "lenet300100", "LeNet-5": "lenet5"}
DECODE_GOAL, ENCODE_GOAL = 250.0, 100.0  # MB/s of dense float32, on the LeNet-5 file


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


def best_seconds(fn, repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn`` after two warm-up calls."""
    fn()
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def flat(params: dict) -> dict:
    return {f"{layer}/{leaf}": x for layer, leaves in params.items() for leaf, x in leaves.items()}


def npz_seconds(params: dict, repeats: int) -> tuple[float, float]:
    """(load, save) seconds of a compressed ``.npz`` of ``params``, in memory."""
    arrays = flat(params)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()

    def load():
        with np.load(io.BytesIO(data)) as z:
            for key in z.files:
                z[key]

    return (best_seconds(load, repeats),
            best_seconds(lambda: np.savez_compressed(io.BytesIO(), **arrays), repeats))


def speed_row(model: str, source: str, data: bytes, repeats: int) -> dict:
    """Decode and encode speed of ``data``; its params re-encode to ``data`` itself?"""
    params = storage.decode(data)
    dense = 4 * sum(int(np.size(x)) for x in flat(params).values())
    decode_s = best_seconds(lambda: storage.decode(data), repeats)
    encode_s = best_seconds(lambda: storage.encode(params), repeats)
    npz_load_s, npz_save_s = npz_seconds(params, repeats)
    mb = dense / 1e6
    return {"model": model, "file": source, "stored_bytes": len(data), "dense_bytes": dense,
            "decode_MB_s": mb / decode_s, "npz_load_MB_s": mb / npz_load_s,
            "decode_vs_npz": npz_load_s / decode_s,
            "encode_MB_s": mb / encode_s, "npz_save_MB_s": mb / npz_save_s,
            "encode_vs_npz": npz_save_s / encode_s,
            "same_bytes": storage.encode(params) == data}


def committed_files() -> dict:
    """``{model name: path}`` of the committed pruned + quantized + Huffman files."""
    path = os.path.join(COMMITTED, "results.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        rows = json.load(f)["rows"]
    out = {}
    for name, key in MODEL_KEYS.items():
        for row in rows:
            if (row.get("model") == key and row.get("method") == "pruned+quantized+huffman"
                    and row.get("file")):
                out[name] = os.path.join(COMMITTED, "artifacts", row["file"])
    return {name: p for name, p in out.items() if os.path.exists(p)}


def run(name: str, model, input_shape, plan: dict) -> tuple[bytes, str]:
    """The benchmark's file of ``model``, and its size table (markdown)."""
    params = model.init(jax.random.key(0), jnp.zeros(input_shape))["params"]
    params = prune_and_quantize(jax.device_get(params), plan)
    data = storage.encode(params)
    decoded = storage.decode(data)
    exact = all(
        decoded[layer][leaf].tobytes() == params[layer][leaf].tobytes()
        for layer in params for leaf in params[layer]
    )
    report = storage.size_report(data)
    text = (f"### {name}\n\n{report.to_markdown()}\n{report.dense_bytes:,} B dense float32 -> "
            f"{len(data):,} B stored: {report.compression:.1f}x (paper: {PAPER[name]}x); "
            f"before Huffman {report.compression_fixed:.1f}x; bit-exact round trip: {exact}\n")
    return data, text


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20, help="timed calls (best of)")
    p.add_argument("--write", action="store_true",
                   help=f"update the {SECTION!r} section of benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    files, tables = {}, []
    for name, model, plan in (("LeNet-300-100", LeNet300100(), LENET_300_100),
                              ("LeNet-5", LeNet5(), LENET_5)):
        files[name], table = run(name, model, (1, 28, 28, 1), plan)
        print("\n" + table)
        tables.append(table)
    committed = committed_files()
    rows = []
    for name in files:
        rows.append(speed_row(name, "benchmark (untrained)", files[name], args.repeats))
        if name in committed:
            with open(committed[name], "rb") as f:
                rows.append(speed_row(name, f"committed {os.path.basename(committed[name])}",
                                      f.read(), args.repeats))
        for row in rows[-2:] if name in committed else rows[-1:]:
            print(f"{row['model']} {row['file']}: decode {row['decode_MB_s']:.0f} MB/s "
                  f"({row['decode_vs_npz']:.2f}x npz), encode {row['encode_MB_s']:.0f} MB/s "
                  f"({row['encode_vs_npz']:.2f}x npz), re-encodes to its bytes: "
                  f"{row['same_bytes']}", flush=True)
    speed = markdown_table(rows, ["model", "file", "stored_bytes", "dense_bytes", "decode_MB_s",
                                  "npz_load_MB_s", "decode_vs_npz", "encode_MB_s",
                                  "npz_save_MB_s", "encode_vs_npz", "same_bytes"]).rstrip("\n")
    goal_rows = [r for r in rows if r["model"] == "LeNet-5"]
    goals = "\n".join(
        f"- LeNet-5, {r['file']}: decode {r['decode_MB_s']:.0f} MB/s (goal >= {DECODE_GOAL:.0f}: "
        f"{'met' if r['decode_MB_s'] >= DECODE_GOAL else 'NOT met'}), encode "
        f"{r['encode_MB_s']:.0f} MB/s (goal >= {ENCODE_GOAL:.0f}: "
        f"{'met' if r['encode_MB_s'] >= ENCODE_GOAL else 'NOT met'}), same bytes: "
        f"{r['same_bytes']}" for r in goal_rows)
    print("\n" + speed + "\n\n" + goals)
    if args.write:
        header = (
            "Run: `python benchmarks/storage_roundtrip.py --write`.\n\n"
            f"MB/s of the dense float32 model a file holds; `storage.decode` / `storage.encode` "
            f"of the file's bytes / params against `np.load` / `np.savez_compressed` of a "
            f"compressed .npz of the same params (in memory), best of {args.repeats} calls "
            f"after a warm-up; numpy {np.__version__}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs. `same_bytes`: the decoded params encode to the file's "
            f"own bytes. Goals (issue 15): decode >= {DECODE_GOAL:.0f} MB/s, encode >= "
            f"{ENCODE_GOAL:.0f} MB/s on the LeNet-5 file.\n\n")
        body = header + speed + "\n\n" + goals + "\n\nFile sizes of the benchmark's (untrained) " \
            "nets at Han's sparsities and bits:\n\n" + "\n".join(tables).rstrip("\n")
        write_section(SECTION, body, RESULTS)
    return rows


if __name__ == "__main__":
    main()
