#!/usr/bin/env bash
# Prefill on the GPU machine, from the repo root (bundle extracted to build/gpu-bundle):
#   bash tools/gpu/bench-prefill.sh
# 1. ai.k2j.bench.cuda.CudaPrefillBench --gemm: cuBLAS's BF16 GEMM peak on this card (8192^3) and k2j's prefill
#    GEMMs (q|k|v, o, gate|up, down at a 256-token chunk) at Qwen2.5 0.5B/7B/32B shapes as a fraction of it, in the
#    tensor-core mode (default) and in the FP32 mode (-Dk2j.cuda.prefillGemm=fp32) for comparison
# 2. k2j synth qwen2.5-0.5b / 7b (bf16, random weights; shared with bench-gpu.sh's folder)
# 3. k2j prefill tok/s at 512 / 4k prompts in the tensor-core mode (default: FP32 attention; 16k last, if time), with the
#    opt-in tensor-core prefill attention at 512 / 4k / 16k (-Dk2j.cuda.prefillAttention=flash), then HF BF16 (sdpa) on
#    the same weights (tools/gpu/hf_prefill_bench.py), per model; then k2j with 2048-token prefill steps
#    (-Dk2j.prefillChunk=2048, default 256) and flash; baseline: the FP32 mode at the shorter prompts
# 4. batched decode: 32 concurrent greedy sequences (128-token prompts, 128 new tokens) through k2j's continuous
#    batching engine vs HF's batched generate, aggregate tok/s
# Writes bench-prefill.jsonl (every measurement), bench-prefill.json (the table) and bench-prefill.log to $OUT.
# Budget: K2J_BENCH_DEADLINE_S (default 300 s); later steps are skipped to stay under it.
# Knobs: K2J_BENCH_PRESETS ("qwen2.5-0.5b qwen2.5-7b"), K2J_BENCH_MODELS, K2J_PREFILL_PROMPTS (512,4096,16384),
# K2J_BENCH_HF=0 (skip HF), PYTHON.
set -uo pipefail
source "$(dirname "$0")/bundle-env.sh"

DEADLINE=${K2J_BENCH_DEADLINE_S:-300}
PRESETS=${K2J_BENCH_PRESETS:-"qwen2.5-0.5b qwen2.5-7b"}
MODELS=${K2J_BENCH_MODELS:-${TMPDIR:-/tmp}/k2j-bench-models}
PROMPTS=${K2J_PREFILL_PROMPTS:-512,4096,16384}
SHORT=$(echo "$PROMPTS" | cut -d, -f1-2)
PY=${PYTHON:-python3}
JSONL="$LOG_DIR/bench-prefill.jsonl"
LOG="$LOG_DIR/bench-prefill.log"
rm -f "$JSONL"
mkdir -p "$MODELS"
START=$SECONDS
left() { echo $((DEADLINE - (SECONDS - START))); }
say() { echo "[bench-prefill +$((SECONDS - START))s] $*" | tee -a "$LOG"; }
java_run() {  # seconds-needed label [java args...]
    local need=$1 label=$2
    shift 2
    if (( $(left) < need )); then say "$label: skipped (deadline)"; return; fi
    say "$label"
    timeout "$(left)" "$JAVA" "${JAVA_FLAGS[@]}" "$@" 2>&1 | grep -v '^{' | grep -v '^WARNING' | tee -a "$LOG"
}
prefill() {  # seconds-needed preset prompts [java flags...]
    local need=$1 p=$2 prompts=$3
    shift 3
    [[ -f "$MODELS/$p/config.json" ]] || { say "k2j $p: no model"; return; }
    java_run "$need" "k2j prefill $p ($prompts) $*" "$@" -cp "$CP" ai.k2j.bench.cuda.CudaPrefillBench \
        --model "$MODELS/$p" --prompts "$prompts" --runs 2 --json "$JSONL" --label "$p"
}
hf() {  # seconds-needed preset prompts
    local need=$1 p=$2 prompts=$3
    [[ "${K2J_BENCH_HF:-1}" != 0 && -f "$MODELS/$p/config.json" ]] || return
    if (( $(left) < need )); then say "hf $p: skipped (deadline)"; return; fi
    say "hf $p ($prompts)"
    timeout "$(( $(left) - 5 ))" "$PY" tools/gpu/hf_prefill_bench.py --model "$MODELS/$p" --label "$p" \
        --prompts "$prompts" --runs 2 --json "$JSONL" 2>&1 | tail -5 | tee -a "$LOG"
}
synth() {
    local p=$1
    [[ -f "$MODELS/$p/config.json" ]] && return
    if (( $(left) < 60 )); then say "synth $p: skipped (deadline)"; return; fi
    say "synth $p"
    rm -rf "$MODELS/$p"
    timeout "$(left)" "$JAVA" "${JAVA_FLAGS[@]}" -cp "$CP" ai.k2j.cli.Main synth --preset "$p" --out "$MODELS/$p" \
        --dtype bf16 2>&1 | tail -2 | tee -a "$LOG"
}

say "presets: $PRESETS; prompts $PROMPTS; models in $MODELS; deadline ${DEADLINE}s"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null | tee -a "$LOG"

java_run 30 "GEMMs, tensor-core mode" -cp "$CP" ai.k2j.bench.cuda.CudaPrefillBench --gemm 0.5b,7b,32b \
    --json "$JSONL" --label tensor-core
for p in $PRESETS; do
    synth "$p"
    prefill 40 "$p" "$SHORT"                                          # the default: tensor-core GEMMs, FP32 attention
    prefill 40 "$p" "$PROMPTS" -Dk2j.cuda.prefillAttention=flash      # + the tensor-core prefill attention (opt-in)
    hf 40 "$p" "$PROMPTS"
done
for p in $PRESETS; do
    prefill 40 "$p" "$PROMPTS" -Dk2j.prefillChunk=2048 -Dk2j.cuda.prefillAttention=flash  # more rows per GEMM
done
for p in $PRESETS; do  # batched decode: 32 sequences of 128 + 128 tokens, k2j's continuous batching vs HF generate
    [[ -f "$MODELS/$p/config.json" ]] || continue
    java_run 40 "k2j batch 32 $p" -cp "$CP" ai.k2j.bench.cuda.CudaPrefillBench --model "$MODELS/$p" --batch 32 \
        --prompts 128 --gen 128 --json "$JSONL" --label "$p"
    if [[ "${K2J_BENCH_HF:-1}" != 0 ]] && (( $(left) > 40 )); then
        say "hf batch 32 $p"
        timeout "$(( $(left) - 5 ))" "$PY" tools/gpu/hf_prefill_bench.py --model "$MODELS/$p" --label "$p" --batch 32 \
            --prompts 128 --gen 128 --json "$JSONL" 2>&1 | tail -3 | tee -a "$LOG"
    fi
done
java_run 30 "GEMMs, FP32 mode" -Dk2j.cuda.prefillGemm=fp32 -cp "$CP" ai.k2j.bench.cuda.CudaPrefillBench \
    --gemm 0.5b,7b --json "$JSONL" --label fp32
first=$(echo $PRESETS | cut -d' ' -f1)
last=$(echo $PRESETS | awk '{print $NF}')
prefill 40 "$first" "$SHORT" -Dk2j.cuda.prefillGemm=fp32
prefill 60 "$first" "$(echo "$PROMPTS" | awk -F, '{print $NF}')"  # the FP32 attention kernel at the longest prompt
[[ "$last" != "$first" ]] && prefill 60 "$last" "$(echo "$PROMPTS" | cut -d, -f1)" -Dk2j.cuda.prefillGemm=fp32

say "done in $((SECONDS - START)) s"
"$PY" - "$JSONL" "$LOG_DIR/bench-prefill.json" <<'PYEOF' 2>&1 | tee -a "$LOG" || cat "$JSONL"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peak = [r for r in rows if r.get("what") == "bf16_gemm_peak"]
gemm = [r for r in rows if r.get("what") == "prefill_gemm"]
pre = [r for r in rows if r.get("what") == "prefill" and "prefill_tok_s" in r]
errors = [r for r in rows if "error" in r]
batched = [r for r in rows if r.get("what") == "batched_decode" and "aggregate_tok_s" in r]
if peak:
    print("\ncuBLAS BF16 GEMM peak on %s: %.1f TFLOP/s" % (peak[0]["device"], peak[0]["tflops"]))
for r in gemm:
    print("prefill GEMMs %-5s [%s]: k2j %.1f TFLOP/s = %.0f%% of peak (cuBLAS at the same shapes %.1f)" % (
        r["preset"], r["mode"], r["k2j_tflops"], 100 * r["k2j_fraction_of_peak"], r["cublas_same_shapes_tflops"]))
table = {}
for r in pre:
    key = (r["label"], r["prompt_tokens"])
    table.setdefault(key, {})[("hf " if r["engine"] == "hf" else "k2j ") + r["mode"]] = r["prefill_tok_s"]
cols = sorted({c for v in table.values() for c in v})
print("\n%-14s %7s " % ("model", "prompt") + " ".join("%18s" % c for c in cols) + "   best k2j tensor-core/HF")
out = []
for (label, n), v in sorted(table.items()):
    k = max([x for c, x in v.items() if c.startswith("k2j auto/")] or [0]) or None
    h = next((x for c, x in v.items() if c.startswith("hf ")), None)
    ratio = k / h if k and h else None
    print("%-14s %7d " % (label, n) + " ".join("%18s" % ("%.0f" % v[c] if c in v else "-") for c in cols)
          + "   %s" % ("%.2fx" % ratio if ratio else "-"))
    out.append({"label": label, "prompt_tokens": n, **v, "k2j_over_hf": ratio})
for r in batched:
    print("batched decode %-14s %-4s %-22s batch %d x (%d + %d): %.0f tok/s aggregate" % (r["label"], r["engine"],
          r["mode"], r["batch"], r["prompt_tokens"], r["gen_tokens"], r["aggregate_tok_s"]))
for r in errors:
    print("error: %s %s %s" % (r.get("label"), r.get("prompt_tokens", ""), r["error"]))
json.dump({"peak": peak, "gemm": gemm, "prefill": out, "batched_decode": batched, "errors": errors}, open(sys.argv[2], "w"), indent=1)
PYEOF
echo "k2j: prefill bench in $LOG_DIR (bench-prefill.json, bench-prefill.jsonl, bench-prefill.log)"
