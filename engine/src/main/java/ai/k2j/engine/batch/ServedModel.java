package ai.k2j.engine.batch;

import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.Qwen2Model;
import ai.k2j.kernels.Backend;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.tokenizer.Tokenizer;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * A checkpoint loaded for batched serving: the {@link Qwen2Model} sized by the engine's limits, its own backend,
 * its tokenizer (null when the directory has none) and its end-of-sequence ids (generation_config.json's ∪
 * config.json's). Closing it closes the backend and unmaps the weights.
 */
final class ServedModel implements AutoCloseable {
    final String name;
    final Qwen2Model model;
    final Tokenizer tokenizer;
    final int[] eosIds;
    private final Backend backend;
    private final Checkpoint checkpoint;

    private ServedModel(String name, Qwen2Model model, Tokenizer tokenizer, int[] eosIds, Backend backend,
                        Checkpoint checkpoint) {
        this.name = name;
        this.model = model;
        this.tokenizer = tokenizer;
        this.eosIds = eosIds;
        this.backend = backend;
        this.checkpoint = checkpoint;
    }

    static ModelConfig readConfig(Path dir) {
        try (Checkpoint c = Checkpoint.open(dir)) {
            return c.config();
        }
    }

    static ServedModel load(Path dir, EngineOptions options, Qwen2Model.Limits limits) {
        Checkpoint checkpoint = Checkpoint.open(dir);
        Backend backend = null;
        try {
            ModelConfig config = checkpoint.config();
            backend = LanguageModel.createBackend(options.backend(), options.threads());
            Tokenizer tokenizer = ai.k2j.engine.ModelTokenizer.load(dir, config);
            Qwen2Model model = Qwen2Model.load(config, checkpoint::find, dir.toString(), backend, limits,
                    options.weightFormat());
            int[] eos = IntStream.concat(Arrays.stream(checkpoint.generationConfig().eosTokenIds()),
                    Arrays.stream(config.eosTokenIds())).distinct().toArray();
            Path fileName = dir.toAbsolutePath().normalize().getFileName();
            return new ServedModel(fileName == null ? dir.toString() : fileName.toString(), model, tokenizer, eos,
                    backend, checkpoint);
        } catch (RuntimeException | Error e) {
            if (backend != null) {
                backend.close();
            }
            checkpoint.close();
            throw e;
        }
    }

    boolean isEos(int token) {
        for (int id : eosIds) {
            if (id == token) {
                return true;
            }
        }
        return false;
    }

    @Override
    public void close() {
        try {
            backend.close();
        } finally {
            checkpoint.close();
        }
    }
}
