"""One training epoch of LeNet-300-100 and LeNet-5 over 60k Fashion-MNIST images, wsjax vs PyTorch.

Side by side in one run, interleaved round by round so that every variant sees the same
machine load: the wsjax engine (``fit``) with a ``lax.scan`` epoch, the same engine with a
Python loop over the jitted step, and the same model and optimiser (Adam, batch 100,
softmax cross-entropy) in PyTorch eager on the CPU and under ``torch.compile`` (if it
compiles here). A round runs each variant for one steady-state epoch (the wsjax engine is
called for two epochs and its second is timed, so its compilation is never counted; PyTorch
keeps one net across rounds after a warm-up epoch). Seconds are the best over ``--rounds``.

Run: ``python -m benchmarks.epoch_loop [--models lenet300100 lenet5] [--rounds 3] [--write]``
(``--write`` replaces the epoch section of ``benchmarks/RESULTS.md``).
Targets (issue 15): torch/wsjax >= 1.0 for LeNet-5 (stretch 1.5), >= 2.0 for LeNet-300-100,
and the scanned epoch no slower than the Python loop for both.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

#: where ``--write`` puts its section (``WSJAX_BENCH_RESULTS`` moves it, as benchmarks/device.sh does)
RESULTS = os.environ.get("WSJAX_BENCH_RESULTS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")

import jax
import numpy as np
import optax

from wsjax import data, study
from wsjax.study import write_section
from wsjax.train import classifier, fit

BATCH = 100
TARGETS = {"lenet300100": 2.0, "lenet5": 1.0}


def wsjax_epoch(model_name, x, y, loop):
    """A callable that trains a fresh net for two epochs with ``fit`` and returns the second's
    seconds (the first compiles)."""
    model = study.model_by_name(model_name)
    params = model.init(jax.random.key(0), x[:1])["params"]
    loss_fn, _ = classifier(lambda th, xb: model.apply({"params": th}, xb))

    def epoch():
        r = fit(loss_fn, params, optax.adam(1e-3), (x, y), epochs=2, batch_size=BATCH, loop=loop,
                progress=False)
        return r.history[1]["seconds"]

    return epoch


def torch_epoch(model_name, x, y, compiled: bool):
    """A callable that runs one epoch of the same net in PyTorch and returns its seconds."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    if model_name == "lenet300100":
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100),
                            nn.ReLU(), nn.Linear(100, 10))
    else:
        net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(),
                            nn.Linear(500, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    xt = torch.from_numpy(np.array(np.transpose(x, (0, 3, 1, 2)), order="C"))  # a writable copy
    yt = torch.from_numpy(y.astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        return loss

    run_step = torch.compile(step) if compiled else step
    count = [0]

    def epoch():
        g = torch.Generator().manual_seed(count[0])
        count[0] += 1
        perm = torch.randperm(len(xt), generator=g)
        t0 = time.perf_counter()
        for b in range(len(xt) // BATCH):
            idx = perm[b * BATCH : (b + 1) * BATCH]
            run_step(xt[idx], yt[idx])
        return time.perf_counter() - t0

    epoch()  # warm-up (and compilation under torch.compile)
    return epoch


def variants(model_name, x, y, with_torch: bool) -> dict:
    out = {"wsjax scan": wsjax_epoch(model_name, x, y, "scan"),
           "wsjax loop": wsjax_epoch(model_name, x, y, "python")}
    if with_torch:
        out["torch eager"] = torch_epoch(model_name, x, y, compiled=False)
        try:
            out["torch.compile"] = torch_epoch(model_name, x, y, compiled=True)
        except Exception as e:  # no C++ compiler, an unsupported op: say so in the table
            print(f"torch.compile did not run for {model_name}: {type(e).__name__}: {str(e)[:200]}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lenet300100", "lenet5"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--write", action="store_true", help="update the epoch section of benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    x, y = data.load("fashion_mnist", "train")
    with_torch = not args.no_torch
    if with_torch:
        import torch

        torch.set_num_threads(os.cpu_count())
    load_before = os.getloadavg()
    print(f"backend={jax.default_backend()} devices={jax.device_count()} cores={os.cpu_count()} "
          f"load={load_before[0]:.2f}", flush=True)
    rows = []
    for m in args.models:
        runs = variants(m, x, y, with_torch)
        best = {k: float("inf") for k in runs}
        for r in range(args.rounds):
            for name, epoch in runs.items():
                best[name] = min(best[name], epoch())
            print(f"{m} round {r + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in best.items()), flush=True)
        wsjax_best = min(best["wsjax scan"], best["wsjax loop"])
        row = {"model": m}
        row.update({f"{k} (s)": v for k, v in best.items()})
        row["wsjax ms/step"] = 1e3 * wsjax_best / (len(x) // BATCH)
        if "torch eager" in best:
            row["torch eager/wsjax"] = best["torch eager"] / wsjax_best
        if "torch.compile" in best:
            row["torch.compile/wsjax"] = best["torch.compile"] / wsjax_best
        row["scan/loop"] = best["wsjax scan"] / best["wsjax loop"]
        row["target torch eager/wsjax"] = f">= {TARGETS.get(m, 1.0)}"
        rows.append(row)
    load_after = os.getloadavg()
    for row in rows:
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if args.write:
        torch_note = ""
        if with_torch:
            import torch

            torch_note = f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
        cols = list(dict.fromkeys(k for row in rows for k in row))
        header = (f"Run: `python -m benchmarks.epoch_loop --write`.\n\nOne epoch over {len(x):,} Fashion-MNIST "
                  f"images, batch {BATCH}, Adam; jax {jax.__version__} ({jax.default_backend()}){torch_note}, "
                  f"{platform.machine()}, {os.cpu_count()} cores; 1-minute load average {load_before[0]:.2f} "
                  f"before and {load_after[0]:.2f} after the run (the machine is shared). Seconds are the best "
                  f"of {args.rounds} interleaved rounds of one steady-state epoch each.\n\n")
        write_section("one training epoch", header + study.markdown_table(rows, cols).rstrip("\n"), RESULTS)
    return rows


if __name__ == "__main__":
    main()
