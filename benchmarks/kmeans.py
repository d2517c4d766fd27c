"""1-D k-means for weight clustering: wsjax's jitted sort-based Lloyd vs scikit-learn's KMeans.

Clusters 1M float32 "weights" into 32 and 256 centroids (Deep Compression's 5-bit and 8-bit
codebooks) and prints, per k, wall time and inertia of

* scikit-learn ``KMeans(k, n_init=1)`` (greedy k-means++, Lloyd to tol=1e-4, max 300 iterations);
* ``wsjax.sharing.kmeans.kmeans_1d`` with ``init='kmeans++'``: one run to Lloyd's exact fixed
  point (max 300 iterations), and the best of 8 seeded runs each stopped by scikit-learn's own
  criterion (``tol=1e-4``); and one exact run from each of the ``'linear'`` and ``'density'``
  inits;

and the speed-up and inertia ratio against scikit-learn. wsjax times exclude the one-off
compilation (reported separately) and are the best of ``--repeats`` calls, each including the
sort. scikit-learn is timed once per k (it is slow).

    python -m benchmarks.kmeans [--n 1000000] [--repeats 3] [--quick] [--out FILE.json] [--write]

The target in the project's issue: >= 20x faster at equal or lower inertia. ``--write`` replaces
the k-means section of ``benchmarks/RESULTS.md`` with this run's table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")

import jax

from wsjax.study import markdown_table, write_section
from wsjax.sharing.kmeans import kmeans_1d


def weights(n: int, seed: int = 0) -> np.ndarray:
    """Trained-layer-like weights: a heavy-tailed (Student t, 5 dof) bell of scale 0.05."""
    rng = np.random.default_rng(seed)
    return (0.05 * rng.standard_t(5, n)).astype(np.float32)


#: (label, kmeans_1d keyword arguments) of the configurations timed.
CONFIGS = (
    ("kmeans++", dict(init="kmeans++")),
    ("kmeans++, best of 8, tol 1e-4", dict(init="kmeans++", n_init=8, tol=1e-4)),
    ("linear", dict(init="linear")),
    ("density", dict(init="density")),
)


def time_ours(x, k, kwargs, repeats, seed=0):
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    r = kmeans_1d(x, k, key=key, **kwargs)
    jax.block_until_ready(r)
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = kmeans_1d(x, k, key=key, **kwargs)
        jax.block_until_ready(r)
        best = min(best, time.perf_counter() - t0)
    return best, first - best, float(r.inertia), int(r.iterations)


def time_sklearn(x, k, seed=0):
    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    km = KMeans(k, n_init=1, random_state=seed).fit(x[:, None])
    return time.perf_counter() - t0, float(km.inertia_), int(km.n_iter_)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--ks", type=int, nargs="+", default=[32, 256])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="100k weights, k=32 only")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--write", action="store_true", help="update the k-means section of benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.ks, args.repeats = 100_000, [32], 1
    x = weights(args.n)
    rows = []
    print(f"1-D k-means on {args.n:,} float32 weights, backend {jax.default_backend()}, "
          f"{os.cpu_count()} CPUs", flush=True)
    for k in args.ks:
        sk_time, sk_inertia, sk_iter = time_sklearn(x, k)
        rows.append(dict(k=k, method="sklearn KMeans (k-means++)", seconds=sk_time,
                         compile_seconds=0.0, inertia=sk_inertia, iterations=sk_iter,
                         speedup=1.0, inertia_ratio=1.0))
        print(f"k={k} sklearn {sk_time:.2f}s inertia {sk_inertia:.6g} ({sk_iter} it)", flush=True)
        for label, kwargs in CONFIGS:
            t, comp, inertia, it = time_ours(x, k, kwargs, args.repeats)
            rows.append(dict(k=k, method=f"wsjax kmeans_1d ({label})", seconds=t, compile_seconds=comp,
                             inertia=inertia, iterations=it, speedup=sk_time / t,
                             inertia_ratio=inertia / sk_inertia))
            print(f"k={k} wsjax {label}: {t:.3f}s (+{comp:.1f}s compile) inertia {inertia:.6g} "
                  f"({it} it) -> {sk_time / t:.1f}x faster, inertia x{inertia / sk_inertia:.4f}",
                  flush=True)
    cols = ["k", "method", "seconds", "compile_seconds", "inertia", "iterations", "speedup", "inertia_ratio"]
    table = markdown_table(rows, cols).rstrip("\n")
    print("\n" + table)
    if args.write:
        header = (f"Run: `python -m benchmarks.kmeans --write`.\n\n{args.n:,} float32 weights (Student t, 5 dof, "
                  f"scale 0.05); jax {jax.__version__} ({jax.default_backend()}), {os.cpu_count()} CPUs; "
                  f"wsjax times are the best of {args.repeats} calls after compilation, scikit-learn's one "
                  "call. Target: >= 20x faster than scikit-learn at equal or lower inertia "
                  "(`inertia_ratio` <= 1).\n\n")
        write_section("k-means", header + table, RESULTS)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"n": args.n, "backend": jax.default_backend(), "cpus": os.cpu_count(),
                       "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
