package ai.k2j.kernels;

import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

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
     * @param format the encoding to keep the weight in; null means {@link WeightFormat#NATIVE} (the tensors' dtype)
     */
    Weight matrix(List<Tensor> rowsStacked, WeightFormat format);

    /** A 1-D parameter (norm weight, bias) converted to float32; several tensors are concatenated. */
    Buffer vector(List<Tensor> parts);

    /** A zeroed float32 activation buffer of {@code floats} elements. */
    Buffer allocate(long floats);

    /** Precomputed RoPE cos/sin for positions {@code [0, maxPositions)}: cos(p·invFreq[i])·scale. */
    RopeTable ropeTable(float[] invFreq, float attentionScaling, int maxPositions);

    /** Paged KV cache: {@code numBlocks} blocks of {@code blockSize} token slots per layer, float32. */
    KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize);

    /**
     * Paged KV cache storing keys and values in {@code precision} (attention still computes in float32); headDim
     * (dividing kvDim) is the FP8 scales' granularity. F32 is {@link #kvCache(int, int, int, int)}; a backend
     * without reduced-precision caches refuses the others by name.
     */
    default KvCache kvCache(int layers, int kvDim, int numBlocks, int blockSize, KvPrecision precision, int headDim) {
        if (precision == KvPrecision.F32) {
            return kvCache(layers, kvDim, numBlocks, blockSize);
        }
        throw new UnsupportedOperationException("backend " + name() + " has no " + precision + " KV cache");
    }

    // ---------------------------------------------------------------- ops over the batch's n tokens

    /** out[t, :] = table[batch.tokens[t], :] (dequantized), t in [0, batch.nTokens). */
    void embed(Weight table, Batch batch, Buffer out);

    /** out[t] = x[t] / rms(x[t]) * gamma, rms with eps, for t in [0, n). out may equal x. */
    void rmsNorm(Buffer x, Buffer gamma, float eps, int n, int dim, Buffer out);

    /** out[n, rows] = x[n, cols] · Wᵀ (+ bias when non-null). out must not alias x. */
    void matmul(Weight w, Buffer bias, Buffer x, int n, Buffer out);

    /**
     * Rotate-half RoPE in place on the {@code heads.width() / headDim} heads of each of the batch's
     * {@code nTokens} rows of the view, row t at position batch.positions[t].
     */
    void rope(Rows heads, int headDim, Batch batch, RopeTable table);

    /**
     * Writes each token's key and value rows ({@code cache.kvDim()} wide; views of one buffer with one stride)
     * into the cache slot of its sequence's position ({@link Batch#slotOf}).
     */
    void storeKv(KvCache cache, int layer, Rows keys, Rows values, Batch batch);

    /**
     * Causal GQA attention: for token t of sequence s, the {@code queries.width() / headDim} query heads of row t
     * attend over the cached keys/values of s at positions [0, batch.positions[t]]. Softmax(q·k·scale)·v into
     * out[t, queries.width()]. The batch's own keys must already be stored ({@link #storeKv}).
     */
    void attention(Rows queries, KvCache cache, int layer, Batch batch, int kvHeads, int headDim, float scale,
                   Buffer out);

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

    // ---------------------------------------------------------------- multi-head latent attention (DeepSeek-V3's MLA)
    // Decode runs in the latent space: the cache holds one row of [c_kv | k_rope] per token and layer, the queries
    // are folded into it (q_nope·W_UKᵀ per head) and the output out of it (·W_UVᵀ per head) by headMatmul.

    /** Whether {@link #headMatmul} and {@link #latentAttention} are implemented; MLA models refuse other backends. */
    default boolean supportsLatentAttention() {
        return false;
    }

    /**
     * A different small matmul per head: with {@code heads} heads, w's rows are {@code heads} blocks of
     * {@code w.rows() / heads} and x's view holds {@code heads} inputs of {@code w.cols()} per row;
     * out[t, h·(w.rows()/heads) + j] = Σ_i w[h·(w.rows()/heads) + j, i] · x[t, h·w.cols() + i] for t in [0, n).
     * out is dense [n, w.rows()] and must not alias x.
     */
    default void headMatmul(Weight w, int heads, Rows x, int n, Buffer out) {
        throw new UnsupportedOperationException("backend " + name() + " has no latent-attention ops (headMatmul)");
    }

    /**
     * Causal attention in MLA's latent space. The cache holds one latent row per token of {@code 2·kvDim} floats,
     * {@code [c (latentDim) | r (2·kvDim − latentDim)]}, its first kvDim floats stored in the token's key slot and
     * the rest in its value slot ({@link #storeKv} of the row's two halves), so the paged cache, its allocator and
     * copy-on-write serve MLA unchanged. For token t of sequence s and head h in [0, heads):
     * score_p = (qLatent[t, h]·c_p + qRope[t, h]·r_p)·scale over s's positions p ≤ batch.positions[t], and
     * out[t, h·latentDim + i] = Σ_p softmax(score)_p · c_p[i]. qLatent holds heads × latentDim and qRope heads × the
     * rope width per row.
     */
    default void latentAttention(Rows qLatent, Rows qRope, KvCache cache, int layer, Batch batch, int heads,
                                 int latentDim, float scale, Buffer out) {
        throw new UnsupportedOperationException("backend " + name() + " has no latent-attention ops (latentAttention)");
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
