"""The quantization_bits study's numbers: cells of seeds, the decision rules of ``config``
applied to rows, and the paper's numbers (nothing measured is typed in here)."""

from __future__ import annotations

from wsjax.study import beats as helps, matches, mean_std, t_interval  # the config's rules: helps, matches

#: BinaryConnect (Courbariaux, Bengio & David 2015), Table 2: permutation-invariant MNIST
#: test error (%), mean ± std; a 3x1024 MLP with batch norm, L2-SVM output, 1000 epochs.
#: The det. and stoch. means are those of ../shared/PAPERS.md; the stds and the float row
#: are as recalled from the paper's table (no copy of it was reachable offline to re-check).
BINARYCONNECT = {"float, no regulariser": (1.30, 0.04), "BinaryConnect (det.)": (1.29, 0.08),
                 "BinaryConnect (stoch.)": (1.18, 0.04)}
#: points of accuracy the binary net may lose to the dense one and still count as "within"
BINARY_POINTS = 1.0
#: points a method may lose to the dense net and still "keep accuracy" (deep_compression's budget)
BUDGET = 0.5
#: how the report names each method
LABELS = {"dense": "dense float32", "binary": "binary (det.)", "binary_stochastic": "binary (stoch.)",
          "binary_scratch": "binary from scratch", "ternary": "ternary (TWN)", "uniform": "k-bit STE, fixed step",
          "lsq": "k-bit STE, LSQ step", "kmeans": "k-means (DC)", "kmeans_pruned": "pruned + k-means (DC)"}


def cells(rows: list[dict]) -> dict:
    """``{(model, method, bits): [rows over seeds]}``, the reference as ``(model, 'dense', 32)``."""
    out: dict = {}
    for r in rows:
        c = r["config"]
        out.setdefault((c["model"], c["method"], c["bits"]), []).append(r)
    return out


def values(cell: list[dict], metric: str = "test_accuracy") -> list[float]:
    return [r[metric] for r in cell]


def mean(cell: list[dict], metric: str = "test_accuracy") -> float:
    return mean_std(values(cell, metric))[0]




def drop_points(cell: list[dict], dense: list[dict]) -> float:
    """100 x (mean dense accuracy - mean accuracy of the cell)."""
    return 100 * (mean(dense) - mean(cell))


def within(cell: list[dict], dense: list[dict], points: float) -> bool:
    return drop_points(cell, dense) <= points


def ste_vs_kmeans(cell_map: dict, model: str, method: str = "uniform") -> dict:
    """``{k: matches?}`` of ``method`` (uniform or lsq) against kmeans at every k both have."""
    out = {}
    for (m, meth, k), cell in sorted(cell_map.items()):
        if m == model and meth == method and (model, "kmeans", k) in cell_map:
            out[k] = matches(values(cell), values(cell_map[(model, "kmeans", k)]))
    return out


def cheapest_within_budget(cell_map: dict, model: str, method: str) -> tuple | None:
    """``(bits, mean stored bytes, drop)`` of the method's cell of fewest stored bytes that
    keeps accuracy (drop <= BUDGET), or None."""
    dense = cell_map.get((model, "dense", 32))
    if dense is None:
        return None
    ok = [(mean(c, "stored_bytes"), k, drop_points(c, dense)) for (m, meth, k), c in cell_map.items()
          if m == model and meth == method and within(c, dense, BUDGET)]
    if not ok:
        return None
    nbytes, k, drop = min(ok)
    return k, nbytes, drop


def pareto(cell_map: dict, model: str) -> list[tuple]:
    """The cells ``(method, bits)`` on the front of (fewer mean stored bytes, higher mean
    accuracy), the reference included, in order of bytes: a cell is off it iff another has
    no more bytes and no lower accuracy, and fewer bytes or a higher accuracy."""
    pts = [(mean(c, "stored_bytes"), mean(c), meth, k) for (m, meth, k), c in cell_map.items() if m == model]

    def dominated(p):
        return any(q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1]) for q in pts)

    return [(meth, k) for _, _, meth, k in sorted(p for p in pts if not dominated(p))]


def interval(xs) -> tuple[float, float, float]:
    """(mean, std, 95 % t half-width)."""
    return t_interval(xs)


def acc_cell(xs) -> str:
    """``mean ± std`` of accuracies, in percent."""
    m, s = mean_std(xs)
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def ci_cell(xs) -> str:
    """The 95 % t-interval of the mean accuracy, in percent (``-`` for one seed)."""
    m, _, h = interval(xs)
    return "-" if h != h else f"[{100 * (m - h):.2f}, {100 * (m + h):.2f}]"


def error_cell(xs) -> str:
    """Test error (%) ``mean [95 % CI]`` of accuracies."""
    m, _, h = interval(xs)
    e = 100 * (1 - m)
    return f"{e:.2f}" if h != h else f"{e:.2f} [{e - 100 * h:.2f}, {e + 100 * h:.2f}]"
