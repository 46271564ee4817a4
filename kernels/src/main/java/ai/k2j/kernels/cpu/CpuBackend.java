package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.KQuants;
import ai.k2j.loaders.Quantizer;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The CPU backend: Vector API kernels on a persistent pool of worker threads.
 *
 * <ul>
 *   <li>Weights (F32, BF16, F16) stay zero-copy on the caller's (memory-mapped) segments; format "f32" makes a
 *       converted off-heap copy owned by this backend.</li>
 *   <li>Activations, RoPE tables and the KV cache are {@code float[]}s (at most 2<sup>31</sup>−9 floats each;
 *       a KV cache layer is one array for keys and one for values, {@code [numBlocks·blockSize][kvDim]}).</li>
 *   <li>Ops run synchronously on the calling thread plus {@code threads − 1} workers, split by rows (tokens,
 *       output features, or (token, head) pairs). A dot product is never split, and every kernel sums in a
 *       fixed order, so results are bit-identical for any thread count and any batch composition.</li>
 *   <li>Nothing is allocated by the ops; all scratch is sized when weights, buffers or caches are created.</li>
 *   <li>Aliasing: rmsNorm and siluMul may write in place (out == x, out == gateUp); matmul's out must not be
 *       x, and attention's out must not be qkv (both are refused).</li>
 *   <li>Bad arguments (foreign or too small buffers, token ids, positions or block-table entries out of range)
 *       throw {@link IllegalArgumentException} before any work starts.</li>
 * </ul>
 */
public final class CpuBackend implements Backend {

    /** Below this many multiply-adds (or elements touched) an op runs on the caller alone: a handoff costs more. */
    private static final long PARALLEL_WORK = 1 << 15;
    private static final long MAX_FLOATS = Integer.MAX_VALUE - 8;

    private final WorkerPool pool;
    private final long parallelWork;
    /** Owns converted weight copies; closed with the backend. */
    private final Arena arena = Arena.ofShared();
    /** Attention score scratch per part, as long as the largest KV cache has slots. */
    private float[][] scores;
    /**
     * Decoded weight rows per part: a tile of rows for the multi-token matmul path ({@link MatmulKernels#rows}), or
     * four rows for the one-token F16 path; sized for the widest matrix made so far.
     */
    private float[][] rowScratch;

    private final MatmulTask matmulTask = new MatmulTask();
    private final RmsNormTask rmsNormTask = new RmsNormTask();
    private final AddRmsNormTask addRmsNormTask = new AddRmsNormTask();
    private final RmsNormHeadsTask rmsNormHeadsTask = new RmsNormHeadsTask();
    private final RopeTask ropeTask = new RopeTask();
    private final AttentionTask attentionTask = new AttentionTask();
    /** One vector of floats per part: attention's softmax spills its sum there to add the lanes in a fixed tree. */
    private final float[][] lanes;
    private final SiluMulTask siluMulTask = new SiluMulTask();
    private final AddTask addTask = new AddTask();
    private final ArgmaxTask argmaxTask = new ArgmaxTask();
    private final HeadMatmulTask headMatmulTask = new HeadMatmulTask();
    private final LatentAttentionTask latentAttentionTask = new LatentAttentionTask();
    /** latentAttention's per-part scratch: one head's query row, then its weighted sums (2·kvDim floats each). */
    private float[][] latentScratch;

    /**
     * @param threads threads that work on each op, the caller included; 0 means all available processors
     */
    public CpuBackend(int threads) {
        this(threads, PARALLEL_WORK);
    }

    /** Tests use {@code parallelWork = 0} to split even tiny ops over the threads. */
    CpuBackend(int threads, long parallelWork) {
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0 (0 = all processors), got " + threads);
        }
        int parts = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
        this.pool = new WorkerPool(parts, "k2j-cpu-worker-");
        this.parallelWork = parallelWork;
        this.scores = new float[parts][0];
        this.rowScratch = new float[parts][0];
        this.lanes = new float[parts][MatmulKernels.L];
        this.latentScratch = new float[parts][0];
    }

    /** Threads working on each op, the caller included. */
    public int threads() {
        return pool.parts();
    }

    /**
     * The machine's read bandwidth as this backend's threads see it, in bytes per second: the best of
     * {@code passes} passes of a {@link ReadProbe} with the preferred vector width and as many with 256-bit loads.
     * The memory is freed before returning.
     */
    public double measureReadBandwidth(long bytes, int passes) {
        if (passes < 1) { // before the probe allocates its memory
            throw new IllegalArgumentException("bandwidth probe needs >= 1 pass, got " + passes);
        }
        try (ReadProbe probe = readProbe(bytes)) {
            return probe.best(passes);
        }
    }

    /**
     * A bandwidth probe that keeps its memory, so passes can be interleaved with the work being measured
     * ({@code k2j bench} runs one between decode steps, so that probe and decoding see the same neighbours on a
     * shared machine). Make {@code bytes} several times the last-level cache. Not thread-safe; runs on this
     * backend's threads, so not concurrently with its ops.
     */
    public ReadProbe readProbe(long bytes) {
        if (bytes < 1 << 20) {
            throw new IllegalArgumentException("bandwidth probe needs >= 1 MiB, got " + bytes + " bytes");
        }
        checkOpen();
        return new ReadProbe(this, bytes);
    }

    /** See {@link #readProbe}. */
    public static final class ReadProbe implements AutoCloseable {
        private final CpuBackend backend;
        private final Arena arena = Arena.ofShared();
        private final ReadTask task = new ReadTask();
        private final long size;

        private ReadProbe(CpuBackend backend, long bytes) {
            this.backend = backend;
            long vectorBytes = Math.max(128, (long) MatmulKernels.L * Float.BYTES * 4);
            this.size = bytes / vectorBytes * vectorBytes;
            task.seg = arena.allocate(size, 4096);
            task.seg.fill((byte) 1); // touch every page before timing
            task.unit = vectorBytes;
            task.rows = (int) (size / vectorBytes);
            task.sums = new float[backend.pool.parts()];
            warmUp();
        }

        /**
         * Gets both sum loops compiled by C2 as methods before a timed pass (the constructor calls it; call it
         * again after other vector code first ran: loading its vector classes can invalidate the compiled loops).
         * A pass runs each loop only once per thread, and a loop entered fresh runs interpreted until its OSR
         * compile, boxing every vector (measured: 120 MB allocated per pass, and a slower read). Calls over 64 KB
         * each, so the compiled loop's profile is a long one.
         */
        public void warmUp() {
            backend.checkOpen();
            float keep = 0;
            long slice = 64 * 1024;
            for (int i = 0; i < 4_000; i++) {
                long at = (i * slice) % (size - slice) / task.unit * task.unit;
                keep += MatmulKernels.sum(task.seg, at, slice) + MatmulKernels.sum256(task.seg, at, slice);
            }
            task.sums[0] = keep;
        }

        /**
         * One pass: the threads sum the whole memory, split evenly like a matmul's rows, with the preferred vector
         * width or ({@code narrow}) 256-bit loads (on Zen 4 a 512-bit load is two 256-bit ones; which streams
         * faster is measured, not assumed). Returns bytes per second.
         */
        public double pass(boolean narrow) {
            backend.checkOpen();
            task.narrow = narrow;
            long t0 = System.nanoTime();
            if (backend.pool.parts() == 1) {
                task.runRows(0, task.rows, 0);
            } else {
                backend.pool.run(task);
            }
            long dt = System.nanoTime() - t0;
            float check = 0;
            for (float f : task.sums) {
                check += f;
            }
            if (check == 42.4242f) { // keeps the sums alive; never true
                System.err.print("");
            }
            return size / (dt / 1e9);
        }

        /** The best of {@code passes} passes at each width (≥ 1), in bytes per second. */
        public double best(int passes) {
            if (passes < 1) {
                throw new IllegalArgumentException("bandwidth probe needs >= 1 pass, got " + passes);
            }
            double best = 0;
            for (int p = 0; p < passes; p++) {
                best = Math.max(best, Math.max(pass(false), pass(true)));
            }
            return best;
        }

        @Override
        public void close() {
            arena.close();
        }
    }

    /** Sums units of four vectors ({@code unit} bytes) [r0, r1) of a segment: the bandwidth probe's work. */
    private static final class ReadTask extends RowTask {
        MemorySegment seg;
        long unit;
        float[] sums;
        boolean narrow;

        @Override
        void runRows(int r0, int r1, int part) {
            sums[part] = narrow ? MatmulKernels.sum256(seg, r0 * unit, (r1 - r0) * unit)
                    : MatmulKernels.sum(seg, r0 * unit, (r1 - r0) * unit);
        }
    }

    /** Ids of the worker threads (not the caller), for allocation accounting by tests and benchmarks. */
    public long[] workerThreadIds() {
        return pool.workerThreadIds();
    }

    @Override
    public String name() {
        return "cpu";
    }

    // ================================================================================================ memory

    @Override
    public Weight matrix(List<Tensor> rowsStacked, WeightFormat format) {
        if (rowsStacked == null || rowsStacked.isEmpty()) {
            throw new IllegalArgumentException("matrix needs at least one tensor");
        }
        Tensor first = rowsStacked.getFirst();
        DType source = first.dtype();
        if (source.isPacked()) {
            return packedMatrix(rowsStacked, format);
        }
        if (first.rank() != 2) {
            throw new IllegalArgumentException("tensor '" + first.name() + "' is not a matrix: " + first);
        }
        long colsL = first.dim(1);
        if (colsL <= 0 || colsL > MAX_FLOATS) {
            throw new IllegalArgumentException("tensor '" + first.name() + "' has unsupported column count " + colsL);
        }
        int cols = (int) colsL;
        checkElementType(first);
        if (source.isQuantized() && cols % source.blockSize() != 0) {
            throw new IllegalArgumentException("tensor '" + first.name() + "' is " + source + " with " + cols
                    + " columns, not a multiple of " + source.blockSize());
        }
        int[] partStart = new int[rowsStacked.size() + 1];
        MemorySegment[] segments = new MemorySegment[rowsStacked.size()];
        DType[] partDtypes = new DType[rowsStacked.size()];
        boolean keep = format == null || format == WeightFormat.NATIVE;
        long rows = 0;
        for (int p = 0; p < segments.length; p++) {
            Tensor t = rowsStacked.get(p);
            if (t.rank() != 2 || t.dim(1) != cols) {
                throw new IllegalArgumentException("tensor '" + t.name() + "' " + t + " cannot be stacked with '"
                        + first.name() + "' " + first + ": all parts need shape [rows, " + cols + "]");
            }
            if (t.dtype() != source && !(keep && mixable(t.dtype()) && mixable(source))) {
                throw new IllegalArgumentException("tensor '" + t.name() + "' is " + t.dtype() + " but '" + first.name()
                        + "' is " + source + ": stacked parts must share a dtype (block-quantized parts kept as"
                        + " stored may mix)");
            }
            checkElementType(t);
            if (t.dtype().isQuantized() && cols % t.dtype().blockSize() != 0) {
                throw new IllegalArgumentException("tensor '" + t.name() + "' is " + t.dtype() + " with " + cols
                        + " columns, not a multiple of " + t.dtype().blockSize());
            }
            partDtypes[p] = t.dtype();
            long expected = t.dtype().bytesFor(t.elements());
            if (t.data().byteSize() != expected) {
                throw new IllegalArgumentException("tensor '" + t.name() + "' " + t + " has " + t.data().byteSize()
                        + " bytes of data, expected " + expected);
            }
            segments[p] = t.data().isNative() ? t.data() : nativeCopy(t.data());
            rows += t.dim(0);
            if (rows > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("matrix has more than 2^31-1 rows at tensor '" + t.name() + "'");
            }
            partStart[p + 1] = (int) rows;
        }
        CpuWeight weight = new CpuWeight(partDtypes, cols, segments, partStart);
        DType target = targetFormat(format, source, first.name());
        long scratch = MatmulKernels.scratchFloats(cols);
        if (scratch > rowScratch[0].length) {
            if (scratch > MAX_FLOATS) {
                throw new IllegalArgumentException("tensor '" + first.name() + "' is too wide: " + cols + " columns");
            }
            rowScratch = grown(rowScratch.length, (int) scratch);
        }
        if (target == source) {
            return weight;
        }
        return target == DType.F32 ? toF32(weight) : quantized(rowsStacked, target);
    }

    /**
     * The dtype a weight is kept in: its own (NATIVE or its own format), F32 (a converted copy), or Q8_0 / Q4_0
     * (quantized at load from F32/BF16/F16 with llama.cpp's rounding, see {@link Quantizer}).
     */
    private static DType targetFormat(WeightFormat format, DType source, String tensorName) {
        DType target = (format == null ? WeightFormat.NATIVE : format).target(source);
        if (target == source || target == DType.F32) {
            return target;
        }
        if (target.isQuantized() && !source.isQuantized()) {
            return target;
        }
        throw new IllegalArgumentException("the CPU backend converts weights to f32, q8_0 or q4_0 (from F32/BF16/F16), "
                + "not " + source + " to '" + format + "' (tensor '" + tensorName + "')");
    }

    /** AWQ/GPTQ layers stacked by output features, computed on the packed form (kept as stored). */
    private Weight packedMatrix(List<Tensor> parts, WeightFormat format) {
        Tensor first = parts.getFirst();
        if (format != null && format != WeightFormat.NATIVE) {
            throw new IllegalArgumentException("tensor '" + first.name() + "' is " + first.dtype() + ": the CPU backend"
                    + " computes AWQ/GPTQ layers as stored, not converted to '" + format + "'");
        }
        int cols = (int) first.dim(1);
        MemorySegment[] segments = new MemorySegment[parts.size()];
        DType[] dtypes = new DType[parts.size()];
        int[] partStart = new int[parts.size() + 1];
        PackedIntKernels.Part[] prepared = new PackedIntKernels.Part[parts.size()];
        for (int p = 0; p < parts.size(); p++) {
            Tensor t = parts.get(p);
            if (t.packing() == null || !t.dtype().isPacked() || t.dim(1) != cols) {
                throw new IllegalArgumentException("tensor '" + t.name() + "' " + t + " cannot be stacked with the "
                        + first.dtype() + " layer '" + first.name() + "' (all parts must be AWQ/GPTQ layers of "
                        + cols + " inputs)");
            }
            segments[p] = t.data();
            dtypes[p] = t.dtype();
            prepared[p] = new PackedIntKernels.Part(t.packing());
            partStart[p + 1] = partStart[p] + (int) t.dim(0);
        }
        CpuWeight w = new CpuWeight(dtypes, cols, segments, partStart);
        w.packed = prepared;
        return w;
    }

    /** Block-quantized dtypes, which a mixed GGUF file may stack side by side (kept as stored). */
    private static boolean mixable(DType d) {
        return d.isQuantized();
    }

    private static void checkElementType(Tensor t) {
        switch (t.dtype()) {
            case F32, BF16, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K -> {
            }
            default -> throw new IllegalArgumentException("tensor '" + t.name() + "' has dtype " + t.dtype()
                    + ", which the CPU backend does not support (F32, BF16, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
        }
    }

    private MemorySegment nativeCopy(MemorySegment heap) {
        MemorySegment copy = arena.allocate(heap.byteSize(), 64);
        copy.copyFrom(heap);
        return copy;
    }

    private CpuWeight toF32(CpuWeight w) {
        MemorySegment dst = arena.allocate((long) w.rows * w.cols * Float.BYTES, 64);
        float[] row = new float[w.cols];
        for (int r = 0; r < w.rows; r++) {
            int p = w.partOf(r);
            ScalarRows.decode(w.partDtype[p], w.segments[p], (r - w.partStart[p]) * w.partRowBytes[p], w.cols, row, 0);
            MemorySegment.copy(row, 0, dst, ValueLayout.JAVA_FLOAT_UNALIGNED, (long) r * w.cols * Float.BYTES, w.cols);
        }
        return new CpuWeight(DType.F32, w.cols, new MemorySegment[] {dst}, new int[] {0, w.rows});
    }

    /** A quantized copy of the stacked tensors, one segment per part (owned by this backend). */
    private CpuWeight quantized(List<Tensor> parts, DType target) {
        MemorySegment[] segments = new MemorySegment[parts.size()];
        int[] partStart = new int[parts.size() + 1];
        for (int p = 0; p < segments.length; p++) {
            Tensor t = parts.get(p);
            Quantizer.check(t, target);
            segments[p] = arena.allocate(Quantizer.bytesFor(target, t.dim(0), t.dim(1)), 64);
            Quantizer.quantize(t, target, segments[p], pool.parts());
            partStart[p + 1] = partStart[p] + (int) t.dim(0);
        }
        return new CpuWeight(target, (int) parts.getFirst().dim(1), segments, partStart);
    }

    @Override
    public Buffer vector(List<Tensor> parts) {
        if (parts == null || parts.isEmpty()) {
            throw new IllegalArgumentException("vector needs at least one tensor");
        }
        long total = 0;
        for (Tensor t : parts) {
            checkElementType(t);
            if (t.dtype().isQuantized()) {
                throw new IllegalArgumentException("tensor '" + t.name() + "' is " + t.dtype()
                        + ": norm weights and biases must be F32, BF16 or F16");
            }
            long expected = t.dtype().bytesFor(t.elements());
            if (t.data().byteSize() != expected) {
                throw new IllegalArgumentException("tensor '" + t.name() + "' " + t + " has " + t.data().byteSize()
                        + " bytes of data, expected " + expected);
            }
            total += t.elements();
        }
        if (total > MAX_FLOATS) {
            throw new IllegalArgumentException("vector of " + total + " floats is too large for the CPU backend");
        }
        float[] data = new float[(int) total];
        int o = 0;
        for (Tensor t : parts) {
            int count = (int) t.elements();
            ScalarRows.decode(t.dtype(), t.data(), 0, count, data, o);
            o += count;
        }
        return new CpuBuffer(data);
    }

    @Override
    public Buffer allocate(long floats) {
        if (floats < 0 || floats > MAX_FLOATS) {
            throw new IllegalArgumentException("CPU buffers hold 0.." + MAX_FLOATS + " floats, asked for " + floats);
        }
        return new CpuBuffer(new float[(int) floats]);
    }

    @Override
    public RopeTable ropeTable(float[] invFreq, float attentionScaling, int maxPositions) {
        return new CpuRopeTable(invFreq, attentionScaling, maxPositions);
    }

    @Override
    public KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize) {
        return kvCache(layers, kvDim, numBlocks, blockSize, KvPrecision.F32, kvDim);
    }

    /** BF16 keeps bfloat16 bits, FP8 E4M3 bytes and per-head scales; attention decodes them in registers. */
    @Override
    public KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize, KvPrecision precision, int headDim) {
        CpuKvCache cache = new CpuKvCache(layers, kvDim, numBlocks, blockSize, precision, headDim);
        if (cache.slots() > scores[0].length) {
            scores = grown(scores.length, cache.slots());
        }
        if (4 * kvDim > latentScratch[0].length) {
            latentScratch = grown(latentScratch.length, 4 * kvDim);
        }
        return cache;
    }

    private static float[][] grown(int parts, int length) {
        float[][] a = new float[parts][];
        for (int i = 0; i < parts; i++) {
            a[i] = new float[length];
        }
        return a;
    }

    // ================================================================================================ ops

    @Override
    public void embed(Weight table, Batch batch, Buffer out) {
        CpuWeight w = weight(table);
        if (w.packed != null) {
            throw new IllegalArgumentException("an embedding table cannot be an AWQ/GPTQ layer (" + w + ")");
        }
        float[] o = data(out, "out");
        int n = tokens(batch);
        need(o, (long) n * w.cols, "embed out");
        for (int t = 0; t < n; t++) {
            int token = batch.tokens[t];
            if (token < 0 || token >= w.rows) {
                throw new IllegalArgumentException("token id " + token + " at batch row " + t + " is outside the "
                        + w.rows + "-row embedding table");
            }
        }
        checkOpen();
        for (int t = 0; t < n; t++) {
            // Scalar on purpose: one row per token is too little work to be sure C2 compiles a vector loop here,
            // and interpreted or C1-compiled Vector API code allocates (see ScalarRows).
            int r = batch.tokens[t];
            int p = w.partOf(r);
            ScalarRows.decode(w.partDtype[p], w.segments[p], (r - w.partStart[p]) * w.partRowBytes[p], w.cols, o,
                    t * w.cols);
        }
    }

    @Override
    public void rmsNorm(Buffer x, Buffer gamma, float eps, int n, int dim, Buffer out) {
        float[] xs = data(x, "x");
        float[] g = data(gamma, "gamma");
        float[] o = data(out, "out");
        checkRows(n, dim);
        need(xs, (long) n * dim, "rmsNorm x");
        need(o, (long) n * dim, "rmsNorm out");
        need(g, dim, "rmsNorm gamma");
        RmsNormTask task = rmsNormTask;
        task.x = xs;
        task.gamma = g;
        task.eps = eps;
        task.dim = dim;
        task.out = o;
        dispatch(task, n, (long) n * dim);
    }

    @Override
    public void matmul(Weight w, Buffer bias, Buffer x, int n, Buffer out) {
        CpuWeight cw = weight(w);
        float[] xs = data(x, "x");
        float[] o = data(out, "out");
        float[] b = bias == null ? null : data(bias, "bias");
        if (x == out) {
            throw new IllegalArgumentException("matmul out must not alias x");
        }
        checkRows(n, cw.cols);
        need(xs, (long) n * cw.cols, "matmul x", cw);
        need(o, (long) n * cw.rows, "matmul out", cw);
        if (b != null) {
            need(b, cw.rows, "matmul bias", cw);
        }
        MatmulTask task = matmulTask;
        task.w = cw;
        task.bias = b;
        task.x = xs;
        task.n = n;
        task.out = o;
        task.rowScratch = rowScratch;
        task.minChunk = n == 1 ? DECODE_MIN_CHUNK : Math.max(4, MatmulKernels.rowBlock(cw.cols));
        task.next.set(0);
        dispatch(task, cw.rows, (long) n * cw.rows * cw.cols);
    }

    @Override
    public void rope(Rows heads, int headDim, Batch batch, RopeTable table) {
        float[] xs = data(heads.buffer(), "rope x");
        if (!(table instanceof CpuRopeTable rt)) {
            throw new IllegalArgumentException("rope table " + table + " was not made by a CpuBackend");
        }
        if (headDim != 2 * rt.halfDim) {
            throw new IllegalArgumentException("headDim " + headDim + " does not match the RoPE table's " + rt.halfDim
                    + " frequencies");
        }
        if (heads.width() % headDim != 0) {
            throw new IllegalArgumentException("rope view width " + heads.width() + " is not a whole number of heads of "
                    + headDim);
        }
        int n = tokens(batch);
        need(xs, rowsNeed(n, heads.stride(), heads.offset() + heads.width()), "rope x");
        for (int t = 0; t < n; t++) {
            int pos = batch.positions[t];
            if (pos < 0 || pos >= rt.maxPositions) {
                throw new IllegalArgumentException("position " + pos + " of batch row " + t + " is outside the RoPE table [0, "
                        + rt.maxPositions + ")");
            }
        }
        RopeTask task = ropeTask;
        task.x = xs;
        task.rowStride = heads.stride();
        task.colOffset = heads.offset();
        task.heads = heads.width() / headDim;
        task.half = rt.halfDim;
        task.positions = batch.positions;
        task.table = rt;
        dispatch(task, n, (long) n * heads.width());
    }

    @Override
    public void storeKv(KvCache cache, int layer, Rows keys, Rows values, Batch batch) {
        CpuKvCache c = kvCache(cache, layer);
        float[] q = data(keys.buffer(), "keys/values");
        int kvDim = c.kvDim();
        if (keys.buffer() != values.buffer() || keys.stride() != values.stride()) {
            throw new IllegalArgumentException("storeKv: keys and values must be views of one buffer with one stride");
        }
        if (keys.width() != kvDim || values.width() != kvDim) {
            throw new IllegalArgumentException("storeKv: key/value views are " + keys.width() + "/" + values.width()
                    + " wide, the cache's kvDim is " + kvDim);
        }
        int rowStride = keys.stride();
        int n = tokens(batch);
        need(q, rowsNeed(n, rowStride, Math.max(keys.offset(), values.offset()) + kvDim), "storeKv keys/values");
        checkOpen();
        for (int t = 0; t < n; t++) {
            int pos = batch.kvPositionOf(t);
            int block = batch.blockOf(batch.seqOfToken[t], pos, c.blockSize(), c.numBlocks());
            c.put(layer, block, pos % c.blockSize(), q, t * rowStride + keys.offset(), t * rowStride + values.offset());
        }
    }

    @Override
    public void attention(Rows queries, KvCache cache, int layer, Batch batch, int kvHeads, int headDim, float scale,
                          Buffer out) {
        CpuKvCache c = kvCache(cache, layer);
        float[] q = data(queries.buffer(), "queries");
        float[] o = data(out, "out");
        int qWidth = queries.width();
        int heads = headDim > 0 ? qWidth / headDim : 0;
        if (heads <= 0 || kvHeads <= 0 || heads * headDim != qWidth || heads % kvHeads != 0) {
            throw new IllegalArgumentException("attention needs the query view (" + qWidth + " columns) to hold a "
                    + "positive multiple of kvHeads (" + kvHeads + ") heads of " + headDim);
        }
        if ((long) kvHeads * headDim != c.kvDim()) {
            throw new IllegalArgumentException("kvHeads·headDim = " + kvHeads + "·" + headDim + " but the cache has kvDim "
                    + c.kvDim());
        }
        if (c.precision() == KvPrecision.FP8_E4M3 && headDim != c.headDim()) {
            throw new IllegalArgumentException("attention: head dim " + headDim + " but the FP8 cache's scales are per "
                    + c.headDim() + " values");
        }
        int rowStride = queries.stride();
        int n = tokens(batch);
        need(q, rowsNeed(n, rowStride, queries.offset() + qWidth), "attention queries");
        need(o, (long) n * qWidth, "attention out");
        if (q == o) {
            throw new IllegalArgumentException("attention out must not alias the queries' buffer");
        }
        checkAttentionBatch(batch, n, c);
        AttentionTask task = attentionTask;
        task.q = q;
        task.qOffset = queries.offset();
        task.rowStride = rowStride;
        task.cache = c;
        task.layer = layer;
        task.kvDim = c.kvDim();
        task.blockSize = c.blockSize();
        task.batch = batch;
        task.heads = heads;
        task.group = heads / kvHeads;
        task.headDim = headDim;
        task.scale = scale;
        task.out = o;
        task.scores = scores;
        task.lanes = lanes;
        long work = 0;
        for (int t = 0; t < n; t++) {
            work += (long) (batch.positions[t] + 1) * qWidth;
        }
        dispatch(task, n * heads, 2 * work);
    }

    @Override
    public void siluMul(Buffer gateUp, int n, int dim, Buffer out) {
        float[] g = data(gateUp, "gateUp");
        float[] o = data(out, "out");
        checkRows(n, dim);
        need(g, 2L * n * dim, "siluMul gateUp");
        need(o, (long) n * dim, "siluMul out");
        SiluMulTask task = siluMulTask;
        task.gateUp = g;
        task.dim = dim;
        task.out = o;
        // Units of up to SILU_CHUNK columns of one row, so one token's row is split over the threads too.
        task.chunks = Math.max(1, (dim + SILU_CHUNK - 1) / SILU_CHUNK);
        int units = n * task.chunks;
        if (g == o) {
            // In place is only correct row by row in order: row t's output lands on input already consumed.
            checkOpen();
            task.rows = units;
            if (units > 0) {
                task.runRows(0, units, 0);
            }
        } else {
            dispatch(task, units, (long) n * dim * 8);
        }
    }

    @Override
    public void rmsNormHeads(Rows heads, int headDim, Buffer gamma, float eps, int n) {
        float[] xs = data(heads.buffer(), "x");
        float[] g = data(gamma, "gamma");
        if (headDim <= 0 || heads.width() % headDim != 0) {
            throw new IllegalArgumentException("rmsNormHeads: view width " + heads.width()
                    + " is not a multiple of head dim " + headDim);
        }
        checkRows(n, headDim);
        if (n > 0) {
            need(xs, (long) (n - 1) * heads.stride() + heads.offset() + heads.width(), "rmsNormHeads x");
        }
        need(g, headDim, "rmsNormHeads gamma");
        RmsNormHeadsTask task = rmsNormHeadsTask;
        task.x = xs;
        task.gamma = g;
        task.eps = eps;
        task.headDim = headDim;
        task.heads = heads.width() / headDim;
        task.offset = heads.offset();
        task.stride = heads.stride();
        dispatch(task, n, (long) n * heads.width());
    }

    @Override
    public boolean supportsMixtureOfExperts() {
        return true;
    }

    @Override
    public void gatherRows(Buffer x, int dim, int[] rows, int from, int count, Buffer out) {
        float[] xs = data(x, "x");
        float[] o = data(out, "out");
        checkRows(count, dim);
        need(o, (long) count * dim, "gatherRows out");
        for (int i = 0; i < count; i++) {
            int row = rows[from + i];
            if (row < 0 || (long) (row + 1) * dim > xs.length) {
                throw new IllegalArgumentException("gatherRows: row " + row + " is outside x");
            }
            System.arraycopy(xs, row * dim, o, i * dim, dim);
        }
    }

    @Override
    public void scatterAdd(Buffer src, int dim, int[] rows, float[] scales, int from, int count, Buffer dst) {
        float[] s = data(src, "src");
        float[] d = data(dst, "dst");
        checkRows(count, dim);
        need(s, (long) count * dim, "scatterAdd src");
        for (int i = 0; i < count; i++) {
            int row = rows[from + i];
            if (row < 0 || (long) (row + 1) * dim > d.length) {
                throw new IllegalArgumentException("scatterAdd: row " + row + " is outside dst");
            }
            float scale = scales[from + i];
            int dr = row * dim;
            int sr = i * dim;
            for (int c = 0; c < dim; c++) {
                d[dr + c] += scale * s[sr + c];
            }
        }
    }

    @Override
    public boolean supportsLatentAttention() {
        return true;
    }

    @Override
    public void headMatmul(Weight w, int heads, Rows x, int n, Buffer out) {
        CpuWeight cw = weight(w);
        float[] xs = data(x.buffer(), "headMatmul x");
        float[] o = data(out, "headMatmul out");
        if (heads <= 0 || cw.rows % heads != 0 || x.width() != (long) heads * cw.cols) {
            throw new IllegalArgumentException("headMatmul: " + heads + " heads do not split " + cw
                    + " over an input view of " + x.width() + " columns");
        }
        if (xs == o) {
            throw new IllegalArgumentException("headMatmul out must not alias x");
        }
        checkRows(n, cw.cols);
        need(xs, rowsNeed(n, x.stride(), x.offset() + x.width()), "headMatmul x");
        need(o, (long) n * cw.rows, "headMatmul out", cw);
        HeadMatmulTask task = headMatmulTask;
        task.w = cw;
        task.perHead = cw.rows / heads;
        task.x = xs;
        task.xOff = x.offset();
        task.xStride = x.stride();
        task.n = n;
        task.out = o;
        task.rowScratch = rowScratch;
        dispatch(task, heads, (long) n * cw.rows * cw.cols);
    }

    @Override
    public void latentAttention(Rows qLatent, Rows qRope, KvCache cache, int layer, Batch batch, int heads,
                                int latentDim, float scale, Buffer out) {
        if (batch.tree) { // the latent kernels read a causal prefix; they have no tree mask
            throw new UnsupportedOperationException("latentAttention (MLA) does not take draft-tree steps (Batch.tree)");
        }
        CpuKvCache c = kvCache(cache, layer);
        float[] ql = data(qLatent.buffer(), "latentAttention qLatent");
        float[] qr = data(qRope.buffer(), "latentAttention qRope");
        float[] o = data(out, "latentAttention out");
        int kvDim = c.kvDim();
        int ropeDim = 2 * kvDim - latentDim;
        if (heads <= 0 || latentDim <= 0 || ropeDim <= 0 || qLatent.width() != (long) heads * latentDim
                || qRope.width() != (long) heads * ropeDim) {
            throw new IllegalArgumentException("latentAttention: " + heads + " heads of latent " + latentDim
                    + " and rope " + ropeDim + " (cache rows of " + 2 * kvDim + ") do not match query views of "
                    + qLatent.width() + " and " + qRope.width() + " columns");
        }
        int n = tokens(batch);
        need(ql, rowsNeed(n, qLatent.stride(), qLatent.offset() + qLatent.width()), "latentAttention qLatent");
        need(qr, rowsNeed(n, qRope.stride(), qRope.offset() + qRope.width()), "latentAttention qRope");
        need(o, (long) n * heads * latentDim, "latentAttention out");
        if (o == ql || o == qr) {
            throw new IllegalArgumentException("latentAttention out must not alias the queries' buffers");
        }
        checkAttentionBatch(batch, n, c);
        LatentAttentionTask task = latentAttentionTask;
        task.qLatent = ql;
        task.qLatentView = qLatent;
        task.qRope = qr;
        task.qRopeView = qRope;
        task.keys = c.keys[layer];
        task.values = c.values[layer];
        task.kvDim = kvDim;
        task.latentDim = latentDim;
        task.ropeDim = ropeDim;
        task.blockSize = c.blockSize();
        task.batch = batch;
        task.heads = heads;
        task.scale = scale;
        task.out = o;
        task.scores = scores;
        task.scratch = latentScratch;
        long work = 0;
        for (int t = 0; t < n; t++) {
            work += (long) (batch.positions[t] + 1) * heads * 4L * kvDim;
        }
        dispatch(task, n * heads, work);
    }

    @Override
    public void add(Buffer x, Buffer y, int n, int dim) {
        float[] xs = data(x, "x");
        float[] ys = data(y, "y");
        checkRows(n, dim);
        need(xs, (long) n * dim, "add x");
        need(ys, (long) n * dim, "add y");
        AddTask task = addTask;
        task.x = xs;
        task.y = ys;
        task.dim = dim;
        dispatch(task, n, (long) n * dim);
    }

    /** One pass per row: the residual add and the norm of the sum while the row is in cache (bit-equal to the pair). */
    @Override
    public void addRmsNorm(Buffer x, Buffer y, Buffer gamma, float eps, int n, int dim, Buffer out) {
        float[] xs = data(x, "x");
        float[] ys = data(y, "y");
        float[] g = data(gamma, "gamma");
        float[] o = data(out, "out");
        checkRows(n, dim);
        need(xs, (long) n * dim, "addRmsNorm x");
        need(ys, (long) n * dim, "addRmsNorm y");
        need(o, (long) n * dim, "addRmsNorm out");
        need(g, dim, "addRmsNorm gamma");
        AddRmsNormTask task = addRmsNormTask;
        task.x = xs;
        task.y = ys;
        task.gamma = g;
        task.eps = eps;
        task.dim = dim;
        task.out = o;
        dispatch(task, n, 2L * n * dim);
    }

    @Override
    public void gatherRows(Buffer x, int dim, Batch batch, Buffer out) {
        float[] xs = data(x, "x");
        float[] o = data(out, "out");
        if (dim < 0) {
            throw new IllegalArgumentException("dim must be >= 0, got " + dim);
        }
        int n = batch.nLogits;
        if (n < 0 || n > batch.maxTokens) {
            throw new IllegalArgumentException("batch.nLogits " + n + " is outside [0, " + batch.maxTokens + "]");
        }
        need(o, (long) n * dim, "gatherRows out");
        for (int i = 0; i < n; i++) {
            int row = batch.logitRows[i];
            if (row < 0 || (long) (row + 1) * dim > xs.length) {
                throw new IllegalArgumentException("logit row " + row + " (entry " + i + ") is outside x of "
                        + xs.length + " floats with rows of " + dim);
            }
        }
        checkOpen();
        for (int i = 0; i < n; i++) {
            System.arraycopy(xs, batch.logitRows[i] * dim, o, i * dim, dim);
        }
    }

    @Override
    public void download(Buffer src, long srcOffset, float[] dst, int dstOffset, int count) {
        float[] s = data(src, "src");
        if (count < 0 || srcOffset < 0 || srcOffset + count > s.length || dstOffset < 0
                || (long) dstOffset + count > dst.length) {
            throw new IndexOutOfBoundsException("download of " + count + " floats from offset " + srcOffset + " of "
                    + s.length + " into offset " + dstOffset + " of " + dst.length);
        }
        checkOpen();
        System.arraycopy(s, (int) srcOffset, dst, dstOffset, count);
    }

    @Override
    public void argmax(Buffer x, int n, int dim, int[] out) {
        float[] xs = data(x, "x");
        checkRows(n, dim);
        need(xs, (long) n * dim, "argmax x");
        if (out.length < n) {
            throw new IllegalArgumentException("argmax out holds " + out.length + " ints, needs " + n);
        }
        ArgmaxTask task = argmaxTask;
        task.x = xs;
        task.dim = dim;
        task.out = out;
        dispatch(task, n, (long) n * dim / 4);
    }

    @Override
    public void sync() {
        // Ops complete before they return.
    }

    @Override
    public void close() {
        pool.close();
        if (arena.scope().isAlive()) {
            arena.close(); // converted weights die with the backend; later use of them throws IllegalStateException
        }
    }

    // ================================================================================================ dispatch

    /** One op split by rows: part p of P does rows [rows·p/P, rows·(p+1)/P). */
    private abstract static class RowTask implements WorkerPool.Task {
        int rows;

        @Override
        public void run(int part, int parts) {
            int r0 = (int) ((long) rows * part / parts);
            int r1 = (int) ((long) rows * (part + 1) / parts);
            if (r0 < r1) {
                runRows(r0, r1, part);
            }
        }

        abstract void runRows(int r0, int r1, int part);
    }

    private void dispatch(RowTask task, int rows, long work) {
        checkOpen();
        task.rows = rows;
        if (rows <= 0) {
            return;
        }
        if (rows == 1 || work < parallelWork || pool.parts() == 1) {
            task.runRows(0, rows, 0);
        } else {
            pool.run(task);
        }
    }

    private void checkOpen() {
        if (arena.scope().isAlive()) {
            return;
        }
        throw new IllegalStateException("CpuBackend is closed");
    }

    /** Smallest run of rows a thread claims in decode: 16 rows per quarter stream (see MatmulKernels.rows). */
    private static final int DECODE_MIN_CHUNK = 64;

    /**
     * A matmul's rows are claimed, not pre-split: each thread takes max(minChunk, remaining / (2·parts)) rows at a
     * time from a shared counter (guided scheduling), so a thread that the machine slows down (another tenant, an
     * interrupt) takes fewer rows instead of making the other wait. Measured on this 2-vCPU VM over a decode's
     * matrices: an even static split left the threads finishing 3–14 ms apart per token on busy minutes (of ~33
     * ms), guided claims 0.1–0.6 ms. Which thread computes a row does not change its value.
     */
    private static final class MatmulTask extends RowTask {
        CpuWeight w;
        float[] bias;
        float[] x;
        int n;
        float[] out;
        float[][] rowScratch;
        int minChunk;
        final AtomicInteger next = new AtomicInteger();

        @Override
        public void run(int part, int parts) {
            while (true) {
                int r0 = next.get();
                if (r0 >= rows) {
                    return;
                }
                int r1 = Math.min(rows, r0 + Math.max(minChunk, (rows - r0) / (2 * parts)));
                if (next.compareAndSet(r0, r1)) {
                    runRows(r0, r1, part);
                }
            }
        }

        @Override
        void runRows(int r0, int r1, int part) {
            matmulRows(w, x, n, out, r0, r1, rowScratch[part]);
            if (bias != null) {
                for (int t = 0; t < n; t++) {
                    Kernels.add(out, t * w.rows + r0, bias, r0, r1 - r0);
                }
            }
        }
    }

    /** out[t, r] = x[t] · row r for rows [r0, r1), walking the stacked parts those rows live in. */
    static void matmulRows(CpuWeight w, float[] x, int n, float[] out, int r0, int r1, float[] scratch) {
        for (int p = 0; p < w.segments.length; p++) {
            int first = Math.max(r0, w.partStart[p]);
            int end = Math.min(r1, w.partStart[p + 1]);
            if (first >= end) {
                continue;
            }
            if (w.packed != null) {
                PackedIntKernels.rows(w.packed[p], first - w.partStart[p], end - first, x, n, out, first, w.rows);
                continue;
            }
            long base = (first - w.partStart[p]) * w.partRowBytes[p];
            if (KQuants.isKQuant(w.partDtype[p])) {
                KQuantKernels.rows(w.partDtype[p], w.segments[p], base, w.partRowBytes[p], end - first, w.cols, x, n,
                        out, first, w.rows, scratch);
                continue;
            }
            MatmulKernels.rows(w.partDtype[p], w.segments[p], base, w.partRowBytes[p], end - first, w.cols, x, n, out, first, w.rows,
                    scratch);
        }
    }

    private static final class RmsNormTask extends RowTask {
        float[] x;
        float[] gamma;
        float eps;
        int dim;
        float[] out;

        @Override
        void runRows(int r0, int r1, int part) {
            for (int t = r0; t < r1; t++) {
                Kernels.rmsNorm(x, t * dim, gamma, eps, dim, out, t * dim);
            }
        }
    }

    private static final class AddRmsNormTask extends RowTask {
        float[] x;
        float[] y;
        float[] gamma;
        float eps;
        int dim;
        float[] out;

        @Override
        void runRows(int r0, int r1, int part) {
            for (int t = r0; t < r1; t++) {
                Kernels.add(x, t * dim, y, t * dim, dim);
                Kernels.rmsNorm(x, t * dim, gamma, eps, dim, out, t * dim);
            }
        }
    }

    private static final class RmsNormHeadsTask extends RowTask {
        float[] x;
        float[] gamma;
        float eps;
        int headDim;
        int heads;
        int offset;
        int stride;

        @Override
        void runRows(int r0, int r1, int part) {
            for (int t = r0; t < r1; t++) {
                for (int h = 0; h < heads; h++) {
                    int base = t * stride + offset + h * headDim;
                    Kernels.rmsNorm(x, base, gamma, eps, headDim, x, base); // in place: each x read before written
                }
            }
        }
    }

    private static final class RopeTask extends RowTask {
        float[] x;
        int rowStride;
        int colOffset;
        int heads;
        int half;
        int[] positions;
        CpuRopeTable table;

        @Override
        void runRows(int r0, int r1, int part) {
            for (int t = r0; t < r1; t++) {
                int co = positions[t] * half;
                for (int h = 0; h < heads; h++) {
                    Kernels.rope(x, t * rowStride + colOffset + h * 2 * half, half, table.cos, table.sin, co);
                }
            }
        }
    }

    private static final class AttentionTask extends RowTask {
        float[] q;
        int qOffset;
        int rowStride;
        CpuKvCache cache;
        int layer;
        int kvDim;
        int blockSize;
        Batch batch;
        int heads;
        int group;
        int headDim;
        float scale;
        float[] out;
        float[][] scores;
        float[][] lanes;

        @Override
        void runRows(int r0, int r1, int part) {
            float[] scratch = scores[part];
            float[] lane = lanes[part];
            CpuKvCache c = cache;
            for (int i = r0; i < r1; i++) {
                int t = i / heads;
                int h = i % heads;
                int qo = t * rowStride + qOffset + h * headDim;
                int tableOff = batch.seqOfToken[t] * batch.maxBlocksPerSeq;
                int len = batch.positions[t] + 1;
                int o = (t * heads + h) * headDim;
                if (batch.tree) {
                    attendTree(c, q, qo, tableOff, t, h, o, scratch, lane);
                    continue;
                }
                switch (c.precision()) {
                    case F32 -> Kernels.attendHead(q, qo, c.keys[layer], c.values[layer], kvDim, (h / group) * headDim,
                            headDim, batch.blockTables, tableOff, blockSize, len, scale, scratch, lane, out, o);
                    case BF16 -> KvAttention.attendHeadBf16(q, qo, c.keys16[layer], c.values16[layer], kvDim,
                            (h / group) * headDim, headDim, batch.blockTables, tableOff, blockSize, len, scale, scratch,
                            lane, out, o);
                    case FP8_E4M3 -> KvAttention.attendHeadFp8(q, qo, c.keys8[layer], c.values8[layer],
                            c.keyScales[layer], c.valueScales[layer], c.numBlocks() * blockSize, kvDim, h / group,
                            headDim, batch.blockTables, tableOff, blockSize, len, scale, scratch, lane, out, o);
                }
            }
        }

        /** A draft-tree token's head: the cache before the tree plus its ancestors and itself, in cache order. */
        private void attendTree(CpuKvCache c, float[] q, int qo, int tableOff, int t, int h, int o, float[] scratch,
                                float[] lane) {
            int len = batch.kvPositions[t] + 1;
            int prefix = batch.attendedPrefix(t);
            int treeBase = batch.seqTreeBase[batch.seqOfToken[t]];
            long mask = batch.treeMask[t];
            switch (c.precision()) {
                case F32 -> Kernels.attendTreeHead(q, qo, c.keys[layer], c.values[layer], kvDim, (h / group) * headDim,
                        headDim, batch.blockTables, tableOff, blockSize, len, prefix, treeBase, mask, scale, scratch,
                        lane, out, o);
                case BF16 -> KvAttention.attendTreeHeadBf16(q, qo, c.keys16[layer], c.values16[layer], kvDim,
                        (h / group) * headDim, headDim, batch.blockTables, tableOff, blockSize, len, prefix, treeBase,
                        mask, scale, scratch, lane, out, o);
                case FP8_E4M3 -> KvAttention.attendTreeHeadFp8(q, qo, c.keys8[layer], c.values8[layer],
                        c.keyScales[layer], c.valueScales[layer], c.numBlocks() * blockSize, kvDim, h / group,
                        headDim, batch.blockTables, tableOff, blockSize, len, prefix, treeBase, mask, scale, scratch,
                        lane, out, o);
            }
        }
    }

    private static final class HeadMatmulTask extends RowTask {
        CpuWeight w;
        int perHead;
        float[] x;
        int xOff;
        int xStride;
        int n;
        float[] out;
        float[][] rowScratch;

        @Override
        void runRows(int r0, int r1, int part) {
            for (int h = r0; h < r1; h++) {
                LatentKernels.headRows(w, h, perHead, x, xOff, xStride, n, out, rowScratch[part]);
            }
        }
    }

    private static final class LatentAttentionTask extends RowTask {
        float[] qLatent;
        Rows qLatentView;
        float[] qRope;
        Rows qRopeView;
        float[] keys;
        float[] values;
        int kvDim;
        int latentDim;
        int ropeDim;
        int blockSize;
        Batch batch;
        int heads;
        float scale;
        float[] out;
        float[][] scores;
        float[][] scratch;

        @Override
        void runRows(int r0, int r1, int part) {
            float[] q = scratch[part];
            for (int i = r0; i < r1; i++) {
                int t = i / heads;
                int h = i % heads;
                // this head's query as one row matching the cache's latent rows: [latent query | rope query]
                System.arraycopy(qLatent, t * qLatentView.stride() + qLatentView.offset() + h * latentDim, q, 0,
                        latentDim);
                System.arraycopy(qRope, t * qRopeView.stride() + qRopeView.offset() + h * ropeDim, q, latentDim,
                        ropeDim);
                // the scratch's second half takes the weighted sums
                LatentKernels.attendLatentHead(q, keys, values, kvDim, latentDim, batch.blockTables,
                        batch.seqOfToken[t] * batch.maxBlocksPerSeq, blockSize, batch.positions[t] + 1, scale,
                        scores[part], q, 2 * kvDim, out, (t * heads + h) * latentDim);
            }
        }
    }

    /** Columns per siluMul work unit (a multiple of every vector length). */
    private static final int SILU_CHUNK = 1024;

    private static final class SiluMulTask extends RowTask {
        float[] gateUp;
        int dim;
        int chunks;
        float[] out;

        @Override
        void runRows(int r0, int r1, int part) {
            for (int i = r0; i < r1; i++) {
                int t = i / chunks;
                int c0 = (i % chunks) * SILU_CHUNK;
                int len = Math.min(SILU_CHUNK, dim - c0);
                Kernels.siluMul(gateUp, 2 * t * dim + c0, gateUp, 2 * t * dim + dim + c0, len, out, t * dim + c0);
            }
        }
    }

    private static final class AddTask extends RowTask {
        float[] x;
        float[] y;
        int dim;

        @Override
        void runRows(int r0, int r1, int part) {
            Kernels.add(x, r0 * dim, y, r0 * dim, (r1 - r0) * dim);
        }
    }

    private static final class ArgmaxTask extends RowTask {
        float[] x;
        int dim;
        int[] out;

        @Override
        void runRows(int r0, int r1, int part) {
            for (int t = r0; t < r1; t++) {
                out[t] = Kernels.argmax(x, t * dim, dim);
            }
        }
    }

    // ================================================================================================ checks

    private static float[] data(Buffer b, String what) {
        if (b instanceof CpuBuffer cb) {
            return cb.data;
        }
        throw new IllegalArgumentException(what + " buffer " + b + " was not allocated by a CpuBackend");
    }

    private static CpuWeight weight(Weight w) {
        if (w instanceof CpuWeight cw) {
            return cw;
        }
        throw new IllegalArgumentException("weight " + w + " was not made by a CpuBackend");
    }

    private CpuKvCache kvCache(KvCache cache, int layer) {
        if (!(cache instanceof CpuKvCache c)) {
            throw new IllegalArgumentException("KV cache " + cache + " was not made by a CpuBackend");
        }
        if (layer < 0 || layer >= c.layers()) {
            throw new IllegalArgumentException("layer " + layer + " is outside the cache's " + c.layers() + " layers");
        }
        return c;
    }

    private static void need(float[] data, long floats, String what) {
        need(data, floats, what, null);
    }

    /** Checks a buffer's capacity; the message (naming {@code subject} when given) is only built on failure. */
    private static void need(float[] data, long floats, String what, Object subject) {
        if (data.length < floats) {
            throw new IllegalArgumentException(what + (subject == null ? "" : " (" + subject + ")") + " needs " + floats
                    + " floats, the buffer holds " + data.length);
        }
    }

    private static void checkRows(int n, int dim) {
        if (n < 0 || dim < 0) {
            throw new IllegalArgumentException("rows and width must be >= 0, got n=" + n + " dim=" + dim);
        }
    }

    /** Floats needed by n rows of stride {@code stride} whose used columns end at {@code end}. */
    private static long rowsNeed(int n, int stride, int end) {
        return n == 0 ? 0 : (long) (n - 1) * stride + end;
    }

    private static int tokens(Batch batch) {
        int n = batch.nTokens;
        if (n < 0 || n > batch.maxTokens) {
            throw new IllegalArgumentException("batch.nTokens " + n + " is outside [0, " + batch.maxTokens + "]");
        }
        return n;
    }

    /** Every token's position fits the score scratch, and the blocks its sequence reads are valid (once per run). */
    private void checkAttentionBatch(Batch batch, int n, CpuKvCache c) {
        int runMax = -1;
        for (int t = 0; t < n; t++) {
            int seq = batch.seqOfToken[t];
            int pos = batch.kvPositionOf(t);
            batch.blockOf(seq, pos, c.blockSize(), c.numBlocks());
            batch.treeAncestors(t); // checks the tree mask stays within the token's own index
            if (pos + 1 > scores[0].length) {
                throw new IllegalArgumentException("position " + pos + " of batch row " + t + " exceeds the "
                        + scores[0].length + " slots of the largest KV cache");
            }
            runMax = Math.max(runMax, pos);
            if (t + 1 == n || batch.seqOfToken[t + 1] != seq) {
                for (int p = 0; p <= runMax; p += c.blockSize()) {
                    batch.blockOf(seq, p, c.blockSize(), c.numBlocks());
                }
                runMax = -1;
            }
        }
    }
}
