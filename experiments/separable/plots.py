"""The study's plots: accuracy against multiply-adds and parameters, counted against measured
time ratios, and the validation curves."""

from __future__ import annotations

import numpy as np

from experiments.separable import claims, config
from wsjax import study
from wsjax.study import mean_std

MARKERS = {"standard": "s", "separable": "o"}


def _plain_ticks(axis, fmt="{:g}") -> None:
    """Plain numbers on a log axis (``0.2``, ``3e+06`` -> ``3,000,000``), major and minor ticks."""
    from matplotlib.ticker import FuncFormatter

    f = FuncFormatter(lambda v, _: fmt.format(v))
    axis.set_major_formatter(f)
    axis.set_minor_formatter(f)


def accuracy_vs_cost(cells: dict, path: str) -> None:
    """Two panels, one marker per arm (squares: standard blocks, circles: separable), the mean
    test accuracy over seeds with its 95 % t-interval against the counted multiply-adds and
    parameters."""
    plt = study.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
    for ax, metric, label in zip(axes, ("macs", "params"), ("multiply-adds per example", "parameters")):
        for arm, cell in cells.items():
            accuracies = [claims.points(v) for v in claims.values(cell)]
            study.errorbars(ax, [cell[0][metric]], [accuracies], marker=MARKERS[cell[0]["config"]["block"]], ls="")
            ax.annotate(arm, (cell[0][metric], mean_std(accuracies)[0]), textcoords="offset points", xytext=(5, 4),
                        fontsize=7)
        ax.set(xscale="log", xlabel=f"{label} (counted)", ylabel="test accuracy (%): mean, 95% t-interval",
               title=f"accuracy vs {label}")
        _plain_ticks(ax.xaxis, "{:,.0f}")
        ax.tick_params(axis="x", which="both", labelsize=7, labelrotation=30)
        ax.grid(alpha=0.3, which="both")
    for block, marker in MARKERS.items():
        axes[0].plot([], [], marker=marker, ls="", color="grey", label=f"{block} blocks")
    axes[0].legend(fontsize=7)
    study.save_figure(fig, path, dpi=120)


def time_ratios(timing_row: dict, path: str) -> None:
    """Counted multiply-add ratio to the standard net against the measured time ratio
    (median, quartile bars) of the forward pass and the training step; y = x is 'time follows
    the count', y = 1 'as fast as the standard net'."""
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    arms = timing_row["arms"]
    ref_macs = arms[config.REFERENCE]["macs"]
    for key, offset, marker in (("forward_ratio", 0.97, "o"), ("step_ratio", 1.03, "^")):
        xs = [arms[a]["macs"] / ref_macs * offset for a in arms]
        med = [arms[a][key]["median"] for a in arms]
        lo = [arms[a][key]["median"] - arms[a][key]["q25"] for a in arms]
        hi = [arms[a][key]["q75"] - arms[a][key]["median"] for a in arms]
        ax.errorbar(xs, med, yerr=[lo, hi], marker=marker, ls="", capsize=3,
                    label="forward pass" if key == "forward_ratio" else "training step")
    for a in arms:
        ax.annotate(a, (arms[a]["macs"] / ref_macs, arms[a]["step_ratio"]["median"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=7)
    counted = np.array([arms[a]["macs"] / ref_macs for a in arms])
    line = np.geomspace(counted.min() * 0.8, counted.max() * 1.25, 10)
    ax.plot(line, line, "k:", lw=1, label="time follows the count")
    ax.axhline(1.0, color="grey", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="counted multiply-adds / standard's",
           ylabel="measured time / standard's (per round)", title="counted vs measured cost on this CPU")
    _plain_ticks(ax.xaxis)
    _plain_ticks(ax.yaxis)
    ax.tick_params(which="both", labelsize=7)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    study.save_figure(fig, path, dpi=120)


def val_curves(cells: dict, path: str) -> None:
    """Mean validation accuracy per epoch of every arm (the convergence evidence)."""
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm, cell in cells.items():
        curve = claims.points(np.mean([r["val_curve"] for r in cell], axis=0))
        ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", label=arm)
    ax.set(xlabel="epoch", ylabel="validation accuracy (%), mean over seeds", title="validation curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    study.save_figure(fig, path, dpi=120)
