package ai.k2j.kernels;

/**
 * The rounding rules of the reduced-precision KV caches, one definition for every backend (the CUDA kernels in
 * native/common.cuh and ops.cu follow the same steps): BF16 is float32 rounded to nearest even; FP8 is E4M3 (OCP
 * "fn": bias 7, subnormals, max ±448, no infinities) with one float32 scale per (token slot, kv head) =
 * the head's absolute maximum / 448, so every head uses the whole FP8 range and no calibration is needed.
 */
public final class KvCodec {
    private KvCodec() {
    }

    /** Largest finite E4M3 value. */
    public static final float FP8_MAX = 448f;

    /** E4M3 bits (low byte) as a float: the fields moved into a float's and rescaled by 2^120 (exact). */
    private static final float[] FP8_VALUES = new float[256];

    static {
        for (int b = 0; b < 256; b++) {
            FP8_VALUES[b] = Float.intBitsToFloat(((b & 0x80) << 24) | ((b & 0x7f) << 20)) * 0x1p120f;
        }
    }

    /** float32 → bfloat16 bits, round to nearest even (NaN stays NaN). */
    public static short bf16Bits(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) {
            return (short) ((u >>> 16) | 0x40);
        }
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    /** bfloat16 bits → float32 (exact). */
    public static float bf16Value(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** f rounded to the nearest bfloat16. */
    public static float bf16(float f) {
        return bf16Value(bf16Bits(f));
    }

    /** E4M3 bits (low byte of b) → float (exact). */
    public static float fp8Value(int b) {
        return FP8_VALUES[b & 0xff];
    }

    /** float → E4M3 bits, round to nearest even, saturating at ±448 (NaN → 0x7f with the sign). */
    public static byte fp8Bits(float x) {
        int u = Float.floatToRawIntBits(x);
        int sign = (u >>> 24) & 0x80;
        float a = Math.abs(x);
        if (Float.isNaN(a)) {
            return (byte) (sign | 0x7f);
        }
        if (a >= FP8_MAX) {
            return (byte) (sign | 0x7e);
        }
        if (a < 0x1p-6f) {
            // subnormals: multiples of 2^-9 (a rounded 8 is 2^-6, the smallest normal, whose bits are 0x08 too)
            return (byte) (sign | (int) Math.rint(a * 512f));
        }
        int r = Float.floatToRawIntBits(a);
        r += 0x7ffff + ((r >>> 20) & 1);
        int bits = ((((r >>> 23) & 0xff) - 120) << 3) | ((r >>> 20) & 7);
        return (byte) (sign | Math.min(bits, 0x7e));
    }

    /**
     * The FP8 scale of one head's values x[off, off + len): max |x| / 448, or 1 when the head is all zeros (so
     * dividing by it is always defined).
     */
    public static float fp8Scale(float[] x, int off, int len) {
        float amax = 0f;
        for (int i = 0; i < len; i++) {
            amax = Math.max(amax, Math.abs(x[off + i]));
        }
        return amax > 0f ? amax / FP8_MAX : 1f;
    }

    /**
     * Quantizes one head, x[off, off + len), to E4M3 bits in dst[dstOff..] with the returned scale: element i is
     * {@code fp8Bits(x[i] / scale)}, its value {@code fp8Value(bits) · scale}.
     */
    public static float quantizeHeadFp8(float[] x, int off, int len, byte[] dst, int dstOff) {
        float scale = fp8Scale(x, off, len);
        for (int i = 0; i < len; i++) {
            dst[dstOff + i] = fp8Bits(x[off + i] / scale);
        }
        return scale;
    }

    /**
     * Rounds {@code kvDim} floats at x[off..] in place as a cache of this precision stores them (per head of
     * {@code headDim} for FP8): what a cache reads back. The reference backend's caches hold these values.
     */
    public static void roundInPlace(KvPrecision precision, float[] x, int off, int kvDim, int headDim) {
        switch (precision) {
            case F32 -> {
            }
            case BF16 -> {
                for (int i = 0; i < kvDim; i++) {
                    x[off + i] = bf16(x[off + i]);
                }
            }
            case FP8_E4M3 -> {
                for (int h = off; h < off + kvDim; h += headDim) {
                    float scale = fp8Scale(x, h, headDim);
                    for (int i = h; i < h + headDim; i++) {
                        x[i] = fp8Value(fp8Bits(x[i] / scale)) * scale;
                    }
                }
            }
        }
    }
}
