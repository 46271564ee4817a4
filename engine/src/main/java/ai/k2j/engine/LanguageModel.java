package ai.k2j.engine;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;
import ai.k2j.tokenizer.ChatMessage;
import ai.k2j.tokenizer.Tokenizer;
import ai.k2j.loaders.WeightFormat;

import java.lang.reflect.InvocationTargetException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Function;
import java.util.stream.IntStream;

/**
 * The embeddable entry point: a loaded model (weights mapped, backend ready, tokenizer) that generates text.
 * Thread-safety: safe for many threads. A generation that runs alone runs on its caller's thread (allocation-free
 * per token); callers that arrive while one runs join a {@link BatchEngine} over the same weights and backend
 * (made on first need), so they decode together in one batched step instead of queueing; their listeners run on
 * the engine's thread. {@link #close()} stops that engine and unmaps the weights.
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

    /** Default context cap: keeps the KV cache reasonable for 32k/128k-position models. */
    static final int DEFAULT_MAX_CONTEXT = 8192;
    static final String CPU_BACKEND_CLASS = "ai.k2j.kernels.cpu.CpuBackend";
    static final String CUDA_BACKEND_CLASS = "ai.k2j.kernels.cuda.CudaBackend";

    private final ReentrantLock lock = new ReentrantLock();
    private final LoadedModel target;
    /** the draft model sharing the backend, or null */
    private final LoadedModel draftModel;
    private final ModelConfig config;
    private final GenerationConfig generationConfig;
    private final Tokenizer tokenizer;
    private final Backend backend;
    private final String source;
    /** how every context of this model stores its KV cache */
    private final KvPrecision kvPrecision;
    /** the single-sequence context (the caller-thread path) */
    private final ModelContext model;
    private final Sampler sampler;
    private final DecodeLoop loop;
    private final Batch batch;
    private final int[] eosIds;
    /** the draft's single-sequence context, or null */
    private final ModelContext draft;
    /** created on the first speculative request (its buffers are vocabulary-sized) */
    private SpeculativeDecoder speculator;
    /** the batching engine over the same weights, created when a second caller arrives; guarded by engineLock */
    private BatchEngine engine;
    private final Object engineLock = new Object();
    private final AtomicInteger batchedInFlight = new AtomicInteger();
    private volatile boolean closed;

    /** Takes ownership of the backend and both loaded models (closed by {@link #close()}). */
    private LanguageModel(Backend backend, LoadedModel target, LoadedModel draftModel, int maxContext) {
        this(backend, target, draftModel, maxContext, KvPrecision.F32);
    }

    private LanguageModel(Backend backend, LoadedModel target, LoadedModel draftModel, int maxContext,
                          KvPrecision kvPrecision) {
        this.backend = backend;
        this.target = target;
        this.draftModel = draftModel;
        this.config = target.config();
        this.generationConfig = target.generationConfig();
        this.tokenizer = target.tokenizer();
        this.source = target.source();
        this.eosIds = target.eosIds();
        ModelContext.Limits limits = ModelContext.Limits.singleSequence(maxContext);
        this.kvPrecision = kvPrecision;
        this.model = target.newContext(limits, kvPrecision);
        this.draft = draftModel == null ? null : draftModel.newContext(limits, kvPrecision);
        this.sampler = new Sampler(config.vocabSize());
        this.loop = new DecodeLoop(model, sampler);
        this.batch = model.newBatch();
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
        Backend backend = createBackend(options.backend(), options.threads());
        LoadedModel target = null;
        LoadedModel draft = null;
        try {
            target = LoadedModel.load(dir, backend, options.weightFormat());
            Path draftDir = options.draft();
            if (draftDir != null) {
                draft = LoadedModel.load(draftDir, backend, options.weightFormat());
                DraftCompatibility.check(dir.toString(), target.config(), target.tokenizer(), draftDir.toString(),
                        draft.config(), draft.tokenizer());
            }
            return new LanguageModel(backend, target, draft, resolveMaxContext(target.config(), options.maxContext()),
                    options.kvCache());
        } catch (RuntimeException | Error e) {
            closeAll(backend, target, draft);
            throw e;
        }
    }

    /**
     * Assembles a model from parts (tests build tensors in memory). Takes ownership of {@code backend} and
     * {@code weights} (closed by {@link #close()}; null when nothing needs closing).
     */
    static LanguageModel create(ModelConfig config, GenerationConfig generationConfig,
                                Function<String, Optional<Tensor>> tensors, String source, Backend backend,
                                Tokenizer tokenizer, int maxContext, WeightFormat weightFormat, AutoCloseable weights) {
        LoadedModel target = LoadedModel.of(config, generationConfig, tensors, source, backend, tokenizer,
                weightFormat, weights);
        return new LanguageModel(backend, target, null, maxContext);
    }

    /**
     * Like {@link #create} with a draft model on the same backend (tests build both in memory); the caller
     * has checked the pair. {@code draftWeights} is closed by {@link #close()} (null: nothing to close).
     */
    static LanguageModel create(ModelConfig config, GenerationConfig generationConfig,
                                Function<String, Optional<Tensor>> tensors, String source, Backend backend,
                                Tokenizer tokenizer, int maxContext, WeightFormat weightFormat, AutoCloseable weights,
                                ModelConfig draftConfig, Function<String, Optional<Tensor>> draftTensors,
                                AutoCloseable draftWeights) {
        LoadedModel target = LoadedModel.of(config, generationConfig, tensors, source, backend, tokenizer,
                weightFormat, weights);
        LoadedModel draft = LoadedModel.of(draftConfig, GenerationConfig.DEFAULT, draftTensors, source + " (draft)",
                backend, tokenizer, weightFormat, draftWeights);
        return new LanguageModel(backend, target, draft, maxContext);
    }

    private static void closeAll(Backend backend, LoadedModel target, LoadedModel draft) {
        try {
            if (draft != null) {
                draft.close();
            }
            if (target != null) {
                target.close();
            }
        } finally {
            backend.close();
        }
    }

    /**
     * The requested context, or by default the model's {@link #contextLimit} capped at 8192 (a default, not a
     * limit: ask for more with {@link ModelOptions#withMaxContext}, {@code --ctx}). A request beyond the model's
     * positions is honoured (RoPE is defined at any position) with a warning naming the limit: the model was not
     * trained there.
     */
    static int resolveMaxContext(ModelConfig config, int requested) {
        int limit = contextLimit(config);
        if (requested > limit) {
            LOG.log(System.Logger.Level.WARNING, contextWarning(config, requested));
        }
        return requested > 0 ? requested : Math.min(limit, DEFAULT_MAX_CONTEXT);
    }

    /** The warning for a context beyond the model's positions. */
    static String contextWarning(ModelConfig config, int requested) {
        return "k2j: a context of " + requested + " tokens exceeds the model's " + contextLimit(config)
                + " positions (" + contextLimitSource(config) + "); positions beyond it were not trained";
    }

    /**
     * The most positions the model's RoPE is meant for: max_position_embeddings, or with YaRN (rope_scaling type
     * yarn) factor × original_max_position_embeddings when that is larger (Qwen2.5-32B: 4 × 32,768 = 131,072; HF
     * reads original_max_position_embeddings from rope_scaling, else max_position_embeddings).
     */
    public static int contextLimit(ModelConfig config) {
        int limit = config.maxPositionEmbeddings();
        RopeScaling s = config.ropeScaling();
        if (s.isYarn()) {
            int original = s.originalMaxPositionEmbeddings() > 0 ? s.originalMaxPositionEmbeddings() : limit;
            limit = (int) Math.min(Integer.MAX_VALUE - 64, Math.max(limit, Math.floor(s.factor() * original)));
        }
        return limit;
    }

    private static String contextLimitSource(ModelConfig config) {
        RopeScaling s = config.ropeScaling();
        if (s.isYarn() && contextLimit(config) > config.maxPositionEmbeddings()) {
            return "rope_scaling yarn: factor " + s.factor() + " x original_max_position_embeddings "
                    + (s.originalMaxPositionEmbeddings() > 0 ? s.originalMaxPositionEmbeddings()
                    : config.maxPositionEmbeddings());
        }
        return "max_position_embeddings" + (s.isDefault() ? "; a rope_scaling of type yarn extends it" : "");
    }

    /**
     * "reference", "cpu" (falls back to reference when absent) or "cuda"; threads &lt;= 0 means all cores.
     * Public for engines that build their own {@link ModelContext} (e.g. the batching engine); the caller closes it.
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

    /** How this model's KV caches store keys and values ({@link ModelOptions#kvCache()}). */
    public KvPrecision kvPrecision() {
        return kvPrecision;
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
     * As {@link #encodeChat(List)}; {@code enableThinking} false asks a thinking model (Qwen3) to answer without
     * reasoning (its template's {@code enable_thinking=False}). See {@link Tokenizer#chatTemplateThinks()}.
     */
    public int[] encodeChat(List<ChatMessage> messages, boolean enableThinking) {
        return tokenizer().encodeChat(messages, true, false, enableThinking);
    }

    /**
     * Generates; {@code listener} sees each token as it is produced. Throws {@link IllegalArgumentException}
     * when the prompt does not fit the context.
     */
    public GenerationResult generate(GenerationRequest request, TokenListener listener) {
        TokenListener l = listener == null ? TokenListener.NONE : listener;
        // the caller's own thread, unless batched requests are in flight (then joining them keeps them moving)
        if (batchedInFlight.get() == 0 && lock.tryLock()) {
            try {
                checkOpen();
                return generateLocked(request, l);
            } finally {
                lock.unlock();
            }
        }
        return generateBatched(request, l);
    }

    /**
     * A generation while another is running on this instance: it joins the batching engine that shares these
     * weights and this backend ({@link BatchEngine#over}), so concurrent callers decode together in one batched
     * forward pass per step instead of queueing on a lock. The listener runs on the engine's thread. Prompt
     * lookup is not offered there (the request decodes plainly: same output), and the result carries no
     * speculation breakdown.
     */
    private GenerationResult generateBatched(GenerationRequest request, TokenListener listener) {
        batchedInFlight.incrementAndGet(); // from here on, later callers join the engine too
        try {
            BatchEngine e = engine();
            if (e.isEngineThread()) {
                throw new IllegalStateException("a TokenListener must not call back into the LanguageModel generating"
                        + " for it");
            }
            checkIds(request.promptIds(), "prompt");
            if (!request.stop().isEmpty() && tokenizer == null) {
                throw new IllegalArgumentException("stop strings need a tokenizer, but " + source
                        + " has no tokenizer.json");
            }
            Speculation speculation = request.speculation() == null ? defaultSpeculation() : request.speculation();
            if (speculation.mode() == Speculation.Mode.DRAFT_MODEL && draft == null) {
                throw new IllegalArgumentException("speculation '" + speculation.describe() + "' needs a draft model,"
                        + " but " + source + " was loaded without one (ModelOptions.withDraft)");
            }
            boolean speculative = speculation.mode() == Speculation.Mode.DRAFT_MODEL;
            EngineRequest engineRequest = new EngineRequest(
                    request.withSpeculation(speculative ? speculation : Speculation.none()), 1, speculative);
            Relay relay = new Relay(listener);
            RequestHandle handle = e.submit(engineRequest, relay);
            relay.attach(handle);
            ChoiceResult r = handle.await().get(0);
            long prefill = Math.min(r.timeToFirstTokenNanos(), r.totalNanos());
            return new GenerationResult(r.ids(), r.text(), r.finishReason(), r.promptTokens(), prefill,
                    r.totalNanos() - prefill, null);
        } finally {
            batchedInFlight.decrementAndGet();
        }
    }

    /** Passes the engine's tokens to a {@link TokenListener}; a listener returning false cancels the request. */
    private static final class Relay implements GenerationObserver {
        private final TokenListener listener;
        private volatile RequestHandle handle;
        private volatile boolean stopped;

        Relay(TokenListener listener) {
            this.listener = listener;
        }

        void attach(RequestHandle h) {
            handle = h;
            if (stopped) {
                h.cancel();
            }
        }

        @Override
        public void onToken(int choice, int tokenId, String text) {
            if (!stopped && !listener.onToken(tokenId, text)) {
                stopped = true;
                RequestHandle h = handle;
                if (h != null) {
                    h.cancel();
                }
            }
        }

        @Override
        public void onFinish(int choice, ChoiceResult result) {
        }
    }

    /** The batching engine, made on first use while no single-sequence generation runs on the backend. */
    private BatchEngine engine() {
        synchronized (engineLock) {
            if (closed) {
                throw new IllegalStateException("model " + source + " is closed");
            }
            if (engine == null) {
                lock.lock(); // its contexts are allocated on the backend: not while a step runs
                try {
                    engine = BatchEngine.over(target, draftModel, EngineOptions.defaults()
                            .withMaxContext(maxContext()).withKvCache(kvPrecision), lock);
                } finally {
                    lock.unlock();
                }
            }
            return engine;
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
                    speculative ? SpeculativeStats.empty(speculation.describe()) : null);
        }
        TokenEmitter out = new TokenEmitter(tokenizer, request.stop(), request.ignoreEos() ? new int[0] : eosIds,
                budget);
        int[] generated = new int[budget];
        int n = 0;
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
                String piece = out.accept(token);
                if (out.finished()) {
                    listener.onToken(token, piece);
                    break;
                }
                if (!listener.onToken(token, piece)) {
                    out.cancel();
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
        return new GenerationResult(Arrays.copyOf(generated, n), out.text(), out.finishReason(), prompt.length, prefillNanos,
                decodeNanos, speculative ? speculator.stats() : null);
    }

    /** Float32 logits [ids.length][vocab] for every position of the prompt (one prefill pass). */
    public float[][] logits(int[] ids) {
        lock.lock();
        try {
            checkOpen();
            checkIds(ids, "ids");
            int vocab = config.vocabSize();
            float[][] out = new float[ids.length][vocab];
            int chunk = Math.min(ModelContext.PREFILL_CHUNK, model.limits().maxLogitRows());
            try (Sequence seq = model.newSequence()) {
                for (int offset = 0; offset < ids.length; offset += chunk) {
                    int count = Math.min(chunk, ids.length - offset);
                    batch.clear();
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
    ModelContext model() {
        return model;
    }

    DecodeLoop decodeLoop() {
        return loop;
    }

    Sampler sampler() {
        return sampler;
    }

    /** The draft model, or null. */
    ModelContext draftModel() {
        return draft;
    }

    /** Callers on the batched path now, waiting for the engine or generating in it (tests). */
    int batchedCallers() {
        return batchedInFlight.get();
    }

    /** Requests the batching engine finished, or 0 when it was never needed (tests). */
    long batchedRequestsFinished() {
        synchronized (engineLock) {
            return engine == null ? 0 : engine.metrics().requestsFinished.sum();
        }
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

    /**
     * Stops the batching engine (its unfinished requests fail), waits for a running generation, frees the backend
     * and unmaps the weights.
     */
    @Override
    public void close() {
        BatchEngine e;
        synchronized (engineLock) {
            e = engine;
            engine = null;
        }
        if (e != null) {
            e.close();
        }
        lock.lock();
        try {
            if (lock.getHoldCount() > 1) {
                throw new IllegalStateException("a TokenListener must not close the LanguageModel generating for it");
            }
            synchronized (engineLock) {
                if (closed) {
                    return;
                }
                closed = true;
            }
            closeAll(backend, target, draftModel);
        } finally {
            lock.unlock();
        }
    }
}
