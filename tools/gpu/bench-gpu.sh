#!/usr/bin/env bash
# k2j CUDA vs HF transformers on synthetic Qwen2.5 models, on the GPU machine, from the repo root (bundle from
# tools/gpu/make-bundle.sh extracted to build/gpu-bundle; no Maven there):
#   bash tools/gpu/bench-gpu.sh
# 1. smoke check (device, copy and GEMV bandwidth)      2. k2j synth qwen2.5-{0.5b,1.5b,7b}, bf16 (random weights)
# 3. k2j DecodeBench per model: prefill tok/s (512-token prompt), decode tok/s (256 tokens, greedy), GB/s of
#    weights streamed per token, ratio to the device-to-device copy bandwidth measured in the same process;
#    0.5B also without graphs (eager launches), without launch fusion, in Q8_0 / Q4_0 and with the earlier GEMV
#    shape (one row per warp: -Dk2j.cuda.gemvRows=1 -Dk2j.cuda.gemvWarps=1; 7B too)
# 4. tools/gpu/hf_bench.py per model: transformers generate, bf16, static cache, greedy, same lengths; eager, then
#    compiled while the time budget lasts
# Prints one table; writes bench-gpu.jsonl (every measurement), bench-gpu.json (the table) and logs to $OUT.
# Budget: K2J_BENCH_DEADLINE_S (default 510 s) — later steps are skipped or cut short to finish before it.
# Other knobs: K2J_BENCH_PRESETS, K2J_BENCH_MODELS (where synthetic models go), K2J_BENCH_PROMPT, K2J_BENCH_GEN,
# K2J_BENCH_RUNS, K2J_BENCH_HF=0 (skip HF), PYTHON.
set -uo pipefail
source "$(dirname "$0")/bundle-env.sh"

DEADLINE=${K2J_BENCH_DEADLINE_S:-510}
PRESETS=${K2J_BENCH_PRESETS:-"qwen2.5-0.5b qwen2.5-1.5b qwen2.5-7b"}
MODELS=${K2J_BENCH_MODELS:-${TMPDIR:-/tmp}/k2j-bench-models}
PROMPT=${K2J_BENCH_PROMPT:-512}
GEN=${K2J_BENCH_GEN:-256}
RUNS=${K2J_BENCH_RUNS:-3}
PY=${PYTHON:-python3}
JSONL="$LOG_DIR/bench-gpu.jsonl"
LOG="$LOG_DIR/bench-gpu.log"
rm -f "$JSONL"
mkdir -p "$MODELS"
START=$SECONDS
left() { echo $((DEADLINE - (SECONDS - START))); }
say() { echo "[bench-gpu +$((SECONDS - START))s] $*" | tee -a "$LOG"; }
k2j() { "$JAVA" "${JAVA_FLAGS[@]}" "$@"; }

say "presets: $PRESETS; prompt $PROMPT, gen $GEN, runs $RUNS; models in $MODELS; deadline ${DEADLINE}s"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null | tee -a "$LOG"

say "smoke check"
timeout 150 "$JAVA" "${JAVA_FLAGS[@]}" -cp "$CP" ai.k2j.bench.cuda.CudaSmoke 2>&1 | tee "$LOG_DIR/smoke.log" \
    | grep -E 'CUDA device|copy|GEMV .*n=1|graph|PASSED|FAILED|compiled' | tee -a "$LOG"

for p in $PRESETS; do
    if [[ -f "$MODELS/$p/config.json" ]]; then
        say "synth $p: already there"
        continue
    fi
    if (( $(left) < 60 )); then say "synth $p: skipped (deadline)"; continue; fi
    say "synth $p"
    rm -rf "$MODELS/$p"
    timeout "$(left)" "$JAVA" "${JAVA_FLAGS[@]}" -cp "$CP" ai.k2j.cli.Main synth --preset "$p" --out "$MODELS/$p" \
        --dtype bf16 2>&1 | tail -3 | tee -a "$LOG"
done

bench() {  # label model [java flags...] -- [DecodeBench args...]
    local label=$1 model=$2
    shift 2
    local jflags=()
    while [[ $# -gt 0 && $1 != -- ]]; do jflags+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    if (( $(left) < 20 )); then say "k2j $label: skipped (deadline)"; return; fi
    say "k2j $label"
    timeout "$(left)" "$JAVA" "${JAVA_FLAGS[@]}" "${jflags[@]}" -cp "$CP" ai.k2j.bench.DecodeBench --model "$model" \
        --backend cuda --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --runs "$RUNS" --json "$JSONL" \
        --label "$label" "$@" 2>&1 | grep -v '^{' | tee -a "$LOG"
}

for p in $PRESETS; do
    [[ -f "$MODELS/$p/config.json" ]] || { say "k2j $p: no model"; continue; }
    bench "$p" "$MODELS/$p"
done
first=$(echo $PRESETS | cut -d' ' -f1)
if [[ -f "$MODELS/$first/config.json" ]]; then
    bench "$first-eager" "$MODELS/$first" -Dk2j.graphs=false --
    bench "$first-nofuse" "$MODELS/$first" -Dk2j.cuda.fuse=false --
    bench "$first-q8_0" "$MODELS/$first" -- --weight-format q8_0
    bench "$first-q4_0" "$MODELS/$first" -- --weight-format q4_0
    bench "$first-r1w1" "$MODELS/$first" -Dk2j.cuda.gemvRows=1 -Dk2j.cuda.gemvWarps=1 --
fi
last=$(echo $PRESETS | awk '{print $NF}')
if [[ "$last" != "$first" && -f "$MODELS/$last/config.json" ]] && (( $(left) > 300 )); then
    bench "$last-r1w1" "$MODELS/$last" -Dk2j.cuda.gemvRows=1 -Dk2j.cuda.gemvWarps=1 --  # the earlier GEMV shape: one row per warp
fi

if [[ "${K2J_BENCH_HF:-1}" != 0 ]]; then
    for p in $PRESETS; do
        [[ -f "$MODELS/$p/config.json" ]] || continue
        if (( $(left) < 40 )); then say "hf $p eager: skipped (deadline)"; continue; fi
        say "hf $p eager"
        timeout "$(( $(left) - 10 ))" "$PY" tools/gpu/hf_bench.py --model "$MODELS/$p" --label "$p" --modes eager \
            --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --runs 2 --json "$JSONL" >>"$LOG" 2>&1 \
            || say "hf $p eager: exit $? (timeout or crash; see bench-gpu.log)"
    done
    for p in $PRESETS; do
        [[ -f "$MODELS/$p/config.json" ]] || continue
        if (( $(left) < 90 )); then say "hf $p compiled: skipped (deadline)"; continue; fi
        say "hf $p compiled"
        timeout "$(( $(left) - 10 ))" "$PY" tools/gpu/hf_bench.py --model "$MODELS/$p" --label "$p" --modes compiled \
            --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --runs 2 --json "$JSONL" >>"$LOG" 2>&1 \
            || say "hf $p compiled: exit $? (timeout or crash; see bench-gpu.log)"
    done
fi

say "done in $((SECONDS - START)) s"
"$PY" - "$JSONL" "$LOG_DIR/bench-gpu.json" <<'PYEOF' 2>&1 | tee -a "$LOG" || cat "$JSONL"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
k2j = [r for r in rows if r.get("engine") == "k2j"]
hf = {}
for r in rows:
    if r.get("engine") == "hf":
        hf.setdefault(r["label"], {})[r.get("mode", "?")] = r
table = []
print()
print("%-20s %-5s %9s %9s %8s %7s %9s %9s %7s" % ("model", "w", "prefill", "decode", "GB/s", "%copy", "HF eager",
                                                  "HF comp", "xHF"))
for r in k2j:
    base = re.match(r"^(qwen2\.5-[0-9.]+b|[^-]+)", r["label"]).group(1)
    h = hf.get(base, {})
    he = h.get("eager", {}).get("decode_tok_s")
    hc = h.get("compiled", {}).get("decode_tok_s")
    best = max([x for x in (he, hc) if x] or [0])
    ratio = r["decode_tok_s"] / best if best else None
    print("%-20s %-5s %9.0f %9.1f %8.0f %6.0f%% %9s %9s %7s" % (
        r["label"], r["weights"], r["prefill_tok_s"], r["decode_tok_s"], r["achieved_gb_s"],
        100 * r["roofline_fraction"], "%.1f" % he if he else "-", "%.1f" % hc if hc else "-",
        "%.1fx" % ratio if ratio else "-"))
    table.append({**r, "hf_eager_decode_tok_s": he, "hf_compiled_decode_tok_s": hc, "speedup_vs_best_hf": ratio})
for label, modes in hf.items():
    for mode, r in modes.items():
        if "error" in r:
            print("HF %s %s: %s" % (label, mode, r["error"]))
        else:
            print("HF %s %s: prefill %.0f tok/s, decode %.1f tok/s %s" % (label, mode, r["prefill_tok_s"],
                  r["decode_tok_s"], r.get("how", "")))
goals = []
by = {r["label"]: r for r in k2j}
if "qwen2.5-7b" in by:
    goals.append("7B decode >= 0.75 x copy roofline: %s (%.2f)" % (by["qwen2.5-7b"]["roofline_fraction"] >= 0.75,
                                                                  by["qwen2.5-7b"]["roofline_fraction"]))
if "qwen2.5-0.5b" in by:
    goals.append("0.5B decode >= 1000 tok/s: %s (%.0f)" % (by["qwen2.5-0.5b"]["decode_tok_s"] >= 1000,
                                                          by["qwen2.5-0.5b"]["decode_tok_s"]))
for t in table:
    if t["speedup_vs_best_hf"] and "-" not in t["label"].replace("qwen2.5-", ""):
        goals.append("%s >= 3x HF: %s (%.1fx)" % (t["label"], t["speedup_vs_best_hf"] >= 3, t["speedup_vs_best_hf"]))
print("\n".join(goals))
json.dump({"k2j": table, "hf": hf, "goals": goals}, open(sys.argv[2], "w"), indent=1)
PYEOF
echo "k2j: bench results in $LOG_DIR (bench-gpu.json, bench-gpu.jsonl, bench-gpu.log)"
