package ai.k2j.kernels;

import ai.k2j.loaders.Tensor;

import java.util.List;

/**
 * The operations a model is written in (ggml-style): CPU (Vector API) and CUDA implement the same ops and are
 * tested against each other. All activations are float32 row-major matrices {@code [n, dim]} in backend-owned
 * {@link Buffer}s; per-step metadata (token ids, positions, sequences, KV block tables, which rows need logits)
 * travels in a host-side {@link Batch} that the backend reads (CPU) or uploads once per step (CUDA).
 *
 * <p>Ops may run asynchronously in submission order; {@link #download} and {@link #argmax} synchronize.
 * A backend is used by one thread at a time (the engine's step loop); it may use its own worker threads.
 * Nothing here allocates per call on the decode path.
 */
public interface Backend extends AutoCloseable {

    /** "cpu" or "cuda". */
    String name();

    // ---------------------------------------------------------------- memory

    /**
     * A weight matrix {@code [rows, cols]} for {@link #matmul}: the given tensors' rows stacked in order (lets
     * the engine fuse q/k/v or gate/up into one pass). All parts share cols and dtype. CPU keeps mmapped data
     * zero-copy (or quantizes when {@code format} asks); CUDA uploads once.
     *
     * @param format null to keep the tensors' dtype, or a {@link ai.k2j.loaders.DType} name to convert to
     */
    Weight matrix(List<Tensor> rowsStacked, String format);

    /** A 1-D parameter (norm weight, bias) converted to float32; several tensors are concatenated. */
    Buffer vector(List<Tensor> parts);

    /** A zeroed float32 activation buffer of {@code floats} elements. */
    Buffer allocate(long floats);

    /** Precomputed RoPE cos/sin for positions {@code [0, maxPositions)}: cos(p·invFreq[i])·scale. */
    RopeTable ropeTable(float[] invFreq, float attentionScaling, int maxPositions);

    /** Paged KV cache: {@code numBlocks} blocks of {@code blockSize} token slots per layer, float32. */
    KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize);

    // ---------------------------------------------------------------- ops over the batch's n tokens

    /** out[t, :] = table[batch.tokens[t], :] (dequantized), t in [0, batch.nTokens). */
    void embed(Weight table, Batch batch, Buffer out);

    /** out[t] = x[t] / rms(x[t]) * gamma, rms with eps, for t in [0, n). out may equal x. */
    void rmsNorm(Buffer x, Buffer gamma, float eps, int n, int dim, Buffer out);

    /** out[n, rows] = x[n, cols] · Wᵀ (+ bias when non-null). out must not alias x. */
    void matmul(Weight w, Buffer bias, Buffer x, int n, Buffer out);

    /**
     * Rotate-half RoPE in place on {@code heads} heads of {@code headDim} that start at column {@code colOffset}
     * of each row of x (row stride {@code rowStride}), at position batch.positions[t] for row t.
     */
    void rope(Buffer x, int n, int rowStride, int colOffset, int heads, int headDim, Batch batch, RopeTable table);

    /**
     * Writes each token's key and value (columns [kOffset, kOffset+kvDim) and [vOffset, vOffset+kvDim) of
     * {@code qkv}, row stride {@code rowStride}) into the cache slot of its sequence's position.
     */
    void storeKv(KvCache cache, int layer, Buffer qkv, int rowStride, int kOffset, int vOffset, Batch batch);

    /**
     * Causal GQA attention: for token t of sequence s, query heads (columns [0, heads·headDim) of qkv row t)
     * attend over the cached keys/values of s at positions [0, batch.positions[t]]. Softmax(q·k·scale)·v
     * into out[t, heads·headDim]. The batch's own keys must already be stored ({@link #storeKv}).
     */
    void attention(Buffer qkv, int rowStride, KvCache cache, int layer, Batch batch, int heads, int kvHeads,
                   int headDim, float scale, Buffer out);

    /**
     * out[t, i] = silu(gateUp[t, i]) * gateUp[t, dim + i] for a fused [n, 2·dim] gate/up buffer.
     */
    void siluMul(Buffer gateUp, int n, int dim, Buffer out);

    /** x[t] += y[t] for t in [0, n) rows of width dim. */
    void add(Buffer x, Buffer y, int n, int dim);

    /**
     * Per-head RMSNorm in place (Qwen3's q_norm/k_norm): each of the {@code heads.width() / headDim} heads of rows
     * [0, n) of the view becomes head / rms(head) · gamma, gamma of length headDim shared by all heads.
     */
    void rmsNormHeads(Rows heads, int headDim, Buffer gamma, float eps, int n);

    // ---------------------------------------------------------------- mixture of experts
    // The router's choice is made on the host (the model downloads the router logits), so these take host index
    // lists. A backend that implements them says so in supportsMixtureOfExperts; MoE models refuse to load on others.

    /** Whether {@link #gatherRows(Buffer, int, int[], int, int, Buffer)} and {@link #scatterAdd} are implemented. */
    default boolean supportsMixtureOfExperts() {
        return false;
    }

    /** out[i] = x[rows[from + i]] for i in [0, count): the tokens routed to one expert, rows of width dim. */
    default void gatherRows(Buffer x, int dim, int[] rows, int from, int count, Buffer out) {
        throw new UnsupportedOperationException("backend " + name() + " has no mixture-of-experts ops (gatherRows)");
    }

    /** dst[rows[from + i]] += scales[from + i] · src[i] for i in [0, count), rows of width dim: an expert's output. */
    default void scatterAdd(Buffer src, int dim, int[] rows, float[] scales, int from, int count, Buffer dst) {
        throw new UnsupportedOperationException("backend " + name() + " has no mixture-of-experts ops (scatterAdd)");
    }

    // ---------------------------------------------------------------- the ops on row views
    // The model calls these; a backend may override them, and the defaults map them onto the positional ops.

    /** Rotate-half RoPE in place on the {@code heads.width() / headDim} heads of each row of the view. */
    default void rope(Rows heads, int headDim, Batch batch, RopeTable table) {
        rope(heads.buffer(), batch.nTokens, heads.stride(), heads.offset(), heads.width() / headDim, headDim, batch,
                table);
    }

    /** Stores each token's key and value rows (views of the same buffer) in its sequence's cache slot. */
    default void storeKv(KvCache cache, int layer, Rows keys, Rows values, Batch batch) {
        if (keys.buffer() != values.buffer() || keys.stride() != values.stride()) {
            throw new IllegalArgumentException("storeKv: keys and values must be views of one buffer");
        }
        storeKv(cache, layer, keys.buffer(), keys.stride(), keys.offset(), values.offset(), batch);
    }

    /** Causal GQA attention of the query view (a view starting at column 0) over the cache; see the positional op. */
    default void attention(Rows queries, KvCache cache, int layer, Batch batch, int kvHeads, int headDim, float scale,
                           Buffer out) {
        if (queries.offset() != 0) {
            throw new IllegalArgumentException("attention: queries must start at column 0 of their rows");
        }
        attention(queries.buffer(), queries.stride(), cache, layer, batch, queries.width() / headDim, kvHeads, headDim,
                scale, out);
    }

    // ---------------------------------------------------------------- fused ops
    // Pairs the model always runs back to back. The defaults run the unfused pair; a backend overrides what pays
    // (one pass over memory, one launch instead of two).

    /** {@code x += y}, then {@code out = rmsNorm(x)}: the residual add and the next block's norm. */
    default void addRmsNorm(Buffer x, Buffer y, Buffer gamma, float eps, int n, int dim, Buffer out) {
        add(x, y, n, dim);
        rmsNorm(x, gamma, eps, n, dim, out);
    }

    /** RoPE on the query and key views, then the keys and values stored in the cache. */
    default void ropeStoreKv(Rows queries, Rows keys, Rows values, int headDim, KvCache cache, int layer, Batch batch,
                             RopeTable table) {
        rope(queries, headDim, batch, table);
        rope(keys, headDim, batch, table);
        storeKv(cache, layer, keys, values, batch);
    }

    /**
     * {@code gateUp = x · Wᵀ} for a [2·dim, cols] gate|up matrix, then {@code out = silu(gate) · up}. A backend
     * may skip writing {@code gateUp} when it computes {@code out} directly.
     */
    default void matmulSiluMul(Weight gateUpWeight, Buffer x, int n, Buffer gateUp, Buffer out) {
        matmul(gateUpWeight, null, x, n, gateUp);
        siluMul(gateUp, n, gateUpWeight.rows() / 2, out);
    }

    /** out[i] = x[batch.logitRows[i]] for i in [0, batch.nLogits): the rows whose logits are wanted. */
    void gatherRows(Buffer x, int dim, Batch batch, Buffer out);

    /** Copies {@code count} floats from src (starting at float {@code srcOffset}) to the host; synchronizes. */
    void download(Buffer src, long srcOffset, float[] dst, int dstOffset, int count);

    /** Argmax of each of n rows of width dim into out[0..n); synchronizes. Ties pick the lowest index. */
    void argmax(Buffer x, int n, int dim, int[] out);

    /** Waits for submitted work. */
    void sync();

    @Override
    void close();
}
