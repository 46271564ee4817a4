package ai.k2j.kernels;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.Quantizer;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;

/**
 * The oracle backend: plain scalar Java written straight from the {@link Backend} javadoc, with every sum
 * accumulated in double: clarity over speed. The CPU and CUDA backends are tested against it.
 * Buffers are heap {@code float[]}; weights stay zero-copy in their tensors' segments.
 *
 * <p>Weight dtypes: F32, F16, BF16 and k2j's Q8_0/Q4_0 (llama.cpp block layout). {@link #matrix}'s
 * {@code format} may be NATIVE (keep), F32/F16/BF16 (convert) or Q8_0/Q4_0 (quantize with llama.cpp's reference
 * rounding), so the quantized kernels of other backends have an oracle too.
 *
 * <p>No op allocates: per-weight row scratch and the attention score scratch are sized when created.
 */
public final class ReferenceBackend implements Backend {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Owns quantized/converted weight copies; closed with the backend. */
    private final Arena arena = Arena.ofShared();
    private boolean closed;

    @Override
    public String name() {
        return "reference";
    }

    // ================================================================ memory

    @Override
    public Weight matrix(List<Tensor> rowsStacked, WeightFormat format) {
        checkOpen();
        if (rowsStacked == null || rowsStacked.isEmpty()) {
            throw new IllegalArgumentException("matrix needs at least one tensor");
        }
        Tensor first = rowsStacked.getFirst();
        long cols = -1;
        long rows = 0;
        for (Tensor t : rowsStacked) {
            if (t.rank() != 2) {
                throw new ModelFormatException("tensor '" + t.name() + "' must be a 2-D matrix, got shape "
                        + java.util.Arrays.toString(t.shape()));
            }
            if (t.dtype() != first.dtype()) {
                throw new ModelFormatException("tensor '" + t.name() + "' has dtype " + t.dtype()
                        + " but '" + first.name() + "' has " + first.dtype() + "; stacked parts must match");
            }
            if (cols >= 0 && t.dim(1) != cols) {
                throw new ModelFormatException("tensor '" + t.name() + "' has " + t.dim(1) + " columns but '"
                        + first.name() + "' has " + cols + "; stacked parts must match");
            }
            cols = t.dim(1);
            rows += t.dim(0);
            checkWeightDtype(t);
            long expectedBytes = t.dtype().bytesFor(t.elements());
            if (t.byteSize() != expectedBytes) {
                throw new ModelFormatException("tensor '" + t.name() + "' holds " + t.byteSize() + " bytes, but "
                        + t.dtype() + java.util.Arrays.toString(t.shape()) + " needs " + expectedBytes);
            }
        }
        if (rows > Integer.MAX_VALUE || cols > Integer.MAX_VALUE || cols <= 0 || rows <= 0) {
            throw new ModelFormatException("matrix starting with '" + first.name() + "' has unsupported size "
                    + rows + "x" + cols);
        }
        RefWeight native_ = new RefWeight(rowsStacked, (int) rows, (int) cols);
        DType target = targetDtype(format, first);
        if (target == native_.dtype) {
            return native_;
        }
        return native_.convertTo(target, arena);
    }

    @Override
    public Buffer vector(List<Tensor> parts) {
        checkOpen();
        long total = 0;
        for (Tensor t : parts) {
            if (t.dtype().isQuantized()) {
                throw new ModelFormatException("tensor '" + t.name() + "': a vector cannot be " + t.dtype());
            }
            checkWeightDtype(t);
            if (t.byteSize() != t.dtype().bytesFor(t.elements())) {
                throw new ModelFormatException("tensor '" + t.name() + "' holds " + t.byteSize()
                        + " bytes, expected " + t.dtype().bytesFor(t.elements()));
            }
            total += t.elements();
        }
        RefBuffer out = newBuffer(total);
        int at = 0;
        for (Tensor t : parts) {
            for (long i = 0; i < t.elements(); i++) {
                out.data[at++] = readPlain(t.data(), t.dtype(), i);
            }
        }
        return out;
    }

    @Override
    public Buffer allocate(long floats) {
        checkOpen();
        return newBuffer(floats);
    }

    @Override
    public RopeTable ropeTable(float[] invFreq, float attentionScaling, int maxPositions) {
        checkOpen();
        if (maxPositions <= 0 || (long) maxPositions * invFreq.length > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("RoPE table of " + maxPositions + " positions x "
                    + invFreq.length + " frequencies is out of range");
        }
        int half = invFreq.length;
        float[] cos = new float[maxPositions * half];
        float[] sin = new float[maxPositions * half];
        for (int p = 0; p < maxPositions; p++) {
            for (int i = 0; i < half; i++) {
                // As HF: the angle is a float32 product, cos/sin of it in float32, then times the scaling.
                float angle = invFreq[i] * (float) p;
                cos[p * half + i] = (float) Math.cos(angle) * attentionScaling;
                sin[p * half + i] = (float) Math.sin(angle) * attentionScaling;
            }
        }
        return new RefRopeTable(maxPositions, half, cos, sin);
    }

    @Override
    public KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize) {
        checkOpen();
        long perLayer = (long) numBlocks * blockSize * kvDim;
        if (layers <= 0 || kvDim <= 0 || numBlocks <= 0 || blockSize <= 0 || perLayer > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("KV cache of " + layers + " layers x " + numBlocks + " blocks x "
                    + blockSize + " slots x " + kvDim + " floats is out of range for the reference backend");
        }
        return new RefKvCache(layers, kvDim, numBlocks, blockSize, KvPrecision.F32, kvDim);
    }

    /** Reduced precision as the oracle: values are rounded on store ({@link KvCodec#roundInPlace}), kept as floats. */
    @Override
    public KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize, KvPrecision precision, int headDim) {
        KvCache checked = kvCache(layers, kvDim, numBlocks, blockSize);
        if (precision == KvPrecision.F32) {
            return checked;
        }
        return new RefKvCache(layers, kvDim, numBlocks, blockSize, precision, headDim);
    }

    // ================================================================ ops

    @Override
    public void embed(Weight table, Batch batch, Buffer out) {
        RefWeight w = weight(table);
        float[] o = data(out, (long) batch.nTokens * w.cols, "embed out");
        for (int t = 0; t < batch.nTokens; t++) {
            int id = batch.tokens[t];
            if (id < 0 || id >= w.rows) {
                throw new IllegalArgumentException("token id " + id + " (batch row " + t
                        + ") is outside the vocabulary [0, " + w.rows + ")");
            }
            w.readRow(id, w.rowScratch);
            System.arraycopy(w.rowScratch, 0, o, t * w.cols, w.cols);
        }
    }

    @Override
    public void rmsNorm(Buffer x, Buffer gamma, float eps, int n, int dim, Buffer out) {
        float[] xs = data(x, (long) n * dim, "rmsNorm x");
        float[] g = data(gamma, dim, "rmsNorm gamma");
        float[] o = data(out, (long) n * dim, "rmsNorm out");
        for (int t = 0; t < n; t++) {
            int row = t * dim;
            double sumSquares = 0;
            for (int i = 0; i < dim; i++) {
                sumSquares += (double) xs[row + i] * xs[row + i];
            }
            double inverseRms = 1.0 / Math.sqrt(sumSquares / dim + eps);
            for (int i = 0; i < dim; i++) {
                o[row + i] = (float) (xs[row + i] * inverseRms) * g[i];
            }
        }
    }

    @Override
    public void matmul(Weight w, Buffer bias, Buffer x, int n, Buffer out) {
        RefWeight m = weight(w);
        float[] xs = data(x, (long) n * m.cols, "matmul x");
        float[] o = data(out, (long) n * m.rows, "matmul out");
        float[] b = bias == null ? null : data(bias, m.rows, "matmul bias");
        if (xs == o) {
            throw new IllegalArgumentException("matmul: out must not alias x");
        }
        float[] row = m.rowScratch;
        for (int r = 0; r < m.rows; r++) {
            m.readRow(r, row);
            for (int t = 0; t < n; t++) {
                int xRow = t * m.cols;
                double sum = 0;
                for (int c = 0; c < m.cols; c++) {
                    sum += (double) xs[xRow + c] * row[c];
                }
                o[t * m.rows + r] = (float) (b == null ? sum : sum + b[r]);
            }
        }
    }

    @Override
    public void rope(Rows heads, int headDim, Batch batch, RopeTable table) {
        RefRopeTable rt = (RefRopeTable) table;
        if (headDim != 2 * rt.halfDim) {
            throw new IllegalArgumentException("rope: headDim " + headDim + " does not match the table's "
                    + rt.halfDim + " frequencies");
        }
        if (heads.width() % headDim != 0) {
            throw new IllegalArgumentException("rope: view width " + heads.width() + " is not a whole number of heads of "
                    + headDim);
        }
        int n = batch.nTokens;
        int rowStride = heads.stride();
        float[] xs = data(heads.buffer(), (long) n * rowStride, "rope x");
        int half = rt.halfDim;
        for (int t = 0; t < n; t++) {
            int pos = batch.positions[t];
            if (pos < 0 || pos >= rt.maxPositions) {
                throw new IllegalArgumentException("position " + pos + " (batch row " + t
                        + ") is outside the RoPE table [0, " + rt.maxPositions + ")");
            }
            for (int h = 0; h < heads.width() / headDim; h++) {
                int base = t * rowStride + heads.offset() + h * headDim;
                for (int i = 0; i < half; i++) {
                    float c = rt.cos[pos * half + i];
                    float s = rt.sin[pos * half + i];
                    float x0 = xs[base + i];
                    float x1 = xs[base + half + i];
                    // rotate_half: (x0, x1) -> (x0·c − x1·s, x1·c + x0·s); float32 ops in HF's order.
                    xs[base + i] = x0 * c - x1 * s;
                    xs[base + half + i] = x1 * c + x0 * s;
                }
            }
        }
    }

    @Override
    public void storeKv(KvCache cache, int layer, Rows keys, Rows values, Batch batch) {
        RefKvCache kv = (RefKvCache) cache;
        checkKvViews("storeKv", keys, values, kv.kvDim);
        int rowStride = keys.stride();
        float[] src = data(keys.buffer(), (long) batch.nTokens * rowStride, "storeKv keys/values");
        float[] keyCache = kv.keys[layer];
        float[] valueCache = kv.values[layer];
        for (int t = 0; t < batch.nTokens; t++) {
            int slot = batch.slotOf(t, kv);
            System.arraycopy(src, t * rowStride + keys.offset(), keyCache, slot * kv.kvDim, kv.kvDim);
            System.arraycopy(src, t * rowStride + values.offset(), valueCache, slot * kv.kvDim, kv.kvDim);
            KvCodec.roundInPlace(kv.precision(), keyCache, slot * kv.kvDim, kv.kvDim, kv.headDim());
            KvCodec.roundInPlace(kv.precision(), valueCache, slot * kv.kvDim, kv.kvDim, kv.headDim());
        }
    }

    /** Keys and values of storeKv: two views of one buffer with one stride, each kvDim wide. */
    static void checkKvViews(String op, Rows keys, Rows values, int kvDim) {
        if (keys.buffer() != values.buffer() || keys.stride() != values.stride()) {
            throw new IllegalArgumentException(op + ": keys and values must be views of one buffer with one stride");
        }
        if (keys.width() != kvDim || values.width() != kvDim) {
            throw new IllegalArgumentException(op + ": key/value views are " + keys.width() + "/" + values.width()
                    + " wide, the cache's kvDim is " + kvDim);
        }
    }

    @Override
    public void attention(Rows queries, KvCache cache, int layer, Batch batch, int kvHeads, int headDim, float scale,
                          Buffer out) {
        RefKvCache kv = (RefKvCache) cache;
        int qWidth = queries.width();
        int heads = headDim > 0 ? qWidth / headDim : 0;
        if (headDim <= 0 || kvHeads <= 0 || heads * headDim != qWidth || kvHeads * headDim != kv.kvDim
                || heads % kvHeads != 0) {
            throw new IllegalArgumentException("attention: query view of " + qWidth + " columns / " + kvHeads
                    + " kv heads of " + headDim + " do not match the cache's kvDim " + kv.kvDim);
        }
        int rowStride = queries.stride();
        float[] q = data(queries.buffer(), (long) batch.nTokens * rowStride, "attention queries");
        float[] o = data(out, (long) batch.nTokens * qWidth, "attention out");
        float[] keys = kv.keys[layer];
        float[] values = kv.values[layer];
        double[] scores = kv.scoreScratch;
        int[] attended = kv.attendedScratch;
        int group = heads / kvHeads;
        for (int t = 0; t < batch.nTokens; t++) {
            int seq = batch.seqOfToken[t];
            int own = batch.kvPositionOf(t);
            if (seq < 0 || seq >= batch.nSeqs || own >= batch.seqKvLength[seq]) {
                throw new IllegalArgumentException("attention: position " + own + " of batch row " + t
                        + " is not below its sequence's KV length");
            }
            // the cache indices t attends to, in order: a causal prefix, then (draft trees) its ancestors
            int last = batch.attendedPrefix(t) - 1;
            for (int p = 0; p <= last; p++) {
                attended[p] = p;
            }
            for (long m = batch.treeAncestors(t); m != 0; m &= m - 1) {
                attended[++last] = batch.seqTreeBase[seq] + Long.numberOfTrailingZeros(m);
            }
            for (int h = 0; h < heads; h++) {
                int qBase = t * rowStride + queries.offset() + h * headDim;
                int kvCol = (h / group) * headDim;
                double max = Double.NEGATIVE_INFINITY;
                for (int p = 0; p <= last; p++) {
                    int kBase = batch.slotAt(seq, attended[p], kv.blockSize, kv.numBlocks) * kv.kvDim + kvCol;
                    double dot = 0;
                    for (int i = 0; i < headDim; i++) {
                        dot += (double) q[qBase + i] * keys[kBase + i];
                    }
                    scores[p] = dot * scale;
                    max = Math.max(max, scores[p]);
                }
                double sum = 0;
                for (int p = 0; p <= last; p++) {
                    scores[p] = Math.exp(scores[p] - max);
                    sum += scores[p];
                }
                int oBase = t * qWidth + h * headDim;
                for (int i = 0; i < headDim; i++) {
                    double acc = 0;
                    for (int p = 0; p <= last; p++) {
                        acc += scores[p] * values[batch.slotAt(seq, attended[p], kv.blockSize, kv.numBlocks) * kv.kvDim
                                + kvCol + i];
                    }
                    o[oBase + i] = (float) (acc / sum);
                }
            }
        }
    }

    @Override
    public void siluMul(Buffer gateUp, int n, int dim, Buffer out) {
        float[] gu = data(gateUp, (long) n * 2 * dim, "siluMul gateUp");
        float[] o = data(out, (long) n * dim, "siluMul out");
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < dim; i++) {
                double gate = gu[t * 2 * dim + i];
                double up = gu[t * 2 * dim + dim + i];
                o[t * dim + i] = (float) (gate / (1.0 + Math.exp(-gate)) * up);
            }
        }
    }

    @Override
    public void add(Buffer x, Buffer y, int n, int dim) {
        float[] xs = data(x, (long) n * dim, "add x");
        float[] ys = data(y, (long) n * dim, "add y");
        for (int i = 0; i < n * dim; i++) {
            xs[i] += ys[i];
        }
    }

    @Override
    public void rmsNormHeads(Rows heads, int headDim, Buffer gamma, float eps, int n) {
        if (headDim <= 0 || heads.width() % headDim != 0) {
            throw new IllegalArgumentException("rmsNormHeads: view width " + heads.width()
                    + " is not a multiple of head dim " + headDim);
        }
        float[] xs = data(heads.buffer(), (long) (n - 1) * heads.stride() + heads.offset() + heads.width(),
                "rmsNormHeads x");
        float[] g = data(gamma, headDim, "rmsNormHeads gamma");
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < heads.width() / headDim; h++) {
                int base = t * heads.stride() + heads.offset() + h * headDim;
                double sumSquares = 0;
                for (int i = 0; i < headDim; i++) {
                    sumSquares += (double) xs[base + i] * xs[base + i];
                }
                double inverseRms = 1.0 / Math.sqrt(sumSquares / headDim + eps);
                for (int i = 0; i < headDim; i++) {
                    xs[base + i] = (float) (xs[base + i] * inverseRms) * g[i];
                }
            }
        }
    }

    @Override
    public boolean supportsMixtureOfExperts() {
        return true;
    }

    @Override
    public void gatherRows(Buffer x, int dim, int[] rows, int from, int count, Buffer out) {
        float[] xs = data(x, 0, "gatherRows x");
        float[] o = data(out, (long) count * dim, "gatherRows out");
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
        float[] s = data(src, (long) count * dim, "scatterAdd src");
        float[] d = data(dst, 0, "scatterAdd dst");
        for (int i = 0; i < count; i++) {
            int row = rows[from + i];
            if (row < 0 || (long) (row + 1) * dim > d.length) {
                throw new IllegalArgumentException("scatterAdd: row " + row + " is outside dst");
            }
            float scale = scales[from + i];
            for (int c = 0; c < dim; c++) {
                d[row * dim + c] += scale * s[i * dim + c];
            }
        }
    }

    @Override
    public boolean supportsLatentAttention() {
        return true;
    }

    @Override
    public void headMatmul(Weight w, int heads, Rows x, int n, Buffer out) {
        RefWeight m = weight(w);
        if (heads <= 0 || m.rows % heads != 0 || x.width() != heads * m.cols) {
            throw new IllegalArgumentException("headMatmul: " + heads + " heads do not split a " + m.rows + "x"
                    + m.cols + " weight over an input view of " + x.width() + " columns");
        }
        int perHead = m.rows / heads;
        float[] xs = data(x.buffer(), n == 0 ? 0 : (long) (n - 1) * x.stride() + x.offset() + x.width(), "headMatmul x");
        float[] o = data(out, (long) n * m.rows, "headMatmul out");
        if (xs == o) {
            throw new IllegalArgumentException("headMatmul: out must not alias x");
        }
        float[] row = m.rowScratch;
        for (int r = 0; r < m.rows; r++) {
            m.readRow(r, row);
            int xCol = x.offset() + (r / perHead) * m.cols;
            for (int t = 0; t < n; t++) {
                double sum = 0;
                for (int c = 0; c < m.cols; c++) {
                    sum += (double) xs[t * x.stride() + xCol + c] * row[c];
                }
                o[t * m.rows + r] = (float) sum;
            }
        }
    }

    @Override
    public void latentAttention(Rows qLatent, Rows qRope, KvCache cache, int layer, Batch batch, int heads,
                                int latentDim, float scale, Buffer out) {
        if (batch.tree) { // the latent kernels read a causal prefix; they have no tree mask
            throw new UnsupportedOperationException("latentAttention (MLA) does not take draft-tree steps (Batch.tree)");
        }
        RefKvCache kv = (RefKvCache) cache;
        int rowWidth = 2 * kv.kvDim;
        int ropeDim = rowWidth - latentDim;
        if (heads <= 0 || latentDim <= 0 || ropeDim <= 0 || qLatent.width() != heads * latentDim
                || qRope.width() != heads * ropeDim) {
            throw new IllegalArgumentException("latentAttention: " + heads + " heads of latent " + latentDim
                    + " and rope " + ropeDim + " (cache rows of " + rowWidth + ") do not match query views of "
                    + qLatent.width() + " and " + qRope.width() + " columns");
        }
        int n = batch.nTokens;
        float[] ql = data(qLatent.buffer(), n == 0 ? 0 : (long) (n - 1) * qLatent.stride() + qLatent.offset()
                + qLatent.width(), "latentAttention qLatent");
        float[] qr = data(qRope.buffer(), n == 0 ? 0 : (long) (n - 1) * qRope.stride() + qRope.offset()
                + qRope.width(), "latentAttention qRope");
        float[] o = data(out, (long) n * heads * latentDim, "latentAttention out");
        float[] keys = kv.keys[layer];
        float[] values = kv.values[layer];
        double[] scores = kv.scoreScratch;
        float[] latent = kv.latentScratch;
        double[] acc = kv.latentSums;
        for (int t = 0; t < n; t++) {
            int seq = batch.seqOfToken[t];
            int last = batch.positions[t];
            if (seq < 0 || seq >= batch.nSeqs || last >= batch.seqKvLength[seq]) {
                throw new IllegalArgumentException("latentAttention: position " + last + " of batch row " + t
                        + " is not below its sequence's KV length");
            }
            for (int h = 0; h < heads; h++) {
                int lBase = t * qLatent.stride() + qLatent.offset() + h * latentDim;
                int rBase = t * qRope.stride() + qRope.offset() + h * ropeDim;
                double max = Double.NEGATIVE_INFINITY;
                for (int p = 0; p <= last; p++) {
                    latentRow(kv, keys, values, batch.slotAt(seq, p, kv.blockSize, kv.numBlocks), latent);
                    double dot = 0;
                    for (int i = 0; i < latentDim; i++) {
                        dot += (double) ql[lBase + i] * latent[i];
                    }
                    for (int i = 0; i < ropeDim; i++) {
                        dot += (double) qr[rBase + i] * latent[latentDim + i];
                    }
                    scores[p] = dot * scale;
                    max = Math.max(max, scores[p]);
                }
                double sum = 0;
                for (int p = 0; p <= last; p++) {
                    scores[p] = Math.exp(scores[p] - max);
                    sum += scores[p];
                }
                java.util.Arrays.fill(acc, 0);
                for (int p = 0; p <= last; p++) {
                    latentRow(kv, keys, values, batch.slotAt(seq, p, kv.blockSize, kv.numBlocks), latent);
                    for (int i = 0; i < latentDim; i++) {
                        acc[i] += scores[p] * latent[i];
                    }
                }
                int oBase = (t * heads + h) * latentDim;
                for (int i = 0; i < latentDim; i++) {
                    o[oBase + i] = (float) (acc[i] / sum);
                }
            }
        }
    }

    /** A slot's latent row: its key slot's kvDim floats, then its value slot's. */
    private static void latentRow(RefKvCache kv, float[] keys, float[] values, int slot, float[] row) {
        System.arraycopy(keys, slot * kv.kvDim, row, 0, kv.kvDim);
        System.arraycopy(values, slot * kv.kvDim, row, kv.kvDim, kv.kvDim);
    }

    @Override
    public void gatherRows(Buffer x, int dim, Batch batch, Buffer out) {
        float[] xs = data(x, (long) batch.nTokens * dim, "gatherRows x");
        float[] o = data(out, (long) batch.nLogits * dim, "gatherRows out");
        for (int i = 0; i < batch.nLogits; i++) {
            int row = batch.logitRows[i];
            if (row < 0 || row >= batch.nTokens) {
                throw new IllegalArgumentException("logit row " + row + " is outside the batch's "
                        + batch.nTokens + " tokens");
            }
            System.arraycopy(xs, row * dim, o, i * dim, dim);
        }
    }

    @Override
    public void download(Buffer src, long srcOffset, float[] dst, int dstOffset, int count) {
        float[] s = data(src, srcOffset + count, "download src");
        System.arraycopy(s, (int) srcOffset, dst, dstOffset, count);
    }

    @Override
    public void argmax(Buffer x, int n, int dim, int[] out) {
        float[] xs = data(x, (long) n * dim, "argmax x");
        for (int t = 0; t < n; t++) {
            int best = 0;
            for (int i = 1; i < dim; i++) {
                if (xs[t * dim + i] > xs[t * dim + best]) { // strict: ties keep the lowest index
                    best = i;
                }
            }
            out[t] = best;
        }
    }

    @Override
    public void sync() {
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            arena.close();
        }
    }

    // ================================================================ element decoding

    /** bfloat16 bits to float: the high half of a float32. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** float to bfloat16 bits, round to nearest even (as torch's {@code .to(torch.bfloat16)}). */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int roundingBias = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    private static float readPlain(MemorySegment data, DType dtype, long index) {
        return switch (dtype) {
            case F32 -> data.get(F32, index * 4);
            case F16 -> Float.float16ToFloat(data.get(I16, index * 2));
            case BF16 -> bf16ToFloat(data.get(I16, index * 2));
            default -> throw new IllegalStateException("not a plain float dtype: " + dtype);
        };
    }

    private static void checkWeightDtype(Tensor t) {
        switch (t.dtype()) {
            case F32, F16, BF16, Q8_0, Q4_0 -> {
            }
            default -> throw new ModelFormatException("tensor '" + t.name() + "' has dtype " + t.dtype()
                    + "; weights must be F32, F16, BF16, Q8_0 or Q4_0");
        }
    }

    private static DType targetDtype(WeightFormat format, Tensor first) {
        DType d = (format == null ? WeightFormat.NATIVE : format).target(first.dtype());
        if (d != first.dtype() && first.dtype().isQuantized()) {
            throw new IllegalArgumentException("tensor '" + first.name() + "' is already " + first.dtype()
                    + "; cannot convert it to " + d);
        }
        return d;
    }

    // ================================================================ plumbing

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("reference backend is closed");
        }
    }

    private static RefBuffer newBuffer(long floats) {
        if (floats < 0 || floats > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("reference backend buffers hold at most 2^31 floats, asked for "
                    + floats);
        }
        return new RefBuffer(new float[(int) floats]);
    }

    private static float[] data(Buffer b, long needed, String what) {
        if (!(b instanceof RefBuffer rb)) {
            throw new IllegalArgumentException(what + ": buffer does not belong to the reference backend");
        }
        if (needed > rb.data.length) {
            throw new IllegalArgumentException(what + ": needs " + needed + " floats, buffer holds "
                    + rb.data.length);
        }
        return rb.data;
    }

    private static RefWeight weight(Weight w) {
        if (!(w instanceof RefWeight rw)) {
            throw new IllegalArgumentException("weight does not belong to the reference backend");
        }
        return rw;
    }

    private record RefBuffer(float[] data) implements Buffer {
        @Override
        public long size() {
            return data.length;
        }
    }

    private record RefRopeTable(int maxPositions, int halfDim, float[] cos, float[] sin) implements RopeTable {
    }

    /**
     * Keys and values per layer: slot s of layer l holds floats [s·kvDim, (s+1)·kvDim). A BF16 or FP8 cache holds
     * the values its precision rounds to, as floats (the oracle for the backends that store the narrow types).
     */
    private static final class RefKvCache extends PagedKvCache {
        final float[][] keys;
        final float[][] values;
        /** One score per attended position; a sequence can never hold more than every slot. */
        final double[] scoreScratch;
        /** latentAttention's: one cached latent row, and the weighted sums of one head's output. */
        final float[] latentScratch;
        final double[] latentSums;
        /** The cache indices one token attends to. */
        final int[] attendedScratch;

        RefKvCache(int layers, int kvDim, int numBlocks, int blockSize, KvPrecision precision, int headDim) {
            super(layers, kvDim, numBlocks, blockSize, precision, headDim);
            this.latentScratch = new float[2 * kvDim];
            this.latentSums = new double[2 * kvDim];
            this.keys = new float[layers][numBlocks * blockSize * kvDim];
            this.values = new float[layers][numBlocks * blockSize * kvDim];
            this.scoreScratch = new double[numBlocks * blockSize];
            this.attendedScratch = new int[numBlocks * blockSize];
        }

        @Override
        protected void copyBlockData(int src, int dst) {
            int len = blockSize * kvDim;
            for (int l = 0; l < layers; l++) {
                System.arraycopy(keys[l], src * len, keys[l], dst * len, len);
                System.arraycopy(values[l], src * len, values[l], dst * len, len);
            }
        }

        @Override
        protected void copySlotData(int src, int dst) {
            for (int l = 0; l < layers; l++) {
                System.arraycopy(keys[l], src * kvDim, keys[l], dst * kvDim, kvDim);
                System.arraycopy(values[l], src * kvDim, values[l], dst * kvDim, kvDim);
            }
        }
    }

    /**
     * A weight over its tensors' segments (rows stacked in part order). {@link #readRow} dequantizes one row;
     * the matmul reads each row once per call and dots it with every token.
     */
    private static final class RefWeight implements Weight {
        final MemorySegment[] parts;
        final int[] partFirstRow;
        final int rows;
        final int cols;
        final DType dtype;
        final float[] rowScratch;

        RefWeight(List<Tensor> tensors, int rows, int cols) {
            this.parts = new MemorySegment[tensors.size()];
            this.partFirstRow = new int[tensors.size()];
            int r = 0;
            for (int i = 0; i < parts.length; i++) {
                parts[i] = tensors.get(i).data();
                partFirstRow[i] = r;
                r += (int) tensors.get(i).dim(0);
            }
            this.rows = rows;
            this.cols = cols;
            this.dtype = tensors.getFirst().dtype();
            this.rowScratch = new float[cols];
        }

        private RefWeight(MemorySegment data, int rows, int cols, DType dtype) {
            this.parts = new MemorySegment[] {data};
            this.partFirstRow = new int[] {0};
            this.rows = rows;
            this.cols = cols;
            this.dtype = dtype;
            this.rowScratch = new float[cols];
        }

        /** Dequantizes row r into dst[0, cols). */
        void readRow(int r, float[] dst) {
            int part = parts.length - 1;
            while (partFirstRow[part] > r) {
                part--;
            }
            MemorySegment seg = parts[part];
            long local = r - partFirstRow[part];
            long rowBytes = dtype.bytesFor(cols);
            long base = local * rowBytes;
            switch (dtype) {
                case F32 -> {
                    for (int c = 0; c < cols; c++) {
                        dst[c] = seg.get(F32, base + 4L * c);
                    }
                }
                case F16 -> {
                    for (int c = 0; c < cols; c++) {
                        dst[c] = Float.float16ToFloat(seg.get(I16, base + 2L * c));
                    }
                }
                case BF16 -> {
                    for (int c = 0; c < cols; c++) {
                        dst[c] = bf16ToFloat(seg.get(I16, base + 2L * c));
                    }
                }
                case Q8_0 -> {
                    // block: f16 scale d, then 32 int8 q; value = d·q
                    for (int b = 0; b < cols / 32; b++) {
                        long blk = base + 34L * b;
                        float d = Float.float16ToFloat(seg.get(I16, blk));
                        for (int j = 0; j < 32; j++) {
                            dst[b * 32 + j] = d * seg.get(ValueLayout.JAVA_BYTE, blk + 2 + j);
                        }
                    }
                }
                case Q4_0 -> {
                    // block: f16 scale d, then 16 bytes; byte j holds value j (low nibble) and j+16 (high),
                    // each stored as q+8 in [0, 16)
                    for (int b = 0; b < cols / 32; b++) {
                        long blk = base + 18L * b;
                        float d = Float.float16ToFloat(seg.get(I16, blk));
                        for (int j = 0; j < 16; j++) {
                            int packed = seg.get(ValueLayout.JAVA_BYTE, blk + 2 + j) & 0xFF;
                            dst[b * 32 + j] = d * ((packed & 0x0F) - 8);
                            dst[b * 32 + 16 + j] = d * ((packed >>> 4) - 8);
                        }
                    }
                }
                default -> throw new IllegalStateException("unsupported weight dtype " + dtype);
            }
        }

        /** A copy of this matrix in {@code target}'s encoding, allocated in {@code arena}. */
        RefWeight convertTo(DType target, Arena arena) {
            if (target.isQuantized() && cols % 32 != 0) {
                throw new IllegalArgumentException("cannot quantize a matrix of " + cols
                        + " columns to " + target + ": columns must be a multiple of 32");
            }
            long rowBytes = target.bytesFor(cols);
            MemorySegment out = arena.allocate(rowBytes * rows, 8);
            float[] row = new float[cols];
            for (int r = 0; r < rows; r++) {
                readRow(r, row);
                long base = r * rowBytes;
                switch (target) {
                    case F32 -> {
                        for (int c = 0; c < cols; c++) {
                            out.set(F32, base + 4L * c, row[c]);
                        }
                    }
                    case F16 -> {
                        for (int c = 0; c < cols; c++) {
                            out.set(I16, base + 2L * c, Float.floatToFloat16(row[c]));
                        }
                    }
                    case BF16 -> {
                        for (int c = 0; c < cols; c++) {
                            out.set(I16, base + 2L * c, floatToBf16(row[c]));
                        }
                    }
                    // llama.cpp's reference rounding; one implementation serves every backend
                    case Q8_0, Q4_0 -> Quantizer.quantizeRow(target, row, 0, cols, out, base);
                    default -> throw new IllegalStateException("unsupported target " + target);
                }
            }
            return new RefWeight(out, rows, cols, target);
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
            return dtype.bytesFor((long) rows * cols);
        }
    }
}
