package ai.k2j.engine;

import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.GgufFile;
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
    public static Tokenizer load(Checkpoint checkpoint) {
        if (checkpoint.gguf().isPresent()) {
            return fromGguf(checkpoint.gguf().get().file(), checkpoint.config().vocabSize());
        }
        return load(checkpoint.dir(), checkpoint.config());
    }

    /**
     * The tokenizer a GGUF file's {@code tokenizer.ggml.*} metadata describes, or null when it has no
     * {@code tokenizer.ggml.tokens}.
     */
    public static Tokenizer fromGguf(GgufFile f, int embeddingRows) {
        if (!f.has("tokenizer.ggml.tokens")) {
            return null;
        }
        Tokenizer tokenizer = Tokenizer.fromGguf(f.path(), f.string("tokenizer.ggml.model"),
                f.strings("tokenizer.ggml.tokens"),
                f.has("tokenizer.ggml.token_type") ? f.ints("tokenizer.ggml.token_type") : null,
                f.has("tokenizer.ggml.merges") ? f.strings("tokenizer.ggml.merges") : java.util.List.of(),
                f.has("tokenizer.ggml.pre") ? f.string("tokenizer.ggml.pre") : null,
                f.has("tokenizer.chat_template") ? f.string("tokenizer.chat_template") : null);
        if (tokenizer.vocabSize() > embeddingRows) {
            int id = tokenizer.vocabSize() - 1;
            throw new ModelFormatException(f.path() + ": token '" + tokenizer.token(id) + "' has id " + id
                    + ", but the model has only " + embeddingRows + " embedding rows (token_embd.weight)");
        }
        return tokenizer;
    }

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
