"""The frontier's plot: accuracy against stored bytes per variant, the peer's points beside."""

from __future__ import annotations

from matplotlib.ticker import FuncFormatter

from experiments.frontier import report
from wsjax import study


def frontier(model: str, cl: dict, peer: dict | None, rows: list[dict], path: str, emphasis: str = "best",
             title: str = "") -> None:
    """Write ``model``'s plot to ``path``: one line per variant (mean over seeds, 95 % bars; ``emphasis``
    drawn bold), the peer's points; ``title`` is added to the plot's title."""
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for v in (emphasis,) + tuple(sorted({k[1] for k in cl if k[0] == model} - {emphasis})):
        groups = sorted(((lv, g) for (m, vv, lv), g in cl.items() if m == model and vv == v), key=lambda t: t[0])
        if not groups:
            continue
        x = [sum(r["stored_bytes"] for r in g) / len(g) / 1000 for _, g in groups]
        style = dict(marker="o", lw=2) if v == emphasis else dict(marker=".", lw=0.8, alpha=0.7)
        study.errorbars(ax, x, [[100 * r["test_accuracy"] for r in g] for _, g in groups], label=v, **style)
    if peer:
        zipped, ours = report.peer_points(peer, rows)
        ax.plot([p["zipped_bytes"] / 1000 for p in zipped], [100 * p["test_accuracy"] for p in zipped], "ks--",
                label="tfmot (zipped TFLite)")
        if ours:
            ax.plot([p["stored_bytes"] / 1000 for p in ours], [100 * p["test_accuracy"] for p in ours], "k^:",
                    label="tfmot weights, wsjax codecs")
    ax.set_xscale("log")
    for axis in (ax.xaxis,):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(int(v))[0] in "1235" else ""))
    study.finish_axes(ax, "stored bytes (KB, real files)", "test accuracy (%)",
                      f"{model} on Fashion-MNIST: accuracy against bytes{title}")
    study.save_figure(fig, path)
