package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.GraphCapable;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.kernels.cpu.Quantizer;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * The CUDA implementation of {@link Backend}: weights, activations and the paged KV cache live in device memory;
 * ops are kernels (native/*.cu, compiled by NVRTC at construction) launched on one stream, in submission order.
 * Results match the CPU backend to float rounding (see docs/cuda.md for the tolerances and the one exception:
 * the opt-in {@link PrefillGemm#AUTO} rounds activations to BF16 in BF16 prefill matmuls).
 *
 * <p>Beyond the interface: {@link #sample} (temperature / top-k / top-p on the device, only token ids come back)
 * and CUDA graphs — {@link #beginCapture}, {@link #endCapture}, {@link #replay} — to record a whole decode step
 * once and replay it per token with a single launch.
 *
 * <p>Batch metadata: every {@link Batch} object gets a fixed device buffer; an op re-uploads it (one
 * asynchronous copy) only when the fields the op reads differ from the last upload, so the engine just fills
 * its Batch and calls the ops.
 */
public final class CudaBackend implements Backend, GraphCapable {

    /** How matmuls with {@code n >= gemmMinTokens} rows (prefill) are computed. */
    public enum PrefillGemm {
        /**
         * cuBLAS: BF16 weights on tensor cores with activations rounded to BF16 (FP32 accumulation and output;
         * relative error up to ~2^-8 of sum|w·x|); F32 weights by SGEMM; F16/Q8_0/Q4_0 dequantized to F32 in
         * row chunks, then SGEMM.
         */
        AUTO,
        /** cuBLAS SGEMM for every dtype (BF16 dequantized to F32): matches the CPU backend to FP32 rounding. */
        FP32,
        /** No cuBLAS: the GEMV kernels, 8 rows at a time (re-reads the weights every 8 rows). */
        KERNEL
    }

    /**
     * @param device        CUDA device ordinal
     * @param prefillGemm   matmul strategy for n >= gemmMinTokens
     * @param gemmMinTokens smallest n that uses cuBLAS (n below uses the GEMV kernels; at least 2)
     */
    public record Options(int device, PrefillGemm prefillGemm, int gemmMinTokens) {
        public Options {
            if (gemmMinTokens < 2) {
                throw new IllegalArgumentException("gemmMinTokens must be >= 2, got " + gemmMinTokens);
            }
        }

        /**
         * From system properties {@code k2j.cuda.device} (0), {@code k2j.cuda.prefillGemm} (auto|fp32|kernel,
         * default fp32: exact to float rounding; auto trades BF16 activation rounding for tensor-core speed) and {@code k2j.cuda.gemmMinTokens} (default 9: n <= 8 uses the GEMV kernels).
         */
        public static Options defaults() {
            return new Options(Integer.getInteger("k2j.cuda.device", 0),
                    PrefillGemm.valueOf(System.getProperty("k2j.cuda.prefillGemm", "fp32").toUpperCase(Locale.ROOT)),
                    Integer.getInteger("k2j.cuda.gemmMinTokens", 9));
        }
    }

    private static final int MAX_BATCH_OBJECTS = 32;
    private static final long STAGING_BYTES = 64L << 20;
    private static final long DEQUANT_SCRATCH_BYTES = 256L << 20;
    private static final long ATTENTION_PARTIAL_BUDGET = 256L << 20;
    /** Split lengths are multiples of this many keys (short splits: more blocks, shorter serial chains). */
    private static final int ATT_SPLIT_QUANTUM = 16;
    /** The decode kernel's quantum: its 4 warps take 8 keys each per round. */
    private static final int ATT_DEC_QUANTUM = 32;
    private static final int ATT_MAX_SPLITS = 1024;
    private static final int ATT_MAX_QD = 2048;
    private static final int SAMPLE_SLICE = 4096;
    /** native/ops.cu ARGMAX_SLICE */
    private static final int ARGMAX_SLICE = 4096;

    private final Options options;
    private final CudaDriver driver;
    private final CudaKernels k;
    private final Arena arena = Arena.ofShared();
    private final CudaDriver.KernelArgs args;
    private final List<Long> allocations = new ArrayList<>();
    private final List<Long> retired = new ArrayList<>();
    private final Map<Batch, DeviceBatch> batches = new IdentityHashMap<>();
    private DeviceBatch lastBatch;
    private long batchUseClock;
    private final List<CudaGraph> graphs = new ArrayList<>();
    private Cublas cublas;
    private String cublasProblem;
    private boolean closed;

    private final DeviceScratch attnScratch = new DeviceScratch();
    private final DeviceScratch bf16Scratch = new DeviceScratch();
    private final DeviceScratch dequantScratch = new DeviceScratch();
    private final DeviceScratch tempScratch = new DeviceScratch();
    private final DeviceScratch intScratch = new DeviceScratch();
    private final DeviceScratch sampleScratch = new DeviceScratch();
    private MemorySegment hostStaging;

    private Capture capture;
    /** Per-op timing, -Dk2j.cuda.profile=true (eager launches only); null otherwise. */
    private final CudaProfiler profiler;
    private final String[] attentionNames = new String[ATT_MAX_SPLITS + 1];
    private int gemvRowsOverride = Integer.getInteger("k2j.cuda.gemvRows", 0);
    private int gemvWarpsOverride = Integer.getInteger("k2j.cuda.gemvWarps", 0);

    /** A backend on the device and settings of {@link Options#defaults()}. */
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
        this.options = options;
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
        this.args = new CudaDriver.KernelArgs(arena);
        this.profiler = CudaProfiler.requested() ? new CudaProfiler(driver) : null;
    }

    /**
     * The per-op profile so far (-Dk2j.cuda.profile=true; see {@code CudaProfiler}): per op name calls, device
     * time, GPU idle before it, launch and Java time; per step wall, device busy and host-side time. Empty string
     * when profiling is off. Synchronizes.
     */
    public String profileReport() {
        if (profiler == null) {
            return "";
        }
        enterOutsideCapture("profileReport");
        return profiler.report();
    }

    /** Forgets the profile so far (e.g. after warm-up). No-op when profiling is off. */
    public void profileReset() {
        if (profiler != null) {
            enterOutsideCapture("profileReset");
            profiler.reset();
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
                + driver.libraries() + "\nprefill GEMM: " + options.prefillGemm() + " for n >= "
                + options.gemmMinTokens() + "\n" + k.report();
    }

    CudaDriver driver() {
        return driver;
    }

    /** NVRTC's error when prebuilt CUBINs stood in for it (see docs/cuda.md), else null. */
    public String nvrtcFailure() {
        return k.nvrtcFailure();
    }

    // =========================================================================================== memory

    @Override
    public Weight matrix(List<Tensor> rowsStacked, String format) {
        enterOutsideCapture("matrix");
        if (rowsStacked == null || rowsStacked.isEmpty()) {
            throw new IllegalArgumentException("matrix needs at least one tensor");
        }
        Tensor first = rowsStacked.getFirst();
        DType src = first.dtype();
        if (first.rank() != 2) {
            throw new ModelFormatException("tensor '" + first.name() + "' has rank " + first.rank()
                    + ", a weight matrix needs rank 2");
        }
        long cols = first.dim(1);
        long rows = 0;
        for (Tensor t : rowsStacked) {
            if (t.rank() != 2 || t.dim(1) != cols) {
                throw new ModelFormatException("tensor '" + t.name() + "' has shape " + java.util.Arrays.toString(t.shape())
                        + "; all stacked parts need rank 2 and " + cols + " columns like '" + first.name() + "'");
            }
            if (t.dtype() != src) {
                throw new ModelFormatException("tensor '" + t.name() + "' is " + t.dtype() + " but '" + first.name()
                        + "' is " + src + "; stacked parts must share a dtype");
            }
            checkData(t);
            rows += t.dim(0);
        }
        if (rows < 1 || cols < 1 || rows > Integer.MAX_VALUE || cols > Integer.MAX_VALUE) {
            throw new ModelFormatException("matrix '" + first.name() + "': unsupported size " + rows + " x " + cols);
        }
        if (src != DType.F32 && src != DType.F16 && src != DType.BF16 && src != DType.Q8_0 && src != DType.Q4_0) {
            throw new ModelFormatException("tensor '" + first.name() + "': dtype " + src
                    + " is not supported for matrices (F32, F16, BF16, Q8_0, Q4_0)");
        }
        if (src.isQuantized() && cols % 32 != 0) {
            throw new ModelFormatException("tensor '" + first.name() + "': " + src + " rows of " + cols
                    + " columns are not whole blocks of 32");
        }
        DType target = parseFormat(format, src);
        if (target.isQuantized() && cols % 32 != 0) {
            throw new IllegalArgumentException("matrix '" + first.name() + "': " + target + " needs columns divisible"
                    + " by 32, got " + cols);
        }
        DevWeight w = allocWeight((int) rows, (int) cols, target, first.name());
        long row0 = 0;
        for (Tensor t : rowsStacked) {
            uploadRows(t, w, row0);
            row0 += t.dim(0);
        }
        return w;
    }

    private static DType parseFormat(String format, DType src) {
        if (format == null || format.isBlank() || format.equalsIgnoreCase("native")) {
            return src;
        }
        DType t;
        try {
            t = DType.valueOf(format.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown weight format '" + format + "' (F32, F16, BF16, Q8_0, Q4_0)");
        }
        if (t != DType.F32 && t != DType.F16 && t != DType.BF16 && t != DType.Q8_0 && t != DType.Q4_0) {
            throw new IllegalArgumentException("weight format " + t + " is not supported (F32, F16, BF16, Q8_0, Q4_0)");
        }
        return t;
    }

    private static void checkData(Tensor t) {
        long need;
        try {
            need = t.dtype().bytesFor(t.elements());
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException("tensor '" + t.name() + "': " + e.getMessage());
        }
        if (t.data().byteSize() != need) {
            throw new ModelFormatException("tensor '" + t.name() + "' " + t.dtype() + java.util.Arrays.toString(t.shape())
                    + " has " + t.data().byteSize() + " bytes of data, expected " + need);
        }
    }

    private DevWeight allocWeight(int rows, int cols, DType dtype, String name) {
        long elements = (long) rows * cols;
        long dataBytes = switch (dtype) {
            case F32 -> elements * 4;
            case F16, BF16 -> elements * 2;
            case Q8_0 -> elements;
            case Q4_0 -> elements / 2;
            default -> throw new IllegalArgumentException("dtype " + dtype);
        };
        long scaleBytes = dtype.isQuantized() ? elements / 32 * 2 : 0;
        long dataAligned = (dataBytes + 255) & ~255L;
        long ptr = alloc(dataAligned + Math.max(scaleBytes, 0));
        return new DevWeight(this, ptr, dtype.isQuantized() ? ptr + dataAligned : 0, rows, cols, dtype, name);
    }

    /** Converts tensor t (any supported dtype) into w's dtype and device layout, rows [row0, row0 + t.rows). */
    private void uploadRows(Tensor t, DevWeight w, long row0) {
        int cols = w.cols;
        int tRows = Math.toIntExact(t.dim(0));
        MemorySegment staging = staging();
        DType dst = w.dtype;
        DType src = t.dtype();
        if (src == dst && !dst.isQuantized()) {  // plain copy
            long rowBytes = (long) cols * (dst == DType.F32 ? 4 : 2);
            long base = w.data + row0 * rowBytes;
            long total = (long) tRows * rowBytes;
            for (long off = 0; off < total; off += STAGING_BYTES) {
                long n = Math.min(STAGING_BYTES, total - off);
                MemorySegment.copy(t.data(), off, staging, 0, n);
                driver.copyToDeviceAsync(base + off, staging.address(), n);
                driver.synchronize();
            }
            return;
        }
        // convert row chunks: qs (or dense values) in the front of staging, scales behind them
        long qsRowBytes = switch (dst) {
            case F32 -> cols * 4L;
            case F16, BF16 -> cols * 2L;
            case Q8_0 -> cols;
            case Q4_0 -> cols / 2;
            default -> throw new IllegalStateException();
        };
        long scaleRowBytes = dst.isQuantized() ? cols / 32 * 2L : 0;
        long srcRowBytes = src.bytesFor(cols);
        int chunkRows = (int) Math.max(1, Math.min(tRows, STAGING_BYTES / (qsRowBytes + scaleRowBytes)));
        if ((qsRowBytes + scaleRowBytes) > STAGING_BYTES) {
            throw new IllegalArgumentException("matrix row of " + cols + " columns exceeds the upload staging buffer");
        }
        boolean same = src == dst;  // quantized, same type: split blocks into qs and scales only
        for (int r0 = 0; r0 < tRows; r0 += chunkRows) {
            int nr = Math.min(chunkRows, tRows - r0);
            long scalesOff = nr * qsRowBytes;
            final int chunkStart = r0;
            IntStream rowsStream = IntStream.range(0, nr);
            if ((long) nr * cols >= (1 << 20)) {
                rowsStream = rowsStream.parallel();
            }
            rowsStream.forEach(r -> {
                long srcRow = (long) (chunkStart + r);
                if (same) {
                    splitBlocks(dst, t.data(), srcRow * srcRowBytes, cols, staging, r * qsRowBytes,
                            scalesOff + (long) r * (cols / 32) * 2);
                    return;
                }
                float[] row = new float[cols];
                HostCodec.decode(src, t.data(), srcRow * cols, cols, row, 0, t.name());
                long o = r * qsRowBytes;
                switch (dst) {
                    case F32 -> MemorySegment.copy(row, 0, staging, ValueLayout.JAVA_FLOAT_UNALIGNED, o, cols);
                    case F16 -> {
                        for (int i = 0; i < cols; i++) {
                            staging.set(ValueLayout.JAVA_SHORT_UNALIGNED, o + 2L * i, Float.floatToFloat16(row[i]));
                        }
                    }
                    case BF16 -> {
                        for (int i = 0; i < cols; i++) {
                            staging.set(ValueLayout.JAVA_SHORT_UNALIGNED, o + 2L * i, HostCodec.f32ToBf16(row[i]));
                        }
                    }
                    case Q8_0, Q4_0 -> {  // llama.cpp's blocks (the CPU backend's quantizer), then split
                        MemorySegment blocks = MemorySegment.ofArray(new byte[(int) dst.bytesFor(cols)]);
                        Quantizer.quantizeRow(dst, row, 0, cols, blocks, 0);
                        splitBlocks(dst, blocks, 0, cols, staging, o, scalesOff + (long) r * (cols / 32) * 2);
                    }
                    default -> throw new IllegalStateException();
                }
            });
            long absRow = row0 + r0;
            driver.copyToDeviceAsync(w.data + absRow * qsRowBytes, staging.address(), nr * qsRowBytes);
            if (scaleRowBytes > 0) {
                driver.copyToDeviceAsync(w.scales + absRow * scaleRowBytes, staging.address() + scalesOff,
                        nr * scaleRowBytes);
            }
            driver.synchronize();
        }
    }

    /**
     * One row of llama.cpp blocks (f16 scale, then the quantized values) at src[srcOff..] to the device layout:
     * the values to dst[qsOff..], the scales to dst[scalesOff..] (2 bytes per block).
     */
    private static void splitBlocks(DType dt, MemorySegment src, long srcOff, int cols, MemorySegment dst, long qsOff,
                                    long scalesOff) {
        int blockBytes = dt.blockBytes();
        int payload = blockBytes - 2;
        for (int b = 0; b < cols / 32; b++) {
            long sOff = srcOff + (long) b * blockBytes;
            dst.set(ValueLayout.JAVA_SHORT_UNALIGNED, scalesOff + 2L * b, src.get(ValueLayout.JAVA_SHORT_UNALIGNED, sOff));
            MemorySegment.copy(src, sOff + 2, dst, qsOff + (long) b * payload, payload);
        }
    }

    @Override
    public Buffer vector(List<Tensor> parts) {
        enterOutsideCapture("vector");
        if (parts == null || parts.isEmpty()) {
            throw new IllegalArgumentException("vector needs at least one tensor");
        }
        long total = 0;
        for (Tensor t : parts) {
            checkData(t);
            DType d = t.dtype();
            if (d != DType.F32 && d != DType.F16 && d != DType.BF16 && d != DType.F64) {
                throw new ModelFormatException("tensor '" + t.name() + "': dtype " + d
                        + " cannot be a float32 vector (F32, F16, BF16, F64)");
            }
            total += t.elements();
        }
        DevBuffer buf = allocBuffer(total, "vector");
        MemorySegment staging = staging();
        long off = 0;
        int chunk = (int) (STAGING_BYTES / 4);
        float[] tmp = new float[(int) Math.min(chunk, total)];
        for (Tensor t : parts) {
            long n = t.elements();
            for (long i = 0; i < n; i += chunk) {
                int c = (int) Math.min(chunk, n - i);
                HostCodec.decode(t.dtype(), t.data(), i, c, tmp, 0, t.name());
                MemorySegment.copy(tmp, 0, staging, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, c);
                driver.copyToDeviceAsync(buf.ptr + 4 * (off + i), staging.address(), 4L * c);
                driver.synchronize();
            }
            off += n;
        }
        return buf;
    }

    @Override
    public Buffer allocate(long floats) {
        enterOutsideCapture("allocate");
        return allocBuffer(floats, "allocate");
    }

    private DevBuffer allocBuffer(long floats, String what) {
        if (floats < 1) {
            throw new IllegalArgumentException(what + ": buffer of " + floats + " floats");
        }
        long ptr = alloc(floats * 4);
        driver.memsetAsync(ptr, floats * 4);
        return new DevBuffer(this, ptr, floats);
    }

    /** Copies floats from the host into a buffer (tests, engine setup); synchronizes. */
    public void upload(float[] src, int srcOffset, Buffer dst, long dstOffset, int count) {
        enterOutsideCapture("upload");
        DevBuffer d = buffer(dst, "upload dst");
        java.util.Objects.checkFromIndexSize(srcOffset, count, src.length);
        need(d, dstOffset + count, "upload dst");
        MemorySegment staging = staging();
        int chunk = (int) (STAGING_BYTES / 4);
        for (int i = 0; i < count; i += chunk) {
            int c = Math.min(chunk, count - i);
            MemorySegment.copy(src, srcOffset + i, staging, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, c);
            driver.copyToDeviceAsync(d.ptr + 4 * (dstOffset + i), staging.address(), 4L * c);
            driver.synchronize();
        }
    }

    @Override
    public RopeTable ropeTable(float[] invFreq, float attentionScaling, int maxPositions) {
        enterOutsideCapture("ropeTable");
        int half = invFreq.length;
        if (half < 1 || maxPositions < 1) {
            throw new IllegalArgumentException("ropeTable: " + half + " frequencies, " + maxPositions + " positions");
        }
        long n = (long) maxPositions * half;
        float[] cos = new float[Math.toIntExact(n)];
        float[] sin = new float[cos.length];
        for (int p = 0; p < maxPositions; p++) {
            for (int i = 0; i < half; i++) {
                float angle = p * invFreq[i];  // float32 product, as HF computes it
                cos[p * half + i] = (float) Math.cos(angle) * attentionScaling;
                sin[p * half + i] = (float) Math.sin(angle) * attentionScaling;
            }
        }
        DevBuffer c = allocBuffer(n, "ropeTable");
        DevBuffer s = allocBuffer(n, "ropeTable");
        upload(cos, 0, c, 0, cos.length);
        upload(sin, 0, s, 0, sin.length);
        return new DevRope(this, c.ptr, s.ptr, maxPositions, half);
    }

    @Override
    public KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize) {
        enterOutsideCapture("kvCache");
        if (layers < 1 || kvDim < 1 || numBlocks < 1 || blockSize < 1) {
            throw new IllegalArgumentException("kvCache(layers=" + layers + ", kvDim=" + kvDim + ", numBlocks="
                    + numBlocks + ", blockSize=" + blockSize + ")");
        }
        long regionFloats = (long) numBlocks * blockSize * kvDim;
        long ptr = alloc(regionFloats * 4 * 2 * layers);
        driver.memsetAsync(ptr, regionFloats * 4 * 2 * layers);
        return new DevKvCache(this, ptr, layers, kvDim, numBlocks, blockSize);
    }

    // =========================================================================================== ops

    @Override
    public void embed(Weight table, Batch batch, Buffer out) {
        enter();
        DevWeight w = weight(table);
        DevBuffer o = buffer(out, "embed out");
        DeviceBatch db = sync(batch, 0);
        int n = batch.nTokens;
        need(o, (long) n * w.cols, "embed out");
        for (int t = 0; t < n; t++) {
            int tok = batch.tokens[t];
            if (tok < 0 || tok >= w.rows) {
                throw new IllegalArgumentException("Batch.tokens[" + t + "]=" + tok + " outside the embedding table [0, "
                        + w.rows + ")");
            }
        }
        if (capture != null) {
            capture.minEmbedRows = Math.min(capture.minEmbedRows, w.rows);
        }
        args.reset().ptr(w.data).ptr(w.scales).i32(w.code).ptr(db.tokensPtr).i32(n).i32(w.cols).ptr(o.ptr);
        launch(k.embed, "embed", grid((long) n * w.cols), 1, 256);
    }

    @Override
    public void rmsNorm(Buffer x, Buffer gamma, float eps, int n, int dim, Buffer out) {
        enterKeepingPending();
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
        long rowsFloats = (long) n * dim;
        if (pending == PENDING_ADD && pendX == xb.ptr && pendCount == rowsFloats
                && (o.ptr == pendY || !overlaps(o.ptr, rowsFloats, pendY, rowsFloats))) {
            pending = PENDING_NONE;  // x += y and the norm in one pass
            args.reset().ptr(xb.ptr).ptr(pendY).ptr(g.ptr).f32(eps).i32(dim).ptr(o.ptr);
            launch(k.addRmsnorm, "add_rmsnorm", n, 1, 256);
            return;
        }
        flushPending();
        args.reset().ptr(xb.ptr).ptr(g.ptr).f32(eps).i32(dim).ptr(o.ptr);
        launch(k.rmsnorm, "rmsnorm", n, 1, 256);
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
        if (n >= options.gemmMinTokens() && options.prefillGemm() != PrefillGemm.KERNEL && capture == null) {
            Cublas cb = cublas();
            if (cb != null) {
                gemmCublas(cb, w, b, xb.ptr, n, o.ptr);
                return;
            }
        }
        long bp = b == null ? 0 : b.ptr;
        if (fuse && fuseLayerOps && w.rows % 2 == 0 && w.cols % CudaKernels.chunkElements(w.dtype) == 0) {
            pending = PENDING_MATMUL;  // held back: the next op may be siluMul of this output
            pendWeight = w;
            pendBias = bp;
            pendX = xb.ptr;
            pendN = n;
            pendY = o.ptr;
            return;
        }
        gemv(w, bp, xb.ptr, n, o.ptr, 0);
    }

    /**
     * Rows per warp group of the GEMV kernels: 4 (each activation load serves four rows, and four rows' loads are
     * in flight per lane; measured faster than one row per warp for every dtype and Qwen2.5 shape, CudaOpBench);
     * {@code -Dk2j.cuda.gemvRows=1|4} forces one (comparisons).
     */
    private int gemvRows() {
        return gemvRowsOverride == 1 ? 1 : 4;
    }

    /** 0 (auto), 1 or 4: see {@link #gemvRows}; package-private for the smoke check's comparison. */
    void gemvRowsOverride(int rows) {
        if (rows != 0 && rows != 1 && rows != 4) {
            throw new IllegalArgumentException("gemv rows per warp must be 0 (auto), 1 or 4, got " + rows);
        }
        gemvRowsOverride = rows;
    }

    /**
     * Warps per row group. Dense types: 4 (the fastest or within 0.3 µs of it at every Qwen2.5 shape measured on an
     * H200 by CudaOpBench). Quantized types and the fused gate|up GEMV (where 4 warps measured 1.6 µs slower on
     * 0.5B's, 0.8 µs faster on 1.5B's): 4 when the matrix has too few row groups to keep every SM busy with one warp
     * each (fewer than 16 per SM, e.g. down projections) and rows long enough to give each of the 128 lanes a
     * chunk; else 1 (more warps per row made the many-row quantized matrices slower).
     * {@code -Dk2j.cuda.gemvWarps=1|4} forces one (comparisons).
     */
    private int gemvWarps(long groups, int chunks, boolean dense) {
        if (gemvWarpsOverride == 1 || gemvWarpsOverride == 4) {
            return gemvWarpsOverride;
        }
        if (dense) {
            return chunks >= 32 ? 4 : 1;
        }
        return groups < 16L * driver.multiprocessors() && chunks >= 64 ? 4 : 1;
    }

    /** 0 (auto), 1 or 4: see {@link #gemvWarps}; package-private for the op benchmark's comparison. */
    void gemvWarpsOverride(int warps) {
        if (warps != 0 && warps != 1 && warps != 4) {
            throw new IllegalArgumentException("gemv warps per row group must be 0 (auto), 1 or 4, got " + warps);
        }
        gemvWarpsOverride = warps;
    }

    /**
     * out = x W^T (+ bias) for n tokens, in launches of up to 8 tokens. act != 0: W is [gate; up] and
     * silu(gate) * up goes to act [n, rows / 2] as well (the fast path only).
     */
    private void gemv(DevWeight w, long bias, long x, int n, long out, long act) {
        int e = CudaKernels.chunkElements(w.dtype);
        boolean fast = w.cols % e == 0;
        int rowsPerGroup = act != 0 ? 2 : fast ? gemvRows() : 1;
        long groups = act != 0 ? w.rows / 2 : (w.rows + rowsPerGroup - 1) / rowsPerGroup;
        int warps = fast ? gemvWarps(groups, w.cols / e, act == 0 && !w.dtype.isQuantized()) : 1;
        int blocks = (int) ((groups * warps + 3) / 4);  // 4 warps per block
        int wi = warps == 4 ? 1 : 0;
        for (int t0 = 0; t0 < n; t0 += 8) {
            int nb = Math.min(8, n - t0);
            long xp = x + 4L * t0 * w.cols;
            long op = out + 4L * t0 * w.rows;
            args.reset().ptr(w.data).ptr(w.scales).ptr(xp).ptr(bias).ptr(op).i32(w.rows).i32(w.cols);
            if (act != 0) {
                args.ptr(act + 4L * t0 * (w.rows / 2));
                launch(k.gemvSilu[w.code][wi][nb], profiler == null ? "gemv" : w.profileName() + " +silu",
                        blocks, 1, 128);
            } else if (fast) {
                launch(rowsPerGroup == 4 ? k.gemvR4[w.code][wi][nb] : k.gemv[w.code][wi][nb],
                        profiler == null ? "gemv" : w.profileName(), blocks, 1, 128);
            } else {
                args.i32(w.code).i32(nb);
                launch(k.gemvGeneric, "gemv_generic", blocks, 1, 128);
            }
        }
    }

    private void gemmCublas(Cublas cb, DevWeight w, DevBuffer bias, long x, int n, long out) {
        long count = (long) n * w.cols;
        if (w.dtype == DType.BF16 && options.prefillGemm() == PrefillGemm.AUTO) {
            long bf = bf16Scratch.ensure(count * 2);
            args.reset().ptr(x).ptr(bf).i64(count);
            launch(k.f32ToBf16, "f32_to_bf16", grid(count), 1, 256);
            cb.gemm(w.data, bf, Cublas.CUDA_R_16BF, out, w.rows, n, w.cols, w.rows);
        } else if (w.dtype == DType.F32) {
            cb.gemm(w.data, x, Cublas.CUDA_R_32F, out, w.rows, n, w.cols, w.rows);
        } else {
            int chunkRows = (int) Math.max(1, Math.min(w.rows, DEQUANT_SCRATCH_BYTES / (4L * w.cols)));
            long scratch = dequantScratch.ensure(4L * chunkRows * w.cols);
            for (int r0 = 0; r0 < w.rows; r0 += chunkRows) {
                int nr = Math.min(chunkRows, w.rows - r0);
                args.reset().ptr(w.data).ptr(w.scales).i32(w.code).i32(r0).i32(nr).i32(w.cols).ptr(scratch);
                launch(k.dequantF32, "dequant_f32", grid((long) nr * w.cols), 1, 256);
                cb.gemm(scratch, x, Cublas.CUDA_R_32F, out + 4L * r0, nr, n, w.cols, w.rows);
            }
        }
        if (bias != null) {
            args.reset().ptr(out).ptr(bias.ptr).i32(n).i32(w.rows);
            launch(k.addBias, "add_bias", grid((long) n * w.rows), 1, 256);
        }
    }

    /** cuBLAS, opened on first use; null (with a reason in describeGemm) when it cannot be loaded. */
    private Cublas cublas() {
        if (cublas == null && cublasProblem == null) {
            if (driver.libraries().cublas() == null) {
                cublasProblem = "libcublas.so not found (set -Dk2j.cuda.cublas=/abs/path/libcublas.so.13)";
            } else {
                try {
                    cublas = Cublas.open(driver.libraries().cublas(), driver.stream());
                } catch (CudaException e) {
                    cublasProblem = e.getMessage();
                }
            }
            if (cublasProblem != null) {
                System.getLogger(CudaBackend.class.getName()).log(System.Logger.Level.WARNING,
                        "cuBLAS unavailable, prefill matmuls use the GEMV kernels: " + cublasProblem);
            }
        }
        return cublas;
    }

    /** Why cuBLAS is not used, or null when it is (or has not been needed yet). */
    public String cublasProblem() {
        return cublasProblem;
    }

    @Override
    public void rope(Buffer x, int n, int rowStride, int colOffset, int heads, int headDim, Batch batch,
                     RopeTable table) {
        enterKeepingPending();
        DevBuffer xb = buffer(x, "rope x");
        if (!(table instanceof DevRope r) || r.owner != this) {
            throw new IllegalArgumentException("rope: table is not a RopeTable of this CUDA backend");
        }
        positive(n, "rope n");
        positive(heads, "rope heads");
        if (headDim % 2 != 0 || headDim / 2 != r.half) {
            throw new IllegalArgumentException("rope: headDim " + headDim + " does not match the table's "
                    + r.half + " frequencies");
        }
        if (colOffset < 0 || colOffset + (long) heads * headDim > rowStride) {
            throw new IllegalArgumentException("rope: columns [" + colOffset + ", " + (colOffset + (long) heads * headDim)
                    + ") do not fit rows of " + rowStride);
        }
        need(xb, (long) (n - 1) * rowStride + colOffset + (long) heads * headDim, "rope x");
        // a held rope on the preceding heads of the same rows, same batch and table, whose batch copy needs no
        // re-upload, is extended by these heads; anything else is issued first (before sync may upload)
        DeviceBatch current = lastBatch != null && lastBatch.batch == batch ? lastBatch : batches.get(batch);
        boolean merge = pending == PENDING_ROPE && pendX == xb.ptr && pendN == n && pendRowStride == rowStride
                && pendRope == r && pendBatch == batch && pendHalf == r.half
                && colOffset == pendColOffset + pendHeads * 2 * pendHalf
                && current != null && current.matches(batch, 0);
        if (!merge) {
            flushPending();
        }
        DeviceBatch db = sync(batch, 0);
        if (n > batch.nTokens) {
            throw new IllegalArgumentException("rope: n=" + n + " exceeds Batch.nTokens=" + batch.nTokens);
        }
        for (int t = 0; t < n; t++) {
            if (batch.positions[t] >= r.maxPositions) {
                throw new IllegalArgumentException("Batch.positions[" + t + "]=" + batch.positions[t]
                        + " beyond the RoPE table (" + r.maxPositions + " positions)");
            }
        }
        if (capture != null) {
            capture.minRopePositions = Math.min(capture.minRopePositions, r.maxPositions);
        }
        if (merge) {
            pendHeads += heads;
            return;
        }
        if (!fuse) {
            launchRope(xb.ptr, n, rowStride, colOffset, heads, r.half, db.positionsPtr, r.cos, r.sin);
            return;
        }
        pending = PENDING_ROPE;  // held back: the next op may rotate the following heads
        pendX = xb.ptr;
        pendN = n;
        pendRowStride = rowStride;
        pendColOffset = colOffset;
        pendHeads = heads;
        pendHalf = r.half;
        pendPositions = db.positionsPtr;
        pendRopeCos = r.cos;
        pendRopeSin = r.sin;
        pendRope = r;
        pendBatch = batch;
    }

    @Override
    public void storeKv(KvCache cache, int layer, Buffer qkv, int rowStride, int kOffset, int vOffset, Batch batch) {
        enterKeepingPending();
        DevKvCache c = kv(cache, layer);
        DevBuffer q = buffer(qkv, "storeKv qkv");
        int kvDim = c.kvDim;
        if (kOffset < 0 || vOffset < 0 || kOffset + kvDim > rowStride || vOffset + kvDim > rowStride) {
            throw new IllegalArgumentException("storeKv: key/value columns at " + kOffset + "/" + vOffset + " (+" + kvDim
                    + ") do not fit rows of " + rowStride);
        }
        // a held rope over these rows whose rotated heads hold the keys (at head boundaries) and not the values,
        // on a batch copy that needs no re-upload: one rope_store_kv launch
        DeviceBatch current = lastBatch != null && lastBatch.batch == batch ? lastBatch : batches.get(batch);
        long ropeStart = pendColOffset;
        long ropeEnd = pendColOffset + (long) pendHeads * 2 * pendHalf;
        boolean merge = pending == PENDING_ROPE && fuseLayerOps && pendX == q.ptr && pendN == batch.nTokens
                && pendRowStride == rowStride && pendBatch == batch && current != null
                && current.matches(batch, c.blockSize)
                && kOffset >= ropeStart && kOffset + kvDim <= ropeEnd && (kOffset - ropeStart) % (2L * pendHalf) == 0
                && kvDim % (2 * pendHalf) == 0 && (vOffset + kvDim <= ropeStart || vOffset >= ropeEnd);
        if (!merge) {
            flushPending();
        }
        DeviceBatch db = sync(batch, c.blockSize);
        int n = batch.nTokens;
        need(q, (long) (n - 1) * rowStride + Math.max(kOffset, vOffset) + kvDim, "storeKv qkv");
        validateBlocks(db, c);
        if (merge) {
            clearPending();
            args.reset().ptr(pendX).i32(n).i32(rowStride).i32(pendColOffset).i32(pendHeads).i32(pendHalf)
                    .ptr(pendPositions).ptr(pendRopeCos).ptr(pendRopeSin).i32(kOffset).i32(vOffset).i32(kvDim)
                    .ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr).i32(db.maxBlocks).i32(c.blockSize)
                    .ptr(c.k(layer)).ptr(c.v(layer));
            layerFusions++;
            launch(k.ropeStoreKv, "rope_store_kv", grid((long) n * pendHeads * pendHalf + (long) n * kvDim), 1, 256);
            return;
        }
        args.reset().ptr(q.ptr).i32(rowStride).i32(kOffset).i32(vOffset).i32(kvDim).i32(n)
                .ptr(db.positionsPtr).ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr).i32(db.maxBlocks).i32(c.blockSize)
                .ptr(c.k(layer)).ptr(c.v(layer));
        launch(k.storeKv, "store_kv", grid((long) n * kvDim), 1, 256);
    }

    @Override
    public void attention(Buffer qkv, int rowStride, KvCache cache, int layer, Batch batch, int heads, int kvHeads,
                          int headDim, float scale, Buffer out) {
        enter();
        DevKvCache c = kv(cache, layer);
        DevBuffer q = buffer(qkv, "attention qkv");
        DevBuffer o = buffer(out, "attention out");
        positive(heads, "attention heads");
        positive(kvHeads, "attention kvHeads");
        positive(headDim, "attention headDim");
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("attention: heads " + heads + " not a multiple of kvHeads " + kvHeads);
        }
        int group = heads / kvHeads;
        if (group > 16 || (long) group * headDim > ATT_MAX_QD) {
            throw new IllegalArgumentException("attention: " + group + " query heads per kv head of dim " + headDim
                    + " exceed the kernel's limit (group <= 16, group * headDim <= " + ATT_MAX_QD + ")");
        }
        if ((long) kvHeads * headDim != c.kvDim) {
            throw new IllegalArgumentException("attention: kvHeads * headDim = " + (kvHeads * headDim)
                    + " but the cache's kvDim is " + c.kvDim);
        }
        if ((long) heads * headDim > rowStride) {
            throw new IllegalArgumentException("attention: " + heads + " heads of " + headDim
                    + " do not fit rows of " + rowStride);
        }
        DeviceBatch db = sync(batch, c.blockSize);
        int n = batch.nTokens;
        long outFloats = (long) n * heads * headDim;
        need(q, (long) (n - 1) * rowStride + (long) heads * headDim, "attention qkv");
        need(o, outFloats, "attention out");
        if (overlaps(o.ptr, outFloats, q.ptr, (long) n * rowStride)) {
            throw new IllegalArgumentException("attention: out must not alias qkv");
        }
        validateBlocks(db, c);

        // Split the key range so that ~2 blocks per SM are busy; in a graph, size splits for the full capacity
        // (the kernel skips positions past each token's own length).
        long span;
        if (capture != null) {
            span = (long) db.maxBlocks * c.blockSize;
        } else {
            span = 1;
            for (int t = 0; t < n; t++) {
                span = Math.max(span, batch.positions[t] + 1L);
            }
        }
        long blocksPerSplit = (long) n * kvHeads;
        long wantSplits = Math.max(1, (2L * driver.multiprocessors() + blocksPerSplit - 1) / blocksPerSplit);
        long perSplitFloats = (long) n * heads * (headDim + 2L);
        wantSplits = Math.min(wantSplits, Math.max(1, ATTENTION_PARTIAL_BUDGET / (4 * perSplitFloats)));
        wantSplits = Math.min(wantSplits, ATT_MAX_SPLITS);
        // splits of >= ATT_SPLIT_QUANTUM keys; the kernel re-derives each token's split length from its own
        // length (ceil(len / nSplits) rounded up to the quantum), so in a graph the live splits follow the
        // sequence at replay and the rest exit at once (attention_combine reads only the live prefix)
        int gi = group <= 1 ? 0 : group <= 2 ? 1 : group <= 4 ? 2 : group <= 8 ? 3 : 4;
        long decKernel = decodeAttentionKernel(n, headDim, gi, rowStride, c.kvDim, q.ptr, c.k(layer), c.v(layer));
        int quantum = decKernel != 0 ? decQuantum : ATT_SPLIT_QUANTUM;
        long splitLen = roundUp(ceilDiv(span, wantSplits), quantum);
        int nSplits = (int) ceilDiv(span, splitLen);
        long pAcc = 0;
        long pMax = 0;
        long pSum = 0;
        if (nSplits > 1) {
            long accFloats = (long) n * heads * nSplits * headDim;
            long mFloats = (long) n * heads * nSplits;
            pAcc = attnScratch.ensure(4 * (accFloats + 2 * mFloats));
            pMax = pAcc + 4 * accFloats;
            pSum = pMax + 4 * mFloats;
        }
        args.reset().ptr(q.ptr).i32(rowStride).i32(heads).i32(kvHeads);
        if (decKernel == 0) {
            args.i32(headDim);  // the decode kernel's head dim is a template parameter
        }
        args.f32(scale).ptr(c.k(layer)).ptr(c.v(layer)).i32(c.kvDim)
                .ptr(db.positionsPtr).ptr(db.seqOfTokenPtr).ptr(db.blockTablesPtr).i32(db.maxBlocks).i32(c.blockSize)
                .i32(quantum).i32(nSplits).ptr(o.ptr).ptr(pAcc).ptr(pMax).ptr(pSum);
        launch(decKernel != 0 ? decKernel : k.attention[gi], profiler == null ? "attention" : attentionName(nSplits),
                n * kvHeads, nSplits, 128);
        if (nSplits > 1) {
            args.reset().ptr(pAcc).ptr(pMax).ptr(pSum).i32(nSplits).i32(headDim).ptr(o.ptr);
            launch(k.attentionCombine, "attention_combine", n * heads, 1, 128);
        }
    }

    /**
     * The attention_dec kernel for this call, or 0 for the general one: batches of up to 8 tokens (decode and
     * speculative verification; prefill keeps the general kernel's wider chunks), head dims 32/64/128/256 with
     * (group rounded up to a power of two) * headDim / 32 <= 32, and the rows aligned for its vector loads.
     */
    private long decodeAttentionKernel(int n, int headDim, int gi, int rowStride, int kvDim, long q, long kc, long vc) {
        if (!decodeAttention || n > 8 || headDim % 32 != 0) {
            return 0;
        }
        int dl = headDim / 32;
        int di = Integer.numberOfTrailingZeros(dl);
        if (Integer.bitCount(dl) != 1 || di > 3) {
            return 0;
        }
        int vec = Math.min(dl, 4);  // floats per vector load
        if (rowStride % vec != 0 || kvDim % vec != 0 || q % (4L * vec) != 0 || kc % (4L * vec) != 0
                || vc % (4L * vec) != 0) {
            return 0;
        }
        return k.attentionDec[di][gi];  // 0 where the group is too large for registers
    }

    private String attentionName(int nSplits) {
        String s = attentionNames[nSplits];
        if (s == null) {
            s = "attention splits=" + nSplits;
            attentionNames[nSplits] = s;
        }
        return s;
    }

    @Override
    public void siluMul(Buffer gateUp, int n, int dim, Buffer out) {
        enterKeepingPending();
        DevBuffer g = buffer(gateUp, "siluMul gateUp");
        DevBuffer o = buffer(out, "siluMul out");
        positive(n, "siluMul n");
        positive(dim, "siluMul dim");
        long count = (long) n * dim;
        need(g, 2 * count, "siluMul gateUp");
        need(o, count, "siluMul out");
        if (pending == PENDING_MATMUL && pendY == g.ptr && pendN == n && pendWeight.rows == 2 * dim
                && !overlaps(o.ptr, count, g.ptr, 2 * count) && !overlaps(o.ptr, count, pendX, (long) n * pendWeight.cols)) {
            DevWeight w = pendWeight;  // the held gate|up product writes silu(gate) * up as well
            clearPending();
            layerFusions++;
            gemv(w, pendBias, pendX, n, g.ptr, o.ptr);
            return;
        }
        flushPending();
        if (overlaps(o.ptr, count, g.ptr, 2 * count) && !(n == 1 && o.ptr == g.ptr)) {
            // in place over several rows would race (row t writes where row t/2 still reads): go through a temp
            long tmp = tempScratch.ensure(4 * count);
            args.reset().ptr(g.ptr).i32(n).i32(dim).ptr(tmp);
            launch(k.siluMul, "silu_mul", grid(count), 1, 256);
            driver.copyDeviceAsync(o.ptr, tmp, 4 * count);
            countOp();
            return;
        }
        args.reset().ptr(g.ptr).i32(n).i32(dim).ptr(o.ptr);
        launch(k.siluMul, "silu_mul", grid(count), 1, 256);
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
        args.reset().ptr(xb.ptr).i32(heads.stride()).i32(heads.offset()).i32(headDim).ptr(g.ptr).f32(eps);
        launch(k.rmsnormHeads, "rmsnorm_heads", n, heads.width() / headDim, 128);
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
        args.reset().ptr(xb.ptr).i32(dim).ptr(routing).i32(count).ptr(o.ptr);
        launch(k.gatherRowsIdx, "gather_rows_idx", grid((long) count * dim), 1, 256);
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
        args.reset().ptr(s.ptr).i32(dim).ptr(routing).ptr(routing + 4L * count).i32(count).ptr(d.ptr);
        launch(k.scatterAddRows, "scatter_add_rows", grid((long) count * dim), 1, 256);
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
        if (bytes > STAGING_BYTES) {
            throw new IllegalArgumentException("MoE routing of " + count + " rows exceeds the staging buffer");
        }
        if (bytes > moeRoutingBytes) {
            moeRoutingBytes = Math.max(bytes, 2 * moeRoutingBytes);
            moeRouting = alloc(moeRoutingBytes); // the smaller one stays allocated until close
        }
        MemorySegment st = staging();
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
        enterKeepingPending();
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
        flushPending();
        if (fuse) {  // held back: the next op may be rmsNorm of x
            pending = PENDING_ADD;
            pendX = xb.ptr;
            pendY = yb.ptr;
            pendCount = count;
            return;
        }
        args.reset().ptr(xb.ptr).ptr(yb.ptr).i64(count);
        launch(k.add, "add", grid(count), 1, 256);
    }

    @Override
    public void gatherRows(Buffer x, int dim, Batch batch, Buffer out) {
        enter();
        DevBuffer xb = buffer(x, "gatherRows x");
        DevBuffer o = buffer(out, "gatherRows out");
        positive(dim, "gatherRows dim");
        DeviceBatch db = sync(batch, 0);
        int rows = batch.nLogits;
        if (rows == 0) {
            return;
        }
        need(xb, (long) batch.nTokens * dim, "gatherRows x");
        need(o, (long) rows * dim, "gatherRows out");
        if (overlaps(o.ptr, (long) rows * dim, xb.ptr, (long) batch.nTokens * dim)) {
            throw new IllegalArgumentException("gatherRows: out must not alias x");
        }
        args.reset().ptr(xb.ptr).i32(dim).ptr(db.logitRowsPtr).i32(rows).ptr(o.ptr);
        launch(k.gatherRows, "gather_rows", grid((long) rows * dim), 1, 256);
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
        MemorySegment staging = staging();
        int chunk = (int) (STAGING_BYTES / 4);
        for (int i = 0; i < count; i += chunk) {
            int c = Math.min(chunk, count - i);
            driver.copyToHostAsync(staging.address(), s.ptr + 4 * (srcOffset + i), 4L * c);
            driver.synchronize();
            MemorySegment.copy(staging, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, dst, dstOffset + i, c);
        }
        if (count == 0) {
            driver.synchronize();
        }
        if (profiler != null) {
            profiler.stepEnd();
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
        long dev = intScratch.ensure(4L * n);
        if (dim > 2 * ARGMAX_SLICE) {  // a vocabulary: one block per 4096-wide slice, then a merge per row
            int slices = (dim + ARGMAX_SLICE - 1) / ARGMAX_SLICE;
            long pv = tempScratch.ensure(8L * n * slices);
            long pi = pv + 4L * n * slices;
            args.reset().ptr(xb.ptr).i32(dim).i32(slices).ptr(pv).ptr(pi);
            launch(k.argmaxSlices, "argmax_slices", slices, n, 256);
            args.reset().ptr(pv).ptr(pi).i32(slices).ptr(dev);
            launch(k.argmaxMerge, "argmax_merge", n, 1, 128);
        } else {
            args.reset().ptr(xb.ptr).i32(dim).ptr(dev);
            launch(k.argmax, "argmax_rows", n, 1, 1024);
        }
        readInts(dev, out, n);
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
            argmax(logits, n, dim, out);
            return;
        }
        float invTemp = 1.0f / temperature;
        long outDev = intScratch.ensure(4L * n);
        if (topK >= 1 && topK <= 1024) {
            int kk = Math.min(topK, dim);
            long count = dim;
            long firstOut = ceilDiv(dim, SAMPLE_SLICE) * kk;
            long pingFloats = (long) n * firstOut;
            long base = sampleScratch.ensure(16 * pingFloats);  // two (value, index) ping-pong arrays
            long inVal = xb.ptr;
            long inIdx = 0;
            long inStride = dim;
            int which = 0;
            while (count > SAMPLE_SLICE) {
                int slices = (int) ceilDiv(count, SAMPLE_SLICE);
                long outCount = (long) slices * kk;
                long outVal = base + 8 * which * pingFloats;  // (values, indices) at base or base + 8·ping
                long outIdx = outVal + 4 * pingFloats;
                args.reset().ptr(inVal).ptr(inIdx).i64(inStride).i32((int) count).i32(kk)
                        .ptr(outVal).ptr(outIdx).i64(outCount);
                launch(k.topkSlices, "topk_slices", slices, n, 1024);
                inVal = outVal;
                inIdx = outIdx;
                inStride = outCount;
                count = outCount;
                which ^= 1;
            }
            args.reset().ptr(inVal).ptr(inIdx).i64(inStride).i32((int) count).i32(kk).f32(invTemp).f32(topP)
                    .i64(seed).ptr(outDev);
            launch(k.sampleTopk, "sample_topk", n, 1, 1024);
        } else {
            long probs = sampleScratch.ensure(4L * n * dim);
            args.reset().ptr(xb.ptr).i32(dim).i32(topK).f32(invTemp).f32(topP).i64(seed).ptr(probs).ptr(outDev);
            launch(k.sampleFull, "sample_full", n, 1, 1024);
        }
        readInts(outDev, out, n);
    }

    private void readInts(long dev, int[] out, int n) {
        MemorySegment staging = staging();
        if (profiler != null) {
            profiler.begin("read_ids(D2H)");
            driver.copyToHostAsync(staging.address(), dev, 4L * n);
            profiler.end();
        } else {
            driver.copyToHostAsync(staging.address(), dev, 4L * n);
        }
        driver.synchronize();
        MemorySegment.copy(staging, ValueLayout.JAVA_INT_UNALIGNED, 0, out, 0, n);
        if (profiler != null) {
            profiler.stepEnd();
        }
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
        DeviceBatch db = sync(batch, 0);
        capture = new Capture(batch, db);
        try {
            driver.beginCapture();
        } catch (RuntimeException e) {
            capture = null;
            throw e;
        }
    }

    /** Ends the recording and instantiates the graph. */
    @Override
    public CudaGraph endCapture() {
        enter();
        if (capture == null) {
            throw new IllegalStateException("endCapture without beginCapture");
        }
        Capture c = capture;
        capture = null;
        long graph = driver.endCapture();
        long exec;
        try {
            exec = driver.instantiate(graph);
        } catch (RuntimeException e) {
            driver.graphDestroy(graph, 0);
            throw e;
        }
        CudaGraph g = new CudaGraph(this, graph, exec, c.batch, c.minRopePositions, c.minEmbedRows,
                List.copyOf(c.caches), c.ops);
        graphs.add(g);
        return g;
    }

    /** Abandons a capture after an op failed during it; the stream is usable again afterwards. */
    @Override
    public void abortCapture() {
        clearPending();  // a held launch belongs to the failed recording
        enter();
        if (capture == null) {
            return;
        }
        capture = null;
        try {
            long graph = driver.endCapture();
            driver.graphDestroy(graph, 0);
        } catch (CudaException e) {
            // an invalidated capture ends with an error; the stream has left capture mode either way
        }
    }

    /** True between beginCapture and endCapture/abortCapture. */
    public boolean capturing() {
        return capture != null;
    }

    /**
     * Uploads {@code batch} (it must be the Batch object the graph was captured with, with the same nTokens,
     * nSeqs and nLogits; positions, block tables and tokens may change) and launches the graph. Asynchronous
     * like the ops; read results with download/argmax/sample.
     */
    @Override
    public void replay(GraphCapable.Graph step, Batch batch) {
        enterOutsideCapture("replay");
        if (!(step instanceof CudaGraph graph) || graph.owner != this || graph.closed) {
            throw new IllegalArgumentException("replay: graph is closed or belongs to another backend");
        }
        if (batch != graph.batch) {
            throw new IllegalArgumentException("replay: the graph reads the device copy of the Batch object it was"
                    + " captured with; pass that same object (refilled)");
        }
        if (batch.nTokens != graph.nTokens || batch.nSeqs != graph.nSeqs || batch.nLogits != graph.nLogits) {
            throw new IllegalArgumentException("replay: graph captured with nTokens/nSeqs/nLogits = " + graph.nTokens
                    + "/" + graph.nSeqs + "/" + graph.nLogits + ", batch has " + batch.nTokens + "/" + batch.nSeqs + "/"
                    + batch.nLogits);
        }
        DeviceBatch db = sync(batch, 0);
        for (int t = 0; t < batch.nTokens; t++) {
            if (batch.positions[t] >= graph.minRopePositions) {
                throw new IllegalArgumentException("Batch.positions[" + t + "]=" + batch.positions[t]
                        + " beyond the RoPE table (" + graph.minRopePositions + " positions)");
            }
            if (batch.tokens[t] < 0 || batch.tokens[t] >= graph.minEmbedRows) {
                throw new IllegalArgumentException("Batch.tokens[" + t + "]=" + batch.tokens[t]
                        + " outside the embedding table [0, " + graph.minEmbedRows + ")");
            }
        }
        for (int i = 0; i < graph.caches.size(); i++) {  // indexed: no iterator on the per-token path
            DevKvCache c = graph.caches.get(i);
            if (!db.matches(batch, c.blockSize)) {
                uploadBatch(db, batch);
            }
            validateBlocks(db, c);
        }
        if (profiler != null) {
            profiler.begin("graph_replay");
            driver.graphLaunch(graph.exec);
            profiler.end();
        } else {
            driver.graphLaunch(graph.exec);
        }
    }

    private void uploadBatch(DeviceBatch db, Batch batch) {
        if (profiler != null && capture == null) {
            profiler.begin("batch_upload(H2D)");
            db.upload(driver, batch);
            profiler.end();
        } else {
            db.upload(driver, batch);
        }
    }

    void destroyGraph(CudaGraph g) {
        if (g.closed) {
            return;
        }
        g.closed = true;
        graphs.remove(g);
        if (!closed) {
            driver.makeCurrent();
            driver.synchronize();
            driver.graphDestroy(g.graph, g.exec);
            freeRetiredIfIdle();
        }
    }

    // =========================================================================================== helpers

    /** Every op starts here: the backend is open, its context current, and a deferred launch is issued. */
    private void enter() {
        enterKeepingPending();
        flushPending();
    }

    /** For the ops that may merge with the deferred launch (add, rmsNorm, rope): they flush themselves. */
    private void enterKeepingPending() {
        if (closed) {
            throw new IllegalStateException("CudaBackend is closed");
        }
        driver.makeCurrent();
    }

    // ------------------------------------------------------------------ deferred launches (fusion)
    // add, rope and GEMVs are held back one op: add followed by rmsNorm of the same rows becomes add_rmsnorm; rope
    // followed by rope on the next heads of the same rows (q then k) becomes one rope launch, and rope followed by
    // storeKv of keys among the rotated heads becomes rope_store_kv; a GEMV of an even number of rows followed by
    // siluMul of its output becomes the gate|up GEMV that also writes silu(gate) * up (same arithmetic; the
    // warp split of the rows may differ, so equal to float rounding). The others are bit-equal to the separate
    // launches. Every other op (and every sync, capture or replay) goes through enter(), which
    // issues the held launch first, so the stream order is unchanged. -Dk2j.cuda.fuse=false turns this off.

    private static final int PENDING_NONE = 0;
    private static final int PENDING_ADD = 1;
    private static final int PENDING_ROPE = 2;
    private static final int PENDING_MATMUL = 3;
    private boolean fuse = !"false".equalsIgnoreCase(System.getProperty("k2j.cuda.fuse", "true"));

    /** Turns the deferred-launch fusions on or off (the op benchmark's comparison); issues a held launch first. */
    void fuse(boolean on) {
        enter();
        fuse = on;
    }

    /**
     * The decode attention kernel (attention_dec_*) for batches of up to 8 tokens whose head dim and group fit it;
     * {@code -Dk2j.cuda.attention=split} keeps the general kernel (comparisons).
     */
    private boolean decodeAttention = !"split".equalsIgnoreCase(System.getProperty("k2j.cuda.attention", "dec"));

    void decodeAttention(boolean on) {
        decodeAttention = on;
    }

    /** Split lengths of the decode kernel are multiples of this (its 4 warps take 8 keys each per round). */
    private int decQuantum = Integer.getInteger("k2j.cuda.decodeSplitQuantum", ATT_DEC_QUANTUM);

    void decodeSplitQuantum(int keys) {
        if (keys < 32 || keys % 32 != 0) {
            throw new IllegalArgumentException("decode split quantum must be a positive multiple of 32, got " + keys);
        }
        decQuantum = keys;
    }


    /** The rope+storeKv and gate|up+siluMul fusions alone (the op benchmark's before/after); on by default. */
    private boolean fuseLayerOps = true;

    void fuseLayerOps(boolean on) {
        enter();
        fuseLayerOps = on;
    }

    /** Launches of rope_store_kv and of the gate|up GEMV fused with siluMul so far (tests: the fusion happened). */
    private long layerFusions;

    long layerFusions() {
        return layerFusions;
    }
    private int pending = PENDING_NONE;
    private long pendX;
    private long pendY;
    private long pendCount;
    private int pendN;
    private int pendRowStride;
    private int pendColOffset;
    private int pendHeads;
    private int pendHalf;
    private long pendPositions;
    private DevRope pendRope;
    private Batch pendBatch;
    private DevWeight pendWeight;
    private long pendBias;

    private void flushPending() {
        int kind = pending;
        if (kind == PENDING_NONE) {
            return;
        }
        DevWeight w = pendWeight;
        clearPending();
        if (kind == PENDING_ADD) {
            args.reset().ptr(pendX).ptr(pendY).i64(pendCount);
            launch(k.add, "add", grid(pendCount), 1, 256);
        } else if (kind == PENDING_MATMUL) {
            gemv(w, pendBias, pendX, pendN, pendY, 0);
        } else {
            launchRope(pendX, pendN, pendRowStride, pendColOffset, pendHeads, pendHalf, pendPositions, pendRopeCos,
                    pendRopeSin);
        }
    }

    /** Forgets the held launch (its primitive fields stay readable until the next hold). */
    private void clearPending() {
        pending = PENDING_NONE;
        pendBatch = null;
        pendRope = null;
        pendWeight = null;
    }

    private long pendRopeCos;
    private long pendRopeSin;

    private void launchRope(long x, int n, int rowStride, int colOffset, int heads, int half, long positions,
                            long cos, long sin) {
        args.reset().ptr(x).i32(n).i32(rowStride).i32(colOffset).i32(heads).i32(half).ptr(positions)
                .ptr(cos).ptr(sin);
        launch(k.rope, "rope", grid((long) n * heads * half), 1, 256);
    }

    private void enterOutsideCapture(String what) {
        enter();
        if (capture != null) {
            throw new IllegalStateException(what + " is not allowed while capturing a CUDA graph (it synchronizes or"
                    + " allocates); do it before beginCapture or after endCapture");
        }
    }

    private void launch(long fn, String what, int gridX, int gridY, int block) {
        if (profiler != null && capture == null) {
            profiler.begin(what);
            driver.launch(fn, what, gridX, gridY, 1, block, 0, args);
            profiler.end();
        } else {
            driver.launch(fn, what, gridX, gridY, 1, block, 0, args);
        }
        countOp();
    }

    private void countOp() {
        if (capture != null) {
            capture.ops++;
        }
    }

    /** Blocks for a grid-stride kernel of 256 threads over total elements. */
    private int grid(long total) {
        long blocks = (total + 255) / 256;
        return (int) Math.max(1, Math.min(blocks, 64L * driver.multiprocessors()));
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    private static long roundUp(long a, long m) {
        return ceilDiv(a, m) * m;
    }

    private static void positive(int v, String what) {
        if (v < 1) {
            throw new IllegalArgumentException(what + " must be >= 1, got " + v);
        }
    }

    private static boolean overlaps(long a, long aFloats, long b, long bFloats) {
        return a < b + 4 * bFloats && b < a + 4 * aFloats;
    }

    private DevBuffer buffer(Buffer b, String what) {
        if (b instanceof DevBuffer d && d.owner == this) {
            return d;
        }
        throw new IllegalArgumentException(what + " is not a buffer of this CUDA backend: " + b);
    }

    private static void need(DevBuffer b, long floats, String what) {
        if (b.floats < floats) {
            throw new IllegalArgumentException(what + " holds " + b.floats + " floats, the op needs " + floats);
        }
    }

    private DevWeight weight(Weight w) {
        if (w instanceof DevWeight d && d.owner == this) {
            return d;
        }
        throw new IllegalArgumentException("weight is not a matrix of this CUDA backend: " + w);
    }

    private DevKvCache kv(KvCache cache, int layer) {
        if (!(cache instanceof DevKvCache c) || c.owner != this) {
            throw new IllegalArgumentException("cache is not a KvCache of this CUDA backend: " + cache);
        }
        if (layer < 0 || layer >= c.layers) {
            throw new IllegalArgumentException("layer " + layer + " outside [0, " + c.layers + ")");
        }
        return c;
    }

    /**
     * The device copy of batch, re-uploaded when what the ops read changed (blockSize > 0: including the block
     * table entries in use). During a capture a change is an error.
     */
    private DeviceBatch sync(Batch batch, int blockSize) {
        if (batch == null) {
            throw new IllegalArgumentException("batch is null");
        }
        DeviceBatch db = lastBatch != null && lastBatch.batch == batch ? lastBatch : batches.get(batch);
        if (db == null) {
            if (capture != null) {
                throw new IllegalStateException("a Batch other than the one given to beginCapture was used while"
                        + " capturing");
            }
            if (batches.size() >= MAX_BATCH_OBJECTS) {
                evictLeastRecentBatch();
            }
            db = new DeviceBatch(driver, batch);
            batches.put(batch, db);
        }
        db.lastUse = ++batchUseClock;
        lastBatch = db;
        if (!db.matches(batch, blockSize)) {
            if (capture != null) {
                throw new IllegalStateException("the Batch changed while capturing a CUDA graph; fill it before"
                        + " beginCapture and change it only between replays");
            }
            DeviceBatch.checkCounts(batch);
            uploadBatch(db, batch);
        }
        return db;
    }

    /**
     * Frees the device copy of the least recently used Batch that no graph reads (Batch objects are meant to be
     * allocated once; this only bounds memory when an engine creates them per request).
     */
    private void evictLeastRecentBatch() {
        DeviceBatch victim = null;
        for (DeviceBatch db : batches.values()) {
            boolean pinned = capture != null && capture.batch == db.batch;
            for (CudaGraph g : graphs) {
                pinned |= g.batch == db.batch;
            }
            if (!pinned && (victim == null || db.lastUse < victim.lastUse)) {
                victim = db;
            }
        }
        if (victim == null) {
            throw new IllegalStateException(MAX_BATCH_OBJECTS + " Batch objects are in use by CUDA graphs; close graphs"
                    + " or reuse Batch objects");
        }
        driver.synchronize();  // queued kernels may still read its buffer
        batches.remove(victim.batch);
        if (lastBatch == victim) {
            lastBatch = null;
        }
        victim.free(driver);
    }

    /** Every block-table entry the batch's kernels read for this cache must name a block of it. */
    private void validateBlocks(DeviceBatch db, DevKvCache c) {
        if (capture != null && !capture.caches.contains(c)) {
            capture.caches.add(c);  // replay repeats this check for new block tables
        }
        if (db.validatedKvGeneration == db.generation && db.validatedKvCache == c) {
            return;
        }
        Batch b = db.batch;
        for (int s = 0; s < b.nSeqs; s++) {
            int maxPos = db.maxPosition(s);
            if (maxPos < 0) {
                continue;
            }
            int used = maxPos / c.blockSize + 1;
            if (used > b.maxBlocksPerSeq) {
                throw new IllegalArgumentException("sequence " + s + " reaches position " + maxPos + ", beyond its "
                        + b.maxBlocksPerSeq + " blocks of " + c.blockSize);
            }
            for (int j = 0; j < used; j++) {
                int block = b.blockTables[s * b.maxBlocksPerSeq + j];
                if (block < 0 || block >= c.numBlocks) {
                    throw new IllegalArgumentException("Batch.blockTables[" + s + " * " + b.maxBlocksPerSeq + " + " + j
                            + "]=" + block + " outside the cache's [0, " + c.numBlocks + ") blocks");
                }
            }
        }
        db.validatedKvGeneration = db.generation;
        db.validatedKvCache = c;
    }

    private long alloc(long bytes) {
        long p = driver.malloc(bytes);
        allocations.add(p);
        return p;
    }

    private MemorySegment staging() {
        if (hostStaging == null) {
            hostStaging = driver.mallocHost(STAGING_BYTES);
        }
        return hostStaging;
    }

    private void freeRetiredIfIdle() {
        if (graphs.isEmpty() && capture == null && !retired.isEmpty()) {
            driver.synchronize();
            for (long p : retired) {
                driver.free(p);
            }
            retired.clear();
        }
    }

    /** A growable device scratch area; outgrown areas are freed when no graph can still reference them. */
    private final class DeviceScratch {
        long ptr;
        long bytes;

        long ensure(long need) {
            if (need <= bytes) {
                return ptr;
            }
            long size = Math.max(need, Math.min(2 * bytes, need + (64L << 20)));
            size = (size + (1 << 20) - 1) & ~((1L << 20) - 1);
            if (ptr != 0) {
                retired.add(ptr);
            }
            ptr = driver.malloc(size);
            bytes = size;
            freeRetiredIfIdle();
            return ptr;
        }

        void free() {
            if (ptr != 0) {
                driver.free(ptr);
                ptr = 0;
                bytes = 0;
            }
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        clearPending();
        driver.makeCurrent();
        if (capture != null) {
            abortCapture();
        }
        RuntimeException first = null;
        try {
            driver.synchronize();
        } catch (RuntimeException e) {
            first = e;
        }
        closed = true;
        List<Runnable> steps = new ArrayList<>();
        if (profiler != null) {
            steps.add(() -> {
                if (!profiler.isEmpty()) {
                    System.err.print(profiler.report());
                }
                profiler.close();
            });
        }
        for (CudaGraph g : List.copyOf(graphs)) {
            steps.add(() -> {
                g.closed = true;
                driver.graphDestroy(g.graph, g.exec);
            });
        }
        graphs.clear();
        if (cublas != null) {
            steps.add(cublas::close);
        }
        for (DeviceBatch db : batches.values()) {
            steps.add(() -> db.free(driver));
        }
        batches.clear();
        lastBatch = null;
        for (DeviceScratch s : List.of(attnScratch, bf16Scratch, dequantScratch, tempScratch, intScratch, sampleScratch)) {
            steps.add(s::free);
        }
        for (long p : retired) {
            steps.add(() -> driver.free(p));
        }
        for (long p : allocations) {
            steps.add(() -> driver.free(p));
        }
        if (hostStaging != null) {
            MemorySegment hs = hostStaging;
            steps.add(() -> driver.freeHost(hs));
        }
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

    // =========================================================================================== handles

    private static final class Capture {
        final Batch batch;
        final DeviceBatch db;
        int minRopePositions = Integer.MAX_VALUE;
        int minEmbedRows = Integer.MAX_VALUE;
        final List<DevKvCache> caches = new ArrayList<>();
        int ops;

        Capture(Batch batch, DeviceBatch db) {
            this.batch = batch;
            this.db = db;
        }
    }

    static final class DevBuffer implements Buffer {
        final CudaBackend owner;
        final long ptr;
        final long floats;

        DevBuffer(CudaBackend owner, long ptr, long floats) {
            this.owner = owner;
            this.ptr = ptr;
            this.floats = floats;
        }

        @Override
        public long size() {
            return floats;
        }

        @Override
        public String toString() {
            return "CudaBuffer[" + floats + " floats]";
        }
    }

    static final class DevWeight implements Weight {
        final CudaBackend owner;
        final long data;
        final long scales;
        final int rows;
        final int cols;
        final DType dtype;
        final int code;
        final String name;

        DevWeight(CudaBackend owner, long data, long scales, int rows, int cols, DType dtype, String name) {
            this.owner = owner;
            this.data = data;
            this.scales = scales;
            this.rows = rows;
            this.cols = cols;
            this.dtype = dtype;
            this.code = CudaKernels.code(dtype);
            this.name = name;
        }

        private String profileName;

        /** "gemv ROWSxCOLS DTYPE": the profiler's op name (built once). */
        String profileName() {
            if (profileName == null) {
                profileName = "gemv " + rows + "x" + cols + " " + dtype;
            }
            return profileName;
        }

        @Override
        public int rows() {
            return rows;
        }

        @Override
        public int cols() {
            return cols;
        }

        @Override
        public DType dtype() {
            return dtype;
        }

        @Override
        public long byteSize() {
            return rows * dtype.bytesFor(cols);
        }

        @Override
        public String toString() {
            return "CudaWeight[" + name + " " + dtype + " " + rows + "x" + cols + "]";
        }
    }

    static final class DevRope implements RopeTable {
        final CudaBackend owner;
        final long cos;
        final long sin;
        final int maxPositions;
        final int half;

        DevRope(CudaBackend owner, long cos, long sin, int maxPositions, int half) {
            this.owner = owner;
            this.cos = cos;
            this.sin = sin;
            this.maxPositions = maxPositions;
            this.half = half;
        }

        @Override
        public int maxPositions() {
            return maxPositions;
        }

        @Override
        public int halfDim() {
            return half;
        }
    }

    static final class DevKvCache implements KvCache {
        final CudaBackend owner;
        final long base;
        final int layers;
        final int kvDim;
        final int numBlocks;
        final int blockSize;
        final long regionBytes;

        DevKvCache(CudaBackend owner, long base, int layers, int kvDim, int numBlocks, int blockSize) {
            this.owner = owner;
            this.base = base;
            this.layers = layers;
            this.kvDim = kvDim;
            this.numBlocks = numBlocks;
            this.blockSize = blockSize;
            this.regionBytes = 4L * numBlocks * blockSize * kvDim;
        }

        long k(int layer) {
            return base + 2L * layer * regionBytes;
        }

        long v(int layer) {
            return base + (2L * layer + 1) * regionBytes;
        }

        @Override
        public int layers() {
            return layers;
        }

        @Override
        public int kvDim() {
            return kvDim;
        }

        @Override
        public int numBlocks() {
            return numBlocks;
        }

        @Override
        public int blockSize() {
            return blockSize;
        }

        @Override
        public void copyBlock(int src, int dst) {
            owner.enterOutsideCapture("copyBlock");
            if (src < 0 || src >= numBlocks || dst < 0 || dst >= numBlocks) {
                throw new IllegalArgumentException("copyBlock(" + src + ", " + dst + ") outside [0, " + numBlocks + ")");
            }
            if (src == dst) {
                return;
            }
            long blockBytes = 4L * blockSize * kvDim;
            for (int l = 0; l < layers; l++) {
                owner.driver.copyDeviceAsync(k(l) + dst * blockBytes, k(l) + src * blockBytes, blockBytes);
                owner.driver.copyDeviceAsync(v(l) + dst * blockBytes, v(l) + src * blockBytes, blockBytes);
            }
        }
    }
}
