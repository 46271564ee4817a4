package ai.k2j.engine;

import ai.k2j.engine.model.Architectures;
import ai.k2j.engine.model.DecoderModel;
import ai.k2j.kernels.Backend;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.loaders.Checkpoint;
import ai.k2j.loaders.GenerationConfig;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;
import ai.k2j.tokenizer.Tokenizer;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;
import java.util.function.Function;
import java.util.stream.IntStream;

/**
 * A checkpoint loaded onto a backend — the one loaded-model object both generation paths use: the config and
 * generation config, the tokenizer (null when the directory has none), the end-of-sequence ids
 * (generation_config.json's ∪ config.json's), and the architecture's weights ({@link DecoderModel}). Runtime state
 * lives in the {@link ModelContext}s made from it, so one load serves a single-sequence context and a batching
 * context alike. Closing it unmaps the weights; the backend is the caller's.
 */
public final class LoadedModel implements AutoCloseable {
    private final String name;
    private final String source;
    private final ModelConfig config;
    private final GenerationConfig generationConfig;
    private final Tokenizer tokenizer;
    private final int[] eosIds;
    private final DecoderModel model;
    private final AutoCloseable weights;

    private LoadedModel(String name, String source, ModelConfig config, GenerationConfig generationConfig,
                        Tokenizer tokenizer, DecoderModel model, AutoCloseable weights) {
        this.name = name;
        this.source = source;
        this.config = config;
        this.generationConfig = generationConfig;
        this.tokenizer = tokenizer;
        this.model = model;
        this.weights = weights;
        this.eosIds = IntStream.concat(Arrays.stream(generationConfig.eosTokenIds()),
                Arrays.stream(config.eosTokenIds())).distinct().toArray();
    }

    /** Opens the checkpoint in {@code dir} (or the GGUF file {@code dir}) and loads its weights onto {@code backend} (converted to weightFormat). */
    public static LoadedModel load(Path dir, Backend backend, WeightFormat weightFormat) {
        Checkpoint checkpoint = Checkpoint.open(dir);
        try {
            ModelConfig config = checkpoint.config();
            Tokenizer tokenizer = ModelTokenizer.load(checkpoint);
            DecoderModel model = Architectures.load(config, checkpoint::find, dir.toString(), backend, weightFormat);
            Path fileName = dir.toAbsolutePath().normalize().getFileName();
            return new LoadedModel(fileName == null ? dir.toString() : fileName.toString(), dir.toString(), config,
                    checkpoint.generationConfig(), tokenizer, model, checkpoint);
        } catch (RuntimeException | Error e) {
            checkpoint.close();
            throw e;
        }
    }

    /**
     * A model from parts (tests build tensors in memory); {@code weights} is closed by {@link #close()} (null when
     * nothing needs closing).
     */
    public static LoadedModel of(ModelConfig config, GenerationConfig generationConfig,
                                 Function<String, Optional<Tensor>> tensors, String source, Backend backend,
                                 Tokenizer tokenizer, WeightFormat weightFormat, AutoCloseable weights) {
        return new LoadedModel(source, source, config, generationConfig, tokenizer,
                Architectures.load(config, tensors, source, backend, weightFormat), weights);
    }

    /** A runtime context (buffers, float32 KV cache) of these weights, sized by {@code limits}. */
    public ModelContext newContext(ModelContext.Limits limits) {
        return new ModelContext(model, limits);
    }

    /** A runtime context whose KV cache stores keys and values in {@code kvCache}. */
    public ModelContext newContext(ModelContext.Limits limits, KvPrecision kvCache) {
        return new ModelContext(model, limits, kvCache);
    }

    /** The directory's name (what a server reports as the model id by default). */
    public String name() {
        return name;
    }

    /** Names the checkpoint in messages (its path). */
    public String source() {
        return source;
    }

    public ModelConfig config() {
        return config;
    }

    public GenerationConfig generationConfig() {
        return generationConfig;
    }

    /** The tokenizer, or null when the checkpoint has none. */
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** The ids that end generation: generation_config.json's ∪ config.json's. */
    public int[] eosIds() {
        return eosIds.clone();
    }

    /** {@link #eosIds()} without the copy, for the engine's per-request emitters. */
    int[] eosIdsShared() {
        return eosIds;
    }

    public DecoderModel model() {
        return model;
    }

    /** Unmaps the weights. */
    @Override
    public void close() {
        if (weights != null) {
            try {
                weights.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing " + source + ": " + e.getMessage(), e);
            }
        }
    }
}
