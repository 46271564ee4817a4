#!/usr/bin/env bash
# Builds build/gpu-bundle/ (git-ignored): everything the GPU machine needs to run k2j's CUDA tests and smoke check
# without Java, Maven or network there:
#   runtime/       jlinked JDK 25 (java.base, jdk.incubator.vector, jdk.unsupported, java.logging, java.management)
#   lib/           the project's jars and their runtime dependencies (LWJGL, Jackson, ...)
#   test-classes/  compiled tests (and test resources) of every module that has @Tag("gpu") tests
#   junit/         junit-platform-console-standalone.jar (from Maven Central)
#   natives/       liblwjgl.so, so LWJGL does not extract it at run time
#   cubin/         nvcc-built CUBINs for sm_90, loaded only if NVRTC fails there (a test reports that as a failure)
# and packs it as .gpucarry/gpu-bundle.tgz (git-ignored, at most K2J_BUNDLE_LIMIT_MB = 31 MB: it travels with the
# ~31 MB repo under a 64 MiB limit). Test resources that the repo already holds (golden fixtures) are left out:
# the tests read them from the repo (-Dk2j.repoRoot).
# Run it HERE (the dev machine), from anywhere:  tools/gpu/make-bundle.sh
# Then on the GPU machine, from the repo root (carry [".gpucarry"]):
#   mkdir -p build && tar xzf .gpucarry/gpu-bundle.tgz -C build
#   bash tools/gpu/run-gpu-tests.sh   /   bash tools/gpu/smoke.sh   /   bash tools/gpu/bench-gpu.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
[[ -x "$JAVA_HOME/bin/jlink" ]] || { echo "make-bundle: no jlink in JAVA_HOME=$JAVA_HOME (need JDK 25)" >&2; exit 1; }
"$JAVA_HOME/bin/java" -version 2>&1 | grep -q 'version "25' || { echo "make-bundle: JAVA_HOME must be a JDK 25" >&2; exit 1; }

B=build/gpu-bundle
TGZ=.gpucarry/gpu-bundle.tgz
LIMIT_MB=${K2J_BUNDLE_LIMIT_MB:-31}
MODULES_JLINK=java.base,jdk.incubator.vector,jdk.unsupported,java.logging,java.management
ARCHS=${K2J_PREBUILT_ARCHS:-90}

# modules whose tests run on the GPU (kernels always: it holds the CUDA backend)
mapfile -t GPU_MODULES < <( { echo kernels; grep -rl '@Tag("gpu")' --include='*.java' ./*/src/test 2>/dev/null \
    | sed -E 's#^\./([^/]+)/.*#\1#'; } | sort -u)
PL=$(IFS=,; echo "${GPU_MODULES[*]}")
echo "make-bundle: modules with GPU tests: $PL"

rm -rf "$B"
mkdir -p "$B"/{lib,test-classes,junit,natives,cubin}

echo "make-bundle: building (tests compiled, not run)"
./mvnw -q -B -pl "$PL,cli" -am -DskipTests package dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$ROOT/$B/lib"
for m in loaders tokenizer kernels engine scaffold server planner cli bench; do
    for jar in "$m"/target/k2j-"$m"-*.jar; do
        [[ -f "$jar" && "$jar" != *-tests.jar && "$jar" != *-sources.jar ]] && cp "$jar" "$B/lib/"
    done
done
# the GPU diagnostics (smoke check, op benchmark, DecodeBench) live in the bench module; only they are compiled for
# the bundle
# (the bench module's JMH and Jlama dependencies stay out)
diag=$(mktemp -d)
"$JAVA_HOME/bin/javac" -nowarn -d "$diag" -cp "$(ls "$B"/lib/*.jar | tr '\n' ':')" bench/src/main/java/ai/k2j/bench/cuda/*.java \
    bench/src/main/java/ai/k2j/bench/DecodeBench.java
"$JAVA_HOME/bin/jar" cf "$B/lib/k2j-bench-cuda.jar" -C "$diag" .
rm -rf "$diag"
for m in "${GPU_MODULES[@]}"; do
    [[ -d "$m/target/test-classes" ]] && cp -r "$m/target/test-classes/." "$B/test-classes/"
    # resources the repo carries anyway (tests find them through k2j.repoRoot)
    if [[ -d "$m/src/test/resources" ]]; then
        for r in "$m"/src/test/resources/*; do
            [[ -e "$r" ]] && rm -rf "$B/test-classes/$(basename "$r")"
        done
    fi
done

JUNIT=$(sed -n 's#.*<junit.version>\(.*\)</junit.version>.*#\1#p' pom.xml | head -1)
case "$JUNIT" in
    5.*) PLATFORM="1.${JUNIT#5.}" ;;
    *) PLATFORM="$JUNIT" ;;
esac
echo "make-bundle: junit-platform-console-standalone $PLATFORM (JUnit $JUNIT)"
./mvnw -q -B -N dependency:copy -Dartifact="org.junit.platform:junit-platform-console-standalone:$PLATFORM" \
    -DoutputDirectory="$ROOT/$B/junit" -Dmdep.stripVersion=true
[[ -f "$B/junit/junit-platform-console-standalone.jar" ]] || { echo "make-bundle: console launcher missing" >&2; exit 1; }

NATIVES_JAR=$(ls "$B"/lib/lwjgl-*-natives-linux.jar | head -1)
( cd "$B/natives" && "$JAVA_HOME/bin/jar" xf "$ROOT/$NATIVES_JAR" linux/x64/org/lwjgl/liblwjgl.so \
    && mv linux/x64/org/lwjgl/liblwjgl.so . && rm -rf linux )

if command -v nvcc >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    for src in native/*.cu; do
        name=$(basename "$src" .cu)
        python3 - "$src" native/common.cuh "$tmp/$name.cu" <<'EOF'
import sys
src, header, out = sys.argv[1:4]
text = open(src).read().replace('#include "common.cuh"', open(header).read())
open(out, 'w').write(text)
EOF
        for arch in $ARCHS; do
            nvcc -arch="sm_$arch" -std=c++17 --cubin -o "$B/cubin/$name-sm_$arch.cubin" "$tmp/$name.cu"
        done
    done
    rm -rf "$tmp"
else
    echo "make-bundle: no nvcc here, no prebuilt CUBINs (NVRTC must work there)"
fi

echo "make-bundle: jlink $MODULES_JLINK"
# no --compress: gzip of the whole tgz packs an uncompressed jimage smaller (~20 MB) than zip-9 inside (~24 MB)
"$JAVA_HOME/bin/jlink" --add-modules "$MODULES_JLINK" --strip-debug --no-header-files --no-man-pages \
    --output "$B/runtime"

{
    echo "k2j GPU bundle"
    echo "built:  $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "java:   $("$B/runtime/bin/java" -version 2>&1 | head -1)"
    echo "junit:  console standalone $PLATFORM"
    echo "modules with GPU tests: $PL"
    echo "jars:"; ls "$B/lib" | sed 's/^/  /'
    echo "cubins:"; ls "$B/cubin" | sed 's/^/  /'
} > "$B/MANIFEST.txt"

du -sh "$B"/* | sed 's/^/  /'
mkdir -p "$(dirname "$TGZ")"
rm -f "$TGZ"
tar -C "$(dirname "$B")" -cf - "$(basename "$B")" | gzip -9 > "$TGZ"
SIZE=$(stat -c %s "$TGZ")
echo "make-bundle: $TGZ is $((SIZE / 1048576)) MiB ($SIZE bytes; limit ${LIMIT_MB} MB)"
if (( SIZE > LIMIT_MB * 1000000 )); then
    echo "make-bundle: $TGZ exceeds ${LIMIT_MB} MB" >&2
    exit 1
fi
echo "make-bundle: done. On the GPU machine, from the repo root, carrying [\".gpucarry\"]:"
echo "  mkdir -p build && tar xzf $TGZ -C build && bash tools/gpu/run-gpu-tests.sh"
