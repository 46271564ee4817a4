#!/usr/bin/env bash
# Per-op CUDA profile of k2j decode on the GPU machine, from the repo root (bundle extracted to build/gpu-bundle):
#   bash tools/gpu/profile-gpu.sh
# For each preset (synthesized into $K2J_BENCH_MODELS if missing): DecodeBench eager (-Dk2j.graphs=false) with
# -Dk2j.cuda.profile=true — CudaBackend times every launch with CUDA events and prints at close, per op name:
# calls, device µs, µs/call, share of device time and of step wall time, GPU idle before the op, cuLaunchKernel
# µs and Java µs since the previous launch; per step (= one token): wall, device busy, host-side (wall − busy),
# idle gaps, launches. Then one graph run (profiler on: graph_replay device time per token) for comparison.
# Writes profile-gpu.log to $OUT. Knobs: K2J_PROFILE_PRESETS, K2J_PROFILE_PROMPT (16), K2J_PROFILE_GEN (64).
set -uo pipefail
source "$(dirname "$0")/bundle-env.sh"

PRESETS=${K2J_PROFILE_PRESETS:-"qwen2.5-0.5b qwen2.5-7b"}
MODELS=${K2J_BENCH_MODELS:-${TMPDIR:-/tmp}/k2j-bench-models}
PROMPT=${K2J_PROFILE_PROMPT:-16}
GEN=${K2J_PROFILE_GEN:-64}
LOG="$LOG_DIR/profile-gpu.log"
: >"$LOG"
START=$SECONDS
say() { echo "[profile-gpu +$((SECONDS - START))s] $*" | tee -a "$LOG"; }
mkdir -p "$MODELS"

for p in $PRESETS; do
    if [[ ! -f "$MODELS/$p/config.json" ]]; then
        say "synth $p"
        rm -rf "$MODELS/$p"
        timeout 120 "$JAVA" "${JAVA_FLAGS[@]}" -cp "$CP" ai.k2j.cli.Main synth --preset "$p" --out "$MODELS/$p" \
            --dtype bf16 2>&1 | tail -2 | tee -a "$LOG"
    fi
    [[ -f "$MODELS/$p/config.json" ]] || { say "$p: no model"; continue; }
    for mode in eager graph; do
        flags=(-Dk2j.cuda.profile=true)
        [[ $mode == eager ]] && flags+=(-Dk2j.graphs=false)
        say "$p $mode (profiled; prompt $PROMPT, gen $GEN, 2 runs + warm-up)"
        timeout 150 "$JAVA" "${JAVA_FLAGS[@]}" "${flags[@]}" -cp "$CP" ai.k2j.bench.DecodeBench --model "$MODELS/$p" \
            --backend cuda --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --runs 2 --label "$p-$mode-profiled" 2>&1 \
            | grep -v '^{' | tee -a "$LOG"
    done
    say "$p graph (not profiled)"
    timeout 150 "$JAVA" "${JAVA_FLAGS[@]}" -cp "$CP" ai.k2j.bench.DecodeBench --model "$MODELS/$p" --backend cuda \
        --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --runs 2 --label "$p-graph" 2>&1 | grep -v '^{' | tee -a "$LOG"
done
say "done; log in $LOG"
