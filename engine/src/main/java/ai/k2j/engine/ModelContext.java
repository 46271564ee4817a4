package ai.k2j.engine;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.GraphCapable;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.engine.model.Architectures;
import ai.k2j.engine.model.DecoderModel;
import ai.k2j.engine.model.Workspace;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.util.Optional;
import java.util.function.Function;

/**
 * A loaded model's runtime (llama.cpp's context, vLLM's model runner state): the {@link DecoderModel} it runs, the
 * buffers its steps write, the paged KV cache and its block allocator, recorded step graphs, and the limits all of
 * these are sized by. One {@link #forward} runs any {@link Batch}: a prefill chunk, one decode token, k draft
 * tokens to verify, or tokens of many sequences at once (continuous batching). Build batches with
 * {@link #newBatch()}, {@link Batch#clear()} and {@link Sequence#addTo}.
 *
 * <p>Driving it (prefill, then speculative verification of k draft tokens):
 * <pre>{@code
 * Batch batch = model.newBatch();
 * try (Sequence seq = model.newSequence()) {
 *     batch.clear();
 *     seq.addTo(batch, prompt, 0, prompt.length, 1);   // logits for the last prompt token only
 *     float[] logits = model.forward(batch);           // [1 × vocab]
 *     batch.clear();
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
public final class ModelContext {

    /**
     * Prompt tokens per prefill step (fewer when the limits allow fewer per step): 256, or {@code -Dk2j.prefillChunk}
     * (larger steps give the GPU's tensor-core GEMMs more rows per launch; tools/gpu/bench-prefill.sh compares).
     */
    public static final int PREFILL_CHUNK = prefillChunk();

    private static int prefillChunk() {
        String v = System.getProperty("k2j.prefillChunk", "256");
        try {
            int c = Integer.parseInt(v.trim());
            if (c >= 1 && c <= 65536) {
                return c;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("-Dk2j.prefillChunk=" + v + ": expected a token count in [1, 65536]");
    }

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

        /**
         * One sequence of up to maxContext tokens: steps of {@link #PREFILL_CHUNK} tokens, 16 logit rows, a cache just
         * big enough.
         */
        public static Limits singleSequence(int maxContext) {
            return new Limits(maxContext, PREFILL_CHUNK, 1, Math.min(16, PREFILL_CHUNK), blocksFor(maxContext));
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

    private final DecoderModel model;
    private final ModelConfig config;
    private final Backend backend;
    private final Limits limits;
    private final Workspace workspace;
    private final KvCache kvCache;
    private final KvBlockAllocator blocks;
    private final Buffer logits;
    private final float[] hostLogits;
    private final int vocab;
    /** The id read in place of a token at or above this model's vocabulary (a padded target's), or -1: none. */
    private int foreignTokenId = -1;
    /** Recorded steps on a graph-capable backend, else null; {@link #eagerStep} is what gets recorded. */
    private StepGraphs graphs;
    private final StepGraphs.Step eagerStep;

    /**
     * A context for {@code model} sized by {@code limits}: allocates its buffers and a float32 KV cache on the model's
     * backend (exact: the engine's tests compare these against HF).
     */
    public ModelContext(DecoderModel model, Limits limits) {
        this(model, limits, KvPrecision.F32);
    }

    /** Like {@link #ModelContext(DecoderModel, Limits)} with the KV cache stored in {@code kvPrecision}. */
    public ModelContext(DecoderModel model, Limits limits, KvPrecision kvPrecision) {
        this.model = model;
        this.config = model.config();
        this.backend = model.backend();
        this.limits = limits;
        this.vocab = config.vocabSize();
        long logitFloats = (long) limits.maxLogitRows() * vocab;
        if (logitFloats > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException(limits.maxLogitRows() + " logit rows of " + vocab
                    + " do not fit one host array");
        }
        this.workspace = model.newWorkspace(limits.maxBatchTokens(), limits.maxLogitRows(), limits.maxContext());
        this.logits = workspace.logits();
        this.hostLogits = new float[(int) logitFloats];
        kvPrecision = model.kvPrecision(kvPrecision);
        this.kvCache = kvPrecision == KvPrecision.F32
                ? backend.kvCache(model.kvLayers(), model.kvDim(), limits.kvBlocks(), KV_BLOCK_SIZE)
                : backend.kvCache(model.kvLayers(), model.kvDim(), limits.kvBlocks(), KV_BLOCK_SIZE, kvPrecision,
                config.headDim());
        this.blocks = new KvBlockAllocator(limits.kvBlocks(), KV_BLOCK_SIZE);
        this.eagerStep = batch -> model.forward(workspace, kvCache, batch);
        if (backend instanceof GraphCapable g && model.recordable()
                && Boolean.parseBoolean(System.getProperty("k2j.graphs", "true"))) {
            graphs = new StepGraphs(g);
        }
    }

    /**
     * Loads the weights of the architecture {@code config} names (see {@link Architectures}) and sizes a context
     * for them.
     *
     * @param tensors      looks tensors up by name (e.g. {@code checkpoint::find})
     * @param source       names the checkpoint in error messages
     * @param weightFormat null or NATIVE to keep the checkpoint's dtype, or a format the backend converts to
     */
    public static ModelContext load(ModelConfig config, Function<String, Optional<Tensor>> tensors, String source,
                                    Backend backend, Limits limits, WeightFormat weightFormat) {
        return new ModelContext(Architectures.load(config, tensors, source, backend, weightFormat), limits);
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

    /** How this context's KV cache stores keys and values. */
    public KvPrecision kvPrecision() {
        return kvCache.precision();
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
        } else if (on && graphs == null && backend instanceof GraphCapable g && model.recordable()) {
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
            eagerStep.run(batch);
        }
    }

    /**
     * Feeds {@code tokens[offset, offset + count)} to {@code seq}, in steps of at most {@link #PREFILL_CHUNK} tokens
     * (and the limits' step size). Every step but the last runs here; the last is left in {@code batch}, not run,
     * with logits for its last token when {@code logitsForLast}, for the caller to run as it needs (forward, argmax,
     * device sampling). The one prefill loop of the engine.
     */
    public void prefill(Sequence seq, Batch batch, int[] tokens, int offset, int count, boolean logitsForLast) {
        int chunk = Math.min(PREFILL_CHUNK, limits.maxBatchTokens());
        int end = offset + count;
        while (true) {
            int n = Math.min(chunk, end - offset);
            boolean last = offset + n == end;
            batch.clear();
            seq.addTo(batch, tokens, offset, n, last && logitsForLast ? 1 : 0);
            if (last) {
                return;
            }
            forward(batch);
            offset += n;
        }
    }

    private void checkBatch(Batch batch) {
        if (foreignTokenId >= 0) {
            for (int t = 0; t < batch.nTokens; t++) {
                if (batch.tokens[t] >= vocab) {
                    batch.tokens[t] = foreignTokenId;
                }
            }
        }
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

    /**
     * Makes this model (a draft whose vocabulary is the target's less its padding rows: Qwen2.5 ≤ 7B has 151,936
     * ids, ≥ 14B 152,064, one tokenizer) read any token id at or above its vocabulary as {@code id}: such ids are
     * padding no tokenizer produces, so only a target that picks one (never in practice) feeds the draft one, and
     * the draft then merely drafts worse for a step. Batches given to {@link #forward} are rewritten in place.
     */
    void readForeignTokensAs(int id) {
        if (id < 0 || id >= vocab) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + vocab + ")");
        }
        foreignTokenId = id;
    }

    /** A batch sized to this model's limits. */
    public Batch newBatch() {
        return new Batch(limits.maxBatchTokens(), limits.maxSeqs(), limits.maxBlocksPerSeq());
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

    /** The definition this context runs. */
    public DecoderModel model() {
        return model;
    }

    /** Bytes one decode step streams from weights (every matrix once, plus one embedding row). */
    public long weightBytesPerToken() {
        return model.weightBytesPerToken();
    }
}
