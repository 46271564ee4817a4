#!/usr/bin/env bash
# Peer comparison: k2j vs Jlama 0.8.4 (Maven Central) on the same model directory, same thread count, decode
# tok/s, alternating the two engines for R rounds, then a table and the median ratio k2j/Jlama.
#
#   bench/peer/run-jlama-vs-k2j.sh MODEL_DIR [--threads N] [--tokens M] [--rounds R] [--json-out FILE]
#       [--prompt TEXT] [--jlama-ops panama|native|both] [--jlama-working F32|BF16] [--jlama-quant none|I8|Q4]
#       [--k2j-weights keep|f32]
#
# Defaults: 2 threads, 64 tokens, 3 rounds, Jlama with both its pure-Java (Panama) and native SIMD operations,
# Jlama working memory F32, no weight quantization (BF16 checkpoint weights used as stored by both engines).
# Each engine runs in its own JVM per round: load, one warm-up generation, one timed greedy generation; decode
# tok/s = (tokens - 1) / time from the first to the last token (prefill excluded), the same for both.
# Needs: a JDK 25+ (JAVA_HOME or /usr/lib/jvm/temurin-25-jdk-amd64), Maven Central reachable on first run,
# python3 (table and JSON). Fetched jars and compiled classes go to bench/peer/target (git-ignored).
set -euo pipefail

HERE="$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
MODEL="$1"; shift
[ "$MODEL" = "-h" ] || [ "$MODEL" = "--help" ] && usage
THREADS=2 TOKENS=64 ROUNDS=3 JSON_OUT="" OPS=both WORKING=F32 QUANT=none K2J_WEIGHTS=keep
PROMPT="The history of the city begins with a small settlement on the river, where traders"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --tokens) TOKENS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --json-out) JSON_OUT="$2"; shift 2 ;;
    --prompt) PROMPT="$2"; shift 2 ;;
    --jlama-ops) OPS="$2"; shift 2 ;;
    --jlama-working) WORKING="$2"; shift 2 ;;
    --jlama-quant) QUANT="$2"; shift 2 ;;
    --k2j-weights) K2J_WEIGHTS="$2"; shift 2 ;;
    *) echo "unknown flag: $1" >&2; usage ;;
  esac
done
[ -f "$MODEL/config.json" ] || { echo "no config.json in $MODEL" >&2; exit 2; }
[ -f "$MODEL/tokenizer.json" ] || { echo "no tokenizer.json in $MODEL (Jlama needs it)" >&2; exit 2; }
MODEL="$(cd "$MODEL" && pwd)"
case "$OPS" in panama) VARIANTS=(panama) ;; native) VARIANTS=(native) ;; both) VARIANTS=(panama native) ;;
  *) echo "--jlama-ops must be panama, native or both" >&2; exit 2 ;; esac

if [ -z "${JAVA_HOME:-}" ] || [ ! -x "$JAVA_HOME/bin/javac" ]; then export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64; fi
JAVA="$JAVA_HOME/bin/java"
"$JAVA" -version 2>&1 | grep -q 'version "2[5-9]' || { echo "needs JDK 25+ (JAVA_HOME=$JAVA_HOME)" >&2; exit 1; }

# ---- Jlama jars (jlama-core and its runtime deps; the native helper separately, so it can be left off)
T="$HERE/target"
if [ ! -f "$T/lib/jlama-core-0.8.4.jar" ]; then
  echo "fetching Jlama 0.8.4 from Maven Central ..." >&2
  (cd "$ROOT" && ./mvnw -q -B -f bench/peer/pom.xml dependency:copy-dependencies \
      -DoutputDirectory=target/lib -DincludeScope=runtime) >&2
fi
if [ ! -f "$T/native/jlama-native-0.8.4-linux-x86_64.jar" ]; then
  (cd "$ROOT" && ./mvnw -q -B -f bench/peer/pom.xml dependency:copy \
      -Dartifact=com.github.tjake:jlama-native:0.8.4:jar:linux-x86_64 -DoutputDirectory=target/native) >&2
fi

# ---- k2j engine (the launcher builds it when sources changed), then both drivers
"$ROOT/k2j" --help >/dev/null
ENGINE_JAR="$(ls "$ROOT"/engine/target/k2j-engine-*.jar | grep -v -E 'sources|javadoc|tests' | head -n 1)"
K2J_CP="$ENGINE_JAR:$ROOT/engine/target/lib/*"
mkdir -p "$T/classes"
"$JAVA_HOME/bin/javac" -nowarn -XDsuppressNotes --add-modules jdk.incubator.vector -d "$T/classes" \
    -cp "$T/lib/*" "$HERE/src/JlamaDecode.java" 2>&1 | grep -v -E 'incubat|^1 warning' >&2 || true
"$JAVA_HOME/bin/javac" -nowarn -XDsuppressNotes --add-modules jdk.incubator.vector -d "$T/classes" \
    -cp "$K2J_CP" "$HERE/src/K2jDecode.java" 2>&1 | grep -v -E 'incubat|^1 warning' >&2 || true

FLAGS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow)
run_k2j() {
  "$JAVA" "${FLAGS[@]}" -XX:+UseParallelGC -Xss4m -Dk2j.home="$ROOT" -cp "$K2J_CP:$T/classes" \
      K2jDecode "$MODEL" "$THREADS" "$TOKENS" "$K2J_WEIGHTS" "$PROMPT" 2>"$T/k2j.err" | tail -n 1
}
run_jlama() {  # $1 = panama | native
  local cp="$T/lib/*:$T/classes"
  [ "$1" = native ] && cp="$cp:$T/native/jlama-native-0.8.4-linux-x86_64.jar"
  "$JAVA" "${FLAGS[@]}" -cp "$cp" JlamaDecode "$MODEL" "$THREADS" "$TOKENS" "$WORKING" "$QUANT" "$PROMPT" \
      2>"$T/jlama-$1.err" | tail -n 1
}

RESULTS="$T/results.jsonl"
: > "$RESULTS"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS: k2j ..." >&2
  line="$(run_k2j)" || { echo "k2j failed, see $T/k2j.err" >&2; cat "$T/k2j.err" >&2; exit 1; }
  echo "{\"round\":$r,\"variant\":\"k2j\",\"result\":$line}" >> "$RESULTS"
  for v in "${VARIANTS[@]}"; do
    echo "round $r/$ROUNDS: jlama ($v) ..." >&2
    line="$(run_jlama "$v")" || { echo "jlama failed, see $T/jlama-$v.err" >&2; cat "$T/jlama-$v.err" >&2; exit 1; }
    echo "{\"round\":$r,\"variant\":\"jlama-$v\",\"result\":$line}" >> "$RESULTS"
  done
done

python3 - "$RESULTS" "$JSON_OUT" "$MODEL" "$THREADS" "$TOKENS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out, model, threads, tokens = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
variants = list(dict.fromkeys(r["variant"] for r in rows))
rounds = sorted({r["round"] for r in rows})
tps = {(r["round"], r["variant"]): r["result"]["decode_tokens_per_second"] for r in rows}
tps_text = {(r["round"], r["variant"]): r["result"].get("text") for r in rows}
print(f"model {model} | threads {threads} | {tokens} tokens greedy | decode tok/s per round (warm JVM)")
print("round  " + "  ".join(f"{v:>14}" for v in variants) + "".join(f"  {'k2j/' + v:>20}" for v in variants[1:]))
ratios = {v: [] for v in variants[1:]}
for n in rounds:
    cells = [tps[(n, v)] for v in variants]
    rs = [tps[(n, "k2j")] / tps[(n, v)] for v in variants[1:]]
    for v, x in zip(variants[1:], rs):
        ratios[v].append(x)
    print(f"{n:>5}  " + "  ".join(f"{c:>14.2f}" for c in cells) + "".join(f"  {x:>19.2f}x" for x in rs))
med = {v: statistics.median(tps[(n, v)] for n in rounds) for v in variants}
print("median " + "  ".join(f"{med[v]:>14.2f}" for v in variants)
      + "".join(f"  {statistics.median(ratios[v]):>19.2f}x" for v in variants[1:]))
jl = [r["result"] for r in rows if r["variant"] != "k2j"]
for v in variants[1:]:
    j = next(r["result"] for r in rows if r["variant"] == v)
    print(f"{v}: operations '{j['tensor_operations']}', weights {j['model_dtype']} (quantized: {j['model_quant']}), "
          f"working memory {j['working_dtype']}, activations quantized to {j['working_quant_dtype']} for matmuls")
k = next(r["result"] for r in rows if r["variant"] == "k2j")
print(f"k2j: weights {k['weights']} (checkpoint dtype unless f32), f32 activations")
same = {v: all(r["result"].get("text") == tps_text[(r["round"], "k2j")] for r in rows if r["variant"] == v)
        for v in variants[1:]}
for v in variants[1:]:
    verdict = "same as k2j's in every round" if same[v] else "differs from k2j's in some round"
    print(f"greedy text of {v}: {verdict}"
          + ("" if same[v] else " (Jlama computes a different function on this model: see bench/peer/README.md, Caveats)"))
if out:
    summary = {"model": model, "threads": threads, "tokens": tokens,
               "median_decode_tokens_per_second": med,
               "median_ratio_k2j_over": {v: statistics.median(ratios[v]) for v in variants[1:]},
               "same_greedy_text_as_k2j": same,
               "runs": rows}
    with open(out, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wrote {out}")
PY
