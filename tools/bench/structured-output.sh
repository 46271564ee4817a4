#!/usr/bin/env bash
# Decode speed with and without constrained decoding: starts `k2j serve` on MODEL (default: the demo target, no
# draft), sends the same greedy chat request N times plain, with response_format json_schema, and with a forced
# tool call, and prints completion tokens per second of wall time for each (one request at a time).
#   tools/bench/structured-output.sh [MODEL_DIR] [MAX_TOKENS] [N]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODEL="${1:-$ROOT/models/demo/target}"
MAX="${2:-128}"
N="${3:-3}"
PORT=18019
"$ROOT/k2j" serve --model "$MODEL" --draft none --port "$PORT" --served-model-name m --ctx 1024 >/tmp/k2j-bench-serve.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 1; done
SCHEMA='{"type":"object","properties":{"name":{"type":"string","maxLength":24},"kind":{"enum":["cat","dog","bird"]},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":4},"indoor":{"type":"boolean"}},"required":["name","kind","age","tags","indoor"],"additionalProperties":false}'
TOOLS='[{"type":"function","function":{"name":"add","parameters":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]}}}]'
run() { # label, extra JSON fields
  local total_tokens=0 total_ms=0
  for _ in $(seq 1 "$N"); do
    local t0 t1 out
    t0=$(date +%s%N)
    out=$(curl -s "http://127.0.0.1:$PORT/v1/chat/completions" -H 'Content-Type: application/json' -d \
      "{\"messages\":[{\"role\":\"user\",\"content\":\"Describe a pet as JSON.\"}],\"temperature\":0,\"max_tokens\":$MAX,\"ignore_eos\":false$2}")
    t1=$(date +%s%N)
    total_tokens=$((total_tokens + $(echo "$out" | python3 -c 'import json,sys;print(json.load(sys.stdin)["usage"]["completion_tokens"])')))
    total_ms=$((total_ms + (t1 - t0) / 1000000))
  done
  echo "$1: $total_tokens tokens in $total_ms ms: $(python3 -c "print(round($total_tokens*1000/$total_ms,1))") tok/s (incl. prefill and HTTP)"
}
run "plain      " ""
run "json_schema" ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"pet\",\"schema\":$SCHEMA}}"
run "json_object" ",\"response_format\":{\"type\":\"json_object\"}"
run "tool call  " ",\"tools\":$TOOLS,\"tool_choice\":\"required\""
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo)"
