#!/usr/bin/env bash
# The sharing-level study's ViT part (issue 20) on a GPU machine, as one prepared call of at
# most LIMIT seconds. It is resumable: each call trains the ViT units the committed store
# lacks, in the study's order, and brings back only what it wrote.
#
# Before the call, here: `make device-data` (Fashion-MNIST into .data/, ignored by git) and
# carry `.data`. On the GPU machine, from the repository root:
#   bash experiments/sharing_levels/device.sh OUT [LIMIT_SECONDS]
# After it, here (FILES is the folder the call's OUT came back to):
#   .venv/bin/python -c "from wsjax.results import Store; \
#     print(Store('experiments/results/sharing_levels').merge('FILES/sharing_levels'))"
# then regenerate the report (`python -m experiments.sharing_levels --report-only`: it trains
# nothing) and commit the rows and files.
# Where jax sees no GPU the script stops, unless WSJAX_DEVICE_DRY=1 (to check the script on a CPU).
set -uo pipefail
OUT=${1:?usage: bash experiments/sharing_levels/device.sh OUT [LIMIT_SECONDS]}
LIMIT=${2:-480}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export WSJAX_DATA_DIR=${WSJAX_DATA_DIR:-$PWD/.data}
STUDY=experiments/results/sharing_levels
mkdir -p "$OUT/sharing_levels/artifacts"

$PY - <<'PY' | tee "$OUT/env.txt" || exit 1
import os, sys, jax
print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
if jax.default_backend() != "gpu" and os.environ.get("WSJAX_DEVICE_DRY", "0") != "1":
    sys.exit("no GPU visible to jax: stop (set WSJAX_DEVICE_DRY=1 to check the script on the CPU)")
PY

START=$(mktemp)
before=$(wc -l < "$STUDY/rows.jsonl")
timeout -k 30 "$LIMIT" $PY -m experiments.sharing_levels --models vit --out "$STUDY" > "$OUT/vit.log" 2>&1
rc=$?
# what this call wrote: the rows (the whole file: merge adds only the rows the store lacks) and
# the artifacts newer than its start
cp "$STUDY/rows.jsonl" "$OUT/sharing_levels/"
find "$STUDY/artifacts" -type f -newer "$START" -exec cp {} "$OUT/sharing_levels/artifacts/" \;
after=$(wc -l < "$STUDY/rows.jsonl")
echo "rc $rc (124 or 137: stopped at the ${LIMIT} s limit, resumable); $((after - before)) new rows," \
     "$(ls "$OUT/sharing_levels/artifacts" | wc -l) new files" | tee -a "$OUT/env.txt"
tail -3 "$OUT/vit.log"
[ "$rc" = 0 ] || [ "$rc" = 124 ] || [ "$rc" = 137 ]
