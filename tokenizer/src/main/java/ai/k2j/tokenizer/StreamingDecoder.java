package ai.k2j.tokenizer;

/**
 * Incremental detokenizer: feed ids one at a time, get back only complete UTF-8 text.
 * Not thread-safe; one per output stream.
 */
public interface StreamingDecoder {
    /** Appends a token; returns the newly completed text (possibly empty, never half a character). */
    String push(int id);

    /** Returns what is still buffered (incomplete bytes as U+FFFD, as HF does) and resets. */
    String flush();
}
