package ai.k2j.loaders;

import java.nio.file.Path;

/**
 * HF {@code generation_config.json}: end-of-sequence ids and sampling defaults. Absent file → {@link #DEFAULT}.
 * Absent numbers: temperature 1.0, topP 1.0, topK 0 (off), repetitionPenalty 1.0.
 */
public record GenerationConfig(int[] eosTokenIds, int bosTokenId, int padTokenId, boolean doSample,
                               double temperature, double topP, int topK, double repetitionPenalty) {

    public static final GenerationConfig DEFAULT = new GenerationConfig(new int[0], -1, -1, false, 1.0, 1.0, 0, 1.0);

    public GenerationConfig {
        eosTokenIds = eosTokenIds.clone();
    }

    @Override
    public int[] eosTokenIds() {
        return eosTokenIds.clone();
    }

    /** Reads the file; a missing file gives {@link #DEFAULT}; malformed JSON a {@link ModelFormatException}. */
    public static GenerationConfig read(Path file) {
        throw new UnsupportedOperationException("not yet implemented");
    }
}
