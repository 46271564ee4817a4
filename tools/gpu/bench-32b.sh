#!/usr/bin/env bash
# K2 Think's size on one GPU (issue 18), from the repo root with the bundle (tools/gpu/make-bundle.sh) unpacked at
# build/gpu-bundle:
#   bash tools/gpu/bench-32b.sh
# 1. the BF16/FP8 KV cache tests (CudaKvPrecisionTest: store and attention kernels vs the reference backend; this
#    JVM also compiles the kernels with NVRTC into the cache the later steps reuse)
# 2. LongContextBench, Qwen2.5-32B shape, random BF16 weights made in host memory and uploaded (no files), BF16 KV:
#    decode tok/s at contexts 1k/8k/32k (positions claimed without a prefill), bytes per token = weights + KV read,
#    ratio to the copy bandwidth; the verification cost v(k) = t(k+1 tokens)/t(1), k = 0..8, at 1k; the 0.5B draft
#    shape's step (vocab 151,936) for c; the implied speedups at alpha 0.7/0.8/0.9 (tau / (c k + v))
# 3. the same decode measurements with the FP8 KV cache (a second process: both caches at 32k beside 65.5 GB of
#    weights would crowd an 80 GB card)
# 4. the rest of the GPU tests of the CUDA backend (CudaBackendTest: the F32 kernels whose signatures changed), while
#    the time budget lasts
# Writes bench-32b.jsonl (every measurement), bench-32b.log, gpu-tests.log to $OUT. Budget K2J_BENCH_DEADLINE_S
# (default 230 s); knobs: K2J_32B_CONTEXTS (1024,8192,32768), K2J_32B_GEN (32), K2J_32B_PRESET (qwen2.5-32b).
set -uo pipefail
source "$(dirname "$0")/bundle-env.sh"

DEADLINE=${K2J_BENCH_DEADLINE_S:-230}
CONTEXTS=${K2J_32B_CONTEXTS:-1024,8192,32768}
GEN=${K2J_32B_GEN:-32}
PRESET=${K2J_32B_PRESET:-qwen2.5-32b}
JSONL="$LOG_DIR/bench-32b.jsonl"
LOG="$LOG_DIR/bench-32b.log"
rm -f "$JSONL"
START=$SECONDS
left() { echo $((DEADLINE - (SECONDS - START))); }
say() { echo "[bench-32b +$((SECONDS - START))s] $*" | tee -a "$LOG"; }

say "preset $PRESET, contexts $CONTEXTS, gen $GEN, deadline ${DEADLINE}s"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null | tee -a "$LOG"

say "KV precision tests"
timeout 90 "$JAVA" "${JAVA_FLAGS[@]}" -Dk2j.cuda.required=true \
    -jar "$B/junit/junit-platform-console-standalone.jar" execute \
    --class-path "$B/test-classes:$CP" --scan-class-path "$B/test-classes" \
    --include-tag gpu --include-classname '.*CudaKvPrecisionTest' --details=tree --disable-banner \
    --disable-ansi-colors 2>&1 | tee "$LOG_DIR/gpu-tests.log" | grep -E '✔|✘|tests (successful|failed)|Exception|Error' \
    | head -40 | tee -a "$LOG"

bench() {  # label [LongContextBench args...]
    local label=$1
    shift
    if (( $(left) < 40 )); then say "$label: skipped (deadline)"; return; fi
    say "$label"
    timeout "$(( $(left) - 5 ))" "$JAVA" "${JAVA_FLAGS[@]}" -cp "$CP" ai.k2j.bench.cuda.LongContextBench \
        --preset "$PRESET" --contexts "$CONTEXTS" --gen-tokens "$GEN" --json "$JSONL" --label "$PRESET" "$@" 2>&1 \
        | grep -v '^{' | tee -a "$LOG"
}
bench "32B, BF16 KV, verify curve, draft" --kv bf16 --verify-k 8 --draft-preset qwen2.5-0.5b
bench "32B, FP8 KV" --kv fp8 --verify-k 0 --draft-preset none

if (( $(left) > 50 )); then
    say "CudaBackendTest"
    timeout "$(( $(left) - 5 ))" "$JAVA" "${JAVA_FLAGS[@]}" -Dk2j.cuda.required=true \
        -jar "$B/junit/junit-platform-console-standalone.jar" execute \
        --class-path "$B/test-classes:$CP" --scan-class-path "$B/test-classes" \
        --include-tag gpu --include-classname '.*CudaBackendTest' --details=tree --disable-banner \
        --disable-ansi-colors 2>&1 | tee -a "$LOG_DIR/gpu-tests.log" | grep -E '✘|tests (successful|failed)' \
        | head -30 | tee -a "$LOG"
else
    say "CudaBackendTest: skipped (deadline)"
fi
say "done in $((SECONDS - START)) s"
echo "k2j: results in $LOG_DIR (bench-32b.jsonl, bench-32b.log, gpu-tests.log)"
