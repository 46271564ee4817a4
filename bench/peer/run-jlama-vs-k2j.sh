#!/usr/bin/env bash
# k2j vs Jlama on the same model directory, the same dtype and the same thread count, run alternately in one
# session (k2j, Jlama, k2j, Jlama, ...) so that both see the same machine; prints the median speeds and their
# ratios (k2j / Jlama) for decode and prefill.
#
#   bench/peer/run-jlama-vs-k2j.sh [--model DIR] [--threads N] [--rounds R] [--prompt-tokens N]
#                                  [--gen-tokens M] [--dtypes "bf16 q4_0"] [--tokenizer DIR]
#
# Defaults: a synthetic qwen2.5-0.5b in models-synth/ (made with `./k2j synth` on first use; Jlama needs a
# tokenizer.json, so the Qwen tokenizer directory is copied in: --tokenizer, default testdata/
# qwen-tokenizer), 2 threads, 3 rounds, 512 prompt tokens, 128 generated.
#
# Dtypes both engines have: bf16 (both run the BF16 weights as they are) and q4_0 (k2j: every matrix Q4_0,
# lm_head included, written by `k2j quantize --head-quant q4_0` into DIR-k2j-q4_0-all; Jlama: its own Q4, blocks
# of 32 with an f32 scale, written by its quantizer into DIR-jlama-Q4). Jlama 0.8.4 has no 8-bit weights.
set -euo pipefail

ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODEL=""
THREADS=2
ROUNDS=3
PROMPT=512
GEN=128
DTYPES="bf16 q4_0"
TOKENIZER="$ROOT/testdata/qwen-tokenizer"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --prompt-tokens) PROMPT="$2"; shift 2 ;;
    --gen-tokens) GEN="$2"; shift 2 ;;
    --dtypes) DTYPES="$2"; shift 2 ;;
    --tokenizer) TOKENIZER="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$ROOT"
# A JDK 25+, as ./k2j and ./mvnw pick it (.mvn/jdk.sh).
. .mvn/jdk.sh && k2j_use_jdk "[peer]"
JDK="$JAVA_HOME"
JAVA="$JDK/bin/java"
echo "[peer] building k2j and bench/target/benchmarks.jar ..." >&2
./mvnw -q -B -DskipTests -pl cli,bench -am package >&2

if [ -z "$MODEL" ]; then
  MODEL="$ROOT/models-synth/qwen2.5-0.5b"
  if [ ! -f "$MODEL/config.json" ]; then
    [ -f "$TOKENIZER/tokenizer.json" ] || { echo "[peer] no tokenizer.json in $TOKENIZER (use --tokenizer DIR)" >&2; exit 1; }
    ./k2j synth --preset qwen2.5-0.5b --out "$MODEL" --tokenizer "$TOKENIZER" >&2
  fi
fi
[ -f "$MODEL/tokenizer.json" ] || { echo "[peer] $MODEL has no tokenizer.json, which Jlama needs" >&2; exit 1; }
MODEL="$(cd "$MODEL" && pwd)"

JFLAGS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx8g)
field() { sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT
for dtype in $DTYPES; do
  case "$dtype" in
    bf16) K2J_MODEL="$MODEL"; JLAMA_ARGS=() ;;
    q4_0)
      K2J_MODEL="$MODEL-k2j-q4_0-all"
      if [ ! -f "$K2J_MODEL/config.json" ]; then
        ./k2j quantize --model "$MODEL" --quant q4_0 --head-quant q4_0 --out "$K2J_MODEL" >&2
      fi
      JLAMA_ARGS=(--quant q4) ;;
    *) echo "[peer] dtype $dtype is not one both engines have (bf16, q4_0)" >&2; exit 2 ;;
  esac
  for r in $(seq 1 "$ROUNDS"); do
    echo "[peer] $dtype round $r/$ROUNDS: k2j" >&2
    k="$(./k2j bench --model "$K2J_MODEL" --threads "$THREADS" --prompt-tokens "$PROMPT" --gen-tokens "$GEN" --json)"
    echo "[peer] $dtype round $r/$ROUNDS: jlama" >&2
    j="$("$JAVA" "${JFLAGS[@]}" -cp bench/target/benchmarks.jar ai.k2j.bench.JlamaBench --model "$MODEL" \
          "${JLAMA_ARGS[@]}" --threads "$THREADS" --prompt-tokens "$PROMPT" --gen-tokens "$GEN" 2>/dev/null | tail -n 1)"
    kd="$(field decode_tokens_per_second <<<"$k")"; kp="$(field prefill_tokens_per_second <<<"$k")"
    jd="$(field decode_tokens_per_second <<<"$j")"; jp="$(field prefill_tokens_per_second <<<"$j")"
    echo "$dtype $r $kd $jd $kp $jp" >>"$RESULTS"
    awk -v d="$dtype" -v r="$r" -v kd="$kd" -v jd="$jd" -v kp="$kp" -v jp="$jp" 'BEGIN {
      printf "[peer] %s round %s: decode k2j %.2f / jlama %.2f tok/s = %.2fx; prefill k2j %.1f / jlama %.1f tok/s = %.2fx\n",
             d, r, kd, jd, kd / jd, kp, jp, kp / jp }' >&2
  done
done

echo
printf "k2j vs Jlama 0.8.4, %s threads, %s prompt + %s generated tokens, %s rounds (medians)\n" "$THREADS" "$PROMPT" "$GEN" "$ROUNDS"
printf "%-6s %12s %12s %8s %14s %14s %8s\n" dtype "k2j dec/s" "jlama dec/s" ratio "k2j prefill/s" "jlama prefill/s" ratio
for dtype in $DTYPES; do
  kd="$(awk -v d="$dtype" '$1 == d {print $3}' "$RESULTS" | median)"
  jd="$(awk -v d="$dtype" '$1 == d {print $4}' "$RESULTS" | median)"
  kp="$(awk -v d="$dtype" '$1 == d {print $5}' "$RESULTS" | median)"
  jp="$(awk -v d="$dtype" '$1 == d {print $6}' "$RESULTS" | median)"
  awk -v d="$dtype" -v kd="$kd" -v jd="$jd" -v kp="$kp" -v jp="$jp" 'BEGIN {
    printf "%-6s %12.2f %12.2f %7.2fx %14.1f %14.1f %7.2fx\n", d, kd, jd, kd / jd, kp, jp, kp / jp }'
done
