package ai.k2j.kernels.cpu;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.KQuants;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Plain scalar decoding of one weight row to float32, for every weight dtype. Used where a row is decoded once
 * per token (the embedding gather): that code runs too few iterations per step to be sure the JIT has compiled
 * it with C2, and Vector API code that is interpreted or C1-compiled boxes every vector (allocating per token).
 * Scalar code allocates nothing in any tier, and a few thousand elements per token cost nothing measurable. The
 * CUDA backend decodes uploaded weights with it too (one decoder for the host side of every backend).
 */
public final class ScalarRows {
    private ScalarRows() {
    }

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    /** Decodes the {@code cols} values of the row at byte {@code off} of {@code w} into out[o, o + cols). */
    public static void decode(DType dtype, MemorySegment w, long off, int cols, float[] out, int o) {
        switch (dtype) {
            case F32 -> {
                for (int c = 0; c < cols; c++) {
                    out[o + c] = w.get(F32_LE, off + 4L * c);
                }
            }
            case BF16 -> {
                for (int c = 0; c < cols; c++) {
                    out[o + c] = Float.intBitsToFloat(w.get(I16_LE, off + 2L * c) << 16);
                }
            }
            case F16 -> {
                for (int c = 0; c < cols; c++) {
                    out[o + c] = Float.float16ToFloat(w.get(I16_LE, off + 2L * c));
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < cols / 32; b++) {
                    long blk = off + 34L * b;
                    float d = Float.float16ToFloat(w.get(I16_LE, blk));
                    for (int j = 0; j < 32; j++) {
                        out[o + 32 * b + j] = d * w.get(ValueLayout.JAVA_BYTE, blk + 2 + j);
                    }
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < cols / 32; b++) {
                    long blk = off + 18L * b;
                    float d = Float.float16ToFloat(w.get(I16_LE, blk));
                    for (int j = 0; j < 16; j++) {
                        int packed = w.get(ValueLayout.JAVA_BYTE, blk + 2 + j);
                        out[o + 32 * b + j] = d * ((packed & 0x0F) - 8);
                        out[o + 32 * b + 16 + j] = d * (((packed >> 4) & 0x0F) - 8);
                    }
                }
            }
            case Q4_K, Q5_K, Q6_K -> KQuants.dequantizeRow(dtype, w, off, cols, out, o);
            default -> throw new IllegalStateException("no CPU decoder for " + dtype);
        }
    }
}
