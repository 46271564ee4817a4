package ai.k2j.engine;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.GraphCapable;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;

/**
 * The Qwen2 decoder (HF {@code Qwen2ForCausalLM}) written in {@link Backend} ops, plus its paged KV cache.
 * One {@link #forward} runs any {@link Batch}: a prefill chunk, one decode token, k draft tokens to verify, or
 * tokens of many sequences at once (continuous batching). Build batches with {@link #newBatch()},
 * {@link #clear(Batch)} and {@link Sequence#addTo}.
 *
 * <pre>
 *   x = embed(tokens)
 *   per layer:  h = rmsNorm(x)
 *               q|k|v = h·[Wq|Wk|Wv]ᵀ + [bq|bk|bv]         (one fused matmul)
 *               rope(q), rope(k);  store k, v in the cache
 *               x += attention(q, cache)·Woᵀ                 (GQA, scale 1/√headDim, no o_proj bias)
 *               h = rmsNorm(x)
 *               gate|up = h·[Wgate|Wup]ᵀ                     (one fused matmul)
 *               x += (silu(gate)·up)·Wdownᵀ
 *   logits = lm_head(rmsNorm(x[logit rows]))                  (the norm is row-wise, so gather first)
 * </pre>
 *
 * <p>Driving it (prefill, then speculative verification of k draft tokens):
 * <pre>{@code
 * Batch batch = model.newBatch();
 * try (Sequence seq = model.newSequence()) {
 *     Qwen2Model.clear(batch);
 *     seq.addTo(batch, prompt, 0, prompt.length, 1);   // logits for the last prompt token only
 *     float[] logits = model.forward(batch);           // [1 × vocab]
 *     Qwen2Model.clear(batch);
 *     seq.addTo(batch, lastAndDrafts, 0, k + 1, k + 1);
 *     logits = model.forward(batch);                   // row i: the distribution after lastAndDrafts[i]
 *     seq.rollback(seq.length() - rejected);           // forget the rejected drafts' KV
 * }
 * }</pre>
 * Several sequences go into one batch by calling {@link Sequence#addTo} for each; logit rows follow the order
 * in which tokens were added.
 *
 * <p>On a {@link GraphCapable} backend (CUDA) small steps (at most {@link StepGraphs#MAX_TOKENS} tokens: decode,
 * speculative verification) are recorded once per Batch object and shape and replayed with one launch per step
 * ({@code -Dk2j.graphs=false} turns that off); the ops and their order are the same either way.
 *
 * <p>Not thread-safe: one step loop drives it. Its buffers live as long as the backend (the caller closes the
 * backend). Nothing allocates per step.
 */
public final class Qwen2Model {

    /** Tokens per KV cache block. */
    public static final int KV_BLOCK_SIZE = 16;

    /**
     * Sizes fixed at load.
     *
     * @param maxContext     most tokens one sequence may hold (RoPE table length)
     * @param maxBatchTokens most tokens one forward step may process (activation buffers)
     * @param maxSeqs        most sequences one step may hold
     * @param maxLogitRows   most rows whose logits one step may request
     * @param kvBlocks       KV cache blocks of {@link #KV_BLOCK_SIZE} tokens shared by all sequences
     */
    public record Limits(int maxContext, int maxBatchTokens, int maxSeqs, int maxLogitRows, int kvBlocks) {
        public Limits {
            if (maxContext <= 0 || maxBatchTokens <= 0 || maxSeqs <= 0 || maxLogitRows <= 0 || kvBlocks <= 0) {
                throw new IllegalArgumentException("all limits must be positive: " + this);
            }
            if (maxLogitRows > maxBatchTokens) {
                throw new IllegalArgumentException("maxLogitRows " + maxLogitRows + " exceeds maxBatchTokens "
                        + maxBatchTokens);
            }
        }

        /** One sequence of up to maxContext tokens: 256-token steps, 16 logit rows, a cache just big enough. */
        public static Limits singleSequence(int maxContext) {
            return new Limits(maxContext, 256, 1, 16, blocksFor(maxContext));
        }

        public int maxBlocksPerSeq() {
            return blocksFor(maxContext);
        }

        public Limits withKvBlocks(int blocks) {
            return new Limits(maxContext, maxBatchTokens, maxSeqs, maxLogitRows, blocks);
        }

        public Limits withMaxSeqs(int seqs) {
            return new Limits(maxContext, maxBatchTokens, seqs, maxLogitRows, kvBlocks);
        }

        public Limits withMaxBatchTokens(int tokens, int logitRows) {
            return new Limits(maxContext, tokens, maxSeqs, logitRows, kvBlocks);
        }

        static int blocksFor(int tokens) {
            return (tokens + KV_BLOCK_SIZE - 1) / KV_BLOCK_SIZE;
        }
    }

    /** One decoder layer's weights on the backend. */
    private record Layer(Buffer inputNorm, Weight qkv, Buffer qkvBias, Weight o, Buffer postNorm, Weight gateUp,
                         Weight down) {
    }

    private final ModelConfig config;
    private final Backend backend;
    private final Limits limits;

    private final Weight embedTokens;
    private final Layer[] layers;
    private final Buffer finalNorm;
    private final Weight lmHead;

    private final RopeTable rope;
    private final KvCache kvCache;
    private final KvBlockAllocator blocks;

    // activations [maxBatchTokens, width] and the logits [maxLogitRows, vocab]
    private final Buffer x;
    private final Buffer xNorm;
    private final Buffer qkv;
    /** The query, key and value columns of {@link #qkv}. */
    private final Rows queries;
    private final Rows keys;
    private final Rows values;
    private final Buffer attnOut;
    private final Buffer proj;
    private final Buffer gateUp;
    private final Buffer ffn;
    private final Buffer logitHidden;
    private final Buffer logits;
    private final float[] hostLogits;
    /** Recorded steps on a graph-capable backend, else null; {@link #eagerStep} is what gets recorded. */
    private StepGraphs graphs;
    private final StepGraphs.Step eagerStep = this::runOps;

    // sizes
    private final int hidden;
    private final int qDim;
    private final int kvDim;
    private final int qkvDim;
    private final int intermediate;
    private final int vocab;
    private final float eps;
    private final float attentionScale;

    private Qwen2Model(ModelConfig config, Backend backend, Limits limits, Weight embedTokens, Layer[] layers,
                       Buffer finalNorm, Weight lmHead) {
        this.config = config;
        this.backend = backend;
        this.limits = limits;
        this.embedTokens = embedTokens;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.lmHead = lmHead;

        hidden = config.hiddenSize();
        qDim = config.qDim();
        kvDim = config.kvDim();
        qkvDim = qDim + 2 * kvDim;
        intermediate = config.intermediateSize();
        vocab = config.vocabSize();
        eps = (float) config.rmsNormEps();
        attentionScale = (float) (1.0 / Math.sqrt(config.headDim()));

        RopeFrequencies freqs = RopeFrequencies.of(config, limits.maxContext());
        rope = backend.ropeTable(freqs.invFreq(), freqs.attentionScaling(), limits.maxContext());
        kvCache = backend.kvCache(config.numLayers(), kvDim, limits.kvBlocks(), KV_BLOCK_SIZE);
        blocks = new KvBlockAllocator(limits.kvBlocks(), KV_BLOCK_SIZE);

        long t = limits.maxBatchTokens();
        x = backend.allocate(t * hidden);
        xNorm = backend.allocate(t * hidden);
        qkv = backend.allocate(t * qkvDim);
        queries = Rows.of(qkv, 0, qkvDim, qDim);
        keys = Rows.of(qkv, qDim, qkvDim, kvDim);
        values = Rows.of(qkv, qDim + kvDim, qkvDim, kvDim);
        attnOut = backend.allocate(t * qDim);
        proj = backend.allocate(t * hidden);
        gateUp = backend.allocate(t * 2L * intermediate);
        ffn = backend.allocate(t * intermediate);
        logitHidden = backend.allocate((long) limits.maxLogitRows() * hidden);
        long logitFloats = (long) limits.maxLogitRows() * vocab;
        if (logitFloats > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException(limits.maxLogitRows() + " logit rows of " + vocab
                    + " do not fit one host array");
        }
        logits = backend.allocate(logitFloats);
        hostLogits = new float[(int) logitFloats];
        if (backend instanceof GraphCapable g && Boolean.parseBoolean(System.getProperty("k2j.graphs", "true"))) {
            graphs = new StepGraphs(g);
        }
    }

    /**
     * Loads the weights named as in HF checkpoints, validating every shape against the config.
     *
     * @param tensors      looks tensors up by name (e.g. {@code checkpoint::find})
     * @param source       names the checkpoint in error messages
     * @param weightFormat null or NATIVE to keep the checkpoint's dtype, or a format the backend converts to
     */
    public static Qwen2Model load(ModelConfig config, Function<String, Optional<Tensor>> tensors, String source,
                                  Backend backend, Limits limits, WeightFormat weightFormat) {
        if (!config.architecture().equals("Qwen2ForCausalLM")) {
            throw new ModelFormatException(source + ": architecture '" + config.architecture()
                    + "' is not supported (k2j runs Qwen2ForCausalLM)");
        }
        Weights w = new Weights(tensors, source, config);
        int h = config.hiddenSize();
        int q = config.qDim();
        int kv = config.kvDim();
        int ff = config.intermediateSize();
        int v = config.vocabSize();

        Tensor embed = w.get("model.embed_tokens.weight", v, h);
        Layer[] layers = new Layer[config.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            layers[i] = new Layer(
                    backend.vector(List.of(w.get(p + "input_layernorm.weight", h))),
                    backend.matrix(List.of(
                            w.get(p + "self_attn.q_proj.weight", q, h),
                            w.get(p + "self_attn.k_proj.weight", kv, h),
                            w.get(p + "self_attn.v_proj.weight", kv, h)), weightFormat),
                    backend.vector(List.of(
                            w.get(p + "self_attn.q_proj.bias", q),
                            w.get(p + "self_attn.k_proj.bias", kv),
                            w.get(p + "self_attn.v_proj.bias", kv))),
                    backend.matrix(List.of(w.get(p + "self_attn.o_proj.weight", h, q)), weightFormat),
                    backend.vector(List.of(w.get(p + "post_attention_layernorm.weight", h))),
                    backend.matrix(List.of(
                            w.get(p + "mlp.gate_proj.weight", ff, h),
                            w.get(p + "mlp.up_proj.weight", ff, h)), weightFormat),
                    backend.matrix(List.of(w.get(p + "mlp.down_proj.weight", h, ff)), weightFormat));
        }
        Buffer finalNorm = backend.vector(List.of(w.get("model.norm.weight", h)));

        // The lm_head is a matmul and follows weightFormat, except that Q4_0 keeps it at Q8_0 (lmHeadFormat). Tied
        // (as HF): lm_head is embed_tokens, whatever lm_head.weight the file may hold, and one matrix serves both
        // (so a load-time --quant gathers embeddings from the quantized table, exactly as a checkpoint written by
        // `k2j quantize` does). Untied, the embedding is only gathered from and keeps its dtype.
        boolean keepNative = weightFormat == null || weightFormat == WeightFormat.NATIVE;
        WeightFormat headFormat = lmHeadFormat(weightFormat);
        Weight embedTokens;
        Weight lmHead;
        if (config.tieWordEmbeddings()) {
            embedTokens = backend.matrix(List.of(embed), keepNative || embed.dtype().isQuantized() ? null : headFormat);
            lmHead = embedTokens;
        } else {
            embedTokens = backend.matrix(List.of(embed), null);
            Tensor head = w.get("lm_head.weight", v, h);
            lmHead = backend.matrix(List.of(head), keepNative || head.dtype().isQuantized() ? null : headFormat);
        }
        return new Qwen2Model(config, backend, limits, embedTokens, layers, finalNorm, lmHead);
    }

    /**
     * The format the lm_head (and a tied embedding) is converted to under {@code weightFormat}: the same, except
     * that Q4_0 models keep their lm_head at Q8_0. The lm_head turns the last hidden state straight into logits,
     * and 4-bit blocks there cost far more next-token KL divergence than in the layer matrices
     * (docs/performance.md has the measurements). An lm_head already quantized in the checkpoint stays as stored.
     */
    public static WeightFormat lmHeadFormat(WeightFormat weightFormat) {
        return weightFormat == WeightFormat.Q4_0 ? WeightFormat.Q8_0 : weightFormat;
    }

    // ================================================================ the forward pass

    /**
     * Runs one step over the batch's tokens (their keys/values are stored as a side effect) and downloads the
     * logits of {@code batch.logitRows}: row i of the result, at offset {@code i·vocab}, belongs to batch row
     * {@code batch.logitRows[i]}. The returned array is this model's own and is overwritten by the next call.
     */
    public float[] forward(Batch batch) {
        run(batch);
        if (batch.nLogits > 0) {
            backend.download(logits, 0, hostLogits, 0, batch.nLogits * vocab);
        }
        return hostLogits;
    }

    /** Like {@link #forward} but only the argmax of each logit row comes back (greedy without a download). */
    public void forwardArgmax(Batch batch, int[] out) {
        run(batch);
        if (batch.nLogits > 0) {
            backend.argmax(logits, batch.nLogits, vocab, out);
        }
    }

    /**
     * Like {@link #forwardArgmax} but draws each logit row's token on the device (temperature, top-k, top-p; see
     * {@link GraphCapable#sample}); only ids come back. Needs {@link #samplesOnDevice()}.
     */
    public void forwardSample(Batch batch, float temperature, int topK, float topP, long seed, int[] out) {
        if (!(backend instanceof GraphCapable g)) {
            throw new IllegalStateException("backend " + backend.name() + " cannot sample on the device");
        }
        run(batch);
        if (batch.nLogits > 0) {
            g.sample(logits, batch.nLogits, vocab, temperature, topK, topP, seed, out);
        }
    }

    /** True when {@link #forwardSample} works (the backend samples on the device). */
    public boolean samplesOnDevice() {
        return backend instanceof GraphCapable;
    }

    /** Turns step recording on or off (on by default on a graph-capable backend); off closes recorded steps. */
    void useGraphs(boolean on) {
        if (!on && graphs != null) {
            graphs.close();
            graphs = null;
        } else if (on && graphs == null && backend instanceof GraphCapable g) {
            graphs = new StepGraphs(g);
        }
    }

    /** Steps recorded so far (0 without graphs). */
    int graphCaptures() {
        return graphs == null ? 0 : graphs.captures();
    }

    private void run(Batch batch) {
        checkBatch(batch);
        if (graphs != null && StepGraphs.eligible(batch)) {
            graphs.run(batch, eagerStep);
        } else {
            runOps(batch);
        }
    }

    private void runOps(Batch batch) {
        int n = batch.nTokens;
        backend.embed(embedTokens, batch, x);
        for (int l = 0; l < layers.length; l++) {
            Layer layer = layers[l];
            // attention block
            if (l == 0) {
                backend.rmsNorm(x, layer.inputNorm, eps, n, hidden, xNorm);
            } else {  // the previous layer's residual add, then this layer's norm
                backend.addRmsNorm(x, proj, layer.inputNorm, eps, n, hidden, xNorm);
            }
            backend.matmul(layer.qkv, layer.qkvBias, xNorm, n, qkv);
            backend.ropeStoreKv(queries, keys, values, config.headDim(), kvCache, l, batch, rope);
            backend.attention(queries, kvCache, l, batch, config.numKvHeads(), config.headDim(), attentionScale,
                    attnOut);
            backend.matmul(layer.o, null, attnOut, n, proj);
            // feed-forward block
            backend.addRmsNorm(x, proj, layer.postNorm, eps, n, hidden, xNorm);
            backend.matmulSiluMul(layer.gateUp, xNorm, n, gateUp, ffn);
            backend.matmul(layer.down, null, ffn, n, proj);
        }
        backend.add(x, proj, n, hidden);
        if (batch.nLogits > 0) {
            backend.gatherRows(x, hidden, batch, logitHidden);
            backend.rmsNorm(logitHidden, finalNorm, eps, batch.nLogits, hidden, logitHidden);
            backend.matmul(lmHead, null, logitHidden, batch.nLogits, logits);
        }
    }

    private void checkBatch(Batch batch) {
        if (batch.nTokens <= 0 || batch.nTokens > limits.maxBatchTokens()) {
            throw new IllegalArgumentException("batch has " + batch.nTokens + " tokens; a step takes 1 to "
                    + limits.maxBatchTokens());
        }
        if (batch.nLogits > limits.maxLogitRows()) {
            throw new IllegalArgumentException("batch asks for " + batch.nLogits + " logit rows; a step gives at most "
                    + limits.maxLogitRows());
        }
        if (batch.nSeqs <= 0 || batch.nSeqs > batch.maxSeqs) {
            throw new IllegalArgumentException("batch has " + batch.nSeqs + " sequences");
        }
    }

    // ================================================================ batches and sequences

    /** A batch sized to this model's limits. */
    public Batch newBatch() {
        return new Batch(limits.maxBatchTokens(), limits.maxSeqs(), limits.maxBlocksPerSeq());
    }

    /** Empties a batch for the next step. */
    public static void clear(Batch batch) {
        batch.nTokens = 0;
        batch.nSeqs = 0;
        batch.nLogits = 0;
    }

    /** An empty sequence in this model's KV cache; close it to free its blocks. */
    public Sequence newSequence() {
        return new Sequence(blocks, kvCache, limits.maxContext());
    }

    /** Free KV blocks (a server admits a request when its blocks fit). */
    public int freeKvBlocks() {
        return blocks.freeBlocks();
    }

    public ModelConfig config() {
        return config;
    }

    public Limits limits() {
        return limits;
    }

    public Backend backend() {
        return backend;
    }

    public int vocabSize() {
        return vocab;
    }

    /** Bytes one decode step streams from weights (every matrix once, plus one embedding row). */
    public long weightBytesPerToken() {
        long total = lmHead.byteSize();
        for (Layer layer : layers) {
            total += layer.qkv.byteSize() + layer.o.byteSize() + layer.gateUp.byteSize() + layer.down.byteSize();
        }
        return total;
    }

    /** Looks tensors up and checks their shapes, naming the source and tensor on failure. */
    private record Weights(Function<String, Optional<Tensor>> lookup, String source, ModelConfig config) {
        Tensor get(String name, long... shape) {
            Tensor t = lookup.apply(name).orElseThrow(() -> new ModelFormatException(source
                    + ": missing tensor '" + name + "'"));
            if (!Arrays.equals(t.shape(), shape)) {
                throw new ModelFormatException(source + ": tensor '" + name + "' has shape "
                        + Arrays.toString(t.shape()) + ", but config.json (hidden_size=" + config.hiddenSize()
                        + ", heads=" + config.numHeads() + ", kv_heads=" + config.numKvHeads() + ", head_dim="
                        + config.headDim() + ", intermediate_size=" + config.intermediateSize() + ", vocab_size="
                        + config.vocabSize() + ") implies " + Arrays.toString(shape));
            }
            return t;
        }
    }
}
