"""One training step of LeNet-300-100 hashed at 1/8: wsjax (on the fly, precomputed) vs dense vs PyTorch.

Side by side in one run, on the same batch (100 random 28x28 inputs) and optimiser (Adam):

* ``dense``: the plain LeNet-300-100 step in wsjax (jitted ``value_and_grad`` + Adam);
* ``hashed (on the fly)``: :func:`wsjax.sharing.hashing.hashed` at 1/8, per layer; the hash is
  recomputed in the forward and in the custom VJP;
* ``hashed (precomputed)``: the same with ``precompute=True`` (int32 signed indices passed to
  the step as an argument);
* ``hashed pool (on the fly)``: cross-layer hashing, one bucket vector for the three layers
  (for information; no target);
* ``hashed pool blocks of 32 (on the fly)``: the same pool hashed in chunks of 32 consecutive
  weights (ROAST-style ``block=32``: one hash per chunk, contiguous bucket runs), against the
  element-wise pool (for information; no target);
* ``torch hashed (precomputed)``: the same hashed layer in PyTorch, the usual way (index and
  sign buffers, ``w[idx] * sign``, autograd scatters back), with the same indices;
* ``torch hashed (on the fly)``: PyTorch recomputing the same hash every step in int64 tensors;
* ``torch dense``: plain LeNet-300-100 in PyTorch.

Each variant's time per step is the best, over ``--rounds`` interleaved rounds, of the mean of
``--steps`` consecutive steps (after warm-up and compilation), so the ratios come from one
run under the same machine load. ``torch.set_num_threads`` is set to the number of CPU cores
XLA uses. The script also prints ``compiled.memory_analysis()`` of the three wsjax steps and
appends its table to ``benchmarks/RESULTS.md`` (section "hashed step") with ``--write``.

Run: ``python -m benchmarks.hashed_step [--steps 20] [--rounds 15] [--write]``.
Targets (the project's issue): hashed / dense <= 1.5 on CPU; wsjax >= 1.5x faster than the
PyTorch version of the hashed layer.

References: Chen et al, `Compressing Neural Networks with the Hashing Trick
<https://arxiv.org/abs/1504.04788>`_, 2015.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

#: where ``--write`` puts its section (``WSJAX_BENCH_RESULTS`` moves it, as benchmarks/device.sh does)
RESULTS = os.environ.get("WSJAX_BENCH_RESULTS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsjax.models import LeNet300100
from wsjax.study import write_section
from wsjax.sharing import SharedParams, free_params
from wsjax.sharing.hashing import HashSpec, hash_indices, hashed

COMPRESSION = 1 / 8
BATCH = 100
LR = 1e-3


# ----------------------------------------------------------------------------- wsjax


def wsjax_steps(x, y):
    """``{name: (step, state)}``: jitted steps ``(theta, opt_state, frozen, x, y) -> ...``."""
    model = LeNet300100()
    params = model.init(jax.random.key(0), x[:1])["params"]
    opt = optax.adam(LR)
    variants = {
        "dense": None,
        "hashed (on the fly)": hashed(COMPRESSION),
        "hashed (precomputed)": hashed(COMPRESSION, precompute=True),
        "hashed pool (on the fly)": hashed(COMPRESSION, scope="pool"),
        "hashed pool blocks of 32 (on the fly)": hashed(COMPRESSION, scope="pool", block=32),
    }
    out = {}
    for name, t in variants.items():
        if t is None:
            state = SharedParams(params, None)
            to_params = lambda theta, frozen: theta  # noqa: E731
        else:
            state = t.init(jax.random.key(1), params)
            to_params = lambda theta, frozen, t=t: t.apply(SharedParams(theta, frozen))  # noqa: E731

        def step(theta, opt_state, frozen, x, y, to_params=to_params):
            def loss(theta):
                logits = model.apply({"params": to_params(theta, frozen)}, x)
                return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

            value, grads = jax.value_and_grad(loss)(theta)
            updates, opt_state = opt.update(grads, opt_state, theta)
            return optax.apply_updates(theta, updates), opt_state, value

        out[name] = (jax.jit(step), state, opt.init(state.theta))
    return out


def memory_table(steps, x, y) -> list[dict]:
    rows = []
    for name, (step, state, opt_state) in steps.items():
        compiled = step.lower(state.theta, opt_state, state.frozen, x, y).compile()
        m = compiled.memory_analysis()
        rows.append(
            {
                "step": name,
                "argument_bytes": m.argument_size_in_bytes,
                "output_bytes": m.output_size_in_bytes,
                "temp_bytes": m.temp_size_in_bytes,
                "generated_code_bytes": m.generated_code_size_in_bytes,
                "free_params": free_params(state),
                "frozen_array_bytes": sum(a.nbytes for a in jax.tree.leaves(state.frozen)),
            }
        )
    return rows


def wsjax_runner(step, state, opt_state, x, y):
    carry = [state.theta, opt_state]
    frozen = state.frozen

    def run(n):
        theta, st = carry
        for _ in range(n):
            theta, st, loss = step(theta, st, frozen, x, y)
        jax.block_until_ready(loss)
        carry[:] = [theta, st]

    return run


# ----------------------------------------------------------------------------- PyTorch


def torch_runners(x, y, threads):
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    M = 0xFFFFFFFF

    def torch_hash(rows, cols, layer, seed, k):
        """The wsjax hash (xxHash32 short path on (layer, i, j)) in int64 tensors, masked to 32 bits."""
        P2, P3, P4, P5 = 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1

        def rotl(v, r):
            return ((v << r) | (v >> (32 - r))) & M

        def absorb(h, w):
            return (rotl((h + w * P3) & M, 17) * P4) & M

        def aval(h):
            h = h ^ (h >> 15)
            h = (h * P2) & M
            h = h ^ (h >> 13)
            h = (h * P3) & M
            return h ^ (h >> 16)

        h = absorb((seed + P5 + 12) & M, layer)
        i = torch.arange(rows, dtype=torch.int64)[:, None]
        j = torch.arange(cols, dtype=torch.int64)[None, :]
        pre = absorb(absorb(torch.tensor(h, dtype=torch.int64), i), j)
        index = aval(pre) % k
        sign = 1.0 - 2.0 * (aval(pre ^ 0x5BD1E995) >> 31).to(torch.float32)
        return index, sign

    class HashedLinear(nn.Module):
        """``y = x @ V + b`` with ``V[i, j] = sign[i, j] * w[idx[i, j]]`` (V stored as in x rows)."""

        def __init__(self, n_in, n_out, layer, on_the_fly):
            super().__init__()
            self.n_in, self.n_out, self.layer = n_in, n_out, layer
            self.k = max(1, round(COMPRESSION * n_in * n_out))
            self.on_the_fly = on_the_fly
            index, sign = torch_hash(n_in, n_out, layer, 0, self.k)
            self.register_buffer("index", index)
            self.register_buffer("sign", sign)
            self.w = nn.Parameter(torch.randn(self.k) / n_in**0.5)
            self.b = nn.Parameter(torch.zeros(n_out))

        def forward(self, x):
            if self.on_the_fly:
                index, sign = torch_hash(self.n_in, self.n_out, self.layer, 0, self.k)
            else:
                index, sign = self.index, self.sign
            v = self.w[index] * sign
            return x @ v + self.b

    def hashed_net(on_the_fly):
        return nn.Sequential(
            HashedLinear(784, 300, 0, on_the_fly), nn.ReLU(),
            HashedLinear(300, 100, 1, on_the_fly), nn.ReLU(),
            HashedLinear(100, 10, 2, on_the_fly),
        )

    def dense_net():
        return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                             nn.Linear(100, 10))

    xt = torch.from_numpy(np.asarray(x).reshape(len(x), -1).copy())
    yt = torch.from_numpy(np.asarray(y).astype(np.int64))

    def runner(net):
        opt = torch.optim.Adam(net.parameters(), lr=LR)

        def run(n):
            for _ in range(n):
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(net(xt), yt)
                loss.backward()
                opt.step()

        return run

    # The PyTorch hash must be the wsjax hash: check the first layer's indices and signs.
    ref_index, ref_sign = hash_indices(
        HashSpec((784, 300), max(1, round(COMPRESSION * 784 * 300)), 0, 0)
    )
    ti, ts = torch_hash(784, 300, 0, 0, max(1, round(COMPRESSION * 784 * 300)))
    assert np.array_equal(ti.numpy(), np.asarray(ref_index)), "torch hash != wsjax hash"
    assert np.array_equal(ts.numpy(), np.asarray(ref_sign)), "torch sign != wsjax sign"

    return {
        "torch hashed (precomputed)": runner(hashed_net(False)),
        "torch hashed (on the fly)": runner(hashed_net(True)),
        "torch dense": runner(dense_net()),
    }, torch.__version__


# ----------------------------------------------------------------------------- timing


def time_all(runners: dict, steps: int, rounds: int) -> dict:
    for run in runners.values():
        run(3)  # compile / warm up
    best = {name: float("inf") for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(steps)
            best[name] = min(best[name], (time.perf_counter() - t0) / steps)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((BATCH, 28, 28, 1), np.float32))
    y = jnp.asarray(rng.integers(0, 10, BATCH).astype(np.int32))
    threads = os.cpu_count()  # XLA:CPU's intra-op thread pool uses every core

    steps = wsjax_steps(x, y)
    memory = memory_table(steps, x, y)
    runners = {name: wsjax_runner(*v, x, y) for name, v in steps.items()}
    torch_run, torch_version = torch_runners(x, y, threads)
    runners.update(torch_run)
    best = time_all(runners, args.steps, args.rounds)

    dense = best["dense"]
    fly, pre = best["hashed (on the fly)"], best["hashed (precomputed)"]
    t_pre, t_fly = best["torch hashed (precomputed)"], best["torch hashed (on the fly)"]
    lines = [
        f"LeNet-300-100 hashed at 1/{round(1 / COMPRESSION)} (per layer), batch {BATCH}, Adam; "
        f"jax {jax.__version__} ({jax.default_backend()}), torch {torch_version} "
        f"({threads} threads), {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; best of {args.rounds} interleaved rounds of {args.steps} steps.",
        "",
        "| step | ms / step | vs wsjax dense |",
        "|---|---|---|",
    ]
    for name, sec in best.items():
        lines.append(f"| {name} | {1e3 * sec:.2f} | {sec / dense:.2f} |")
    lines += [
        "",
        "| ratio | value | target |",
        "|---|---|---|",
        f"| hashed on the fly / dense (wsjax) | {fly / dense:.2f} | <= 1.5 |",
        f"| hashed precomputed / dense (wsjax) | {pre / dense:.2f} | <= 1.5 |",
        f"| hashed pool on the fly / dense (wsjax) | {best['hashed pool (on the fly)'] / dense:.2f} | |",
        f"| pool in blocks of 32 / element-wise pool (wsjax) | "
        f"{best['hashed pool blocks of 32 (on the fly)'] / best['hashed pool (on the fly)']:.2f} | |",
        f"| torch hashed precomputed / wsjax hashed on the fly | {t_pre / fly:.2f} | >= 1.5 |",
        f"| torch hashed precomputed / wsjax hashed precomputed | {t_pre / pre:.2f} | >= 1.5 |",
        f"| torch hashed on the fly / wsjax hashed on the fly | {t_fly / fly:.2f} | |",
        f"| torch dense / wsjax dense | {best['torch dense'] / dense:.2f} | |",
        "",
        "`compiled.memory_analysis()` of the jitted steps (bytes; the precomputed step gets its "
        "int32 signed indices as an argument):",
        "",
        "| step | free params | frozen arrays | argument | output | temp | generated code |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in memory:
        lines.append(
            f"| {r['step']} | {r['free_params']} | {r['frozen_array_bytes']} | "
            f"{r['argument_bytes']} | {r['output_bytes']} | {r['temp_bytes']} | "
            f"{r['generated_code_bytes']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section("hashed step", "Run: `python -m benchmarks.hashed_step --write`.\n\n" + text, RESULTS)
    return best, memory


if __name__ == "__main__":
    main()
