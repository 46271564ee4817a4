#!/usr/bin/env bash
# Per-op device time of one decoder layer at batch 1 (ai.k2j.bench.cuda.CudaOpBench) on the GPU machine, from
# the repo root with the bundle extracted to build/gpu-bundle:
#   bash tools/gpu/opbench-gpu.sh [--context 600,4000] [--presets 0.5b,1.5b,7b]
# Each op is captured 20 times into one CUDA graph and replayed; prints µs per op for each kernel variant (GEMV
# warps per row, decode vs general attention, rope+storeKv and gate|up+silu fused or not) and a whole layer
# before/after. Writes opbench-gpu.log to $OUT.
set -uo pipefail
source "$(dirname "$0")/bundle-env.sh"
LOG="$LOG_DIR/opbench-gpu.log"
timeout 300 "$JAVA" "${JAVA_FLAGS[@]}" -cp "$CP" ai.k2j.bench.cuda.CudaOpBench "$@" 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
