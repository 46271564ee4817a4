#!/usr/bin/env bash
# Builds the cli and bench modules, then runs the server load generator (ai.k2j.bench.load.LoadGenerator):
#   bench/load.sh --model models/demo/target [--draft models/demo/draft] [--concurrency 1,4,16] [--requests 3]
#                 [--max-tokens 64] [--backend cpu] [--threads N] [--ctx N] [--json out.json]
#   bench/load.sh --url http://127.0.0.1:8000 --model-id NAME ...      (against a running ./k2j serve)
set -euo pipefail
ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. .mvn/jdk.sh && k2j_use_jdk bench/load.sh   # a JDK 25+, as ./k2j and ./mvnw pick it
rm -rf cli/target/lib   # the cli's package phase copies its runtime dependencies here, afresh
./mvnw -q -B -pl bench,cli -am package -DskipTests >&2
CLI_JAR="$(ls cli/target/k2j-cli-*.jar | grep -v -e '-sources' -e '-tests' | head -n 1)"
exec "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  --add-opens jdk.httpserver/sun.net.httpserver=ALL-UNNAMED \
  --sun-misc-unsafe-memory-access=allow -XX:+UseParallelGC ${K2J_JAVA_OPTS:-} \
  -cp "bench/target/classes:$CLI_JAR:cli/target/lib/*" ai.k2j.bench.load.LoadGenerator "$@"
