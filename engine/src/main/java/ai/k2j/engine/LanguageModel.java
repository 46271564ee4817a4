package ai.k2j.engine;

import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.tokenizer.ChatMessage;
import ai.k2j.tokenizer.Tokenizer;

import java.nio.file.Path;
import java.util.List;

/**
 * The embeddable entry point: a loaded model (weights mapped, backend ready, tokenizer) that generates text.
 * Thread-safety: one generation at a time per instance (calls are serialized); {@link #close()} unmaps weights.
 */
public final class LanguageModel implements AutoCloseable {

    public static LanguageModel load(Path dir) {
        return load(dir, ModelOptions.defaults());
    }

    public static LanguageModel load(Path dir, ModelOptions options) {
        throw new UnsupportedOperationException("not yet implemented");
    }

    public ModelConfig config() {
        throw new UnsupportedOperationException();
    }

    public GenerationConfig generationConfig() {
        throw new UnsupportedOperationException();
    }

    /** The model directory's tokenizer; an {@link IllegalStateException} when the directory has none. */
    public Tokenizer tokenizer() {
        throw new UnsupportedOperationException();
    }

    /** Max tokens (prompt + generated) one sequence may hold. */
    public int maxContext() {
        throw new UnsupportedOperationException();
    }

    public int[] encode(String text) {
        return tokenizer().encode(text);
    }

    public int[] encodeChat(List<ChatMessage> messages) {
        return tokenizer().encode(tokenizer().applyChatTemplate(messages, true));
    }

    /**
     * Generates; {@code listener} sees each token as it is produced. Throws {@link IllegalArgumentException}
     * when the prompt does not fit the context.
     */
    public GenerationResult generate(GenerationRequest request, TokenListener listener) {
        throw new UnsupportedOperationException();
    }

    /** Float32 logits [ids.length][vocab] for every position of the prompt (one prefill pass). */
    public float[][] logits(int[] ids) {
        throw new UnsupportedOperationException();
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException();
    }
}
