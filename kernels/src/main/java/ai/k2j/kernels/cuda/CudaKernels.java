package ai.k2j.kernels.cuda;

import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.DType;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * The k2j CUDA kernels (native/*.cu, on the class path as ai/k2j/kernels/cuda/*.cu): compiled by NVRTC for the
 * device's architecture once, cached as CUBIN under {@code ~/.cache/k2j/cuda} (or {@code -Dk2j.cuda.cacheDir},
 * {@code K2J_CUDA_CACHE}; the temp folder when neither is writable), keyed by a hash of source, options, NVRTC
 * version and architecture. When NVRTC fails and an nvcc-built CUBIN for the architecture is provided
 * ({@code -Dk2j.cuda.prebuiltDir}), that is loaded instead and the failure is reported. Holds the CUfunction handles.
 */
final class CudaKernels implements AutoCloseable {

    static final String[] SOURCES = {"gemv", "ops", "attention", "sample", "prefill"};
    private static final String RESOURCE_DIR = "/ai/k2j/kernels/cuda/";
    private static final String INCLUDE_LINE = "#include \"common.cuh\"";

    /** Device dtype codes (native/common.cuh DT_*). */
    static int code(DType t) {
        return switch (t) {
            case F32 -> 0;
            case F16 -> 1;
            case BF16 -> 2;
            case Q8_0 -> 3;
            case Q4_0 -> 4;
            default -> throw new IllegalArgumentException("no CUDA kernels for dtype " + t);
        };
    }

    /** Device KV cache type codes (native/common.cuh KV_*). */
    static int kvCode(KvPrecision p) {
        return switch (p) {
            case F32 -> 0;
            case BF16 -> 1;
            case FP8_E4M3 -> 2;
        };
    }

    /** Values per 16-byte chunk of the fast GEMV (cols must be a multiple for the fast path). */
    static int chunkElements(DType t) {
        return switch (t) {
            case F32 -> 4;
            case F16, BF16 -> 8;
            case Q8_0 -> 16;
            case Q4_0 -> 32;
            default -> throw new IllegalArgumentException("no CUDA kernels for dtype " + t);
        };
    }

    private final CudaDriver driver;
    private final List<Long> modules = new ArrayList<>();
    private final StringBuilder report = new StringBuilder();
    private String nvrtcFailure;

    /** gemv[dtypeCode][w][n], n in 1..8: one row per group of 1 (w = 0) or 4 (w = 1) warps */
    final long[][][] gemv = new long[5][2][9];
    /** gemvR4[dtypeCode][w][n]: four rows per group */
    final long[][][] gemvR4 = new long[5][2][9];
    /** gemvSilu[dtypeCode][w][n]: gate and up row per group, silu(gate) * up written too */
    final long[][][] gemvSilu = new long[5][2][9];
    final long gemvGeneric;
    final long dequantF32;
    final long f32ToBf16;
    final long addBias;
    final long embed;
    final long rmsnorm;
    final long addRmsnorm;
    final long rmsnormHeads;
    final long gatherRowsIdx;
    final long scatterAddRows;
    final long headMatmul;
    final long latentAttention;
    final long rope;
    final long siluMul;
    final long add;
    final long gatherRows;
    final long storeKv;
    final long ropeStoreKv;
    final long storeKvBf16;
    final long ropeStoreKvBf16;
    final long storeKvFp8;
    final long argmax;
    final long argmaxSlices;
    final long argmaxMerge;
    /**
     * attention[kv][i] serves groups of up to 1 << i query heads per kv head (i = 0..4) over a cache of KV type
     * {@link #kvCode kv}.
     */
    final long[][] attention = new long[3][5];
    final long attentionCombine;
    final long attentionTree;
    /**
     * attentionDec[kv][i][j]: the decode kernel for a cache of KV type kv, head dim 32 << i (i = 0..3) and groups of
     * up to 1 << j query heads (0 where the kernel does not exist: (1 << j) * (1 << i) must be at most 32).
     */
    final long[][][] attentionDec = new long[3][4][5];
    final long topkSlices;
    final long sampleTopk;
    final long sampleFull;
    /**
     * flashPrefill[i]: the tensor-core prefill attention for head dim 16 << i (i = 0..3), {@code native/prefill.cu}.
     */
    final long[] flashPrefill = new long[4];
    final long dequantBf16;

    CudaKernels(CudaDriver driver) {
        this.driver = driver;
        long gemvModule = load("gemv");
        String[] prefixes = {"gemv_f32", "gemv_f16", "gemv_bf16", "gemv_q8_0", "gemv_q4_0"};
        for (int dt = 0; dt < 5; dt++) {
            for (int w = 0; w < 2; w++) {
                String wpr = w == 0 ? "_w1_" : "_w4_";
                for (int n = 1; n <= 8; n++) {
                    gemv[dt][w][n] = driver.function(gemvModule, prefixes[dt] + wpr + n);
                    gemvR4[dt][w][n] = driver.function(gemvModule, prefixes[dt] + "_r4" + wpr + n);
                    gemvSilu[dt][w][n] = driver.function(gemvModule, prefixes[dt] + "_silu" + wpr + n);
                }
            }
        }
        gemvGeneric = driver.function(gemvModule, "gemv_generic");
        dequantF32 = driver.function(gemvModule, "dequant_f32");
        f32ToBf16 = driver.function(gemvModule, "f32_to_bf16_kernel");
        addBias = driver.function(gemvModule, "add_bias");

        long ops = load("ops");
        embed = driver.function(ops, "embed");
        rmsnorm = driver.function(ops, "rmsnorm");
        addRmsnorm = driver.function(ops, "add_rmsnorm");
        rmsnormHeads = driver.function(ops, "rmsnorm_heads");
        gatherRowsIdx = driver.function(ops, "gather_rows_idx");
        scatterAddRows = driver.function(ops, "scatter_add_rows");
        headMatmul = driver.function(ops, "head_matmul");
        latentAttention = driver.function(ops, "latent_attention");
        rope = driver.function(ops, "rope");
        siluMul = driver.function(ops, "silu_mul");
        add = driver.function(ops, "add_inplace");
        gatherRows = driver.function(ops, "gather_rows");
        storeKv = driver.function(ops, "store_kv");
        ropeStoreKv = driver.function(ops, "rope_store_kv");
        storeKvBf16 = driver.function(ops, "store_kv_bf16");
        ropeStoreKvBf16 = driver.function(ops, "rope_store_kv_bf16");
        storeKvFp8 = driver.function(ops, "store_kv_fp8");
        argmax = driver.function(ops, "argmax_rows");
        argmaxSlices = driver.function(ops, "argmax_slices");
        argmaxMerge = driver.function(ops, "argmax_merge");

        long att = load("attention");
        String[] kvSuffix = {"", "_bf16", "_fp8"};
        for (int kv = 0; kv < 3; kv++) {
            for (int i = 0; i < 5; i++) {
                attention[kv][i] = driver.function(att, "attention_g" + (1 << i) + kvSuffix[kv]);
            }
            for (int i = 0; i < 4; i++) {
                for (int j = 0; j < 5; j++) {
                    if ((1 << i) * (1 << j) <= 32) {
                        attentionDec[kv][i][j] = driver.function(att, "attention_dec_g" + (1 << j) + "_d" + (1 << i)
                                + kvSuffix[kv]);
                    }
                }
            }
        }
        attentionCombine = driver.function(att, "attention_combine");
        attentionTree = driver.function(att, "attention_tree");

        long sample = load("sample");
        topkSlices = driver.function(sample, "topk_slices");
        sampleTopk = driver.function(sample, "sample_topk");
        sampleFull = driver.function(sample, "sample_full");

        long prefill = load("prefill");
        for (int i = 0; i < 4; i++) {
            flashPrefill[i] = driver.function(prefill, "flash_prefill_d" + (16 << i));
        }
        dequantBf16 = driver.function(prefill, "dequant_bf16");
    }

    /** NVRTC's error when a prebuilt CUBIN had to stand in for it, else null. */
    String nvrtcFailure() {
        return nvrtcFailure;
    }

    /**
     * An nvcc-built CUBIN for this architecture ({@code <dir>/<name>-sm_XY.cubin}, dir from
     * {@code -Dk2j.cuda.prebuiltDir} or {@code K2J_CUDA_PREBUILT}), used only when NVRTC fails.
     */
    private Path prebuilt(String name) {
        String dir = System.getProperty("k2j.cuda.prebuiltDir");
        if (dir == null || dir.isBlank()) {
            dir = System.getenv("K2J_CUDA_PREBUILT");
        }
        if (dir == null || dir.isBlank()) {
            return null;
        }
        Path p = Path.of(dir, name + "-" + driver.architecture() + ".cubin");
        return Files.isRegularFile(p) ? p : null;
    }

    /** One line per source: cache hit or compile time. */
    String report() {
        return report.toString();
    }

    private List<String> options() {
        return List.of("--gpu-architecture=" + driver.architecture(), "--std=c++17", "-lineinfo");
    }

    private long load(String name) {
        String source = source(name);
        List<String> options = options();
        Path cacheFile = cacheFile(name, source, options);
        if (cacheFile != null && Files.isRegularFile(cacheFile)) {
            try {
                byte[] image = Files.readAllBytes(cacheFile);
                long module = driver.loadModule(image, name + " (cached " + cacheFile + ")");
                modules.add(module);
                report.append(name).append(": cached ").append(cacheFile).append('\n');
                return module;
            } catch (IOException | CudaException e) {
                // corrupt or stale cache entry: recompile below
                try {
                    Files.deleteIfExists(cacheFile);
                } catch (IOException ignored) {
                    // best effort
                }
            }
        }
        // a cold compile takes up to a minute (gemv.cu: 240 instantiations); say so instead of looking hung
        System.getLogger(CudaKernels.class.getName()).log(System.Logger.Level.INFO, "compiling " + name
                + ".cu with NVRTC for " + driver.architecture() + (cacheFile == null ? " (no cache directory)"
                : " (once per machine and source version; cached in " + cacheFile.getParent() + ")"));
        long t0 = System.nanoTime();
        byte[] image;
        try {
            image = driver.compile(source, name + ".cu", options);
        } catch (CudaException e) {
            Path prebuilt = prebuilt(name);
            if (prebuilt == null) {
                throw e;
            }
            nvrtcFailure = (nvrtcFailure == null ? "" : nvrtcFailure + "\n") + e.getMessage();
            try {
                long module = driver.loadModule(Files.readAllBytes(prebuilt), name + " (prebuilt " + prebuilt + ")");
                modules.add(module);
                report.append(name).append(": NVRTC FAILED (").append(e.getMessage().lines().findFirst().orElse(""))
                        .append("); using prebuilt ").append(prebuilt).append('\n');
                return module;
            } catch (IOException io) {
                e.addSuppressed(io);
                throw e;
            }
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        long module = driver.loadModule(image, name);
        modules.add(module);
        report.append(name).append(": compiled by NVRTC ").append(driver.nvrtcVersion()).append(" for ")
                .append(driver.architecture()).append(" in ").append(ms).append(" ms");
        if (cacheFile != null) {
            try {
                Files.createDirectories(cacheFile.getParent());
                Path tmp = Files.createTempFile(cacheFile.getParent(), name, ".tmp");
                Files.write(tmp, image);
                try {
                    Files.move(tmp, cacheFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(tmp, cacheFile, StandardCopyOption.REPLACE_EXISTING);
                }
                report.append(", cached as ").append(cacheFile);
            } catch (IOException | RuntimeException e) {
                report.append(", not cached (").append(e.getMessage()).append(')');
            }
        }
        report.append('\n');
        return module;
    }

    /** The source with common.cuh pasted in place of its #include line. */
    static String source(String name) {
        String text = resource(name + ".cu");
        if (!text.contains(INCLUDE_LINE)) {
            return text;
        }
        return text.replace(INCLUDE_LINE, "// ---- common.cuh ----\n" + resource("common.cuh") + "\n// ---- " + name
                + ".cu ----");
    }

    private static String resource(String file) {
        String dir = System.getProperty("k2j.cuda.sourceDir");
        if (dir != null && !dir.isBlank()) {
            try {
                return Files.readString(Path.of(dir, file));
            } catch (IOException e) {
                throw new CudaException("cannot read kernel source " + Path.of(dir, file) + " (-Dk2j.cuda.sourceDir): "
                        + e, e);
            }
        }
        try (InputStream in = CudaKernels.class.getResourceAsStream(RESOURCE_DIR + file)) {
            if (in == null) {
                throw new CudaException("kernel source " + RESOURCE_DIR + file + " is not on the class path (the"
                        + " kernels jar is built with native/ as a resource folder; or set -Dk2j.cuda.sourceDir)", -1);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new CudaException("cannot read kernel source " + RESOURCE_DIR + file + ": " + e, e);
        }
    }

    private Path cacheFile(String name, String source, List<String> options) {
        Path dir = cacheDir();
        if (dir == null) {
            return null;
        }
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(source.getBytes(StandardCharsets.UTF_8));
            md.update(String.join(" ", options).getBytes(StandardCharsets.UTF_8));
            md.update(("nvrtc " + driver.nvrtcVersion() + " driver " + driver.driverVersion())
                    .getBytes(StandardCharsets.UTF_8));
            String hash = HexFormat.of().formatHex(md.digest()).substring(0, 20);
            return dir.resolve(name + "-" + driver.architecture() + "-" + hash + ".cubin");
        } catch (NoSuchAlgorithmException e) {
            return null;
        }
    }

    private static Path cacheDir() {
        String explicit = System.getProperty("k2j.cuda.cacheDir");
        if (explicit == null || explicit.isBlank()) {
            explicit = System.getenv("K2J_CUDA_CACHE");
        }
        if (explicit != null && !explicit.isBlank()) {
            return explicit.equalsIgnoreCase("off") ? null : Path.of(explicit);
        }
        for (Path candidate : new Path[] {
                Path.of(System.getProperty("user.home", "/nonexistent"), ".cache", "k2j", "cuda"),
                Path.of(System.getProperty("java.io.tmpdir"), "k2j-cuda-cache")}) {
            try {
                Files.createDirectories(candidate);
                if (Files.isWritable(candidate)) {
                    return candidate;
                }
            } catch (IOException | RuntimeException ignored) {
                // try the next one
            }
        }
        return null;
    }

    @Override
    public void close() {
        RuntimeException first = null;
        for (long m : modules) {
            try {
                driver.unloadModule(m);
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                }
            }
        }
        modules.clear();
        if (first != null) {
            throw first;
        }
    }
}
