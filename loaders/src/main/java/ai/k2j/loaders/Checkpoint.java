package ai.k2j.loaders;

import java.nio.file.Path;
import java.util.Optional;
import java.util.SortedSet;

/**
 * A model directory: config.json, optional generation_config.json, and its weights in one
 * {@code model.safetensors} or shards listed by {@code model.safetensors.index.json}. All shards are mapped
 * into one shared {@link java.lang.foreign.Arena}; {@link #close()} unmaps them (tensors become invalid).
 */
public final class Checkpoint implements AutoCloseable {

    /** Opens and validates every safetensors file of the directory. */
    public static Checkpoint open(Path dir) {
        throw new UnsupportedOperationException("not yet implemented");
    }

    public Path dir() {
        throw new UnsupportedOperationException();
    }

    public ModelConfig config() {
        throw new UnsupportedOperationException();
    }

    public GenerationConfig generationConfig() {
        throw new UnsupportedOperationException();
    }

    public boolean contains(String tensorName) {
        throw new UnsupportedOperationException();
    }

    /** The tensor, or a {@link ModelFormatException} naming the directory and the missing tensor. */
    public Tensor tensor(String name) {
        throw new UnsupportedOperationException();
    }

    public Optional<Tensor> find(String name) {
        throw new UnsupportedOperationException();
    }

    public SortedSet<String> tensorNames() {
        throw new UnsupportedOperationException();
    }

    /** Total bytes of tensor data over all shards. */
    public long totalBytes() {
        throw new UnsupportedOperationException();
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException();
    }
}
