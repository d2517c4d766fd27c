"""The lottery-ticket study's plots: each arm's mean over seeds against weights remaining."""

from __future__ import annotations

from experiments.lottery.report import ARM_ORDER, LABELS, interval
from wsjax import study

TICKS = (100, 70, 50, 30, 20, 10, 5, 3, 2, 1)


def plot(cell_map: dict, models, panels, path: str, scale: float = 1.0) -> None:
    """One column per model, one row per ``(metric, ylabel)`` of ``panels``: the mean over
    seeds of each arm against weights remaining (log scale, densest left), std bands."""
    plt = study.pyplot()
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    fig, axes = plt.subplots(len(panels), len(models), figsize=(6.5 * len(models), 4.0 * len(panels)), squeeze=False)
    for row, (metric, ylabel) in zip(axes, panels):
        for ax, model in zip(row, models):
            dense = cell_map.get((model, 0, "dense"), [])
            lowest = 1.0
            for arm in ARM_ORDER[1:]:
                pts = sorted(((rs[0]["density"], interval([scale * r[metric] for r in rs]))
                              for (m, _, a), rs in cell_map.items() if m == model and a == arm), reverse=True)
                if dense:
                    pts.insert(0, (1.0, interval([scale * r[metric] for r in dense])))
                if len(pts) < 2:
                    continue
                x, mean, std = [100 * p for p, _ in pts], [v[0] for _, v in pts], [v[1] for _, v in pts]
                line, = ax.plot(x, mean, marker="o", ms=3, label=LABELS[arm])
                ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                                color=line.get_color(), alpha=0.2)
                lowest = min(lowest, pts[-1][0])
            if dense:
                ax.axhline(interval([scale * r[metric] for r in dense])[0], color="k", ls="--", lw=0.8,
                           label=LABELS["dense"])
            ax.set(xscale="log", xlabel="weights remaining (%)", ylabel=ylabel, title=model)
            ax.set_xlim(105, 100 * lowest / 1.05)  # densest on the left, as in Frankle & Carbin's plots
            ax.xaxis.set_major_locator(FixedLocator([t for t in TICKS if t >= 100 * lowest / 1.05]))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_locator(NullLocator())
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
    study.save_figure(fig, path, dpi=120)
