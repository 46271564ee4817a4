package ai.k2j.engine;

import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFiles;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.tokenizer.Tokenizer;

import java.nio.file.Path;

/** A model directory's tokenizer, checked against the model: every id must have an embedding row. */
public final class ModelTokenizer {
    private ModelTokenizer() {
    }

    /**
     * The directory's tokenizer, or null when it has no {@code tokenizer.json} at all (one that is present but
     * not a regular file, malformed, or holding ids past the model's embedding rows is an error).
     */
    public static Tokenizer load(Path dir, ModelConfig config) {
        Path file = dir.resolve("tokenizer.json");
        if (!ModelFiles.present(file)) {
            return null;
        }
        Tokenizer tokenizer = Tokenizer.load(dir);
        int rows = config.vocabSize();
        if (tokenizer.vocabSize() > rows) {
            int id = tokenizer.vocabSize() - 1;
            throw new ModelFormatException(file + ": token '" + tokenizer.token(id) + "' has id " + id
                    + ", but the model has only " + rows + " embedding rows (vocab_size in config.json)");
        }
        return tokenizer;
    }
}
