package ai.k2j.engine;

import ai.k2j.kernels.Backend;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.tokenizer.ChatMessage;
import ai.k2j.tokenizer.Tokenizer;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;

/**
 * Continuous batching: many concurrent generations share one model, decoding together in one batched forward
 * pass per step (the weights stream once per step for the whole batch). Requests join and leave between steps;
 * a paged KV cache holds their keys and values in blocks, so memory does not fragment, and a full cache makes
 * requests wait (or preempts the youngest sequence, which later recomputes its cache) instead of failing them.
 * With a draft model, each request may speculate: the draft proposes tokens for all speculative sequences in
 * batched steps, and the target verifies them inside the same step as everyone else's tokens.
 *
 * <p>Layers, each readable alone: this class is the thread-safe front (submit, cancel, metrics) and runs the
 * step loop on its own thread; {@link Scheduler} decides what each step computes; {@link ModelRunner} builds
 * the batch, runs the forward pass(es) and samples; per-sequence text, stop strings and finishing happen here.
 *
 * <pre>{@code
 * try (BatchEngine engine = BatchEngine.load(Path.of("models/demo/target"), null, EngineOptions.defaults())) {
 *     int[] prompt = engine.tokenizer().encode("def fib(n):");
 *     var request = new EngineRequest(GenerationRequest.of(prompt, 64, SamplingParams.greedy()), 1, false);
 *     ChoiceResult r = engine.submit(request, GenerationObserver.NONE).await().get(0);
 * }
 * }</pre>
 *
 * <p>Output of one request only ever reaches that request's observer: each sequence owns its token array, KV
 * blocks, sampler slot and text state, and the batch maps every row back to its sequence. Greedy and seeded
 * results do not depend on what else is in the batch (given batch-invariant kernels, as the CPU and reference
 * backends are).
 */
public final class BatchEngine implements AutoCloseable {

    private static final System.Logger LOG = System.getLogger(BatchEngine.class.getName());
    private static final Object SHUTDOWN = new Object();

    private record Cancel(RequestState request) {
    }

    private final LoadedModel target;
    private final LoadedModel draft;
    private final ModelContext targetContext;
    private final ModelContext draftContext;
    /** closed with the engine when it owns the models (made by {@link #load}), else null */
    private final Backend ownedBackend;
    /** held around every step when the backend is shared with another driver (see {@link #over}), else null */
    private final Lock stepLock;
    private final int draftTokens;
    private final Scheduler scheduler;
    private final ModelRunner runner;
    private final EngineMetrics metrics = new EngineMetrics();
    private final LinkedBlockingQueue<Object> inbox = new LinkedBlockingQueue<>();
    private final AtomicLong ids = new AtomicLong();
    private final Object submitLock = new Object();
    private final Thread thread;
    private boolean closed; // guarded by submitLock
    private volatile boolean stopping;

    private BatchEngine(LoadedModel target, LoadedModel draft, EngineOptions options, Backend ownedBackend,
                        Lock stepLock) {
        ModelContext.Limits limits = limits(target.config(), options, draft != null);
        this.target = target;
        this.draft = draft;
        this.ownedBackend = ownedBackend;
        this.stepLock = stepLock;
        this.targetContext = target.newContext(limits, options.kvCache());
        // one logit row per sequence; a cache as large as the target's (drafts never outgrow it much)
        this.draftContext = draft == null ? null : draft.newContext(new ModelContext.Limits(limits.maxContext(),
                limits.maxBatchTokens(), limits.maxSeqs(), limits.maxSeqs(), limits.kvBlocks()), options.kvCache());
        this.draftTokens = draft == null ? 0 : options.draftTokens();
        this.scheduler = new Scheduler(targetContext, this.draftTokens);
        this.runner = new ModelRunner(targetContext, draftContext, this.draftTokens);
        metrics.kvBlocksTotal = targetContext.limits().kvBlocks();
        metrics.kvBlocksFree = targetContext.freeKvBlocks();
        this.thread = Thread.ofPlatform().name("k2j-engine").daemon().unstarted(this::loop);
        thread.start();
    }

    /**
     * Loads the model (and the draft, when {@code draftDir} is not null: it must share the vocabulary, see
     * {@link DraftCompatibility}) onto one backend of its own, sized by {@code options}, and starts the step loop.
     */
    public static BatchEngine load(Path modelDir, Path draftDir, EngineOptions options) {
        Backend backend = LanguageModel.createBackend(options.backend(), options.threads());
        LoadedModel target = null;
        LoadedModel draft = null;
        try {
            target = LoadedModel.load(modelDir, backend, options.weightFormat());
            if (draftDir != null) {
                draft = LoadedModel.load(draftDir, backend, options.weightFormat());
                DraftCompatibility.check(modelDir.toString(), target.config(), target.tokenizer(), draftDir.toString(),
                        draft.config(), draft.tokenizer());
            }
            return new BatchEngine(target, draft, options, backend, null);
        } catch (RuntimeException | Error e) {
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
            throw e;
        }
    }

    /**
     * An engine over models loaded elsewhere (they and their backend stay the caller's): its own contexts, and
     * {@code stepLock} held around every step, so another driver of the same backend (the embedding API's
     * single-sequence path) never runs at the same time.
     */
    static BatchEngine over(LoadedModel target, LoadedModel draft, EngineOptions options, Lock stepLock) {
        return new BatchEngine(target, draft, options, null, stepLock);
    }

    /** The model's limits for these options (see {@link EngineOptions} for the defaults). */
    static ModelContext.Limits limits(ModelConfig config, EngineOptions options, boolean speculative) {
        int ctx = LanguageModel.resolveMaxContext(config, options.maxContext());
        int k = speculative ? options.draftTokens() : 0;
        int seqs = options.maxBatch();
        int stepTokens = options.stepTokens() > 0 ? options.stepTokens() : Math.max(256, seqs * (k + 1));
        if (stepTokens < seqs * (k + 1)) {
            throw new IllegalArgumentException("stepTokens " + stepTokens + " must hold a token and its drafts for"
                    + " every sequence: at least " + seqs * (k + 1));
        }
        int logitRows = seqs * (k + 1);
        int blocksPerContext = (ctx + ModelContext.KV_BLOCK_SIZE - 1) / ModelContext.KV_BLOCK_SIZE;
        int minBlocks = blocksPerContext + 1;
        int blocks;
        if (options.kvBlocks() > 0) {
            if (options.kvBlocks() < minBlocks) {
                throw new IllegalArgumentException("kvBlocks " + options.kvBlocks() + " cannot hold one full context of "
                        + ctx + " tokens: at least " + minBlocks + " blocks of " + ModelContext.KV_BLOCK_SIZE
                        + " tokens are needed");
            }
            blocks = options.kvBlocks();
        } else {
            // MLA (DeepSeek-V3) caches one latent row [c_kv | k_rope] per token, kept in float32
            long bytesPerBlock = (config.deepseek() != null
                    ? 4L * config.numLayers() * config.deepseek().latentWidth()
                    : options.kvCache().bytesPerToken(config.numLayers(), config.kvDim(), config.headDim()))
                    * ModelContext.KV_BLOCK_SIZE;
            long capped = EngineOptions.DEFAULT_KV_BYTES / bytesPerBlock;
            blocks = (int) Math.max(minBlocks, Math.min((long) seqs * blocksPerContext + seqs, capped));
        }
        return new ModelContext.Limits(ctx, stepTokens, seqs, logitRows, blocks);
    }

    // ================================================================ the public API

    /**
     * Queues a request; {@code observer} receives its tokens on the engine thread. Validation failures (prompt
     * ids outside the vocabulary, a prompt longer than the context, n above the batch size, speculation without
     * a draft, stop strings without a tokenizer) throw {@link IllegalArgumentException} here. A request with no
     * room to generate (max_tokens 0, or a prompt filling the context) finishes at once with "length".
     *
     * @throws IllegalStateException after {@link #close()}
     */
    public RequestHandle submit(EngineRequest request, GenerationObserver observer) {
        GenerationRequest g = request.generation();
        int[] prompt = g.promptIds();
        int vocab = targetContext.vocabSize();
        for (int i = 0; i < prompt.length; i++) {
            if (prompt[i] < 0 || prompt[i] >= vocab) {
                throw new IllegalArgumentException("prompt token " + i + " is id " + prompt[i]
                        + ", outside the vocabulary [0, " + vocab + ")");
            }
        }
        if (prompt.length > maxContext()) {
            throw new IllegalArgumentException("prompt has " + prompt.length + " tokens but the context holds at most "
                    + maxContext());
        }
        if (request.n() > maxBatch()) {
            throw new IllegalArgumentException("n = " + request.n() + " exceeds the batch size " + maxBatch());
        }
        int requestDrafts = request.draftTokens(draftTokens);
        if (!g.stop().isEmpty() && target.tokenizer() == null) {
            throw new IllegalArgumentException("stop strings need a tokenizer, but the model has no tokenizer.json");
        }
        int budget = Math.min(g.maxTokens(), maxContext() - prompt.length);
        RequestState[] holder = new RequestState[1];
        RequestHandle handle = new RequestHandle(() -> inbox.add(new Cancel(holder[0])));
        RequestState state = new RequestState(ids.incrementAndGet(), request,
                observer == null ? GenerationObserver.NONE : observer, handle, budget, requestDrafts);
        holder[0] = state;
        synchronized (submitLock) {
            if (closed) {
                throw new IllegalStateException("the engine is closed");
            }
            metrics.requestsSubmitted.increment();
            inbox.add(state);
        }
        return handle;
    }

    /** Submits and waits: the choices in index order. */
    public List<ChoiceResult> generate(EngineRequest request) {
        return submit(request, GenerationObserver.NONE).await();
    }

    /** The model's tokenizer; {@link IllegalStateException} when its directory has no tokenizer.json. */
    public Tokenizer tokenizer() {
        if (target.tokenizer() == null) {
            throw new IllegalStateException("model " + target.name() + " has no tokenizer.json");
        }
        return target.tokenizer();
    }

    public boolean hasTokenizer() {
        return target.tokenizer() != null;
    }

    /**
     * The chat template applied to the messages (with the assistant prompt), encoded; special tokens inside the
     * messages' text are encoded as plain text (see {@link Tokenizer#encodeChat}).
     */
    public int[] encodeChat(List<ChatMessage> messages) {
        return encodeChat(messages, false);
    }

    /** As {@link #encodeChat(List)}; {@code specialTokensInContent} true encodes them as HF does, as control tokens. */
    public int[] encodeChat(List<ChatMessage> messages, boolean specialTokensInContent) {
        return tokenizer().encodeChat(messages, true, specialTokensInContent);
    }

    /** The model directory's name (what a server reports as the model id by default). */
    public String modelName() {
        return target.name();
    }

    public boolean hasDraft() {
        return draft != null;
    }

    /** Tokens the draft proposes per step (0 without a draft). */
    public int draftTokens() {
        return draftTokens;
    }

    /** Most tokens (prompt + generated) one sequence may hold. */
    public int maxContext() {
        return targetContext.limits().maxContext();
    }

    /** Most sequences decoding together. */
    public int maxBatch() {
        return targetContext.limits().maxSeqs();
    }

    /** The target model's end-of-sequence ids (generation_config.json and config.json). */
    public int[] eosIds() {
        return target.eosIds();
    }

    public int vocabSize() {
        return targetContext.vocabSize();
    }

    public String backendName() {
        return targetContext.backend().name();
    }

    public EngineMetrics metrics() {
        return metrics;
    }

    /** Whether the calling thread is this engine's step thread (where observers run). */
    boolean isEngineThread() {
        return Thread.currentThread() == thread;
    }

    /** False once {@link #close()} was called or the step loop died. */
    public boolean isRunning() {
        return !stopping && thread.isAlive();
    }

    /** Stops the step loop (unfinished requests fail with an {@link IllegalStateException}) and frees the models. */
    @Override
    public void close() {
        if (Thread.currentThread() == thread) {
            throw new IllegalStateException("an observer must not close the engine it is called from");
        }
        synchronized (submitLock) {
            if (closed) {
                return;
            }
            closed = true;
            stopping = true;
            inbox.add(SHUTDOWN);
        }
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        try {
            if (ownedBackend != null) {
                try {
                    if (draft != null) {
                        draft.close();
                    }
                    target.close();
                } finally {
                    ownedBackend.close();
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    // ================================================================ the step loop (engine thread)

    private void loop() {
        try {
            while (!stopping) {
                Object message = scheduler.isIdle() ? inbox.poll(1, TimeUnit.SECONDS) : inbox.poll();
                if (message != null) {
                    while (message != null) {
                        handle(message);
                        message = inbox.poll();
                    }
                    refreshGauges();
                }
                if (stopping || scheduler.isIdle()) {
                    continue;
                }
                boolean progressed = step();
                refreshGauges();
                if (!progressed) {
                    // every sequence waits on KV blocks (only a cancellation can change that): do not spin
                    Object m = inbox.poll(10, TimeUnit.MILLISECONDS);
                    if (m != null) {
                        handle(m);
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException | Error e) {
            LOG.log(System.Logger.Level.ERROR, "k2j engine loop failed", e);
        } finally {
            shutdown();
        }
    }

    private void handle(Object message) {
        if (message instanceof RequestState r) {
            if (r.budget == 0) {
                finishUnadmitted(r, FinishReason.LENGTH);
            } else {
                scheduler.waiting.addLast(r);
            }
        } else if (message instanceof Cancel(RequestState r)) {
            if (!r.isAdmitted()) {
                if (scheduler.waiting.remove(r)) {
                    finishUnadmitted(r, FinishReason.CANCELLED);
                }
            } else {
                cancelChoices(r);
            }
        }
        // SHUTDOWN: the loop sees `stopping`
    }

    /** One scheduled forward step and its bookkeeping; false when nothing could be scheduled. */
    private boolean step() {
        List<SeqState> plan = scheduler.schedule(this::admit, s -> metrics.preemptions.increment());
        if (plan.isEmpty()) {
            return false;
        }
        if (stepLock != null) {
            stepLock.lock();
        }
        try {
            runner.run(plan);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "k2j engine step failed; failing its requests", e);
            for (int i = 0; i < plan.size(); i++) {
                fail(plan.get(i).request, e);
            }
            return true;
        } finally {
            if (stepLock != null) {
                stepLock.unlock();
            }
        }
        long now = System.nanoTime();
        int tokens = 0;
        for (int i = 0; i < plan.size(); i++) {
            tokens += plan.get(i).feed + plan.get(i).drafts;
        }
        metrics.steps.increment();
        metrics.stepTokens.add(tokens);
        metrics.draftProposed.add(runner.stepProposed);
        metrics.draftAccepted.add(runner.stepAccepted);
        for (int i = 0; i < plan.size(); i++) {
            SeqState s = plan.get(i);
            for (int e = 0; e < s.emittedCount && !s.isFinished(); e++) {
                accept(s, s.emitted[e], e, now);
            }
            if (s.logitRows > 0 && !s.forks.isEmpty()) {
                for (int f = 0; f < s.forks.size(); f++) {
                    SeqState fork = s.forks.get(f);
                    fork.awaitingFork = false;
                    if (!fork.isFinished()) {
                        scheduler.addForked(fork);
                        accept(fork, fork.emitted[0], 0, now);
                    }
                }
                s.forks.clear();
            }
        }
        return true;
    }

    /** Creates a request's choices as the scheduler admits it. */
    private SeqState[] admit(RequestState r) {
        int n = r.n();
        SeqState[] choices = new SeqState[n];
        Tokenizer tokenizer = target.tokenizer();
        for (int c = 0; c < n; c++) {
            choices[c] = new SeqState(r, c, draftTokens, new TokenEmitter(tokenizer, r.request.generation().stop(),
                    r.request.generation().ignoreEos() ? new int[0] : target.eosIdsShared(), r.budget));
            choices[c].slot = runner.acquireSlot(r.request.samplingOf(c));
        }
        r.choices = choices;
        r.results = new ChoiceResult[n];
        r.unfinished = n;
        metrics.promptTokens.add(r.prompt.length);
        return choices;
    }

    /** Appends a generated token: text, stop strings, end of sequence, budget; tells the observer. */
    private void accept(SeqState s, int token, int emittedIndex, long now) {
        RequestState r = s.request;
        s.tokens[s.length++] = token;
        if (s.constraint != null) {
            try {
                s.constraint.accept(token);
            } catch (RuntimeException e) { // the request's own constraint failed: end that request, not the engine
                LOG.log(System.Logger.Level.ERROR, "constraint of request " + r.id + " failed", e);
                fail(r, e);
                return;
            }
        }
        if (s.logprobs != null) {
            TokenLogprob lp = s.emittedLogprobs[emittedIndex];
            s.logprobs.add(lp);
            try {
                r.observer.onLogprob(s.choice, lp);
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "observer of request " + r.id + " threw; cancelling it", e);
                cancelChoices(r);
            }
        }
        int n = s.generated();
        if (n == 1) {
            s.firstTokenNanos = now - r.submitNanos;
            metrics.timeToFirstToken.observeNanos(s.firstTokenNanos);
        } else {
            metrics.interTokenLatency.observeNanos(now - s.lastTokenNanos);
        }
        s.lastTokenNanos = now;
        metrics.recordGenerated(1, now);
        notifyToken(s, token, s.out.accept(token));
        if (s.out.finished() && !s.isFinished()) {
            finish(s, s.out.finishReason());
        }
    }

    private void notifyToken(SeqState s, int token, String text) {
        try {
            s.request.observer.onToken(s.choice, token, text);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "observer of request " + s.request.id + " threw; cancelling it", e);
            cancelChoices(s.request);
        }
    }

    private void cancelChoices(RequestState r) {
        if (r.choices == null || r.failed) {
            return;
        }
        for (SeqState s : r.choices) {
            if (!s.isFinished()) {
                s.out.cancel();
                finish(s, FinishReason.CANCELLED);
            }
        }
    }

    /** Ends a choice: frees its KV blocks and slot, reports it; the request completes with its last choice. */
    private void finish(SeqState s, FinishReason reason) {
        RequestState r = s.request;
        s.finish = reason;
        s.releaseKv();
        scheduler.remove(s);
        if (s.slot >= 0) {
            runner.releaseSlot(s.slot);
            s.slot = -1;
        }
        if (reason == FinishReason.CANCELLED) {
            metrics.choicesCancelled.increment();
        }
        long now = System.nanoTime();
        ChoiceResult result = new ChoiceResult(s.choice, Arrays.copyOfRange(s.tokens, s.promptLength, s.length),
                s.out.text(), reason, s.promptLength, s.firstTokenNanos, now - r.submitNanos, s.draftProposed,
                s.draftAccepted, s.logprobs);
        r.results[s.choice] = result;
        r.unfinished--;
        boolean last = r.unfinished == 0;
        if (last) { // counted before the observer hears of it: a client that saw the end finds it in the metrics
            metrics.requestsFinished.increment();
            metrics.requestLatency.observeNanos(now - r.submitNanos);
        }
        try {
            r.observer.onFinish(s.choice, result);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "observer of request " + r.id + " threw in onFinish", e);
        }
        if (last) {
            r.handle.complete(List.of(r.results));
        }
    }

    /** A request with nothing to generate, or cancelled while waiting: every choice ends empty. */
    private void finishUnadmitted(RequestState r, FinishReason reason) {
        ChoiceResult[] results = new ChoiceResult[r.n()];
        long total = System.nanoTime() - r.submitNanos;
        if (reason == FinishReason.CANCELLED) {
            metrics.choicesCancelled.add(results.length);
        }
        metrics.requestsFinished.increment();
        for (int c = 0; c < results.length; c++) {
            results[c] = new ChoiceResult(c, new int[0], "", reason, r.prompt.length, 0, total, 0, 0);
            try {
                r.observer.onFinish(c, results[c]);
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "observer of request " + r.id + " threw in onFinish", e);
            }
        }
        r.handle.complete(List.of(results));
    }

    /** Fails a request: its sequences are freed, its observer and handle get the error. */
    private void fail(RequestState r, RuntimeException error) {
        if (r.failed) {
            return;
        }
        r.failed = true;
        scheduler.waiting.remove(r);
        if (r.choices != null) {
            for (SeqState s : r.choices) {
                if (!s.isFinished()) {
                    s.finish = FinishReason.CANCELLED;
                    s.releaseKv();
                    scheduler.remove(s);
                    if (s.slot >= 0) {
                        runner.releaseSlot(s.slot);
                        s.slot = -1;
                    }
                }
                s.forks.clear();
            }
        }
        metrics.requestsFailed.increment();
        try {
            r.observer.onError(error);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "observer of request " + r.id + " threw in onError", e);
        }
        r.handle.fail(error);
    }

    private void refreshGauges() {
        metrics.waitingRequests = scheduler.waiting.size();
        metrics.runningSequences = scheduler.slotsInUse;
        metrics.kvBlocksFree = targetContext.freeKvBlocks();
    }

    /** Fails whatever is left: running, preempted, waiting and still-queued requests. */
    private void shutdown() {
        IllegalStateException closedError = new IllegalStateException("the engine was closed");
        Object m;
        while ((m = inbox.poll()) != null) {
            if (m instanceof RequestState r) {
                scheduler.waiting.addLast(r);
            }
        }
        for (SeqState s : List.copyOf(scheduler.running)) {
            fail(s.request, closedError);
        }
        for (SeqState s : List.copyOf(scheduler.preempted)) {
            fail(s.request, closedError);
        }
        for (RequestState r : List.copyOf(scheduler.waiting)) {
            fail(r, closedError);
        }
        refreshGauges();
    }
}
