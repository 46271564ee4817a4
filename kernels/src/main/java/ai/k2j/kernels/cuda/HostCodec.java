package ai.k2j.kernels.cuda;

import ai.k2j.kernels.cpu.ScalarRows;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelFormatException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Host-side element conversions used when uploading weights: decoding any supported dtype to float32, and
 * encoding float32 to BF16 (round to nearest even). Q8_0/Q4_0 are quantized by the CPU backend's
 * {@link ai.k2j.kernels.cpu.Quantizer} (llama.cpp's reference rounding) and split into the device layout.
 */
final class HostCodec {

    private static final ValueLayout.OfDouble DOUBLE = ValueLayout.JAVA_DOUBLE_UNALIGNED;

    private HostCodec() {
    }

    static float bf16ToF32(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** Round to nearest even; NaN stays (quiet) NaN. Same rule as the device's f32_to_bf16. */
    static short f32ToBf16(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) {
            return (short) ((u >>> 16) | 0x40);
        }
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    /**
     * Decodes {@code count} values starting at element {@code first} of a tensor's bytes into out[outOff..].
     * For Q8_0/Q4_0, first and count must be multiples of 32.
     */
    static void decode(DType dtype, MemorySegment data, long first, int count, float[] out, int outOff, String name) {
        switch (dtype) {
            case F32, F16, BF16, Q8_0, Q4_0 -> ScalarRows.decode(dtype, data, dtype.bytesFor(first), count, out, outOff);
            case F64 -> {
                for (int i = 0; i < count; i++) {
                    out[outOff + i] = (float) data.get(DOUBLE, (first + i) * 8);
                }
            }
            default -> throw new ModelFormatException("tensor '" + name + "': dtype " + dtype
                    + " is not supported by the CUDA backend (use F32, F16, BF16, Q8_0 or Q4_0)");
        }
    }
}
