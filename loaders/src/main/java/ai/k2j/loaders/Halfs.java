package ai.k2j.loaders;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Scalar conversions between float32 and the 16-bit float formats, plus little-endian element access to
 * F32/F16/BF16 tensor data. Scalar and slow on purpose: for tests, small tensors (norms, biases) and one-off
 * conversions; kernels do the bulk work with vectors.
 */
public final class Halfs {

    /** Little-endian, unaligned: safetensors data is LE and only as aligned as the file makes it. */
    public static final ValueLayout.OfShort LE_SHORT =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfFloat LE_FLOAT =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static final short BF16_CANONICAL_NAN = 0x7FC0;

    private Halfs() {
    }

    /** IEEE binary16 bits → float (exact). */
    public static float f16ToFloat(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** float → IEEE binary16 bits, round to nearest even (as PyTorch's {@code .half()}). */
    public static short floatToF16(float value) {
        return Float.floatToFloat16(value);
    }

    /** bfloat16 bits → float (exact: bfloat16 is the top half of a float). */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /**
     * float → bfloat16 bits, round to nearest even like PyTorch's {@code .bfloat16()}: NaN becomes the canonical
     * quiet NaN 0x7FC0; values past the largest bfloat16 round to infinity.
     */
    public static short floatToBf16(float value) {
        if (Float.isNaN(value)) {
            return BF16_CANONICAL_NAN;
        }
        int bits = Float.floatToRawIntBits(value);
        // Add just under half an ulp of bf16, plus one when the kept lsb is odd: ties go to even.
        int roundingBias = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    /** Element {@code index} of F32, F16 or BF16 data as a float. */
    public static float getFloat(MemorySegment data, DType dtype, long index) {
        return switch (dtype) {
            case F32 -> data.getAtIndex(LE_FLOAT, index);
            case F16 -> f16ToFloat(data.getAtIndex(LE_SHORT, index));
            case BF16 -> bf16ToFloat(data.getAtIndex(LE_SHORT, index));
            default -> throw new IllegalArgumentException("getFloat needs F32, F16 or BF16 data, not " + dtype);
        };
    }

    /** Stores {@code value} as element {@code index} of F32, F16 or BF16 data (rounding to nearest even). */
    public static void setFloat(MemorySegment data, DType dtype, long index, float value) {
        switch (dtype) {
            case F32 -> data.setAtIndex(LE_FLOAT, index, value);
            case F16 -> data.setAtIndex(LE_SHORT, index, floatToF16(value));
            case BF16 -> data.setAtIndex(LE_SHORT, index, floatToBf16(value));
            default -> throw new IllegalArgumentException("setFloat needs F32, F16 or BF16 data, not " + dtype);
        }
    }
}
