package ai.k2j.engine;

import ai.k2j.engine.spec.DraftCompatibility;
import ai.k2j.engine.spec.Speculation;
import ai.k2j.engine.spec.SpeculativeDecoder;
import ai.k2j.engine.spec.SpeculativeStats;
import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import ai.k2j.tokenizer.ChatMessage;
import ai.k2j.tokenizer.StreamingDecoder;
import ai.k2j.tokenizer.Tokenizer;

import java.lang.reflect.InvocationTargetException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Function;
import java.util.stream.IntStream;

/**
 * The embeddable entry point: a loaded model (weights mapped, backend ready, tokenizer) that generates text.
 * Thread-safety: one generation at a time per instance (calls are serialized); {@link #close()} unmaps weights.
 *
 * <p>Generation prefills the prompt in chunks of 256 tokens, then decodes one token per step. It stops at an
 * end-of-sequence id (generation_config.json's ∪ config.json's, unless {@code ignoreEos}; the id is kept in
 * {@link GenerationResult#ids()} but adds no text), at a stop string (matched on the decoded text, which is cut
 * before it; the ids keep the token that completed it), after {@code maxTokens}, when the context is full
 * (prompt + generated = {@link #maxContext()}), or when the listener returns false. Text skips special tokens.
 *
 * <p>Speculative decoding: load a draft model with {@link ModelOptions#withDraft} (or use prompt lookup, which
 * needs none) and choose per request with {@link GenerationRequest#speculation()}; the tokens have exactly the
 * target's distribution (greedy: the same tokens), and {@link GenerationResult#speculation()} reports the
 * acceptance rate and time shares.
 */
public final class LanguageModel implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger(LanguageModel.class.getName());

    /** Prompt tokens per prefill step. */
    static final int PREFILL_CHUNK = 256;
    /** Default context cap: keeps the KV cache reasonable for 32k/128k-position models. */
    static final int DEFAULT_MAX_CONTEXT = 8192;
    static final String CPU_BACKEND_CLASS = "ai.k2j.kernels.cpu.CpuBackend";
    static final String CUDA_BACKEND_CLASS = "ai.k2j.kernels.cuda.CudaBackend";

    private final ReentrantLock lock = new ReentrantLock();
    private final ModelConfig config;
    private final GenerationConfig generationConfig;
    private final Tokenizer tokenizer;
    private final Backend backend;
    private final AutoCloseable weights;
    private final String source;
    private final Qwen2Model model;
    private final Sampler sampler;
    private final DecodeLoop loop;
    private final Batch batch;
    private final int[] eosIds;
    /** the draft model sharing the backend, or null */
    private final Qwen2Model draft;
    private final AutoCloseable draftWeights;
    /** created on the first speculative request (its buffers are vocabulary-sized) */
    private SpeculativeDecoder speculator;
    private boolean closed;

    private LanguageModel(ModelConfig config, GenerationConfig generationConfig, Tokenizer tokenizer,
                          Backend backend, AutoCloseable weights, String source, Qwen2Model model,
                          Qwen2Model draft, AutoCloseable draftWeights) {
        this.config = config;
        this.generationConfig = generationConfig;
        this.tokenizer = tokenizer;
        this.backend = backend;
        this.weights = weights;
        this.source = source;
        this.model = model;
        this.sampler = new Sampler(config.vocabSize());
        this.loop = new DecodeLoop(model, sampler, PREFILL_CHUNK);
        this.batch = model.newBatch();
        this.eosIds = IntStream.concat(Arrays.stream(generationConfig.eosTokenIds()),
                Arrays.stream(config.eosTokenIds())).distinct().toArray();
        this.draft = draft;
        this.draftWeights = draftWeights;
    }

    public static LanguageModel load(Path dir) {
        return load(dir, ModelOptions.defaults());
    }

    /**
     * Opens the checkpoint in {@code dir}, prepares the backend named by the options ("cpu" falls back to the
     * slow reference backend, with a warning, when the CPU backend is not in the build) and loads
     * {@code tokenizer.json} when the directory has one. With {@link ModelOptions#draft()}, also loads that
     * draft model on the same backend, after checking that it shares the target's vocabulary
     * ({@link DraftCompatibility}).
     */
    public static LanguageModel load(Path dir, ModelOptions options) {
        Checkpoint checkpoint = Checkpoint.open(dir);
        Checkpoint draftCheckpoint = null;
        Backend backend = null;
        try {
            ModelConfig config = checkpoint.config();
            Tokenizer tokenizer = ModelTokenizer.load(dir, config);
            int maxContext = resolveMaxContext(config, options.maxContext());
            Path draftDir = options.draft();
            if (draftDir != null) {
                draftCheckpoint = Checkpoint.open(draftDir);
                Tokenizer draftTokenizer = ModelTokenizer.load(draftDir, draftCheckpoint.config());
                DraftCompatibility.check(dir.toString(), config, tokenizer, draftDir.toString(),
                        draftCheckpoint.config(), draftTokenizer);
            }
            backend = createBackend(options.backend(), options.threads());
            Qwen2Model model = Qwen2Model.load(config, checkpoint::find, dir.toString(), backend,
                    Qwen2Model.Limits.singleSequence(maxContext), options.weightFormat());
            Qwen2Model draft = draftCheckpoint == null ? null
                    : Qwen2Model.load(draftCheckpoint.config(), draftCheckpoint::find, draftDir.toString(), backend,
                    Qwen2Model.Limits.singleSequence(maxContext), options.weightFormat());
            return new LanguageModel(config, checkpoint.generationConfig(), tokenizer, backend, checkpoint,
                    dir.toString(), model, draft, draftCheckpoint);
        } catch (RuntimeException | Error e) {
            if (backend != null) {
                backend.close();
            }
            if (draftCheckpoint != null) {
                draftCheckpoint.close();
            }
            checkpoint.close();
            throw e;
        }
    }

    /**
     * Assembles a model from parts (tests build tensors in memory). Takes ownership of {@code backend} and
     * {@code weights} (closed by {@link #close()}; null when nothing needs closing).
     */
    static LanguageModel create(ModelConfig config, GenerationConfig generationConfig,
                                Function<String, Optional<Tensor>> tensors, String source, Backend backend,
                                Tokenizer tokenizer, int maxContext, String weightFormat, AutoCloseable weights) {
        Qwen2Model model = Qwen2Model.load(config, tensors, source, backend,
                Qwen2Model.Limits.singleSequence(maxContext), weightFormat);
        return new LanguageModel(config, generationConfig, tokenizer, backend, weights, source, model, null, null);
    }

    /**
     * Like {@link #create} with a draft model on the same backend (tests build both in memory); the caller
     * has checked the pair. {@code draftWeights} is closed by {@link #close()} (null: nothing to close).
     */
    static LanguageModel create(ModelConfig config, GenerationConfig generationConfig,
                                Function<String, Optional<Tensor>> tensors, String source, Backend backend,
                                Tokenizer tokenizer, int maxContext, String weightFormat, AutoCloseable weights,
                                ModelConfig draftConfig, Function<String, Optional<Tensor>> draftTensors,
                                AutoCloseable draftWeights) {
        Qwen2Model.Limits limits = Qwen2Model.Limits.singleSequence(maxContext);
        Qwen2Model model = Qwen2Model.load(config, tensors, source, backend, limits, weightFormat);
        Qwen2Model draft = Qwen2Model.load(draftConfig, draftTensors, source + " (draft)", backend, limits,
                weightFormat);
        return new LanguageModel(config, generationConfig, tokenizer, backend, weights, source, model, draft,
                draftWeights);
    }

    /** The requested context, or by default max_position_embeddings capped at 8192. */
    static int resolveMaxContext(ModelConfig config, int requested) {
        return requested > 0 ? requested : Math.min(config.maxPositionEmbeddings(), DEFAULT_MAX_CONTEXT);
    }

    /**
     * "reference", "cpu" (falls back to reference when absent) or "cuda"; threads &lt;= 0 means all cores.
     * Public for engines that build their own {@link Qwen2Model} (e.g. the batching engine); the caller closes it.
     */
    public static Backend createBackend(String name, int threads) {
        String backendName = name == null ? "cpu" : name.toLowerCase(Locale.ROOT);
        int t = threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
        return switch (backendName) {
            case "reference" -> new ReferenceBackend();
            case "cpu" -> {
                Backend b = instantiate(CPU_BACKEND_CLASS, t);
                if (b == null) {
                    LOG.log(System.Logger.Level.WARNING, "k2j: the CPU backend (" + CPU_BACKEND_CLASS
                            + ") is not in this build; falling back to the slow ReferenceBackend");
                    yield new ReferenceBackend();
                }
                yield b;
            }
            case "cuda" -> {
                Backend b = instantiate(CUDA_BACKEND_CLASS, t);
                if (b == null) {
                    throw new IllegalArgumentException("the cuda backend (" + CUDA_BACKEND_CLASS
                            + ") is not in this build");
                }
                yield b;
            }
            default -> throw new IllegalArgumentException("unknown backend '" + name
                    + "' (expected cpu, cuda or reference)");
        };
    }

    /** new className(threads), or new className(); null when the class is absent. */
    private static Backend instantiate(String className, int threads) {
        Class<?> type;
        try {
            type = Class.forName(className);
        } catch (ClassNotFoundException e) {
            return null;
        }
        try {
            try {
                return (Backend) type.getConstructor(int.class).newInstance(threads);
            } catch (NoSuchMethodException e) {
                return (Backend) type.getConstructor().newInstance();
            }
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException("cannot start " + className + ": " + cause, cause);
        } catch (ReflectiveOperationException | ClassCastException e) {
            throw new IllegalStateException("cannot start " + className + ": " + e, e);
        }
    }

    public ModelConfig config() {
        return config;
    }

    public GenerationConfig generationConfig() {
        return generationConfig;
    }

    /** The model directory's tokenizer; an {@link IllegalStateException} when the directory has none. */
    public Tokenizer tokenizer() {
        if (tokenizer == null) {
            throw new IllegalStateException(source + " has no tokenizer.json");
        }
        return tokenizer;
    }

    /** Max tokens (prompt + generated) one sequence may hold. */
    public int maxContext() {
        return model.limits().maxContext();
    }

    /** The backend's name ("cpu", "cuda" or "reference"). */
    public String backendName() {
        return backend.name();
    }

    /** Whether a draft model is loaded (see {@link ModelOptions#withDraft}). */
    public boolean hasDraft() {
        return draft != null;
    }

    /**
     * What a request without a speculation setting gets: the adaptive draft model starting at
     * {@link Speculation#DEFAULT_DRAFT_TOKENS} when a draft is loaded, else plain decoding.
     */
    public Speculation defaultSpeculation() {
        return draft != null ? Speculation.adaptiveDraftModel(Speculation.DEFAULT_DRAFT_TOKENS) : Speculation.none();
    }

    public int[] encode(String text) {
        return tokenizer().encode(text);
    }

    public int[] encodeChat(List<ChatMessage> messages) {
        // special tokens inside message text stay text: a message cannot open or close turns
        return tokenizer().encodeChat(messages, true, false);
    }

    /**
     * Generates; {@code listener} sees each token as it is produced. Throws {@link IllegalArgumentException}
     * when the prompt does not fit the context.
     */
    public GenerationResult generate(GenerationRequest request, TokenListener listener) {
        lock.lock();
        try {
            checkOpen();
            return generateLocked(request, listener == null ? TokenListener.NONE : listener);
        } finally {
            lock.unlock();
        }
    }

    private GenerationResult generateLocked(GenerationRequest request, TokenListener listener) {
        int[] prompt = request.promptIds();
        checkIds(prompt, "prompt");
        if (!request.stop().isEmpty() && tokenizer == null) {
            throw new IllegalArgumentException("stop strings need a tokenizer, but " + source
                    + " has no tokenizer.json");
        }
        Speculation speculation = request.speculation() == null ? defaultSpeculation() : request.speculation();
        if (speculation.mode() == Speculation.Mode.DRAFT_MODEL && draft == null) {
            throw new IllegalArgumentException("speculation '" + speculation.describe() + "' needs a draft model, but "
                    + source + " was loaded without one (ModelOptions.withDraft)");
        }
        boolean speculative = !speculation.isOff();
        if (speculative && speculator == null) {
            speculator = new SpeculativeDecoder(model, draft);
        }
        if (speculative && speculation.draftTokens() > speculator.maxDraftTokens()) {
            throw new IllegalArgumentException(speculation.draftTokens() + " draft tokens need "
                    + (speculation.draftTokens() + 1) + " logit rows per step; this model verifies at most "
                    + speculator.maxDraftTokens());
        }
        int budget = Math.min(request.maxTokens(), maxContext() - prompt.length);
        if (budget == 0) {
            return new GenerationResult(new int[0], "", FinishReason.LENGTH, prompt.length, 0, 0,
                    speculative ? new SpeculativeStats(speculation.describe(), 0, 0, 0, 0, 0, 0, 0, 0, 0) : null);
        }
        boolean stopAtEos = !request.ignoreEos();
        StreamingDecoder decoder = tokenizer == null ? null : tokenizer.streamingDecoder(true);
        StopStrings text = new StopStrings(request.stop());
        int[] generated = new int[budget];
        int n = 0;
        FinishReason reason;
        long start = System.nanoTime();
        long prefillNanos;
        try (Sequence seq = model.newSequence()) {
            int token;
            if (speculative) {
                speculator.reset(request.sampling(), speculation);
                token = speculator.prefill(seq, prompt, budget);
            } else {
                sampler.reset(request.sampling());
                token = loop.prefill(seq, prompt);
            }
            prefillNanos = System.nanoTime() - start;
            while (true) {
                generated[n++] = token;
                boolean eos = stopAtEos && isEos(token);
                if (!eos && decoder != null) {
                    text.append(decoder.push(token));
                }
                if (text.stopped() || eos || n == budget) {
                    if (decoder != null && !text.stopped()) {
                        text.append(decoder.flush());
                    }
                    reason = text.stopped() || eos ? FinishReason.STOP : FinishReason.LENGTH;
                    listener.onToken(token, text.takeAll());
                    break;
                }
                if (!listener.onToken(token, text.takeSafe())) {
                    if (decoder != null) {
                        text.append(decoder.flush());
                    }
                    reason = FinishReason.CANCELLED;
                    break;
                }
                token = speculative ? speculator.step(token) : loop.step(token);
            }
        } finally {
            if (speculative) {
                speculator.finish();
            }
        }
        long decodeNanos = System.nanoTime() - start - prefillNanos;
        return new GenerationResult(Arrays.copyOf(generated, n), text.text(), reason, prompt.length, prefillNanos,
                decodeNanos, speculative ? speculator.stats() : null);
    }

    private boolean isEos(int token) {
        for (int id : eosIds) {
            if (id == token) {
                return true;
            }
        }
        return false;
    }

    /** Float32 logits [ids.length][vocab] for every position of the prompt (one prefill pass). */
    public float[][] logits(int[] ids) {
        lock.lock();
        try {
            checkOpen();
            checkIds(ids, "ids");
            int vocab = config.vocabSize();
            float[][] out = new float[ids.length][vocab];
            int chunk = Math.min(PREFILL_CHUNK, model.limits().maxLogitRows());
            try (Sequence seq = model.newSequence()) {
                for (int offset = 0; offset < ids.length; offset += chunk) {
                    int count = Math.min(chunk, ids.length - offset);
                    Qwen2Model.clear(batch);
                    seq.addTo(batch, ids, offset, count, count);
                    float[] logits = model.forward(batch);
                    for (int i = 0; i < count; i++) {
                        System.arraycopy(logits, i * vocab, out[offset + i], 0, vocab);
                    }
                }
            }
            return out;
        } finally {
            lock.unlock();
        }
    }

    private void checkIds(int[] ids, String what) {
        if (ids.length == 0) {
            throw new IllegalArgumentException(what + " must hold at least one token");
        }
        if (ids.length > maxContext()) {
            throw new IllegalArgumentException(what + " has " + ids.length + " tokens but the context holds at most "
                    + maxContext() + " (maxContext)");
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= config.vocabSize()) {
                throw new IllegalArgumentException(what + " token " + i + " is id " + ids[i]
                        + ", outside the vocabulary [0, " + config.vocabSize() + ")");
            }
        }
    }

    /** The forward pass and KV cache behind this instance (for engine-internal loops such as speculation). */
    Qwen2Model model() {
        return model;
    }

    DecodeLoop decodeLoop() {
        return loop;
    }

    Sampler sampler() {
        return sampler;
    }

    /** The draft model, or null. */
    Qwen2Model draftModel() {
        return draft;
    }

    private void checkOpen() {
        if (lock.getHoldCount() > 1) {
            throw new IllegalStateException("a TokenListener must not call back into the LanguageModel generating"
                    + " for it");
        }
        if (closed) {
            throw new IllegalStateException("model " + source + " is closed");
        }
    }

    private void closeWeights(AutoCloseable c) {
        if (c != null) {
            try {
                c.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing " + source + ": " + e.getMessage(), e);
            }
        }
    }

    @Override
    public void close() {
        lock.lock();
        try {
            if (lock.getHoldCount() > 1) {
                throw new IllegalStateException("a TokenListener must not close the LanguageModel generating for it");
            }
            if (closed) {
                return;
            }
            closed = true;
            try {
                backend.close();
            } finally {
                try {
                    closeWeights(draftWeights);
                } finally {
                    closeWeights(weights);
                }
            }
        } finally {
            lock.unlock();
        }
    }
}
