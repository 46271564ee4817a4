package ai.k2j.loaders;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * ggml's K-quant super-blocks (256 values each) and their dequantization, value for value as ggml's reference
 * {@code dequantize_row_q4_K / q5_K / q6_K} computes it in float32 (without contracting a multiply and a subtract
 * into one fused operation). Layouts, all little-endian:
 *
 * <ul>
 *   <li><b>Q4_K</b> (144 bytes): f16 d, f16 dmin, 12 bytes of eight 6-bit (scale, min) pairs, 128 bytes of 4-bit q.
 *       Each 64-value chunk j takes 32 bytes: the low nibbles are values 64j..64j+31 (sub-block 2j), the high
 *       nibbles 64j+32..64j+63 (sub-block 2j+1). A value is {@code (d·scale)·q − dmin·min}.</li>
 *   <li><b>Q5_K</b> (176 bytes): as Q4_K with 32 bytes qh between the scales and the nibbles: bit 2j of qh[l]
 *       adds 16 to value 64j+l, bit 2j+1 to value 64j+32+l.</li>
 *   <li><b>Q6_K</b> (210 bytes): 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 int8 scales, f16 d.
 *       Per 128-value half n: value l (+32, +64, +96) takes ql[l] low, ql[l+32] low, ql[l] high, ql[l+32] high
 *       nibble and bits 0-1, 2-3, 4-5, 6-7 of qh[l]; q − 32 times {@code d·scale[8n + l/16 + 0, 2, 4, 6]}.</li>
 * </ul>
 *
 * The 6-bit scale/min pairs of Q4_K/Q5_K: for sub-block j &lt; 4, {@code scales[j] & 63} and
 * {@code scales[j+4] & 63}; for j ≥ 4, the low nibble (scale) and high nibble (min) of {@code scales[j+4]} with
 * the top two bits of {@code scales[j-4]} (scale) and {@code scales[j]} (min) above them.
 */
public final class KQuants {
    private KQuants() {
    }

    /** Values per super-block. */
    public static final int QK_K = 256;

    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Whether the dtype is one of the K-quants this class decodes. */
    public static boolean isKQuant(DType dtype) {
        return dtype == DType.Q4_K || dtype == DType.Q5_K || dtype == DType.Q6_K;
    }

    /** Decodes {@code cols} values (a multiple of 256) of {@code dtype} at byte {@code off} into out[o, o + cols). */
    public static void dequantizeRow(DType dtype, MemorySegment w, long off, int cols, float[] out, int o) {
        if (cols % QK_K != 0) {
            throw new IllegalArgumentException(dtype + " rows hold multiples of " + QK_K + " values, got " + cols);
        }
        int blocks = cols / QK_K;
        long bytes = dtype.blockBytes();
        for (int b = 0; b < blocks; b++) {
            long blk = off + b * bytes;
            int y = o + b * QK_K;
            switch (dtype) {
                case Q4_K -> q4K(w, blk, out, y);
                case Q5_K -> q5K(w, blk, out, y);
                case Q6_K -> q6K(w, blk, out, y);
                default -> throw new IllegalArgumentException(dtype + " is not a K-quant");
            }
        }
    }

    /** The 6-bit scale of sub-block j (0..7) of the 12 scale bytes at {@code s}. */
    public static int scaleK4(MemorySegment w, long s, int j) {
        if (j < 4) {
            return u8(w, s + j) & 63;
        }
        return (u8(w, s + j + 4) & 0xF) | ((u8(w, s + j - 4) >> 6) << 4);
    }

    /** The 6-bit min of sub-block j (0..7) of the 12 scale bytes at {@code s}. */
    public static int minK4(MemorySegment w, long s, int j) {
        if (j < 4) {
            return u8(w, s + j + 4) & 63;
        }
        return (u8(w, s + j + 4) >> 4) | ((u8(w, s + j) >> 6) << 4);
    }

    public static float f16(MemorySegment w, long off) {
        return Float.float16ToFloat(w.get(I16_LE, off));
    }

    static int u8(MemorySegment w, long off) {
        return w.get(ValueLayout.JAVA_BYTE, off) & 0xFF;
    }

    private static void q4K(MemorySegment w, long blk, float[] out, int y) {
        float d = f16(w, blk);
        float dmin = f16(w, blk + 2);
        long sc = blk + 4;
        long qs = blk + 16;
        for (int j = 0; j < 4; j++) {
            float d1 = d * scaleK4(w, sc, 2 * j);
            float m1 = dmin * minK4(w, sc, 2 * j);
            float d2 = d * scaleK4(w, sc, 2 * j + 1);
            float m2 = dmin * minK4(w, sc, 2 * j + 1);
            for (int l = 0; l < 32; l++) {
                int q = u8(w, qs + 32L * j + l);
                out[y + 64 * j + l] = d1 * (q & 0xF) - m1;
                out[y + 64 * j + 32 + l] = d2 * (q >> 4) - m2;
            }
        }
    }

    private static void q5K(MemorySegment w, long blk, float[] out, int y) {
        float d = f16(w, blk);
        float dmin = f16(w, blk + 2);
        long sc = blk + 4;
        long qh = blk + 16;
        long qs = blk + 48;
        for (int j = 0; j < 4; j++) {
            float d1 = d * scaleK4(w, sc, 2 * j);
            float m1 = dmin * minK4(w, sc, 2 * j);
            float d2 = d * scaleK4(w, sc, 2 * j + 1);
            float m2 = dmin * minK4(w, sc, 2 * j + 1);
            for (int l = 0; l < 32; l++) {
                int q = u8(w, qs + 32L * j + l);
                int h = u8(w, qh + l);
                out[y + 64 * j + l] = d1 * ((q & 0xF) + (((h >> (2 * j)) & 1) << 4)) - m1;
                out[y + 64 * j + 32 + l] = d2 * ((q >> 4) + (((h >> (2 * j + 1)) & 1) << 4)) - m2;
            }
        }
    }

    private static void q6K(MemorySegment w, long blk, float[] out, int y) {
        long ql = blk;
        long qh = blk + 128;
        long sc = blk + 192;
        float d = f16(w, blk + 208);
        for (int n = 0; n < 2; n++) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int low0 = u8(w, ql + 64L * n + l);
                int low1 = u8(w, ql + 64L * n + 32 + l);
                int h = u8(w, qh + 32L * n + l);
                int q1 = ((low0 & 0xF) | ((h & 3) << 4)) - 32;
                int q2 = ((low1 & 0xF) | (((h >> 2) & 3) << 4)) - 32;
                int q3 = ((low0 >> 4) | (((h >> 4) & 3) << 4)) - 32;
                int q4 = ((low1 >> 4) | (((h >> 6) & 3) << 4)) - 32;
                out[y + 128 * n + l] = d * w.get(ValueLayout.JAVA_BYTE, sc + 8L * n + is) * q1;
                out[y + 128 * n + 32 + l] = d * w.get(ValueLayout.JAVA_BYTE, sc + 8L * n + is + 2) * q2;
                out[y + 128 * n + 64 + l] = d * w.get(ValueLayout.JAVA_BYTE, sc + 8L * n + is + 4) * q3;
                out[y + 128 * n + 96 + l] = d * w.get(ValueLayout.JAVA_BYTE, sc + 8L * n + is + 6) * q4;
            }
        }
    }
}
