#!/usr/bin/env bash
# Runs every @Tag("gpu") test of the bundle (tools/gpu/make-bundle.sh) on the GPU machine, from the repo root:
#   bash tools/gpu/run-gpu-tests.sh                      # all GPU tests
#   bash tools/gpu/run-gpu-tests.sh --include-classname '.*CudaBackendTest'   # extra JUnit console options
# Prints JUnit's tree and summary, writes gpu-tests.log (and XML reports) to $OUT when set, exits non-zero when a
# test fails or none ran. CUDA being unavailable is a failure here (-Dk2j.cuda.required=true), not a skip;
# K2J_CUDA_REQUIRED=false turns it back into a skip (for a dry run on a machine without a GPU).
set -uo pipefail
source "$(dirname "$0")/bundle-env.sh"

LOG="$LOG_DIR/gpu-tests.log"
"$JAVA" "${JAVA_FLAGS[@]}" -Dk2j.cuda.required="${K2J_CUDA_REQUIRED:-true}" \
    -jar "$B/junit/junit-platform-console-standalone.jar" execute \
    --class-path "$B/test-classes:$CP" --scan-class-path "$B/test-classes" \
    --include-tag gpu --details=tree --disable-banner --disable-ansi-colors --fail-if-no-tests \
    "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
echo "k2j: GPU tests exit status $rc (log: $LOG)"
exit "$rc"
