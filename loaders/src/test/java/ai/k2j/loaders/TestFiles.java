package ai.k2j.loaders;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Builders for hand-made (often deliberately broken) model files. */
final class TestFiles {

    static final String TINY_CONFIG = """
            {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64,
             "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "vocab_size": 256, "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
             "tie_word_embeddings": true, "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2}
            """;

    private TestFiles() {
    }

    /** A safetensors file with this exact header text (no padding added) and data section. */
    static Path raw(Path file, String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return raw(file, h.length, h, data);
    }

    /** A safetensors file whose length field says {@code headerLenField}, whatever the bytes that follow. */
    static Path raw(Path file, long headerLenField, byte[] header, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(headerLenField).put(header).put(data);
        return bytes(file, b.array());
    }

    static Path bytes(Path file, byte[] content) {
        try {
            return Files.write(file, content);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Path text(Path file, String content) {
        try {
            return Files.writeString(file, content);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** F32 values 0, 1, 2, ... scaled, off-heap in {@code arena}. */
    static MemorySegment floats(Arena arena, DType dtype, long n, float scale) {
        MemorySegment s = arena.allocate(dtype.bytesFor(n), 8);
        for (long i = 0; i < n; i++) {
            Halfs.setFloat(s, dtype, i, (i - n / 2f) * scale);
        }
        return s;
    }

    /** n bytes of a deterministic pattern derived from {@code seed}. */
    static MemorySegment pattern(Arena arena, long n, int seed) {
        MemorySegment s = arena.allocate(Math.max(n, 1), 8).asSlice(0, n);
        for (long i = 0; i < n; i++) {
            s.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (i * 31 + seed * 17 + (i >>> 8)));
        }
        return s;
    }
}
