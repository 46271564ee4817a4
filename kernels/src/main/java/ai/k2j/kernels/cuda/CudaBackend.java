package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.GraphCapable;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import static ai.k2j.kernels.cuda.Checks.need;
import static ai.k2j.kernels.cuda.Checks.overlaps;
import static ai.k2j.kernels.cuda.Checks.positive;

/**
 * The CUDA implementation of {@link Backend}: weights, activations and the paged KV cache live in device memory;
 * ops are kernels (native/*.cu, compiled by NVRTC at construction) launched on one stream, in submission order.
 * Decode (up to 8 tokens) matches the CPU backend to float rounding; prefill and larger batches run on BF16
 * tensor cores by default ({@link PrefillGemm#AUTO}, held to HF's BF16 computation) or, with
 * {@link PrefillGemm#FP32}, in FP32 to float rounding (docs/cuda.md, Precision).
 *
 * <p>Beyond the interface: {@link #sample} (temperature / top-k / top-p on the device, only token ids come back)
 * and CUDA graphs — {@link #beginCapture}, {@link #endCapture}, {@link #replay} — to record a whole decode step
 * once and replay it per token with a single launch. The fused ops ({@link #addRmsNorm}, {@link #ropeStoreKv},
 * {@link #matmulSiluMul}) are single kernels.
 *
 * <p>This class checks arguments and sequences the ops; the parts do the work: {@link DeviceWeights} (uploads),
 * {@link Matmuls} (GEMV kernels and cuBLAS), {@link Attention}, {@link DeviceSampler} (argmax and sampling),
 * {@link GraphRecorder} (capture and replay), {@link DeviceBatches} (the per-Batch metadata on the device) and
 * {@link CudaContext} (driver, kernels, launches, scratch memory).
 */
public final class CudaBackend implements Backend, GraphCapable {

    /**
     * How matmuls with {@code n >= gemmMinTokens} rows (prefill, batched steps of more than 8 tokens) are computed,
     * and with it the prefill attention ({@link Options#flashPrefill}). The exactness contract of each mode is in
     * docs/cuda.md (Precision).
     */
    public enum PrefillGemm {
        /**
         * The tensor-core mode (default): cuBLAS BF16×BF16 GEMMs with FP32 accumulation and output — activations
         * rounded to BF16 once per GEMM input; BF16 weights as stored, F16/Q8_0/Q4_0 weights dequantized to BF16 in
         * row chunks; F32 weights by SGEMM — and, with {@link Options#flashPrefill} (opt-in for now), prefill
         * attention on BF16 tensor cores. Held to HF transformers' own BF16 computation (docs/cuda.md).
         */
        AUTO,
        /**
         * cuBLAS SGEMM for every dtype (BF16/F16/Q dequantized to F32) and the FP32 attention kernels: matches the
         * CPU backend to FP32 rounding (HF-FP32 goldens within 1e-4). Select with -Dk2j.cuda.prefillGemm=fp32.
         */
        FP32,
        /** No cuBLAS: the GEMV kernels, 8 rows at a time (re-reads the weights every 8 rows); FP32 attention. */
        KERNEL
    }

    /**
     * Every setting of the backend, read once at construction (defaults and their system properties in
     * docs/cuda.md and {@link #defaults()}).
     *
     * @param device             CUDA device ordinal (0)
     * @param prefillGemm        matmul strategy for n >= gemmMinTokens (FP32: exact to float rounding)
     * @param gemmMinTokens      smallest n that uses cuBLAS; smaller n use the GEMV kernels (9; at least 2)
     * @param gemvRows           rows per GEMV warp group: 0 = the tuned choice (4), or 1 / 4 forced (comparisons)
     * @param gemvWarps          warps per GEMV row group: 0 = the tuned choice per shape, or 1 / 4 forced
     * @param fusedOps           the fused ops run as single kernels (true); false runs each as its unfused pair
     * @param decodeAttention    the decode attention kernel for batches of up to 8 tokens (true); false keeps the
     *                           general kernel (comparisons)
     * @param decodeSplitQuantum the decode attention kernel's split lengths are multiples of this many keys (32;
     *                           a positive multiple of 32)
     * @param profile            time every eager launch ({@link #profileReport}); off by default
     * @param flashPrefill       in the tensor-core mode ({@link PrefillGemm#AUTO}), attention of batches of more
     *                           than 8 tokens (prefill) runs the tiled BF16 tensor-core kernel
     *                           ({@code native/prefill.cu}) where the head dim allows (16, 32, 64, 128); false keeps
     *                           the FP32 general kernel. Off by default until its GPU test (CudaFlashPrefillTest)
     *                           has passed on a GPU ({@code -Dk2j.cuda.prefillAttention=flash|general}; general)
     */
    public record Options(int device, PrefillGemm prefillGemm, int gemmMinTokens, int gemvRows, int gemvWarps,
                          boolean fusedOps, boolean decodeAttention, int decodeSplitQuantum, boolean profile,
                          boolean flashPrefill) {
        public Options {
            if (device < 0) {
                throw new IllegalArgumentException("device must be >= 0, got " + device);
            }
            if (prefillGemm == null) {
                throw new IllegalArgumentException("prefillGemm is null (AUTO, FP32 or KERNEL)");
            }
            if (gemmMinTokens < 2) {
                throw new IllegalArgumentException("gemmMinTokens must be >= 2, got " + gemmMinTokens);
            }
            if (gemvRows != 0 && gemvRows != 1 && gemvRows != 4) {
                throw new IllegalArgumentException("gemvRows must be 0 (auto), 1 or 4, got " + gemvRows);
            }
            if (gemvWarps != 0 && gemvWarps != 1 && gemvWarps != 4) {
                throw new IllegalArgumentException("gemvWarps must be 0 (auto), 1 or 4, got " + gemvWarps);
            }
            if (decodeSplitQuantum < 32 || decodeSplitQuantum % 32 != 0) {
                throw new IllegalArgumentException("decodeSplitQuantum must be a positive multiple of 32, got "
                        + decodeSplitQuantum);
            }
        }

        /** Every setting but {@code flashPrefill}, which is off (its default). */
        public Options(int device, PrefillGemm prefillGemm, int gemmMinTokens, int gemvRows, int gemvWarps,
                       boolean fusedOps, boolean decodeAttention, int decodeSplitQuantum, boolean profile) {
            this(device, prefillGemm, gemmMinTokens, gemvRows, gemvWarps, fusedOps, decodeAttention,
                    decodeSplitQuantum, profile, false);
        }

        /** The given device, prefill strategy and cuBLAS threshold; every other setting at its default. */
        public Options(int device, PrefillGemm prefillGemm, int gemmMinTokens) {
            this(device, prefillGemm, gemmMinTokens, 0, 0, true, true, 32, false, false);
        }

        /**
         * The defaults, each overridable by its system property: {@code k2j.cuda.device} (0),
         * {@code k2j.cuda.prefillGemm} (auto|fp32|kernel; auto), {@code k2j.cuda.gemmMinTokens} (9),
         * {@code k2j.cuda.gemvRows} (0 = auto), {@code k2j.cuda.gemvWarps} (0 = auto), {@code k2j.cuda.fuse}
         * (true), {@code k2j.cuda.attention} (dec|split; dec), {@code k2j.cuda.decodeSplitQuantum} (32),
         * {@code k2j.cuda.profile} (false), {@code k2j.cuda.prefillAttention} (flash|general; general).
         */
        public static Options defaults() {
            String gemm = System.getProperty("k2j.cuda.prefillGemm", "auto");
            PrefillGemm prefill;
            try {
                prefill = PrefillGemm.valueOf(gemm.trim().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("-Dk2j.cuda.prefillGemm=" + gemm + ": expected auto, fp32 or kernel");
            }
            String attention = System.getProperty("k2j.cuda.prefillAttention", "general").trim();
            if (!attention.equalsIgnoreCase("flash") && !attention.equalsIgnoreCase("general")) {
                throw new IllegalArgumentException("-Dk2j.cuda.prefillAttention=" + attention
                        + ": expected flash or general");
            }
            return new Options(Integer.getInteger("k2j.cuda.device", 0), prefill,
                    Integer.getInteger("k2j.cuda.gemmMinTokens", 9),
                    Integer.getInteger("k2j.cuda.gemvRows", 0),
                    Integer.getInteger("k2j.cuda.gemvWarps", 0),
                    !"false".equalsIgnoreCase(System.getProperty("k2j.cuda.fuse", "true")),
                    !"split".equalsIgnoreCase(System.getProperty("k2j.cuda.attention", "dec")),
                    Integer.getInteger("k2j.cuda.decodeSplitQuantum", 32),
                    Boolean.getBoolean("k2j.cuda.profile"),
                    attention.equalsIgnoreCase("flash"));
        }

        public Options withGemvRows(int rows) {
            return new Options(device, prefillGemm, gemmMinTokens, rows, gemvWarps, fusedOps, decodeAttention,
                    decodeSplitQuantum, profile, flashPrefill);
        }

        public Options withGemvWarps(int warps) {
            return new Options(device, prefillGemm, gemmMinTokens, gemvRows, warps, fusedOps, decodeAttention,
                    decodeSplitQuantum, profile, flashPrefill);
        }

        public Options withFusedOps(boolean on) {
            return new Options(device, prefillGemm, gemmMinTokens, gemvRows, gemvWarps, on, decodeAttention,
                    decodeSplitQuantum, profile, flashPrefill);
        }

        public Options withDecodeAttention(boolean on) {
            return new Options(device, prefillGemm, gemmMinTokens, gemvRows, gemvWarps, fusedOps, on,
                    decodeSplitQuantum, profile, flashPrefill);
        }

        public Options withDecodeSplitQuantum(int keys) {
            return new Options(device, prefillGemm, gemmMinTokens, gemvRows, gemvWarps, fusedOps, decodeAttention,
                    keys, profile, flashPrefill);
        }

        public Options withProfile(boolean on) {
            return new Options(device, prefillGemm, gemmMinTokens, gemvRows, gemvWarps, fusedOps, decodeAttention,
                    decodeSplitQuantum, on, flashPrefill);
        }

        public Options withPrefillGemm(PrefillGemm gemm) {
            return new Options(device, gemm, gemmMinTokens, gemvRows, gemvWarps, fusedOps, decodeAttention,
                    decodeSplitQuantum, profile, flashPrefill);
        }

        public Options withFlashPrefill(boolean on) {
            return new Options(device, prefillGemm, gemmMinTokens, gemvRows, gemvWarps, fusedOps, decodeAttention,
                    decodeSplitQuantum, profile, on);
        }
    }

    /** Largest query heads per kv head times head dim the attention kernels take. */
    private static final int ATT_MAX_QD = 2048;

    private final CudaDriver driver;
    private final CudaKernels k;
    private final Arena arena = Arena.ofShared();
    private final CudaContext cx;
    private final DeviceBatches batches;
    private final DeviceWeights weights;
    private final Matmuls matmuls;
    private final Attention attention;
    private final RopeKv ropeKv;
    private final DeviceSampler sampler;
    private final GraphRecorder graphs;
    private boolean closed;

    /** A backend with the settings of {@link Options#defaults()} (system properties, else the defaults). */
    public CudaBackend() {
        this(Options.defaults());
    }

    /**
     * Opens the device, compiles (or loads cached) kernels.
     *
     * @throws CudaException.Unavailable when there is no CUDA driver or device
     * @throws CudaException             when anything else fails (message names the call)
     */
    public CudaBackend(Options options) {
        if (options == null) {
            throw new IllegalArgumentException("options is null (use Options.defaults())");
        }
        this.driver = CudaDriver.open(options.device());
        CudaKernels kernels = null;
        try {
            kernels = new CudaKernels(driver);
        } finally {
            if (kernels == null) {
                driver.close();
            }
        }
        this.k = kernels;
        this.cx = new CudaContext(options, driver, kernels, arena);
        this.batches = new DeviceBatches(cx);
        this.weights = new DeviceWeights(this, cx);
        this.matmuls = new Matmuls(cx);
        this.attention = new Attention(cx);
        this.ropeKv = new RopeKv(cx, batches);
        this.sampler = new DeviceSampler(cx);
        this.graphs = new GraphRecorder(this, cx, batches);
    }

    /** The settings in effect. */
    public Options options() {
        return cx.options;
    }

    /**
     * Switches the kernel-choice settings (GEMV shape, fused ops, attention kernel and quantum, prefill strategy)
     * for ops issued from now on, keeping the weights: for diagnostics that compare variants on one backend. The
     * device and the profiler stay as constructed.
     */
    public void retune(Options options) {
        enterOutsideCapture("retune");
        if (options.device() != cx.options.device() || options.profile() != cx.options.profile()) {
            throw new IllegalArgumentException("retune cannot change the device or the profiler (construct a new"
                    + " backend): " + cx.options + " -> " + options);
        }
        cx.options = options;
    }

    /**
     * The per-op profile so far ({@link Options#profile}; see {@code CudaProfiler}): per op name calls, device
     * time, GPU idle before it, launch and Java time; per step wall, device busy and host-side time. Empty string
     * when profiling is off. Synchronizes.
     */
    public String profileReport() {
        if (cx.profiler == null) {
            return "";
        }
        enterOutsideCapture("profileReport");
        return cx.profiler.report();
    }

    /** Forgets the profile so far (e.g. after warm-up). No-op when profiling is off. */
    public void profileReset() {
        if (cx.profiler != null) {
            enterOutsideCapture("profileReset");
            cx.profiler.reset();
        }
    }

    @Override
    public String name() {
        return "cuda";
    }

    /** Device name, e.g. "NVIDIA H200". */
    public String deviceName() {
        return driver.deviceName();
    }

    /** e.g. "9.0" */
    public String computeCapability() {
        return driver.computeMajor() + "." + driver.computeMinor();
    }

    /** Device, driver, NVRTC, libraries and kernel compilation report, for logs. */
    public String describe() {
        return "CUDA device " + driver.ordinal() + ": " + driver.deviceName() + ", compute capability "
                + computeCapability() + ", " + driver.multiprocessors() + " SMs, " + (driver.totalMemory() >> 20)
                + " MiB; driver API " + driver.driverVersion() + ", NVRTC " + driver.nvrtcVersion() + "\n"
                + driver.libraries() + "\nprefill GEMM: " + cx.options.prefillGemm() + " for n >= "
                + cx.options.gemmMinTokens() + ", prefill attention: " + (cx.options.prefillGemm() == PrefillGemm.AUTO
                && cx.options.flashPrefill() ? "flash (BF16 tensor cores)" : "general (FP32)") + "\n" + k.report();
    }

    CudaDriver driver() {
        return driver;
    }

    /** NVRTC's error when prebuilt CUBINs stood in for it (see docs/cuda.md), else null. */
    public String nvrtcFailure() {
        return k.nvrtcFailure();
    }

    /**
     * Device-to-device copy bandwidth in GB/s (1 GiB copied 10 times, read + write counted): the practical
     * roofline benchmarks compare decode against. Allocates and frees 2 GiB; synchronizes.
     */
    public double copyBandwidthGBs() {
        enterOutsideCapture("copyBandwidthGBs");
        return cx.copyBandwidthGBs();
    }

    /**
     * The BF16 tensor-core GEMM throughput (TFLOP/s, median of {@code reps}) cuBLAS reaches here for
     * out[n, m] = x[n, k]·W[m, k]ᵀ with the call the tensor-core prefill GEMMs use (BF16×BF16, FP32 accumulate and
     * output), on random operands it allocates and frees: the peak benchmarks compare k2j's prefill GEMMs with.
     * Synchronizes.
     *
     * @throws CudaException when cuBLAS cannot be loaded
     */
    public double cublasBf16GemmTflops(int m, int n, int k, int reps) {
        enterOutsideCapture("cublasBf16GemmTflops");
        Cublas cb = matmuls.cublas();
        if (cb == null) {
            throw new CudaException("cuBLAS unavailable: " + matmuls.cublasProblem(), -1);
        }
        return GemmPeak.bf16Tflops(cx, cb, m, n, k, reps);
    }

    /** Why cuBLAS is not used, or null when it is (or has not been needed yet). */
    public String cublasProblem() {
        return matmuls.cublasProblem();
    }

    // =========================================================================================== memory

    @Override
    public Weight matrix(List<Tensor> rowsStacked, WeightFormat format) {
        enterOutsideCapture("matrix");
        return weights.matrix(rowsStacked, format);
    }

    @Override
    public Buffer vector(List<Tensor> parts) {
        enterOutsideCapture("vector");
        return weights.vector(parts);
    }

    @Override
    public Buffer allocate(long floats) {
        enterOutsideCapture("allocate");
        return weights.allocBuffer(floats, "allocate");
    }

    /** Copies floats from the host into a buffer (tests, engine setup); synchronizes. */
    public void upload(float[] src, int srcOffset, Buffer dst, long dstOffset, int count) {
        enterOutsideCapture("upload");
        DevBuffer d = buffer(dst, "upload dst");
        java.util.Objects.checkFromIndexSize(srcOffset, count, src.length);
        if (dstOffset < 0) {
            throw new IllegalArgumentException("upload: dstOffset " + dstOffset);
        }
        need(d, dstOffset + count, "upload dst");
        weights.upload(src, srcOffset, d, dstOffset, count);
    }

    @Override
    public RopeTable ropeTable(float[] invFreq, float attentionScaling, int maxPositions) {
        enterOutsideCapture("ropeTable");
        return weights.ropeTable(invFreq, attentionScaling, maxPositions);
    }

    @Override
    public KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize) {
        enterOutsideCapture("kvCache");
        return weights.kvCache(layers, kvDim, numBlocks, blockSize, KvPrecision.F32, kvDim);
    }

    /** BF16 and FP8 caches: the attention and store kernels decode/encode them in registers (docs/kv-cache.md). */
    @Override
    public KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize, KvPrecision precision, int headDim) {
        enterOutsideCapture("kvCache");
        return weights.kvCache(layers, kvDim, numBlocks, blockSize, precision, headDim);
    }

    // =========================================================================================== ops

    @Override
    public void embed(Weight table, Batch batch, Buffer out) {
        enter();
        DevWeight w = weight(table);
        DevBuffer o = buffer(out, "embed out");
        DeviceBatch db = batches.sync(batch, 0);
        int n = batch.nTokens;
        need(o, (long) n * w.cols, "embed out");
        for (int t = 0; t < n; t++) {
            int tok = batch.tokens[t];
            if (tok < 0 || tok >= w.rows) {
                throw new IllegalArgumentException("Batch.tokens[" + t + "]=" + tok + " outside the embedding table [0, "
                        + w.rows + ")");
            }
        }
        if (cx.capture != null) {
            cx.capture.minEmbedRows = Math.min(cx.capture.minEmbedRows, w.rows);
        }
        cx.args.reset().ptr(w.data).ptr(w.scales).i32(w.code).ptr(db.tokensPtr).i32(n).i32(w.cols).ptr(o.ptr);
        cx.launch(k.embed, "embed", cx.grid((long) n * w.cols), 1, 256);
    }

    @Override
    public void rmsNorm(Buffer x, Buffer gamma, float eps, int n, int dim, Buffer out) {
        enter();
        DevBuffer xb = buffer(x, "rmsNorm x");
        DevBuffer g = buffer(gamma, "rmsNorm gamma");
        DevBuffer o = buffer(out, "rmsNorm out");
        positive(n, "rmsNorm n");
        positive(dim, "rmsNorm dim");
        need(xb, (long) n * dim, "rmsNorm x");
        need(g, dim, "rmsNorm gamma");
        need(o, (long) n * dim, "rmsNorm out");
        if (o.ptr != xb.ptr && overlaps(o.ptr, (long) n * dim, xb.ptr, (long) n * dim)) {
            throw new IllegalArgumentException("rmsNorm: out partially overlaps x (it may equal x)");
        }
        cx.args.reset().ptr(xb.ptr).ptr(g.ptr).f32(eps).i32(dim).ptr(o.ptr);
        cx.launch(k.rmsnorm, "rmsnorm", n, 1, 256);
    }

    /** One {@code add_rmsnorm} kernel: a block per row adds y and normalizes (bit-equal to add then rmsNorm). */
    @Override
    public void addRmsNorm(Buffer x, Buffer y, Buffer gamma, float eps, int n, int dim, Buffer out) {
        if (!cx.options.fusedOps()) {
            Backend.super.addRmsNorm(x, y, gamma, eps, n, dim, out);
            return;
        }
        enter();
        DevBuffer xb = buffer(x, "addRmsNorm x");
        DevBuffer yb = buffer(y, "addRmsNorm y");
        DevBuffer g = buffer(gamma, "addRmsNorm gamma");
        DevBuffer o = buffer(out, "addRmsNorm out");
        positive(n, "addRmsNorm n");
        positive(dim, "addRmsNorm dim");
        long count = (long) n * dim;
        need(xb, count, "addRmsNorm x");
        need(yb, count, "addRmsNorm y");
        need(g, dim, "addRmsNorm gamma");
        need(o, count, "addRmsNorm out");
        if (xb.ptr != yb.ptr && overlaps(xb.ptr, count, yb.ptr, count)) {
            throw new IllegalArgumentException("addRmsNorm: x and y partially overlap");
        }
        if (o.ptr != xb.ptr && o.ptr != yb.ptr && (overlaps(o.ptr, count, xb.ptr, count)
                || overlaps(o.ptr, count, yb.ptr, count))) {
            throw new IllegalArgumentException("addRmsNorm: out partially overlaps x or y (it may equal either)");
        }
        cx.args.reset().ptr(xb.ptr).ptr(yb.ptr).ptr(g.ptr).f32(eps).i32(dim).ptr(o.ptr);
        cx.launch(k.addRmsnorm, "add_rmsnorm", n, 1, 256);
    }

    @Override
    public void matmul(Weight weight, Buffer bias, Buffer x, int n, Buffer out) {
        enter();
        DevWeight w = weight(weight);
        DevBuffer xb = buffer(x, "matmul x");
        DevBuffer o = buffer(out, "matmul out");
        DevBuffer b = bias == null ? null : buffer(bias, "matmul bias");
        positive(n, "matmul n");
        need(xb, (long) n * w.cols, "matmul x");
        need(o, (long) n * w.rows, "matmul out");
        if (b != null) {
            need(b, w.rows, "matmul bias");
        }
        if (overlaps(o.ptr, (long) n * w.rows, xb.ptr, (long) n * w.cols)) {
            throw new IllegalArgumentException("matmul: out must not alias x");
        }
        matmuls.matmul(w, b, xb.ptr, n, o.ptr);
    }

    /**
     * On the GEMV path (n below gemmMinTokens, or in a graph) one kernel: each warp group computes a gate row and
     * its up row and writes both products and silu(gate)·up (same arithmetic as the pair with its own warp split:
     * equal to float rounding). cuBLAS products run the pair.
     */
    @Override
    public void matmulSiluMul(Weight gateUpWeight, Buffer x, int n, Buffer gateUp, Buffer out) {
        enter();
        DevWeight w = weight(gateUpWeight);
        DevBuffer xb = buffer(x, "matmulSiluMul x");
        DevBuffer gu = buffer(gateUp, "matmulSiluMul gateUp");
        DevBuffer o = buffer(out, "matmulSiluMul out");
        positive(n, "matmulSiluMul n");
        if (w.rows % 2 != 0) {
            throw new IllegalArgumentException("matmulSiluMul: the gate|up matrix has an odd row count " + w.rows);
        }
        long half = (long) n * (w.rows / 2);
        need(xb, (long) n * w.cols, "matmulSiluMul x");
        need(gu, 2 * half, "matmulSiluMul gateUp");
        need(o, half, "matmulSiluMul out");
        boolean separate = !overlaps(o.ptr, half, gu.ptr, 2 * half) && !overlaps(o.ptr, half, xb.ptr, (long) n * w.cols)
                && !overlaps(gu.ptr, 2 * half, xb.ptr, (long) n * w.cols);
        if (cx.options.fusedOps() && separate && matmuls.fusesSiluMul(w, n)) {
            matmuls.gemv(w, 0, xb.ptr, n, gu.ptr, o.ptr);
            return;
        }
        Backend.super.matmulSiluMul(gateUpWeight, x, n, gateUp, out);
    }

    @Override
    public void rope(Rows heads, int headDim, Batch batch, RopeTable table) {
        enter();
        ropeKv.rope(buffer(heads.buffer(), "rope x"), heads, headDim, ropeTable(table), batch);
    }

    @Override
    public void storeKv(KvCache cache, int layer, Rows keys, Rows values, Batch batch) {
        enter();
        ropeKv.storeKv(kv(cache, layer), layer, buffer(keys.buffer(), "storeKv keys"), keys, values, batch);
    }

    /**
     * One {@code rope_store_kv} kernel when the key heads directly follow the query heads in the same rows (a
     * fused q|k|v activation), else rope on the queries and {@code rope_store_kv} on the keys; bit-equal to rope,
     * rope, storeKv. Views in other buffers, or values inside the key columns, run the unfused ops.
     */
    @Override
    public void ropeStoreKv(Rows queries, Rows keys, Rows values, int headDim, KvCache cache, int layer, Batch batch,
                            RopeTable table) {
        boolean valuesOutsideKeys = values.offset() + values.width() <= keys.offset()
                || values.offset() >= keys.offset() + keys.width();
        if (!cx.options.fusedOps() || queries.buffer() != keys.buffer() || queries.stride() != keys.stride()
                || !valuesOutsideKeys || batch.tree) { // a tree step stores at kvPositions, rotates by positions
            Backend.super.ropeStoreKv(queries, keys, values, headDim, cache, layer, batch, table);
            return;
        }
        enter();
        ropeKv.ropeStoreKv(buffer(queries.buffer(), "ropeStoreKv queries"), queries, keys, values, headDim,
                kv(cache, layer), layer, ropeTable(table), batch);
    }

    @Override
    public void attention(Rows queries, KvCache cache, int layer, Batch batch, int kvHeads, int headDim, float scale,
                          Buffer out) {
        enter();
        DevKvCache c = kv(cache, layer);
        DevBuffer q = buffer(queries.buffer(), "attention queries");
        DevBuffer o = buffer(out, "attention out");
        positive(kvHeads, "attention kvHeads");
        positive(headDim, "attention headDim");
        if (queries.width() % headDim != 0) {
            throw new IllegalArgumentException("attention: query view width " + queries.width()
                    + " is not a whole number of heads of " + headDim);
        }
        int heads = queries.width() / headDim;
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("attention: heads " + heads + " not a multiple of kvHeads " + kvHeads);
        }
        int group = heads / kvHeads;
        if (group > 16 || (long) group * headDim > ATT_MAX_QD) {
            throw new IllegalArgumentException("attention: " + group + " query heads per kv head of dim " + headDim
                    + " exceed the kernel's limit (group <= 16, group * headDim <= " + ATT_MAX_QD + ")");
        }
        if ((long) kvHeads * headDim != c.kvDim()) {
            throw new IllegalArgumentException("attention: kvHeads * headDim = " + (kvHeads * headDim)
                    + " but the cache's kvDim is " + c.kvDim());
        }
        if (c.precision() == KvPrecision.FP8_E4M3 && headDim != c.headDim()) {
            throw new IllegalArgumentException("attention: head dim " + headDim + " but the FP8 cache's scales are per "
                    + c.headDim() + " values");
        }
        DeviceBatch db = batches.sync(batch, c.blockSize());
        int n = batch.nTokens;
        positive(n, "attention Batch.nTokens");
        long outFloats = (long) n * heads * headDim;
        long qFloats = (long) (n - 1) * queries.stride() + queries.offset() + queries.width();
        need(q, qFloats, "attention queries");
        need(o, outFloats, "attention out");
        if (overlaps(o.ptr, outFloats, q.ptr, qFloats)) {
            throw new IllegalArgumentException("attention: out must not alias the queries' buffer");
        }
        batches.validateBlocks(db, c);
        if (batch.tree) {
            treeAttention(q.ptr + 4L * queries.offset(), queries.stride(), c, layer, batch, db, heads, kvHeads, headDim,
                    scale, o.ptr);
            return;
        }
        attention.run(q.ptr + 4L * queries.offset(), queries.stride(), c, layer, batch, db, heads, kvHeads, headDim,
                scale, o.ptr);
    }

    /** Draft-tree verification: the {@code attention_tree} kernel (masks checked here; never inside a graph). */
    private void treeAttention(long q, int rowStride, DevKvCache c, int layer, Batch batch, DeviceBatch db, int heads,
                               int kvHeads, int headDim, float scale, long out) {
        if (cx.capture != null) {
            throw new IllegalStateException("a draft-tree step cannot be recorded into a graph");
        }
        if (c.precision() != KvPrecision.F32) {
            // the attention_tree kernel reads float elements; BF16/FP8 tree kernels are not written yet
            throw new IllegalStateException("attention: draft-tree steps on the CUDA backend need an F32 KV cache,"
                    + " this cache is " + c.precision() + " (use --kv-cache f32, or speculation without --tree)");
        }
        if (headDim > 512) {
            throw new IllegalArgumentException("attention: tree steps take head dims up to 512, got " + headDim);
        }
        for (int t = 0; t < batch.nTokens; t++) {
            batch.treeAncestors(t);
            if (batch.kvPositions[t] >= batch.seqKvLength[batch.seqOfToken[t]]) {
                throw new IllegalArgumentException("attention: cache index " + batch.kvPositions[t] + " of batch row "
                        + t + " is not below its sequence's KV length");
            }
        }
        cx.args.reset().ptr(q).i32(rowStride).i32(heads).i32(kvHeads).i32(headDim).f32(scale).ptr(c.k(layer))
                .ptr(c.v(layer)).i32(c.kvDim()).ptr(db.kvPositionsPtr).ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr)
                .i32(db.maxBlocks).i32(c.blockSize()).ptr(db.treeMaskPtr).ptr(db.seqTreeBasePtr).ptr(out);
        cx.launch(cx.k.attentionTree, "attention_tree", batch.nTokens * heads, 1, 128);
    }

    @Override
    public void siluMul(Buffer gateUp, int n, int dim, Buffer out) {
        enter();
        DevBuffer g = buffer(gateUp, "siluMul gateUp");
        DevBuffer o = buffer(out, "siluMul out");
        positive(n, "siluMul n");
        positive(dim, "siluMul dim");
        long count = (long) n * dim;
        need(g, 2 * count, "siluMul gateUp");
        need(o, count, "siluMul out");
        if (overlaps(o.ptr, count, g.ptr, 2 * count) && !(n == 1 && o.ptr == g.ptr)) {
            // in place over several rows would race (row t writes where row t/2 still reads): go through a temp
            long tmp = cx.tempScratch.ensure(4 * count);
            cx.args.reset().ptr(g.ptr).i32(n).i32(dim).ptr(tmp);
            cx.launch(k.siluMul, "silu_mul", cx.grid(count), 1, 256);
            driver.copyDeviceAsync(o.ptr, tmp, 4 * count);
            cx.countOp();
            return;
        }
        cx.args.reset().ptr(g.ptr).i32(n).i32(dim).ptr(o.ptr);
        cx.launch(k.siluMul, "silu_mul", cx.grid(count), 1, 256);
    }

    @Override
    public void rmsNormHeads(Rows heads, int headDim, Buffer gamma, float eps, int n) {
        enter();
        DevBuffer xb = buffer(heads.buffer(), "rmsNormHeads x");
        DevBuffer g = buffer(gamma, "rmsNormHeads gamma");
        positive(n, "rmsNormHeads n");
        positive(headDim, "rmsNormHeads headDim");
        if (heads.width() % headDim != 0) {
            throw new IllegalArgumentException("rmsNormHeads: view width " + heads.width()
                    + " is not a multiple of head dim " + headDim);
        }
        need(xb, (long) (n - 1) * heads.stride() + heads.offset() + heads.width(), "rmsNormHeads x");
        need(g, headDim, "rmsNormHeads gamma");
        cx.args.reset().ptr(xb.ptr).i32(heads.stride()).i32(heads.offset()).i32(headDim).ptr(g.ptr).f32(eps);
        cx.launch(k.rmsnormHeads, "rmsnorm_heads", n, heads.width() / headDim, 128);
    }

    // ---------------------------------------------------------------- mixture of experts
    // The model routes on the host; each call uploads its slice of the routing (rows, scales) through the staging
    // buffer and waits for that copy, so MoE steps are not recorded as graphs (the model downloads mid-step anyway).

    /** Device copy of the current call's rows (ints) then scales (floats); grows as needed, freed at close. */
    private long moeRouting;
    private long moeRoutingBytes;

    @Override
    public boolean supportsMixtureOfExperts() {
        return true;
    }

    @Override
    public void gatherRows(Buffer x, int dim, int[] rows, int from, int count, Buffer out) {
        enterOutsideCapture("gatherRows (MoE)");
        DevBuffer xb = buffer(x, "gatherRows x");
        DevBuffer o = buffer(out, "gatherRows out");
        positive(dim, "gatherRows dim");
        positive(count, "gatherRows count");
        need(o, (long) count * dim, "gatherRows out");
        long routing = uploadRouting(rows, null, from, count, xb.floats / dim);
        cx.args.reset().ptr(xb.ptr).i32(dim).ptr(routing).i32(count).ptr(o.ptr);
        cx.launch(k.gatherRowsIdx, "gather_rows_idx", cx.grid((long) count * dim), 1, 256);
    }

    @Override
    public void scatterAdd(Buffer src, int dim, int[] rows, float[] scales, int from, int count, Buffer dst) {
        enterOutsideCapture("scatterAdd (MoE)");
        DevBuffer s = buffer(src, "scatterAdd src");
        DevBuffer d = buffer(dst, "scatterAdd dst");
        positive(dim, "scatterAdd dim");
        positive(count, "scatterAdd count");
        need(s, (long) count * dim, "scatterAdd src");
        long routing = uploadRouting(rows, scales, from, count, d.floats / dim);
        cx.args.reset().ptr(s.ptr).i32(dim).ptr(routing).ptr(routing + 4L * count).i32(count).ptr(d.ptr);
        cx.launch(k.scatterAddRows, "scatter_add_rows", cx.grid((long) count * dim), 1, 256);
    }

    // ---------------------------------------------------------------- multi-head latent attention
    // Not recorded in graphs: latentAttention sizes its score scratch from the step's positions.

    @Override
    public boolean supportsLatentAttention() {
        return true;
    }

    @Override
    public void headMatmul(Weight w, int heads, Rows x, int n, Buffer out) {
        enterOutsideCapture("headMatmul (MLA)");
        DevWeight dw = weight(w);
        DevBuffer xb = buffer(x.buffer(), "headMatmul x");
        DevBuffer o = buffer(out, "headMatmul out");
        positive(n, "headMatmul n");
        if (heads <= 0 || dw.rows % heads != 0 || x.width() != (long) heads * dw.cols) {
            throw new IllegalArgumentException("headMatmul: " + heads + " heads do not split a " + dw.rows + "x"
                    + dw.cols + " weight over an input view of " + x.width() + " columns");
        }
        long xFloats = (long) (n - 1) * x.stride() + x.offset() + x.width();
        need(xb, xFloats, "headMatmul x");
        need(o, (long) n * dw.rows, "headMatmul out");
        if (overlaps(o.ptr, (long) n * dw.rows, xb.ptr, xFloats)) {
            throw new IllegalArgumentException("headMatmul: out must not alias x");
        }
        cx.args.reset().ptr(dw.data).ptr(dw.scales).i32(dw.code).i32(dw.rows).i32(dw.cols).i32(dw.rows / heads)
                .ptr(xb.ptr).i32(x.stride()).i32(x.offset()).i32(n).ptr(o.ptr);
        cx.launch(k.headMatmul, "head_matmul", cx.grid(32L * n * dw.rows), 1, 256);
    }

    @Override
    public void latentAttention(Rows qLatent, Rows qRope, KvCache cache, int layer, Batch batch, int heads,
                                int latentDim, float scale, Buffer out) {
        if (batch.tree) { // the latent kernels read a causal prefix; they have no tree mask
            throw new UnsupportedOperationException("latentAttention (MLA) does not take draft-tree steps (Batch.tree)");
        }
        enterOutsideCapture("latentAttention (MLA)");
        DevKvCache c = kv(cache, layer);
        DevBuffer ql = buffer(qLatent.buffer(), "latentAttention qLatent");
        DevBuffer qr = buffer(qRope.buffer(), "latentAttention qRope");
        DevBuffer o = buffer(out, "latentAttention out");
        int ropeDim = 2 * c.kvDim() - latentDim;
        if (heads <= 0 || latentDim <= 0 || ropeDim <= 0 || qLatent.width() != (long) heads * latentDim
                || qRope.width() != (long) heads * ropeDim) {
            throw new IllegalArgumentException("latentAttention: " + heads + " heads of latent " + latentDim
                    + " and rope " + ropeDim + " (cache rows of " + 2 * c.kvDim() + ") do not match query views of "
                    + qLatent.width() + " and " + qRope.width() + " columns");
        }
        DeviceBatch db = batches.sync(batch, c.blockSize());
        int n = batch.nTokens;
        positive(n, "latentAttention Batch.nTokens");
        need(ql, (long) (n - 1) * qLatent.stride() + qLatent.offset() + qLatent.width(), "latentAttention qLatent");
        need(qr, (long) (n - 1) * qRope.stride() + qRope.offset() + qRope.width(), "latentAttention qRope");
        need(o, (long) n * heads * latentDim, "latentAttention out");
        batches.validateBlocks(db, c);
        int maxLen = 1;
        for (int t = 0; t < n; t++) {
            maxLen = Math.max(maxLen, batch.positions[t] + 1);
        }
        long scores = cx.attnScratch.ensure(4L * n * heads * maxLen);
        cx.args.reset().ptr(ql.ptr).i32(qLatent.stride()).i32(qLatent.offset()).ptr(qr.ptr).i32(qRope.stride())
                .i32(qRope.offset()).i32(heads).i32(latentDim).i32(ropeDim).f32(scale).ptr(c.k(layer)).ptr(c.v(layer))
                .i32(c.kvDim()).ptr(db.positionsPtr).ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr).i32(db.maxBlocks)
                .i32(c.blockSize()).ptr(scores).i32(maxLen).ptr(o.ptr);
        cx.launch(k.latentAttention, "latent_attention", n * heads, 1, 128);
    }

    /** Uploads rows[from, from+count) (checked against {@code maxRow}) and, if given, the same slice of scales. */
    private long uploadRouting(int[] rows, float[] scales, int from, int count, long maxRow) {
        java.util.Objects.checkFromIndexSize(from, count, rows.length);
        for (int i = from; i < from + count; i++) {
            if (rows[i] < 0 || rows[i] >= maxRow) {
                throw new IllegalArgumentException("MoE row " + rows[i] + " is outside the buffer's " + maxRow + " rows");
            }
        }
        long bytes = 8L * count;
        if (bytes > CudaContext.STAGING_BYTES) {
            throw new IllegalArgumentException("MoE routing of " + count + " rows exceeds the staging buffer");
        }
        if (bytes > moeRoutingBytes) {
            moeRoutingBytes = Math.max(bytes, 2 * moeRoutingBytes);
            moeRouting = cx.alloc(moeRoutingBytes); // the smaller one stays allocated until close
        }
        MemorySegment st = cx.staging();
        MemorySegment.copy(rows, from, st, ValueLayout.JAVA_INT_UNALIGNED, 0, count);
        if (scales != null) {
            java.util.Objects.checkFromIndexSize(from, count, scales.length);
            MemorySegment.copy(scales, from, st, ValueLayout.JAVA_FLOAT_UNALIGNED, 4L * count, count);
        }
        driver.copyToDeviceAsync(moeRouting, st.address(), bytes); // stream-ordered after earlier readers
        driver.synchronize(); // the staging buffer is reused by the next copy
        return moeRouting;
    }

    @Override
    public void add(Buffer x, Buffer y, int n, int dim) {
        enter();
        DevBuffer xb = buffer(x, "add x");
        DevBuffer yb = buffer(y, "add y");
        positive(n, "add n");
        positive(dim, "add dim");
        long count = (long) n * dim;
        need(xb, count, "add x");
        need(yb, count, "add y");
        if (xb.ptr != yb.ptr && overlaps(xb.ptr, count, yb.ptr, count)) {
            throw new IllegalArgumentException("add: x and y partially overlap");
        }
        cx.args.reset().ptr(xb.ptr).ptr(yb.ptr).i64(count);
        cx.launch(k.add, "add", cx.grid(count), 1, 256);
    }

    @Override
    public void gatherRows(Buffer x, int dim, Batch batch, Buffer out) {
        enter();
        DevBuffer xb = buffer(x, "gatherRows x");
        DevBuffer o = buffer(out, "gatherRows out");
        positive(dim, "gatherRows dim");
        DeviceBatch db = batches.sync(batch, 0);
        int rows = batch.nLogits;
        if (rows == 0) {
            return;
        }
        need(xb, (long) batch.nTokens * dim, "gatherRows x");
        need(o, (long) rows * dim, "gatherRows out");
        if (overlaps(o.ptr, (long) rows * dim, xb.ptr, (long) batch.nTokens * dim)) {
            throw new IllegalArgumentException("gatherRows: out must not alias x");
        }
        cx.args.reset().ptr(xb.ptr).i32(dim).ptr(db.logitRowsPtr).i32(rows).ptr(o.ptr);
        cx.launch(k.gatherRows, "gather_rows", cx.grid((long) rows * dim), 1, 256);
    }

    @Override
    public void download(Buffer src, long srcOffset, float[] dst, int dstOffset, int count) {
        enterOutsideCapture("download");
        DevBuffer s = buffer(src, "download src");
        java.util.Objects.checkFromIndexSize(dstOffset, count, dst.length);
        if (srcOffset < 0) {
            throw new IllegalArgumentException("download: srcOffset " + srcOffset);
        }
        need(s, srcOffset + count, "download src");
        MemorySegment staging = cx.staging();
        int chunk = (int) (CudaContext.STAGING_BYTES / 4);
        for (int i = 0; i < count; i += chunk) {
            int c = Math.min(chunk, count - i);
            driver.copyToHostAsync(staging.address(), s.ptr + 4 * (srcOffset + i), 4L * c);
            driver.synchronize();
            MemorySegment.copy(staging, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, dst, dstOffset + i, c);
        }
        if (count == 0) {
            driver.synchronize();
        }
        if (cx.profiler != null) {
            cx.profiler.stepEnd();
        }
    }

    @Override
    public void argmax(Buffer x, int n, int dim, int[] out) {
        enterOutsideCapture("argmax");
        DevBuffer xb = buffer(x, "argmax x");
        positive(n, "argmax n");
        positive(dim, "argmax dim");
        need(xb, (long) n * dim, "argmax x");
        if (out.length < n) {
            throw new IllegalArgumentException("argmax: out holds " + out.length + " ints, needs " + n);
        }
        sampler.argmax(xb, n, dim, out);
    }

    /**
     * Samples one token per row of logits [n, dim] on the device and returns the ids in out[0..n): temperature,
     * then top-k, then top-p (HF's order and semantics). temperature <= 0 or topK == 1 is greedy ({@link #argmax}).
     * {@code seed} makes draws reproducible: row r uses uniform splitmix64(seed + (r + 1)·golden). Synchronizes.
     *
     * <p>Fast for 1 <= topK <= 1024 (exactly k candidates, ties by lower index); topK = 0 (off) or larger runs
     * a slower exact threshold search over the whole row (ties at a threshold all kept).
     *
     * @param topK 0 = disabled
     * @param topP in (0, 1]; 1 = disabled
     */
    @Override
    public void sample(Buffer logits, int n, int dim, float temperature, int topK, float topP, long seed, int[] out) {
        enterOutsideCapture("sample");
        DevBuffer xb = buffer(logits, "sample logits");
        positive(n, "sample n");
        positive(dim, "sample dim");
        need(xb, (long) n * dim, "sample logits");
        if (out.length < n) {
            throw new IllegalArgumentException("sample: out holds " + out.length + " ints, needs " + n);
        }
        if (topK < 0 || !(topP > 0 && topP <= 1) || Float.isNaN(temperature)) {
            throw new IllegalArgumentException("sample: need topK >= 0, 0 < topP <= 1, temperature not NaN; got topK="
                    + topK + ", topP=" + topP + ", temperature=" + temperature);
        }
        if (n > 65535) {
            throw new IllegalArgumentException("sample: at most 65535 rows per call, got " + n);
        }
        if (temperature <= 0 || topK == 1) {
            sampler.argmax(xb, n, dim, out);
            return;
        }
        sampler.sample(xb, n, dim, temperature, topK, topP, seed, out);
    }

    @Override
    public void sync() {
        enterOutsideCapture("sync");
        driver.synchronize();
    }

    // =========================================================================================== graphs

    /**
     * Starts recording ops into a CUDA graph instead of running them. Uploads {@code batch} first; until
     * {@link #endCapture} the ops must use this same Batch object unchanged (their kernels will read its device
     * copy at replay), and nothing may synchronize or allocate (download, argmax, sample, sync, allocate, matrix,
     * ... throw IllegalStateException). Matmuls use the GEMV kernels while capturing. Capture records, it does
     * not run: call {@link #replay} to execute.
     */
    @Override
    public void beginCapture(Batch batch) {
        enterOutsideCapture("beginCapture");
        graphs.begin(batch);
    }

    /** Ends the recording and instantiates the graph. */
    @Override
    public CudaGraph endCapture() {
        enter();
        return graphs.end();
    }

    /** Abandons a capture after an op failed during it; the stream is usable again afterwards. */
    @Override
    public void abortCapture() {
        enter();
        graphs.abort();
    }

    /** True between beginCapture and endCapture/abortCapture. */
    public boolean capturing() {
        return cx.capture != null;
    }

    /**
     * Uploads {@code batch} (it must be the Batch object the graph was captured with, with the same nTokens,
     * nSeqs and nLogits; positions, block tables and tokens may change) and launches the graph. Asynchronous
     * like the ops; read results with download/argmax/sample.
     */
    @Override
    public void replay(GraphCapable.Graph step, Batch batch) {
        enterOutsideCapture("replay");
        graphs.replay(step, batch);
    }

    void destroyGraph(CudaGraph g) {
        if (g.closed) {
            return;
        }
        if (closed) {
            g.closed = true;
            cx.graphs.remove(g);
            return;
        }
        graphs.destroy(g);
    }

    // =========================================================================================== helpers

    /** Every op starts here: the backend is open and its context current. */
    private void enter() {
        if (closed) {
            throw new IllegalStateException("CudaBackend is closed");
        }
        driver.makeCurrent();
    }

    void enterOutsideCapture(String what) {
        enter();
        if (cx.capture != null) {
            throw new IllegalStateException(what + " is not allowed while capturing a CUDA graph (it synchronizes or"
                    + " allocates); do it before beginCapture or after endCapture");
        }
    }

    private DevBuffer buffer(Buffer b, String what) {
        if (b instanceof DevBuffer d && d.owner == this) {
            return d;
        }
        throw new IllegalArgumentException(what + " is not a buffer of this CUDA backend: " + b);
    }

    private DevWeight weight(Weight w) {
        if (w instanceof DevWeight d && d.owner == this) {
            return d;
        }
        throw new IllegalArgumentException("weight is not a matrix of this CUDA backend: " + w);
    }

    private DevRope ropeTable(RopeTable table) {
        if (table instanceof DevRope r && r.owner == this) {
            return r;
        }
        throw new IllegalArgumentException("rope: table is not a RopeTable of this CUDA backend");
    }

    private DevKvCache kv(KvCache cache, int layer) {
        if (!(cache instanceof DevKvCache c) || c.owner != this) {
            throw new IllegalArgumentException("cache is not a KvCache of this CUDA backend: " + cache);
        }
        if (layer < 0 || layer >= c.layers()) {
            throw new IllegalArgumentException("layer " + layer + " outside [0, " + c.layers() + ")");
        }
        return c;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        driver.makeCurrent();
        if (cx.capture != null) {
            graphs.abort();
        }
        RuntimeException first = null;
        try {
            driver.synchronize();
        } catch (RuntimeException e) {
            first = e;
        }
        closed = true;
        List<Runnable> steps = new ArrayList<>();
        if (cx.profiler != null) {
            steps.add(() -> {
                if (!cx.profiler.isEmpty()) {
                    System.err.print(cx.profiler.report());
                }
                cx.profiler.close();
            });
        }
        graphs.addCloseSteps(steps);
        steps.add(matmuls::close);
        batches.addCloseSteps(steps);
        cx.addCloseSteps(steps);
        steps.add(k::close);
        steps.add(driver::close);
        steps.add(arena::close);
        for (Runnable r : steps) {
            try {
                r.run();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
