#!/usr/bin/env bash
# Issue 22 on the GPU machine, from the repo root (bundle from tools/gpu/make-bundle.sh at build/gpu-bundle):
#   bash tools/gpu/draft-tree-gpu.sh
# 1. the draft-tree GPU tests (CudaDraftTreeTest: tree rows vs linear passes, cache compaction, demo pair greedy
#    tree speculation = plain) and the existing CudaSpeculativeTest
# 2. spec-bench on CUDA, demo pair, greedy: linear k = 2,4,6,8 against trees of 2,4,6,8 tokens, adaptive
# Writes gpu-tests.log and spec-demo-cuda.json (+ .log) to $OUT. Expected run time ~3 min.
set -uo pipefail
source "$(dirname "$0")/bundle-env.sh"
ROOT_DIR=$(pwd)
timeout 150 bash "$(dirname "$0")/run-gpu-tests.sh" --include-classname '.*(CudaDraftTreeTest|CudaSpeculativeTest)'
echo "draft-tree-gpu: tests exit status $?"
timeout 150 "$JAVA" "${JAVA_FLAGS[@]}" -Dk2j.home="$ROOT_DIR" -cp "$CP" ai.k2j.cli.Main spec-bench --backend cuda \
    --num-prompts 8 --max-tokens 64 --draft-tokens 2,4,6,8 --tree 2,4,6,8 --adaptive --kv-cache f32 --json \
    > "$LOG_DIR/spec-demo-cuda.json" 2> "$LOG_DIR/spec-demo-cuda.log"
echo "draft-tree-gpu: spec-bench exit status $?"
tail -30 "$LOG_DIR/spec-demo-cuda.log"
