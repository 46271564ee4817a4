package ai.k2j.engine;


/**
 * One finished choice of an {@link EngineRequest}. {@code ids} excludes the prompt (an end-of-sequence id that
 * ended generation is kept, as in {@link ai.k2j.engine.GenerationResult}); {@code text} is their decoding cut
 * before any stop string (empty without a tokenizer). Times are nanoseconds from submission.
 *
 * @param draftProposed draft tokens proposed for this choice (0 without speculation)
 * @param draftAccepted of those, how many the target accepted
 */
public record ChoiceResult(int index, int[] ids, String text, FinishReason finishReason, int promptTokens,
                           long timeToFirstTokenNanos, long totalNanos, int draftProposed, int draftAccepted,
                           java.util.List<TokenLogprob> logprobs) {

    /** @param logprobs one per id when the request asked for them ({@link EngineRequest#topLogprobs}), else null */
    public ChoiceResult {
        ids = ids.clone();
        logprobs = logprobs == null ? null : java.util.List.copyOf(logprobs);
    }

    public ChoiceResult(int index, int[] ids, String text, FinishReason finishReason, int promptTokens,
                        long timeToFirstTokenNanos, long totalNanos, int draftProposed, int draftAccepted) {
        this(index, ids, text, finishReason, promptTokens, timeToFirstTokenNanos, totalNanos, draftProposed,
                draftAccepted, null);
    }

    @Override
    public int[] ids() {
        return ids.clone();
    }

    public int completionTokens() {
        return ids.length;
    }
}
