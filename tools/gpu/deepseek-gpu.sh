#!/usr/bin/env bash
# Issue 17's GPU check, from the repo root with the bundle at build/gpu-bundle (tools/gpu/make-bundle.sh):
# the DeepSeek-V3 / Kimi K2 golden fixtures (engine/src/test/resources/golden-mla) on CUDA, which exercises the
# MLA kernels head_matmul and latent_attention (native/ops.cu), the routed experts and the FP8 twin.
#   bash tools/gpu/deepseek-gpu.sh          # writes gpu-tests.log (and JUnit XML) to $OUT when set
# Expected run time: under a minute after the bundle is built (4 tiny models).
set -uo pipefail
exec bash "$(dirname "$0")/run-gpu-tests.sh" --include-classname '.*DeepseekCudaTest'
