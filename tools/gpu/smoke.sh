#!/usr/bin/env bash
# Fastest end-to-end check of the GPU machine, from the repo root (bundle from tools/gpu/make-bundle.sh):
#   bash tools/gpu/smoke.sh
# Prints device name, compute capability, library paths, kernel compilation, a GEMV and a graph check against the
# host, device-to-device copy GB/s and GEMV GB/s; writes smoke.log to $OUT when set.
# Exit status: 0 passed, 1 a check failed, 2 CUDA unavailable, 3 no bundle.
set -uo pipefail
source "$(dirname "$0")/bundle-env.sh"

LOG="$LOG_DIR/smoke.log"
"$JAVA" "${JAVA_FLAGS[@]}" -cp "$CP" ai.k2j.bench.cuda.CudaSmoke "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
echo "k2j: smoke exit status $rc (log: $LOG)"
exit "$rc"
