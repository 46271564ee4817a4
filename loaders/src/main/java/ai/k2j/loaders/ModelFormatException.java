package ai.k2j.loaders;

/**
 * A model file (safetensors, config.json, tokenizer.json, ...) is malformed or inconsistent.
 * The message always names the file and the problem.
 */
public class ModelFormatException extends RuntimeException {
    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
