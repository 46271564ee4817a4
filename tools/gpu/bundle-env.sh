# Sourced by run-gpu-tests.sh and smoke.sh: locates the bundle, its Java, the CUDA libraries, and sets
#   JAVA       the bundle's java
#   CP         class path of the bundle's jars (lib/*.jar)
#   JAVA_FLAGS array of JVM flags (modules, native access, library paths for LWJGL/cuBLAS, caches)
#   LOG_DIR    where logs go ($OUT when set, else build/gpu-bundle/logs)
# Overrides: K2J_BUNDLE, K2J_CUDA_LIBCUDA, K2J_CUDA_TOOLKIT_LIB, K2J_CUDA_CACHE.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${K2J_BUNDLE:-$ROOT/build/gpu-bundle}
if [[ ! -x "$B/runtime/bin/java" ]]; then
    echo "k2j: no bundle at $B (run tools/gpu/make-bundle.sh on the dev machine, carry .gpucarry and: mkdir -p build && tar xzf .gpucarry/gpu-bundle.tgz -C build)" >&2
    exit 3
fi
JAVA="$B/runtime/bin/java"
CP=$(ls "$B"/lib/*.jar | tr '\n' ':')
CP=${CP%:}
LOG_DIR=${OUT:-$B/logs}
mkdir -p "$LOG_DIR"

first_file() {  # first existing regular file among the arguments
    for f in "$@"; do
        [[ -f "$f" ]] && { echo "$f"; return 0; }
    done
    return 1
}

LIBCUDA=${K2J_CUDA_LIBCUDA:-$(first_file /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/lib64/libcuda.so.1 \
    /usr/lib/libcuda.so.1 /usr/lib/wsl/lib/libcuda.so.1 || true)}

TOOLKIT_LIB=${K2J_CUDA_TOOLKIT_LIB:-}
if [[ -z "$TOOLKIT_LIB" ]]; then
    for d in ${CUDA_HOME:+$CUDA_HOME/targets/x86_64-linux/lib} /usr/local/cuda/targets/x86_64-linux/lib \
             $(ls -d /usr/local/cuda-*/targets/x86_64-linux/lib 2>/dev/null | sort -rV) /usr/lib/x86_64-linux-gnu; do
        if ls "$d"/libnvrtc.so.* >/dev/null 2>&1; then
            TOOLKIT_LIB=$d
            break
        fi
    done
fi
NVRTC=""; BUILTINS=""; CUBLAS=""
if [[ -n "$TOOLKIT_LIB" ]]; then
    NVRTC=$(ls "$TOOLKIT_LIB"/libnvrtc.so.* 2>/dev/null | grep -E 'libnvrtc\.so\.[0-9]+$' | sort -V | tail -1)
    BUILTINS=$(ls "$TOOLKIT_LIB"/libnvrtc-builtins.so.* 2>/dev/null | sort -V | tail -1)
    CUBLAS=$(ls "$TOOLKIT_LIB"/libcublas.so.* 2>/dev/null | grep -E 'libcublas\.so\.[0-9]+$' | sort -V | tail -1)
fi

JAVA_FLAGS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED
    --sun-misc-unsafe-memory-access=allow -Xss4m --add-opens jdk.httpserver/sun.net.httpserver=ALL-UNNAMED
    -Dorg.lwjgl.librarypath="$B/natives"
    -Dk2j.cuda.prebuiltDir="$B/cubin"
    -Dk2j.cuda.cacheDir="${K2J_CUDA_CACHE:-$HOME/.cache/k2j/cuda}"
    -Dk2j.repoRoot="$ROOT")
[[ -n "$LIBCUDA" ]] && JAVA_FLAGS+=(-Dorg.lwjgl.cuda.libname="$LIBCUDA")
[[ -n "$NVRTC" ]] && JAVA_FLAGS+=(-Dorg.lwjgl.cuda.nvrtc.libname="$NVRTC")
[[ -n "$BUILTINS" ]] && JAVA_FLAGS+=(-Dorg.lwjgl.cuda.nvrtc-builtins.libname="$BUILTINS")
[[ -n "$CUBLAS" ]] && JAVA_FLAGS+=(-Dk2j.cuda.cublas="$CUBLAS")

echo "k2j: bundle $B ($(sed -n 2p "$B/MANIFEST.txt" 2>/dev/null))"
echo "k2j: libcuda=${LIBCUDA:-?} nvrtc=${NVRTC:-?} builtins=${BUILTINS:-?} cublas=${CUBLAS:-?}"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/k2j: gpu /'
fi
