package ai.k2j.engine.model;

import ai.k2j.kernels.Backend;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;

import java.util.List;
import java.util.Optional;
import java.util.function.Function;

/** The architectures k2j runs, by the HF class name in config.json's {@code architectures}. */
public final class Architectures {

    /** HF class names k2j loads. */
    public static final List<String> SUPPORTED = List.of("Qwen2ForCausalLM", "LlamaForCausalLM", "Qwen3ForCausalLM",
            "Qwen3MoeForCausalLM", "DeepseekV3ForCausalLM");

    private Architectures() {
    }

    /**
     * Loads the checkpoint's weights onto the backend as the definition its config names.
     *
     * @param tensors      looks tensors up by name (e.g. {@code checkpoint::find})
     * @param source       names the checkpoint in error messages
     * @param weightFormat null or NATIVE to keep the checkpoint's dtype, or a format the backend converts to
     */
    public static DecoderModel load(ModelConfig config, Function<String, Optional<Tensor>> tensors, String source,
                                    Backend backend, WeightFormat weightFormat) {
        WeightMap weights = new WeightMap(tensors, source, config);
        return switch (config.architecture()) {
            case "Qwen2ForCausalLM" -> Qwen2.load(config, weights, backend, weightFormat, true);
            case "LlamaForCausalLM" -> Qwen2.load(config, weights, backend, weightFormat, false);
            case "Qwen3ForCausalLM", "Qwen3MoeForCausalLM" -> Qwen3.load(config, weights, backend, weightFormat);
            case "DeepseekV3ForCausalLM" -> DeepseekV3.load(config, weights, backend, weightFormat);
            default -> throw new ModelFormatException(source + ": architecture '" + config.architecture()
                    + "' is not supported (k2j runs " + String.join(", ", SUPPORTED) + ")");
        };
    }

    /** See {@link Embeddings#lmHeadFormat}. */
    public static WeightFormat lmHeadFormat(WeightFormat weightFormat) {
        return Embeddings.lmHeadFormat(weightFormat);
    }
}
