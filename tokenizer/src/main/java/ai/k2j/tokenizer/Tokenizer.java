package ai.k2j.tokenizer;

import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;

/**
 * Byte-level BPE tokenizer read from an HF {@code tokenizer.json} (Qwen2 family), id-exact to HF
 * {@code tokenizers}. Thread-safe after construction.
 */
public final class Tokenizer {

    /** {@code path} is a tokenizer.json or a directory holding one (plus optional tokenizer_config.json). */
    public static Tokenizer load(Path path) {
        throw new UnsupportedOperationException("not yet implemented");
    }

    /** Encodes text; added/special tokens written inline (e.g. {@code <|im_start|>}) become their ids. */
    public int[] encode(String text) {
        throw new UnsupportedOperationException();
    }

    /** Encodes text; with {@code allowSpecial=false} special tokens in the text are treated as plain text. */
    public int[] encode(String text, boolean allowSpecial) {
        throw new UnsupportedOperationException();
    }

    /** Decodes ids to text (special tokens included as their text unless {@code skipSpecial}). */
    public String decode(int[] ids, boolean skipSpecial) {
        throw new UnsupportedOperationException();
    }

    public String decode(int[] ids) {
        return decode(ids, false);
    }

    /** A decoder for streaming output that never emits half a UTF-8 character. */
    public StreamingDecoder streamingDecoder(boolean skipSpecial) {
        throw new UnsupportedOperationException();
    }

    /** Size of the id space (base vocabulary plus added tokens). */
    public int vocabSize() {
        throw new UnsupportedOperationException();
    }

    public OptionalInt id(String token) {
        throw new UnsupportedOperationException();
    }

    /** The token's string form (byte-level alphabet for normal tokens), or null when out of range. */
    public String token(int id) {
        throw new UnsupportedOperationException();
    }

    public boolean isSpecial(int id) {
        throw new UnsupportedOperationException();
    }

    /** Ids of the special (added, special=true) tokens, ascending. */
    public int[] specialIds() {
        throw new UnsupportedOperationException();
    }

    /** ChatML prompt in Qwen2.5's format; see {@link ChatMessage}. */
    public String applyChatTemplate(List<ChatMessage> messages, boolean addGenerationPrompt) {
        throw new UnsupportedOperationException();
    }
}
