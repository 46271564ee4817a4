package ai.k2j.engine;

/** One submitted request inside the engine: its choices, observer and handle. Owned by the step thread. */
final class RequestState {
    final long id;
    final EngineRequest request;
    final GenerationObserver observer;
    final RequestHandle handle;
    final int[] prompt;
    /** Most tokens each choice may generate: min(max_tokens, maxContext − prompt). */
    final int budget;
    final boolean greedy;
    /** the runner needs this request's logit rows on the host: a constraint masks them, log-probabilities read them */
    final boolean needsLogits;
    /** tokens drafted per step (0: plain decoding) */
    final int draftTokens;
    final long submitNanos;
    /** Choices, created at admission (null before). */
    SeqState[] choices;
    ChoiceResult[] results;
    int unfinished;
    boolean failed;

    RequestState(long id, EngineRequest request, GenerationObserver observer, RequestHandle handle, int budget,
                 int draftTokens) {
        this.id = id;
        this.request = request;
        this.observer = observer;
        this.handle = handle;
        this.prompt = request.generation().promptIds();
        this.budget = budget;
        this.greedy = request.generation().sampling().isGreedy();
        this.needsLogits = request.constraint() != null || request.topLogprobs() >= 0;
        this.draftTokens = draftTokens;
        this.submitNanos = System.nanoTime();
    }

    int n() {
        return request.n();
    }

    boolean isAdmitted() {
        return choices != null;
    }
}
