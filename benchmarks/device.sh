#!/usr/bin/env bash
# The GPU check of issue 15 as one prepared script: on a machine with an NVIDIA GPU and JAX
# built for CUDA, run the test suite and the benchmarks in at most 8 minutes and write
# benchmarks/RESULTS-gpu.md (epoch times, hashed step vs dense, k-means).
#
# Usage, from the repository root on the GPU machine:
#   bash benchmarks/device.sh [OUT_DIR]
# Before the call, here: `make device-data` copies the Fashion-MNIST IDX files into .data/
# (ignored by git); carry `.data` to the device machine. The machine needs python3 with jax
# (CUDA), flax, optax, chex, numpy, scikit-learn, tqdm, matplotlib, pytest, pytest-xdist;
# where jax sees no GPU the script stops, unless WSJAX_DEVICE_DRY=1 (a dry run on the CPU with
# the benchmarks cut short, to check the script itself).
set -uo pipefail
OUT=${1:-${OUT:-/tmp/wsjax-device}}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export WSJAX_DATA_DIR=${WSJAX_DATA_DIR:-$PWD/.data}
export WSJAX_BENCH_RESULTS=$PWD/benchmarks/RESULTS-gpu.md
DRY=${WSJAX_DEVICE_DRY:-0}

$PY - <<'PY' | tee "$OUT/env.txt" || exit 1
import os, sys, jax
print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
if jax.default_backend() != "gpu" and os.environ.get("WSJAX_DEVICE_DRY", "0") != "1":
    sys.exit("no GPU visible to jax: stop (set WSJAX_DEVICE_DRY=1 for a dry run on the CPU)")
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$OUT/env.txt"

# 1. The suite (its own budget: 4 minutes). Tests that need a package this machine lacks
# fail by name in the log; the counts go to RESULTS-gpu.md.
TESTS=${WSJAX_DEVICE_TESTS:-tests}
timeout 240 $PY -m pytest -q -n 8 --dist loadfile -p no:cacheprovider $TESTS 2>&1 | tee "$OUT/tests.log"
tests_rc=${PIPESTATUS[0]}

# 2. The benchmarks (each capped; about 3.5 minutes together).
rm -f "$WSJAX_BENCH_RESULTS"
printf '# Benchmarks on a GPU\n\nWritten by `bash benchmarks/device.sh` (%s).\n\n' "$(date -u +%Y-%m-%d)" > "$WSJAX_BENCH_RESULTS"
if [ "$DRY" = 1 ]; then ROUNDS=1; MODELS=lenet300100; else ROUNDS=2; MODELS="lenet300100 lenet5"; fi
timeout 120 $PY -m benchmarks.epoch_loop --models $MODELS --rounds $ROUNDS --no-torch --write 2>&1 | tee "$OUT/epoch_loop.log"
timeout 60 $PY -m benchmarks.hashed_step --rounds $((ROUNDS * 3)) --write 2>&1 | tee "$OUT/hashed_step.log"
timeout 60 $PY -m benchmarks.kmeans --write 2>&1 | tee "$OUT/kmeans.log"

{ printf '\n## test suite\n\n'; tail -n 3 "$OUT/tests.log" | sed 's/^/    /'; printf '\n(pytest exit status %s)\n' "$tests_rc"; } >> "$WSJAX_BENCH_RESULTS"
cp "$WSJAX_BENCH_RESULTS" "$OUT/"
echo "wrote $WSJAX_BENCH_RESULTS"
