package ai.k2j.engine.model;

import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.ModelFormatException;
import ai.k2j.loaders.Tensor;

import java.util.Arrays;
import java.util.Optional;
import java.util.function.Function;

/** Looks a checkpoint's tensors up by their HF names and checks their shapes, naming the source on failure. */
public record WeightMap(Function<String, Optional<Tensor>> lookup, String source, ModelConfig config) {

    /** The tensor {@code name}, which must exist and have exactly {@code shape}. */
    public Tensor get(String name, long... shape) {
        Tensor t = lookup.apply(name).orElseThrow(() -> new ModelFormatException(source
                + ": missing tensor '" + name + "'"));
        if (!Arrays.equals(t.shape(), shape)) {
            throw new ModelFormatException(source + ": tensor '" + name + "' has shape "
                    + Arrays.toString(t.shape()) + ", but config.json (hidden_size=" + config.hiddenSize()
                    + ", heads=" + config.numHeads() + ", kv_heads=" + config.numKvHeads() + ", head_dim="
                    + config.headDim() + ", intermediate_size=" + config.intermediateSize() + ", vocab_size="
                    + config.vocabSize() + ") implies " + Arrays.toString(shape));
        }
        return t;
    }

    /** Whether the checkpoint has a tensor of that name. */
    public boolean has(String name) {
        return lookup.apply(name).isPresent();
    }
}
