"""The study's plot: test accuracy against stored bytes (log x), one line per method, one
panel per model; the dense float32 net as a point and a dotted line."""

from __future__ import annotations

from experiments.quantization_bits import claims
from wsjax import study
from wsjax.study import mean_std

ORDER = ("binary", "binary_stochastic", "binary_scratch", "ternary", "uniform", "lsq", "kmeans", "kmeans_pruned")
SINGLE = ("binary", "binary_stochastic", "binary_scratch", "ternary")  # one point each


def accuracy_vs_bytes(cell_map: dict, models, path: str) -> None:
    plt = study.pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(6.2 * len(models), 4.6), squeeze=False)
    for ax, model in zip(axes.flat, models):
        for i, method in enumerate(ORDER):
            cells = sorted((k, c) for (m, meth, k), c in cell_map.items() if m == model and meth == method)
            if not cells:
                continue
            x = [claims.mean(c, "stored_bytes") for _, c in cells]
            y, e = zip(*(mean_std([100 * v for v in claims.values(c)]) for _, c in cells))
            ax.errorbar(x, y, yerr=e, marker="os^vDPXh"[i], ls="" if method in SINGLE else "-", capsize=3,
                        color=f"C{i}", label=claims.LABELS[method])
            if method not in SINGLE:
                for (k, _), xi, yi in zip(cells, x, y):
                    ax.annotate(f"{k}", (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6,
                                color=f"C{i}")
        dense = cell_map.get((model, "dense", 32))
        if dense:
            m = 100 * claims.mean(dense)
            ax.plot([claims.mean(dense, "stored_bytes")], [m], marker="*", ms=10, color="black", ls="",
                    label=claims.LABELS["dense"])
            ax.axhline(m, color="black", ls=":", lw=0.8)
            ax.axhline(m - claims.BUDGET, color="grey", ls=":", lw=0.6)  # the budget
        ax.set(xscale="log", xlabel="stored bytes (the .wsjax file)", ylabel="test accuracy (%)",
               title=f"{model} (labels: nominal bits per weight)")
        ax.grid(alpha=0.3, which="both")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
