package ai.k2j.tokenizer;

import java.nio.file.Path;

/** A tokenizer file (tokenizer.json or tokenizer_config.json) is missing, malformed or unsupported. */
public final class TokenizerFormatException extends RuntimeException {
    public TokenizerFormatException(Path file, String problem) {
        super(file + ": " + problem);
    }

    public TokenizerFormatException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
    }
}
