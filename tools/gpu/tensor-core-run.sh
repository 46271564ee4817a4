#!/usr/bin/env bash
# Issue 23's GPU run, from the repo root on the GPU machine (bundle of this branch at build/gpu-bundle, or
# .gpucarry/gpu-bundle.tgz to extract):
#   bash tools/gpu/tensor-core-run.sh [tests|bench|all]      (default all)
# "tests" runs steps 1-2 (~3-4 min on a fresh machine: the first JVM compiles the kernels with NVRTC, ~70 s), "bench"
# step 3 alone (best on the same machine right after "tests": the compiled kernels are cached there).
# 1. tools/golden/make_bf16_goldens.py: HF transformers' BF16 logits/greedy ids of every golden fixture, written into
#    engine/src/test/resources/golden/<case>/ (logits_bf16.npy, hf_bf16.json) and packed as $OUT/bf16-goldens.tgz
# 2. the GPU tests (tools/gpu/run-gpu-tests.sh): all of them, the new CudaFlashPrefillTest and
#    CudaTensorCoreContractTest included (the latter reads step 1's files)
# 3. tools/gpu/bench-prefill.sh with the time that is left
# Budget K2J_TOTAL_S (default 420 s for all, 300 s for bench): the bench gets what steps 1-2 leave (its later steps
# are skipped first).
# Outputs in $OUT: bf16-goldens.tgz, bf16-goldens.log, gpu-tests.log, bench-prefill.{json,jsonl,log}, run.log.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
STAGE=${1:-all}
case "$STAGE" in tests|bench|all) ;; *) echo "usage: $0 [tests|bench|all]" >&2; exit 2 ;; esac
TOTAL=${K2J_TOTAL_S:-$([[ $STAGE == bench ]] && echo 300 || echo 420)}
START=$SECONDS
export OUT=${OUT:-$ROOT/build/tensor-core-run}
mkdir -p "$OUT"
RUNLOG="$OUT/run.log"
say() { echo "[tensor-core-run +$((SECONDS - START))s] $*" | tee -a "$RUNLOG"; }
if [[ ! -x build/gpu-bundle/runtime/bin/java ]]; then
    mkdir -p build && tar xzf .gpucarry/gpu-bundle.tgz -C build || { say "no bundle"; exit 3; }
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$RUNLOG"

if [[ $STAGE != bench ]]; then
say "1. HF-BF16 references of the golden fixtures"
timeout 150 "${PYTHON:-python3}" tools/golden/make_bf16_goldens.py --tar "$OUT/bf16-goldens.tgz" \
    >"$OUT/bf16-goldens.log" 2>&1
rc=$?
say "   exit $rc"; tail -16 "$OUT/bf16-goldens.log" | tee -a "$RUNLOG"

say "2. GPU tests"
timeout 300 bash tools/gpu/run-gpu-tests.sh >/dev/null 2>&1
rc=$?
say "   exit $rc"
grep -E "contract |flash prefill|tests (successful|failed|aborted)|MethodSource|=> " "$OUT/gpu-tests.log" \
    | head -80 | tee -a "$RUNLOG"

fi

[[ $STAGE == tests ]] && { say "done"; exit 0; }
left=$((TOTAL - (SECONDS - START)))
say "3. prefill bench, ${left}s left"
if (( left > 40 )); then
    K2J_BENCH_DEADLINE_S=$left bash tools/gpu/bench-prefill.sh >/dev/null 2>&1
    tail -30 "$OUT/bench-prefill.log" | tee -a "$RUNLOG"
fi
say "done"
