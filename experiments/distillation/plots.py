"""The study's two plots: student accuracy against the temperature and against its size."""

from __future__ import annotations

from experiments.distillation import claims
from wsjax import study
from wsjax.study import mean_std


def _stat(cell, metric="test_accuracy"):
    return mean_std(claims.values(cell, metric))


def temperature(cells: dict, students, temperatures, teacher: dict, path: str) -> None:
    """One panel per student: mean ± std test accuracy at each T, hard labels and logit
    regression as bands, the teacher as a dotted line."""
    plt = study.pyplot()
    cols = min(2, len(students))
    rows = -(-len(students) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(students):]:
        ax.set_visible(False)
    for ax, s in zip(axes.flat, students):
        ts = [t for t in temperatures if (s, f"T={t:g}") in cells]
        if ts:
            m, e = zip(*(_stat(cells[(s, f"T={t:g}")]) for t in ts))
            ax.errorbar(ts, m, yerr=e, marker="o", capsize=3, label="Hinton's loss")
        for name, colour in (("hard", "tab:red"), ("logits", "tab:green")):
            if (s, name) in cells:
                m, e = _stat(cells[(s, name)])
                ax.axhline(m, color=colour, label={"hard": "hard labels", "logits": "logit regression"}[name])
                ax.axhspan(m - e, m + e, color=colour, alpha=0.15)
        ax.axhline(teacher["test_accuracy"], color="black", ls=":", label=f"teacher ({teacher['model']})")
        ax.set(xscale="log", xlabel="temperature T", ylabel="test accuracy", title=s)
        ax.set_xticks(list(temperatures), [f"{t:g}" for t in temperatures])
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    study.save_figure(fig, path, dpi=120)


def size(cells: dict, students, best: dict, teacher: dict, path: str) -> None:
    """Mean ± std test accuracy against free parameters: hard labels, Hinton's loss at each
    student's T* and logit regression; the teacher as a dotted line."""
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    series = {"hard labels": lambda s: "hard", "Hinton's loss at T*": lambda s: best.get(s) and f"T={best[s]:g}",
              "logit regression": lambda s: "logits"}
    for offset, (name, pick) in zip((0.94, 1.0, 1.06), series.items()):
        pts = sorted((cells[(s, pick(s))][0]["free_params"], *_stat(cells[(s, pick(s))]), s)
                     for s in students if pick(s) and (s, pick(s)) in cells)
        if pts:
            x, m, e, _ = zip(*pts)
            ax.errorbar([v * offset for v in x], m, yerr=e, marker="o", ls="", capsize=3, label=name)
    for s in students:
        if (s, "hard") in cells:
            ax.annotate(s, (cells[(s, "hard")][0]["free_params"], _stat(cells[(s, "hard")])[0]),
                        textcoords="offset points", xytext=(4, -12), fontsize=7)
    ax.axhline(teacher["test_accuracy"], color="black", ls=":", label=f"teacher ({teacher['model']})")
    ax.set(xscale="log", xlabel="student free parameters", ylabel="test accuracy", title="accuracy against size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    study.save_figure(fig, path, dpi=120)
