"""1-D k-means for weight clustering: the exact optimum against wsjax's Lloyd and scikit-learn.

Clusters 266,144 and 1,000,000 float32 "weights" (Student t) into k = 4, 16, 32, 64 and 256
centroids (2 to 8 bits) and prints, per case, wall time and inertia of

* ``wsjax.sharing.kmeans_optimal.kmeans_1d_optimal`` (``kmeans_1d(init='optimal')``): the
  exact optimum by dynamic programming, the floor every other method is measured against;
* scikit-learn ``KMeans(k, n_init=1)`` (greedy k-means++, Lloyd to tol=1e-4, max 300
  iterations);
* ``wsjax.sharing.kmeans.kmeans_1d`` (Lloyd) from each of the ``'kmeans++'``, ``'linear'`` and
  ``'density'`` inits, run to Lloyd's exact fixed point (max 300 iterations), and the best of 8
  seeded k-means++ runs each stopped by scikit-learn's criterion (``tol=1e-4``);

with each one's inertia divided by the optimal one, and its speed-up over scikit-learn. Every
inertia is recomputed the same way, in float64 from the method's centroids and assignments,
so that rounding in a method's own sum cannot flatter it. wsjax times exclude the one-off
compilation (reported separately) and are the best of ``--repeats`` calls, each including
the sort; scikit-learn is timed once per case (it is slow).

    python -m benchmarks.kmeans [--ns 266144 1000000] [--ks 4 16 32 64 256] [--repeats 3]
                                [--quick] [--no-sklearn] [--out FILE.json] [--write]

It fails (a ``FAIL`` line, exit status 1) if any method's inertia is below the optimal one by
more than float rounding (relative 1e-6): the optimum is a floor, or it is not the optimum.
``--write`` replaces the k-means section of ``benchmarks/RESULTS.md`` with this run's table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

RESULTS = os.environ.get("WSJAX_BENCH_RESULTS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")

import jax

from wsjax.study import markdown_table, write_section
from wsjax.sharing.kmeans import kmeans_1d

#: A method may undercut the optimal inertia by this much (relative) and still pass: rounding.
TOLERANCE = 1e-6


def weights(n: int, seed: int = 0) -> np.ndarray:
    """Trained-layer-like weights: a heavy-tailed (Student t, 5 dof) bell of scale 0.05."""
    rng = np.random.default_rng(seed)
    return (0.05 * rng.standard_t(5, n)).astype(np.float32)


#: (label, kmeans_1d keyword arguments) of the wsjax configurations timed; the first is the floor.
OPTIMAL = "optimal, exact DP"
CONFIGS = (
    (OPTIMAL, dict(init="optimal")),
    ("kmeans++", dict(init="kmeans++")),
    ("kmeans++, best of 8, tol 1e-4", dict(init="kmeans++", n_init=8, tol=1e-4)),
    ("linear", dict(init="linear")),
    ("density", dict(init="density")),
)


def inertia(x: np.ndarray, centroids, assignments) -> float:
    """``sum((x - centroids[assignments])**2)`` in float64."""
    c = np.asarray(centroids, np.float64).ravel()
    return float(np.sum(np.square(x.astype(np.float64) - c[np.asarray(assignments)])))


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
    return best, max(first - best, 0.0), inertia(x, r.centroids, r.assignments), int(r.iterations)


def time_sklearn(x, k, seed=0):
    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    km = KMeans(k, n_init=1, random_state=seed).fit(x[:, None])
    return time.perf_counter() - t0, inertia(x, km.cluster_centers_, km.labels_), int(km.n_iter_)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ns", type=int, nargs="+", default=[266_144, 1_000_000])
    p.add_argument("--ks", type=int, nargs="+", default=[4, 16, 32, 64, 256])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="100k weights, k=32 only, one repeat")
    p.add_argument("--no-sklearn", action="store_true", help="leave scikit-learn out (it is the slow part)")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--write", action="store_true", help="update the k-means section of benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.ns, args.ks, args.repeats = [100_000], [32], 1
    load_before = os.getloadavg()[0]
    print(f"1-D k-means, backend {jax.default_backend()}, {os.cpu_count()} CPUs, load average {load_before:.1f}",
          flush=True)
    rows, failures = [], []
    for n in args.ns:
        x = weights(n)
        for k in args.ks:
            case = []
            for label, kwargs in CONFIGS:
                t, comp, value, it = time_ours(x, k, kwargs, args.repeats)
                case.append(dict(n=n, k=k, method=f"wsjax kmeans_1d ({label})", seconds=t, compile_seconds=comp,
                                 inertia=value, iterations=it))
                print(f"n={n:,} k={k} {label}: {t:.3f}s (+{comp:.1f}s compile) inertia {value:.7g} ({it} it)",
                      flush=True)
            if args.no_sklearn:
                sk = dict(n=n, k=k, method="sklearn KMeans (k-means++)", note="not run (--no-sklearn)")
            else:
                t, value, it = time_sklearn(x, k)
                sk = dict(n=n, k=k, method="sklearn KMeans (k-means++)", seconds=t, compile_seconds=0.0,
                          inertia=value, iterations=it)
                print(f"n={n:,} k={k} sklearn: {t:.2f}s inertia {value:.7g} ({it} it)", flush=True)
            case.insert(1, sk)
            floor = case[0]["inertia"]
            for r in case:
                if "inertia" not in r:
                    continue
                r["vs_optimal"] = r["inertia"] / floor if floor > 0 else float("nan")
                if "seconds" in sk:
                    r["speedup"] = sk["seconds"] / r["seconds"]
                if r["inertia"] < floor * (1 - TOLERANCE):
                    failures.append(f"FAIL: n={n} k={k} {r['method']} inertia {r['inertia']:.9g} is below the "
                                    f"optimal {floor:.9g} (x{r['vs_optimal']:.9f})")
                    print(failures[-1], flush=True)
            rows.extend(case)
    table_rows = [
        {**r, "n": f"{r['n']:,}",
         "inertia": f"{r['inertia']:.7g}" if "inertia" in r else r.get("note", ""),
         "vs_optimal": f"{r['vs_optimal']:.6f}" if "vs_optimal" in r else "",
         "seconds": r.get("seconds", ""), "compile_seconds": r.get("compile_seconds", ""),
         "iterations": r.get("iterations", ""), "speedup": r.get("speedup", "")}
        for r in rows
    ]
    cols = ["n", "k", "method", "seconds", "compile_seconds", "iterations", "inertia", "vs_optimal", "speedup"]
    table = markdown_table(table_rows, cols).rstrip("\n")
    caption = (f"{', '.join(f'{n:,}' for n in args.ns)} float32 weights (Student t, 5 dof, scale 0.05), "
               f"k = {', '.join(map(str, args.ks))}; jax {jax.__version__} ({jax.default_backend()}), "
               f"{os.cpu_count()} CPUs, load average {load_before:.1f} at the start and "
               f"{os.getloadavg()[0]:.1f} at the end (other work shared the machine). wsjax times are the best of {args.repeats} calls after the first "
               "(`compile_seconds`: how much longer the first took), scikit-learn's one call; `inertia` is "
               "recomputed in float64 for every method; `vs_optimal` is inertia / the exact optimum's "
               "(a floor: >= 1 up to rounding); `speedup` is over scikit-learn. No case was dropped or "
               "thinned; `iterations` of the optimal DP are 0 (it runs no Lloyd iterations).")
    print("\n" + caption + "\n\n" + table)
    for line in failures:
        print(line)
    if failures:
        print(f"FAIL: {len(failures)} method(s) below the optimal inertia; RESULTS.md not written", flush=True)
        return 1
    print("OK: the optimal inertia is <= every other method's in every case")
    if args.write:
        write_section("k-means", "Run: `python -m benchmarks.kmeans --write`.\n\n" + caption + "\n\n" + table, RESULTS)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"ns": args.ns, "ks": args.ks, "backend": jax.default_backend(), "cpus": os.cpu_count(),
                       "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
