"""One training epoch of LeNet-300-100 and LeNet-5 over 60k Fashion-MNIST images.

Side by side in one run: the wsjax engine with a ``lax.scan`` epoch, the same engine with a
Python loop over the jitted step, and the same model and optimiser (Adam, batch 100) in
PyTorch on the CPU. Prints seconds per epoch (best of ``--repeats`` steady-state epochs, after
a warm-up epoch that includes compilation) and the ratios.

Run: ``python -m benchmarks.epoch_loop [--models lenet300100 lenet5] [--repeats 3] [--write]``
(``--write`` replaces the epoch section of ``benchmarks/RESULTS.md``).
Target (issue 2): LeNet-300-100 <= 1 s per epoch on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")

import jax
import numpy as np
import optax

from wsjax import study
from wsjax.study import write_section
from wsjax import data
from wsjax.train import classifier, fit


def wsjax_epoch_seconds(model_name, x, y, loop, repeats):
    model = study.model_by_name(model_name)
    params = model.init(jax.random.key(0), x[:1])["params"]
    loss_fn, _ = classifier(lambda th, xb: model.apply({"params": th}, xb))
    r = fit(loss_fn, params, optax.adam(1e-3), (x, y), epochs=1 + repeats, batch_size=100,
            loop=loop, progress=False)
    return min(h["seconds"] for h in r.history[1:])


def torch_epoch_seconds(model_name, x, y, repeats):
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
    times = []
    for epoch in range(1 + repeats):
        g = torch.Generator().manual_seed(epoch)
        perm = torch.randperm(len(xt), generator=g)
        t0 = time.perf_counter()
        for b in range(len(xt) // 100):
            idx = perm[b * 100 : (b + 1) * 100]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lenet300100", "lenet5"])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--write", action="store_true", help="update the epoch section of benchmarks/RESULTS.md")
    args = p.parse_args()
    x, y = data.load("fashion_mnist", "train")
    print(f"backend={jax.default_backend()} devices={jax.device_count()} cores={os.cpu_count()}")
    rows = []
    for m in args.models:
        scan = wsjax_epoch_seconds(m, x, y, "scan", args.repeats)
        loop = wsjax_epoch_seconds(m, x, y, "python", args.repeats)
        row = {"model": m, "wsjax_scan_s": scan, "wsjax_python_loop_s": loop}
        if not args.no_torch:
            import torch

            torch.set_num_threads(os.cpu_count())
            row["torch_s"] = torch_epoch_seconds(m, x, y, args.repeats)
            row["torch/wsjax_best"] = row["torch_s"] / min(scan, loop)
        row["scan/loop"] = scan / loop
        rows.append(row)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              flush=True)
    if args.write:
        import platform

        torch_note = ""
        if not args.no_torch:
            import torch

            torch_note = f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
        header = (f"Run: `python -m benchmarks.epoch_loop --write`.\n\nOne epoch over {len(x):,} Fashion-MNIST "
                  f"images, batch 100, Adam; jax {jax.__version__} ({jax.default_backend()}){torch_note}, "
                  f"{platform.machine()}, {os.cpu_count()} cores; seconds are the best of {args.repeats} "
                  "steady-state epochs after a warm-up epoch. Target: LeNet-300-100 <= 1 s per epoch.\n\n")
        write_section("one training epoch", header + study.markdown_table(rows, list(rows[0])).rstrip("\n"), RESULTS)
    return rows


if __name__ == "__main__":
    main()
