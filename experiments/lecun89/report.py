"""The lecun89 report: per-net means over seeds, paired differences, the verdict against
LeCun's Table 1, the replications pooled, the other settings, plots; all from the rows."""

from __future__ import annotations

import os

import numpy as np

from experiments.lecun89.config import NETS
from wsjax import study
from wsjax.models.lecun89 import NUM_NETS, architecture, net_name

#: LeCun (1989), Table 1 (http://yann.lecun.com/exdb/publis/pdf/lecun-89.pdf): test % correct
#: after 0 training errors, links and free weights of Net-1 .. Net-5.
PAPER = {1: 80.0, 2: 87.0, 3: 88.5, 4: 94.0, 5: 98.4}
PAPER_LINKS = {1: 2570, 2: 3214, 3: 1226, 4: 2266, 5: 5194}
PAPER_FREE = {1: 2570, 2: 3214, 3: 1226, 4: 1132, 5: 1060}
CONTROL_METHOD = "control: no sharing"
PAPER_NETS = tuple(f"Net-{n}" for n in range(1, NUM_NETS + 1))
COLUMNS = ("model", "method", "test_accuracy", "test_accuracy_std", "paper_test_accuracy", "links", "free_params",
           "paper_links", "paper_free", "max_train_error", "seeds", "seconds", "architecture")

#: What each data set is, for results.md.
DATA_TEXT = {
    "lecun89": (
        "`lecun89`: LeCun's database as we read the paper's description -- for each digit 12 "
        "drawings (scikit-learn's digits at 16x16, squeezed to 16x13), each at 4 consecutive "
        "horizontal positions; of those 48 images a random 32 train and 16 test, a new draw and "
        "split per seed. Nearly every test image is a drawing the training set holds at another "
        "position, so the test measures generalisation across positions. Whether LeCun split his "
        "480 images at random or by drawing we could not check here; the split by drawing is "
        "`lecun89_new_drawings`, under Other runs."
    ),
    "lecun89_new_drawings": (
        "`lecun89_new_drawings`: the same 480 images split by drawing -- 8 drawings of each "
        "digit (all 4 positions) train, the other 4 test -- so no test drawing is seen in training."
    ),
    "lecun89_centred": (
        "`lecun89_centred`: 320 training and 160 test images drawn at random from all 1797 "
        "scikit-learn digits at 16x16, every digit centred; a new split per seed."
    ),
}


def method(n: int, shared: bool) -> str:
    if n < 4:
        return "unshared"
    return "conv-shared" if shared else CONTROL_METHOD


def span(seeds) -> str:
    seeds = sorted(seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def setting_title(setting: dict) -> str:
    """``"`lecun89_centred`, seeds 0-19, moved by up to ±2 pixels"`` for a setting (or a unit)."""
    shift = f", moved by up to ±{setting['shift']} pixels" if setting["shift"] else ""
    return f"`{setting['dataset']}`, {span(setting['seeds'])}{shift}"


def in_setting(row: dict, setting: dict) -> bool:
    return all(row["config"][k] == setting[k] for k in ("dataset", "shift", "seeds"))


def per_seed(rows: list[dict]) -> list[dict]:
    """One dict per (net, seed) of the unit rows."""
    return [{"model": r["model"], "seed": s, "test_accuracy": a, "train_error": e, "links": r["links"],
             "free_params": r["free_params"], "seconds": r["seconds"]}
            for r in rows for s, a, e in zip(r["config"]["seeds"], r["test_accuracies"], r["train_errors"])]


def summarise(seed_rows: list[dict]) -> list[dict]:
    """One row per net: mean and spread over its seeds, beside the paper's numbers."""
    rows = []
    for n, shared in NETS:
        mine = [r for r in seed_rows if r["model"] == net_name(n, shared)]
        if not mine:
            continue
        mean, std = study.mean_std([r["test_accuracy"] for r in mine])
        paper = n < 4 or shared  # the controls are ours, not in LeCun's table
        rows.append({"model": net_name(n, shared), "method": method(n, shared), "test_accuracy": mean,
                     "test_accuracy_std": std, "paper_test_accuracy": PAPER[n] / 100 if paper else None,
                     "links": mine[0]["links"], "free_params": mine[0]["free_params"],
                     "virtual_params": mine[0]["links"], "paper_links": PAPER_LINKS[n],
                     "paper_free": PAPER_FREE[n] if paper else None,
                     "max_train_error": max(r["train_error"] for r in mine), "seeds": len(mine),
                     "seconds": float(np.mean([r["seconds"] for r in mine])), "architecture": architecture(n, shared),
                     "test_accuracies": [r["test_accuracy"] for r in mine]})
    return rows


def paired_comparison(seed_rows: list[dict]) -> str:
    """Per-split paired differences: each shared net vs the best unshared net, and vs its
    own architecture without sharing."""
    from scipy import stats

    def accs(name):
        return np.array([r["test_accuracy"] for r in sorted((r for r in seed_rows if r["model"] == name),
                                                            key=lambda r: r["seed"])])

    def line(a, b):
        d = accs(a) - accs(b)
        p = stats.ttest_rel(accs(a), accs(b)).pvalue if len(d) > 1 else float("nan")
        return (f"mean {100 * d.mean():+.2f} points, better on {int((d > 0).sum())}/{len(d)} splits, "
                f"paired t-test p = {p:.2g}")

    unshared = [m for m in ("Net-1", "Net-2", "Net-3") if len(accs(m))]
    shared = [n for n in (4, 5) if len(accs(f"Net-{n}"))]
    if not unshared or not shared:
        return "(no paired comparison: a shared or an unshared net has not run)"
    best = max(unshared, key=lambda name: accs(name).mean())
    lines = [f"- Net-{n} - {best} (best unshared): {line(f'Net-{n}', best)}" for n in shared]
    for n in shared:
        control = net_name(n, shared=False)
        if len(accs(control)) == len(accs(f"Net-{n}")):
            lines.append(f"- Net-{n} - {control} (same architecture): {line(f'Net-{n}', control)}")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> str:
    """The acceptance question, answered from summarised rows."""
    shared = [r["test_accuracy"] for r in rows if r["method"] == "conv-shared"]
    unshared = [r["test_accuracy"] for r in rows if r["method"] == "unshared"]
    if not shared or not unshared:
        return "(no verdict: a shared or an unshared net has not run)"
    answer = "yes" if min(shared) > max(unshared) else "NO"
    return (f"Do the shared nets (Net-4, Net-5) beat every unshared net (Net-1..3) on mean test "
            f"accuracy? **{answer}** (worst shared {100 * min(shared):.1f}% vs best unshared "
            f"{100 * max(unshared):.1f}%).")


def pooled_section(done: list[dict], more: list[dict]) -> str:
    """This setting's seeds and its replications' together: one row per (net, seed), and
    only the seeds every paper net of ``done`` has run."""
    by_key = {(r["model"], r["seed"]): r for r in more}
    by_key.update({(r["model"], r["seed"]): r for r in done})
    nets = [m for m in PAPER_NETS if any(r["model"] == m for r in done)]
    seeds = sorted(set.intersection(*({s for m, s in by_key if m == net} for net in nets))) if nets else []
    if len(seeds) <= len({r["seed"] for r in done}):
        return ""
    pooled = [r for (m, s), r in sorted(by_key.items()) if s in seeds]
    rows = summarise(pooled)
    return (f"\n\nPooled with its replications below ({len(seeds)} draws, {span(seeds)}): "
            + ", ".join(f"{r['model']} {100 * r['test_accuracy']:.1f}" for r in rows) + " %. "
            + verdict(rows) + "\n\n" + paired_comparison(pooled))


def plot(rows: list[dict], path: str, title: str) -> None:
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for controls, style, label in ((False, {}, "wsjax (mean ± std over splits)"),
                                   (True, {"mfc": "none"}, "wsjax, same net without sharing")):
        pick = [r for r in rows if (r["method"] == CONTROL_METHOD) == controls]
        if pick:
            ax.errorbar([r["free_params"] for r in pick], [100 * r["test_accuracy"] for r in pick],
                        yerr=[100 * r["test_accuracy_std"] for r in pick], fmt="o", color="C0", capsize=3,
                        label=label, **style)
    ax.plot([PAPER_FREE[n] for n in PAPER], list(PAPER.values()), "s", mfc="none", color="C1",
            label="LeCun 1989 (one split)")
    for r in rows:
        ax.annotate(r["model"], (r["free_params"], 100 * r["test_accuracy"]), textcoords="offset points",
                    xytext=(6, -10), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=9000)  # room for the labels
    study.finish_axes(ax, "free parameters", "test accuracy (%)", legend_size=8)
    ax.set_title(f"LeCun 1989 nets on {title} (320 train / 160 test)", fontsize=10)
    study.save_figure(fig, path, dpi=120)


def other_section(setting: dict, seed_rows: list[dict], out: str, explain: bool) -> str:
    """A setting other than the main one: its table, plot, verdict and paired differences."""
    rows = summarise(seed_rows)
    seeds = setting["seeds"]
    name = f"accuracy_vs_free_params_{setting['dataset']}_shift{setting['shift']}_seeds{seeds[0]}-{seeds[-1]}.png"
    shift = setting["shift"]
    plot(rows, os.path.join(out, name), setting["dataset"] + (f", shifted ±{shift} px" if shift else ""))
    cells = ", ".join(f"{r['model']} {100 * r['test_accuracy']:.1f} ± {100 * r['test_accuracy_std']:.1f}"
                      for r in rows)
    return (f"\n### {setting_title(setting)}\n\n"
            + (DATA_TEXT[setting["dataset"]] + "\n\n" if explain else "")
            + (f"**Diagnostic variant**: every train and test image is moved by its own random offset in "
               f"[-{shift}, {shift}] pixels (zero filled).\n\n" if shift else "")
            + f"Same recipe: {cells} %.\n\n" + study.markdown_table(rows, COLUMNS) + "\n"
            + verdict(rows) + "\n\n" + paired_comparison(seed_rows) + "\n\n"
            + f"![accuracy vs free parameters]({name})\n")


def recipe(rows: list[dict]) -> str:
    c = rows[0]["config"]
    return (
        "## Recipe\n\n"
        f"{len(c['seeds'])} seeds (seed = data split = initialisation), {c['epochs']} epochs, Adam "
        f"lr {c['lr']}, batch {c['batch_size']}, tanh hidden units, sigmoid outputs with "
        "one-hot targets in {0, 1} and the sum-of-squares loss; the same recipe for every "
        "net, not tuned on the test split. `test_accuracy` is the mean and "
        "`test_accuracy_std` the standard deviation over splits; `max_train_error` is the "
        "largest final training error over the seeds (LeCun trained every net to 0).\n\n"
        "`links` (connections incl. biases) are the parameters of the locally connected "
        "model and `free_params` those of the sharing transform's state; both equal the "
        "paper's counts (`paper_links`, `paper_free`). The `control: no sharing` rows are "
        "ours, not LeCun's: Net-4's and Net-5's architectures with every link free, so the "
        "difference to Net-4 / Net-5 is what the sharing does at a fixed architecture.\n\n"
        "Every unit (one net on every seed of one setting) is a row of `rows.jsonl`, keyed by "
        "its full config, with the per-seed accuracies and training errors.\n\n")


def write(rows: list[dict], cfg, out: str, dataset: str, seed: int) -> str:
    """Write results.md / results.json and the plots from the unit rows of this run."""
    settings = cfg.settings(dataset, seed)
    groups = [per_seed([r for r in rows if in_setting(r, s)]) for s in settings]
    main, done = settings[0], groups[0]
    table_rows = summarise(done)
    plot(table_rows, os.path.join(out, "accuracy_vs_free_params.png"), dataset)
    more = [r for s, g in zip(settings[1:], groups[1:]) if (s["dataset"], s["shift"]) == (dataset, 0) for r in g]
    others, explained = "", {dataset}
    for s, g in zip(settings[1:], groups[1:]):
        others += other_section(s, g, out, explain=s["dataset"] not in explained)
        explained.add(s["dataset"])
    main_rows = [r for r in rows if in_setting(r, main)]
    extra = (
        recipe(main_rows)
        + "## Comparison with the paper\n\n"
        + DATA_TEXT[dataset] + " LeCun's 480 images were his own drawings, scored on a "
        "single split, and were never published; ours are scikit-learn's 8x8 digits upsampled, "
        "so absolute numbers differ and the ordering is what is compared.\n\n"
        + verdict(table_rows) + "\n\n" + paired_comparison(done) + pooled_section(done, more)
        + "\n\n![accuracy vs free parameters](accuracy_vs_free_params.png)\n"
        + ("\n## Other runs\n" + others if others else ""))
    return study.write_results(out, "lecun89", dataset, cfg.quick, table_rows, extra, COLUMNS) + "\n" + extra
