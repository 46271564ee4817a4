package ai.k2j.loaders;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Writes safetensors files (used by {@code k2j synth} and {@code k2j quantize}). Data is streamed from
 * off-heap segments, never gathered on the heap; files are written to a temporary name and renamed, so a
 * crash never leaves a truncated file under the final name.
 */
public final class SafeTensorsWriter {

    private SafeTensorsWriter() {
    }

    /** One tensor to write: its bytes must match dtype and shape exactly. */
    public record Entry(String name, DType dtype, long[] shape, MemorySegment data) {
    }

    /** Writes one file with the given {@code __metadata__} (may be empty). */
    public static void write(Path file, List<Entry> tensors, Map<String, String> metadata) {
        throw new UnsupportedOperationException("not yet implemented");
    }

    /**
     * Writes {@code model.safetensors} into {@code dir}, or, when the total exceeds {@code maxShardBytes},
     * {@code model-0000i-of-0000n.safetensors} shards plus {@code model.safetensors.index.json} as HF does.
     */
    public static void writeCheckpoint(Path dir, List<Entry> tensors, long maxShardBytes) {
        throw new UnsupportedOperationException("not yet implemented");
    }
}
