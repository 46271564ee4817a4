package ai.k2j.loaders;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * K-quant dequantization against ggml's own: the fixtures under resources/ai/k2j/loaders/kquants hold blocks
 * (quantized by ggml's quantize_row_qX_K_ref, plus random bytes) and the floats ggml's dequantize_row_qX_K made of
 * them (tools/llamacpp-peer/kquants_ref.py, calling the prebuilt libggml-base.so). Every value must match bit for bit.
 */
class KQuantsTest {

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = KQuantsTest.class.getResourceAsStream("kquants/" + name)) {
            if (in == null) {
                throw new IllegalStateException("missing fixture " + name);
            }
            return in.readAllBytes();
        }
    }

    private static void checkAgainstGgml(DType dtype, String name) throws IOException {
        byte[] blocks = resource(name + ".blocks");
        byte[] golden = resource(name + ".f32");
        int nBlocks = blocks.length / dtype.blockBytes();
        assertEquals(0, blocks.length % dtype.blockBytes());
        assertEquals(nBlocks * 256 * 4, golden.length);
        float[] expected = new float[nBlocks * 256];
        ByteBuffer.wrap(golden).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(expected);
        float[] actual = new float[expected.length];
        KQuants.dequantizeRow(dtype, MemorySegment.ofArray(blocks), 0, expected.length, actual, 0);
        int nonzero = 0;
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                    () -> dtype + " value differs from ggml's");
            nonzero += expected[i] != 0 ? 1 : 0;
        }
        assertTrue(nonzero > expected.length / 2, "the fixture holds real data");
        // the same values decoded block by block at an offset (as rows of one block each)
        float[] one = new float[256];
        for (int b = 0; b < nBlocks; b++) {
            KQuants.dequantizeRow(dtype, MemorySegment.ofArray(blocks), (long) b * dtype.blockBytes(), 256, one, 0);
            for (int i = 0; i < 256; i++) {
                assertEquals(Float.floatToRawIntBits(expected[b * 256 + i]), Float.floatToRawIntBits(one[i]));
            }
        }
    }

    @Test
    void q4KMatchesGgmlBitForBit() throws IOException {
        checkAgainstGgml(DType.Q4_K, "q4_K");
    }

    @Test
    void q5KMatchesGgmlBitForBit() throws IOException {
        checkAgainstGgml(DType.Q5_K, "q5_K");
    }

    @Test
    void q6KMatchesGgmlBitForBit() throws IOException {
        checkAgainstGgml(DType.Q6_K, "q6_K");
    }

    @Test
    void blockGeometryIsGgmls() {
        assertEquals(144, DType.Q4_K.bytesFor(256));
        assertEquals(176, DType.Q5_K.bytesFor(256));
        assertEquals(210, DType.Q6_K.bytesFor(256));
        assertThrows(IllegalArgumentException.class, () -> DType.Q4_K.bytesFor(128));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KQuants.dequantizeRow(DType.Q6_K, MemorySegment.ofArray(new byte[210]), 0, 100, new float[100], 0));
        assertTrue(e.getMessage().contains("256"), e.getMessage());
    }
}
