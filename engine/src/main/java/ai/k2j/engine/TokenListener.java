package ai.k2j.engine;

/** Receives generated tokens as they are produced, on the generating thread. */
@FunctionalInterface
public interface TokenListener {
    /**
     * @param id   the token id
     * @param text the text this token completes (may be empty while a UTF-8 character is incomplete)
     * @return false to stop generation now (finish reason {@link FinishReason#CANCELLED})
     */
    boolean onToken(int id, String text);

    TokenListener NONE = (id, text) -> true;
}
