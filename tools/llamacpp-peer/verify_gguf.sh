#!/usr/bin/env bash
# k2j and llama.cpp on the SAME GGUF files: greedy agreement from two prompts.
#   verify_gguf.sh FILE.gguf... [K2J_DIR=. via env K2J]
# For each file: 16 greedy tokens from each prompt, k2j (`./k2j generate --model FILE.gguf`) vs llama.cpp
# (llama.mjs generate); prints the leading agreement and both id lists.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
K2J=${K2J:-.}
N=${N:-16}
for F in "$@"; do
  for IDS in 9707,1879,0,576,3974,13876,38835,11,220,16 151644,872,198,3838,374,279,6722,315,9625,30,151645,198,151644,77091,198; do
    k=$(cd "$K2J" && ./k2j generate --model "$F" --prompt-ids $IDS --max-tokens $N --temperature 0 --json --no-draft --threads 2 2>/dev/null \
        | python3 -c 'import json,sys; print(",".join(map(str,json.load(sys.stdin)["ids"])))')
    l=$(node "$HERE/llama.mjs" generate --model "$F" --prompt-ids $IDS --max-tokens $N \
        | python3 -c 'import json,sys; print(",".join(map(str,json.load(sys.stdin)["ids"])))')
    n=$(python3 -c "a='$k'.split(',');b='$l'.split(',');n=0
while n<min(len(a),len(b)) and a[n]==b[n]: n+=1
print(n)")
    echo "$(basename $F) prompt=${IDS:0:20}...: leading agreement $n/$N"
    echo "  k2j:       $k"; echo "  llama.cpp: $l"
  done
done
