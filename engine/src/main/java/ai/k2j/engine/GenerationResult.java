package ai.k2j.engine;


/**
 * What a generation produced. {@code ids} excludes the prompt; {@code text} is their decoding with any
 * matched stop string cut off. Times are wall-clock nanoseconds. {@code speculation}: what speculative decoding
 * did (acceptance rate, tokens per target pass, time shares), or null when the generation decoded plainly.
 */
public record GenerationResult(int[] ids, String text, FinishReason finishReason, int promptTokens,
                               long prefillNanos, long decodeNanos, SpeculativeStats speculation) {

    public GenerationResult {
        ids = ids.clone();
    }

    /** A result of plain decoding. */
    public GenerationResult(int[] ids, String text, FinishReason finishReason, int promptTokens, long prefillNanos,
                            long decodeNanos) {
        this(ids, text, finishReason, promptTokens, prefillNanos, decodeNanos, null);
    }

    @Override
    public int[] ids() {
        return ids.clone();
    }

    public int generatedTokens() {
        return ids.length;
    }

    /** Decode speed over the tokens after the first (the first comes from the prefill). */
    public double decodeTokensPerSecond() {
        return ids.length > 1 && decodeNanos > 0 ? (ids.length - 1) * 1e9 / decodeNanos : 0;
    }

    public double prefillTokensPerSecond() {
        return prefillNanos > 0 ? promptTokens * 1e9 / prefillNanos : 0;
    }
}
