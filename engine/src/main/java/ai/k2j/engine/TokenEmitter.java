package ai.k2j.engine;

import ai.k2j.tokenizer.StreamingDecoder;
import ai.k2j.tokenizer.Tokenizer;

import java.util.List;

/**
 * The one place generated ids become text and a generation decides it is done, for the single-sequence path and the
 * batching engine alike: ids are detokenized incrementally (special tokens add no text), the text is cut at the first
 * stop string (which is never shown, not even in part), and generation ends at an end-of-sequence id (kept in the
 * ids, adding no text), at a stop string (the ids keep the token that completed it), or at the token budget.
 * One per sequence; not thread-safe.
 */
final class TokenEmitter {
    private final StreamingDecoder decoder;
    private final StopStrings text;
    private final int[] eosIds;
    private final int budget;
    private int emitted;
    private FinishReason finish;

    /**
     * @param tokenizer null when the model has none (then there is no text, and stop strings must be empty)
     * @param eosIds    the ids that end generation (empty to ignore end-of-sequence)
     * @param budget    tokens this generation may produce, at least 1
     */
    TokenEmitter(Tokenizer tokenizer, List<String> stops, int[] eosIds, int budget) {
        if (tokenizer == null && !stops.isEmpty()) {
            throw new IllegalArgumentException("stop strings need a tokenizer");
        }
        this.decoder = tokenizer == null ? null : tokenizer.streamingDecoder(true);
        this.text = new StopStrings(stops);
        this.eosIds = eosIds;
        this.budget = budget;
    }

    /**
     * Takes the next generated id and returns the text a listener may show now. When this id ends the generation
     * ({@link #finished()} turns true) the text includes everything held back.
     */
    String accept(int token) {
        if (finish != null) {
            throw new IllegalStateException("the generation already ended (" + finish + ")");
        }
        emitted++;
        boolean eos = isEos(token);
        if (!eos && decoder != null) {
            text.append(decoder.push(token));
        }
        if (text.stopped() || eos || emitted == budget) {
            if (decoder != null && !text.stopped()) {
                text.append(decoder.flush());
            }
            finish = text.stopped() || eos ? FinishReason.STOP : FinishReason.LENGTH;
            return text.takeAll();
        }
        return text.takeSafe();
    }

    /** Ends the generation early (the caller cancelled): the decoder's pending bytes join the text. */
    void cancel() {
        if (finish == null) {
            if (decoder != null) {
                text.append(decoder.flush());
            }
            finish = FinishReason.CANCELLED;
        }
    }

    boolean finished() {
        return finish != null;
    }

    /** Why the generation ended; null while it runs. */
    FinishReason finishReason() {
        return finish;
    }

    /** Tokens taken so far. */
    int emitted() {
        return emitted;
    }

    /** The whole text, cut before a stop string. */
    String text() {
        return text.text();
    }

    private boolean isEos(int token) {
        for (int id : eosIds) {
            if (id == token) {
                return true;
            }
        }
        return false;
    }
}
