"""The distillation report: teachers, the student x method table, the papers' claims beside
ours, the hashed students at equal stored bytes, convergence and the plots."""

from __future__ import annotations

import os

from experiments.distillation import claims, plots
from experiments.distillation.claims import acc_cell, cells as make_cells, errors_cell, helps, matches, values
from wsjax import study
from wsjax.io import atomic_write
from wsjax.study import mean_std

COLUMNS = ("kind", "model", "student", "method", "temperature", "seed", "val_accuracy", "test_accuracy",
           "test_errors", "free_params", "stored_bytes", "train_loss", "seconds")


def _flat(row):
    return {**row["config"], **{k: v for k, v in row.items() if k != "config"}}


def teachers_md(teachers, chosen) -> str:
    lines = ["## Teacher (chosen on validation accuracy)", "", "| candidate | val accuracy | test accuracy | "
             "test errors | params | chosen |", "|---|---|---|---|---|---|"]
    for r in teachers:
        lines.append(f"| {r['model']} | {claims.pct(r['val_accuracy'])} | {claims.pct(r['test_accuracy'])} | "
                     f"{r['test_errors']} | {r['free_params']:,} | {'yes' if r is chosen else ''} |")
    return "\n".join(lines) + "\n"


def students_md(cells, students, labels, best, n_test) -> str:
    seeds = sorted({len(c) for c in cells.values()})
    head = ["## Students: test accuracy (%), mean ± std over " + "/".join(map(str, seeds)) + " seeds", "",
            "| student | params | " + " | ".join(labels) + " | T* (on val) |", "|---" * (len(labels) + 3) + "|"]
    for s in students:
        row = [acc_cell(values(cells[(s, m)])) if (s, m) in cells else "" for m in labels]
        params = next(c[0]["free_params"] for (st, _), c in cells.items() if st == s)
        t = best.get(s)
        head.append(f"| {s} | {params:,} | " + " | ".join(row) + f" | {'' if t is None else f'{t:g}'} |")
    return "\n".join(head) + f"\n\nTest set: {n_test:,} images; the hard-label and distilled nets of a seed share " \
                             "initialisation and minibatch order.\n"


def hinton_md(cells, best, teacher, others, n_test) -> str:
    lines = ["## Hinton et al. 2015 (MNIST) beside ours", "", "Test errors. Paper: one run each, 95% Wilson interval "
             f"on {claims.MNIST_TEST:,} images; ours: mean over seeds [95% t-interval of the mean] on {n_test:,} "
             "images (Fashion-MNIST is harder: compare the shape, not the counts).", "",
             "| net | paper (MNIST) | ours (Fashion-MNIST) |", "|---|---|---|"]
    paper = {k: f"{v} [{claims.wilson(v, claims.MNIST_TEST)[0]:.0f}, {claims.wilson(v, claims.MNIST_TEST)[1]:.0f}]"
             for k, v in claims.HINTON_MNIST.items()}
    teacher_name, hard_name, t20_name = claims.HINTON_MNIST
    ts = best.get("2x800")
    table = [("teacher", f"{teacher_name}: {paper[teacher_name]}", f"{teacher['model']}: {teacher['test_errors']}")]
    table += [(f"{r['model']} (candidate, not chosen)", "", str(r["test_errors"])) for r in others]
    for key, name, p in ((("2x800", "hard"), hard_name, paper[hard_name]), (("2x800", "T=20"), t20_name, paper[t20_name]),
                         (("2x800", f"T={ts:g}" if ts else ""), f"2x800, distilled at T*={ts:g}" if ts else "", "")):
        if key in cells:
            table.append((name, p, errors_cell(values(cells[key], "test_errors"))))
    lines += [f"| {a} | {b} | {c} |" for a, b, c in table]
    paper_gap = claims.gap_closed(claims.HINTON_MNIST[hard_name], claims.HINTON_MNIST[t20_name],
                                  claims.HINTON_MNIST[teacher_name])
    hard, dist = cells.get(("2x800", "hard")), ts and cells.get(("2x800", f"T={ts:g}"))
    if hard and dist:
        h, d = mean_std(values(hard, "test_errors"))[0], mean_std(values(dist, "test_errors"))[0]
        gap, ok = claims.gap_closed(h, d, teacher["test_errors"]), helps(values(dist), values(hard))
        gain = 100 * (mean_std(values(dist))[0] - mean_std(values(hard))[0])
        closed = ("there is no gap to close (the hard-label 2x800 is as good as the teacher)" if gap is None else
                  f"it closes {gap:.2f} of the hard-label 2x800's excess errors over the teacher")
        holds = ok and gap is not None and gap >= 0.5
        lines += ["", f"- Distillation at T*={ts:g} {'helps' if ok else 'does not help'} the 2x800 student (gain "
                  f"{gain:+.2f} points; rule: gain > sum of the stds) and {closed} (paper: {paper_gap:.2f}).",
                  f"- Verdict: Hinton's claim, in shape, {'holds' if holds else 'does not hold'} here."]
    return "\n".join(lines) + "\n"


def ba_caruana_md(cells, best, teacher) -> str:
    keys = {"1x1600, hard labels": ("1x1600", "hard"), "1x1600, logit regression": ("1x1600", "logits"),
            "2x800, hard labels (deep, same size)": ("2x800", "hard")}
    if best.get("1x1600"):
        keys["1x1600, Hinton at T*"] = ("1x1600", f"T={best['1x1600']:g}")
    have = {k: values(cells[v]) for k, v in keys.items() if v in cells}
    lines = ["## Ba & Caruana 2014 beside ours", "", "Paper (TIMIT, CIFAR-10): a shallow net mimicking a deep "
             "net's logits matches deep nets that the same shallow net, trained on labels, does not match.", "",
             "| net | test accuracy (%) mean ± std | 95% CI |", "|---|---|---|"]
    for k, xs in have.items():
        m, _, h = claims.interval(xs)
        lines.append(f"| {k} | {acc_cell(xs)} | [{100 * (m - h):.2f}, {100 * (m + h):.2f}] |")
    lines.append(f"| teacher ({teacher['model']}) | {claims.pct(teacher['test_accuracy'])} | one run |")
    hard, mimic, deep = (have.get(k) for k in ("1x1600, hard labels", "1x1600, logit regression",
                                                "2x800, hard labels (deep, same size)"))
    if mimic and hard and deep:
        m_ok, h_ok = matches(mimic, deep), matches(hard, deep)
        lines += ["", f"- Logit regression {'helps' if helps(mimic, hard) else 'does not help'} the shallow net; "
                  f"the mimic {'matches' if m_ok else 'does not match'} the deep 2x800, the hard-label shallow net "
                  f"{'matches' if h_ok else 'does not match'} it (rule: mean >= reference mean - sum of stds).",
                  f"- Verdict: Ba & Caruana's claim {'holds' if m_ok and not h_ok else 'does not hold'} here."]
    return "\n".join(lines) + "\n"


def hashed_md(cells, best, student="hashed300-100") -> str:
    labels = [m for (s, m) in cells if s == student]
    if not labels:
        return ""
    lines = [f"## {student} at 1/8: distilled against hard labels at equal stored bytes", "",
             "| method | stored bytes (real files, min–max) | test accuracy (%) mean ± std |", "|---|---|---|"]
    sizes = {}
    for m in labels:
        b = [r["stored_bytes"] for r in cells[(student, m)]]
        sizes[m] = (min(b), max(b))
        lines.append(f"| {m} | {min(b):,}–{max(b):,} | {acc_cell(values(cells[(student, m)]))} |")
    same = len({v for v in sizes.values()}) == 1
    t = best.get(student)
    lines += ["", f"- Every method's files have {'the same' if same else 'DIFFERENT'} sizes (same hashed structure)."]
    if t is not None and (student, "hard") in cells:
        ok = helps(values(cells[(student, f"T={t:g}")]), values(cells[(student, "hard")]))
        lines.append(f"- Verdict: distillation at T*={t:g} {'helps' if ok and same else 'does not help'} the hashed "
                     "net at equal stored bytes.")
    return "\n".join(lines) + "\n"


def convergence_md(cells, cfg) -> str:
    drops = [max(r["val_curve"]) - r["val_curve"][-1] for c in cells.values() for r in c]
    worst = max(cells.items(), key=lambda kv: max(max(r["val_curve"]) - r["val_curve"][-1] for r in kv[1]))
    return (f"Recipe: Adam, cosine decay from {cfg.lr:g} to {cfg.lr * cfg.final_lr_fraction:g} over {cfg.epochs} "
            f"epochs, batch {cfg.batch_size}, {cfg.train_examples:,} training images, alpha (hard-label weight) "
            f"{cfg.alpha:g}; the final epoch is scored. Convergence: the final validation accuracy is on average "
            f"{100 * sum(drops) / len(drops):.2f} points (at most {100 * max(drops):.2f}, {worst[0][0]} {worst[0][1]}) "
            "below the best epoch's. Plots: `accuracy_vs_temperature.png`, `accuracy_vs_size.png`.\n")


def write(rows: list[dict], cfg, out: str, dataset: str) -> str:
    teachers = [_flat(r) for r in rows if r["config"]["kind"] == "teacher"]
    chosen = claims.pick_teacher(teachers)
    cells = make_cells(rows)
    for c in cells.values():
        for i, r in enumerate(c):
            c[i] = _flat(r)
    students = [s for s in cfg.students if any(k[0] == s for k in cells)]
    labels = [claims.label({"method": m, "temperature": t}) for m, t in cfg.methods()]
    best = {s: claims.best_temperature(cells, s, cfg.temperatures) for s in students}
    n_test = teachers[0]["test_images"]
    plots.temperature(cells, students, cfg.temperatures, chosen, os.path.join(out, "accuracy_vs_temperature.png"))
    plots.size(cells, students, best, chosen, os.path.join(out, "accuracy_vs_size.png"))
    others = [t for t in teachers if t is not chosen]
    summary = "\n".join([teachers_md(teachers, chosen), students_md(cells, students, labels, best, n_test),
                         hinton_md(cells, best, chosen, others, n_test), ba_caruana_md(cells, best, chosen),
                         hashed_md(cells, best), convergence_md(cells, cfg)])
    table = study.write_results(out, "distillation", dataset, cfg.quick, rows, columns=COLUMNS)
    title = f"# distillation on {dataset}{' (quick)' if cfg.quick else ''}\n\n"
    atomic_write(os.path.join(out, "results.md"), (title + summary + "\n## Every run\n\n" + table).encode())
    return summary
