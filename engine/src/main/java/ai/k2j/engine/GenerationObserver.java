package ai.k2j.engine;

/**
 * Receives one request's output as the engine produces it. Calls come from the engine's step thread, in order,
 * and must return quickly without blocking (hand the data to another thread, e.g. through a queue): the whole
 * batch waits for them. An exception thrown here cancels the request.
 */
public interface GenerationObserver {

    /**
     * A token of choice {@code choice}.
     *
     * @param text the text it completes (may be empty: an incomplete UTF-8 character, or text held back because it
     *             could be the start of a stop string)
     */
    void onToken(int choice, int tokenId, String text);

    /** Choice {@code choice} is done; {@code result.finishReason()} says why. Called once per choice. */
    void onFinish(int choice, ChoiceResult result);

    /**
     * The log-probabilities of the token that the next {@link #onToken} call of this choice reports; called only
     * when the request asked for them ({@link EngineRequest#topLogprobs}).
     */
    default void onLogprob(int choice, TokenLogprob logprob) {
    }

    /** The request failed (no further calls follow). */
    default void onError(RuntimeException error) {
    }

    GenerationObserver NONE = new GenerationObserver() {
        @Override
        public void onToken(int choice, int tokenId, String text) {
        }

        @Override
        public void onFinish(int choice, ChoiceResult result) {
        }
    };
}
