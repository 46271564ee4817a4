package ai.k2j.kernels.cuda;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelFormatException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Host-side element conversions used when uploading weights: decoding any supported dtype to float32, and
 * encoding float32 to BF16 (round to nearest even), F16, and llama.cpp's Q8_0 / Q4_0 reference quantizers.
 */
final class HostCodec {

    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
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

    /** C's roundf: halves away from zero (Math.round rounds -2.5 to -2). Exact in double for float inputs. */
    static float roundHalfAway(float v) {
        return (float) (v < 0 ? -Math.floor(-(double) v + 0.5) : Math.floor((double) v + 0.5));
    }

    /**
     * Decodes {@code count} values starting at element {@code first} of a tensor's bytes into out[outOff..].
     * For Q8_0/Q4_0, first and count must be multiples of 32.
     */
    static void decode(DType dtype, MemorySegment data, long first, int count, float[] out, int outOff, String name) {
        switch (dtype) {
            case F32 -> MemorySegment.copy(data, FLOAT, first * 4, out, outOff, count);
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    out[outOff + i] = Float.float16ToFloat(data.get(SHORT, (first + i) * 2));
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    out[outOff + i] = bf16ToF32(data.get(SHORT, (first + i) * 2));
                }
            }
            case F64 -> {
                for (int i = 0; i < count; i++) {
                    out[outOff + i] = (float) data.get(DOUBLE, (first + i) * 8);
                }
            }
            case Q8_0 -> {
                long block = first / 32;
                for (int b = 0; b < count / 32; b++) {
                    long base = (block + b) * 34;
                    float d = Float.float16ToFloat(data.get(SHORT, base));
                    for (int j = 0; j < 32; j++) {
                        out[outOff + b * 32 + j] = data.get(ValueLayout.JAVA_BYTE, base + 2 + j) * d;
                    }
                }
            }
            case Q4_0 -> {
                long block = first / 32;
                for (int b = 0; b < count / 32; b++) {
                    long base = (block + b) * 18;
                    float d = Float.float16ToFloat(data.get(SHORT, base));
                    for (int j = 0; j < 16; j++) {
                        int q = data.get(ValueLayout.JAVA_BYTE, base + 2 + j) & 0xff;
                        out[outOff + b * 32 + j] = ((q & 15) - 8) * d;
                        out[outOff + b * 32 + j + 16] = ((q >>> 4) - 8) * d;
                    }
                }
            }
            default -> throw new ModelFormatException("tensor '" + name + "': dtype " + dtype
                    + " is not supported by the CUDA backend (use F32, F16, BF16, Q8_0 or Q4_0)");
        }
    }

    /**
     * llama.cpp quantize_row_q8_0_ref for one block of 32: d = max|x| / 127, q = roundf(x / d).
     * Writes 32 int8 at qs[qsOff..] and returns the f16 bits of d.
     */
    static short quantizeQ8_0(float[] x, int off, MemorySegment qs, long qsOff) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            amax = Math.max(amax, Math.abs(x[off + j]));
        }
        float d = amax / 127.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) {
            qs.set(ValueLayout.JAVA_BYTE, qsOff + j, (byte) roundHalfAway(x[off + j] * id));
        }
        return Float.floatToFloat16(d);
    }

    /**
     * llama.cpp quantize_row_q4_0_ref for one block of 32: d = (value of largest magnitude) / -8,
     * q = min(15, (int) (x / d + 8.5)); byte j holds element j (low nibble) and j + 16 (high nibble).
     * Writes 16 bytes at qs[qsOff..] and returns the f16 bits of d.
     */
    static short quantizeQ4_0(float[] x, int off, MemorySegment qs, long qsOff) {
        float amax = 0;
        float max = 0;
        for (int j = 0; j < 32; j++) {
            float v = x[off + j];
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        float d = max / -8.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        for (int j = 0; j < 16; j++) {
            float x0 = x[off + j] * id;
            float x1 = x[off + 16 + j] * id;
            int q0 = Math.min(15, (int) (x0 + 8.5f));
            int q1 = Math.min(15, (int) (x1 + 8.5f));
            qs.set(ValueLayout.JAVA_BYTE, qsOff + j, (byte) (q0 | (q1 << 4)));
        }
        return Float.floatToFloat16(d);
    }
}
