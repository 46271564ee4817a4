package ai.k2j.kernels.cpu;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.KQuants;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Matrix kernels over ggml's K-quant rows (Q4_K, Q5_K, Q6_K: super-blocks of 256 values, layouts in
 * {@link KQuants}) computing on the packed form.
 *
 * <p>Every dot product is one float32 computation over the exactly decoded weights (the values ggml's reference
 * dequantizer gives): one vector accumulator, {@code acc = w·x + acc} fused over full vectors in column order,
 * then the lanes summed in a fixed order ({@link #sumLanes}). Decode (one token) decodes each weight vector in
 * registers: bytes widened to ints, nibbles (and Q5_K's / Q6_K's high bits) masked in, converted to float, then
 * {@code (d·scale)·q − dmin·min} (Q4_K/Q5_K) or {@code (d·scale)·(q − 32)} (Q6_K) with the per-sub-block factors
 * computed in scalar float32 as ggml does. Many tokens (prefill) decode a block of rows into scratch the same way
 * ({@link #decodeRow}) and reuse each weight vector for up to four tokens. Both give the same bits for
 * every (row, token): the result does not depend on the batch, the thread count or how rows are split.
 */
final class KQuantKernels {
    private KQuantKernels() {
    }

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    /** One byte per float lane; the register kernels need at least 64-bit byte vectors (L ≥ 8). */
    static final boolean IN_REGISTERS = L >= 8 && L <= 16;
    static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * L)));
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
    /** Tokens sharing one decoded weight vector in the prefill kernel. */
    static final int TOKENS = 4;

    /**
     * Rows [0, count) of K-quant rows (row r at {@code base + r·rowBytes}) times n token rows of x (row stride
     * cols) into {@code out[t·outStride + outRow + r]}. {@code scratch} holds at least 4·cols + 2·L floats.
     */
    static void rows(DType dtype, MemorySegment w, long base, long rowBytes, int count, int cols,
                     float[] x, int n, float[] out, int outRow, int outStride, float[] scratch) {
        int lanes = scratch.length - L;
        if (n == 1 && IN_REGISTERS) {
            for (int r = 0; r < count; r++) {
                long off = base + r * rowBytes;
                float s = switch (dtype) {
                    case Q4_K -> dotQ4K(w, off, cols, x, 0, scratch, lanes);
                    case Q5_K -> dotQ5K(w, off, cols, x, 0, scratch, lanes);
                    case Q6_K -> dotQ6K(w, off, cols, x, 0, scratch, lanes);
                    default -> throw new IllegalStateException("not a K-quant: " + dtype);
                };
                out[outRow + r] = s;
            }
            return;
        }
        int block = Math.max(1, Math.min(count, (lanes - L) / cols));
        for (int r0 = 0; r0 < count; r0 += block) {
            int k = Math.min(block, count - r0);
            for (int i = 0; i < k; i++) {
                decodeRow(dtype, w, base + (r0 + i) * rowBytes, cols, scratch, i * cols);
            }
            for (int i = 0; i < k; i++) {
                for (int t = 0; t < n; t += TOKENS) {
                    dotTokens(scratch, i * cols, cols, x, t, Math.min(TOKENS, n - t), out,
                            t * outStride + outRow + r0 + i, outStride, scratch, lanes);
                }
            }
        }
    }

    /** One row decoded into out[o, o + cols): vectorized where the register kernels are, the same values. */
    static void decodeRow(DType dtype, MemorySegment w, long off, int cols, float[] out, int o) {
        if (!IN_REGISTERS) {
            KQuants.dequantizeRow(dtype, w, off, cols, out, o);
            return;
        }
        switch (dtype) {
            case Q4_K, Q5_K -> decodeQ45K(dtype == DType.Q5_K, w, off, cols, out, o);
            case Q6_K -> decodeQ6K(w, off, cols, out, o);
            default -> throw new IllegalStateException("not a K-quant: " + dtype);
        }
    }

    /** Q4_K (or Q5_K with its high bits) rows decoded as {@link #dotQ4K} / {@link #dotQ5K} decode them. */
    static void decodeQ45K(boolean five, MemorySegment w, long off, int cols, float[] out, int o) {
        long bytes = five ? 176 : 144;
        for (int b = 0; b < cols / 256; b++) {
            long blk = off + bytes * b;
            float d = f16(w, blk);
            float dmin = f16(w, blk + 2);
            long sc = blk + 4;
            long qh = blk + 16;
            long qs = blk + (five ? 48 : 16);
            int ob = o + 256 * b;
            for (int s = 0; s < 8; s++) {
                float ds = d * KQuants.scaleK4(w, sc, s);
                float ms = dmin * KQuants.minK4(w, sc, s);
                int shift = 4 * (s & 1);
                long q = qs + 32L * (s >> 1);
                for (int l = 0; l < 32; l += L) {
                    IntVector v = (IntVector) ByteVector.fromMemorySegment(B, w, q + l, LE)
                            .convertShape(VectorOperators.B2I, I, 0);
                    IntVector qv = v.lanewise(VectorOperators.ASHR, shift).and(0xF);
                    if (five) {
                        IntVector h = (IntVector) ByteVector.fromMemorySegment(B, w, qh + l, LE)
                                .convertShape(VectorOperators.B2I, I, 0);
                        qv = qv.or(h.lanewise(VectorOperators.ASHR, s).and(1).lanewise(VectorOperators.LSHL, 4));
                    }
                    FloatVector wv = (FloatVector) qv.convert(VectorOperators.I2F, 0);
                    wv.mul(ds).sub(ms).intoArray(out, ob + 32 * s + l);
                }
            }
        }
    }

    /** Q6_K rows decoded as {@link #dotQ6K} decodes them. */
    static void decodeQ6K(MemorySegment w, long off, int cols, float[] out, int o) {
        for (int b = 0; b < cols / 256; b++) {
            long blk = off + 210L * b;
            float d = f16(w, blk + 208);
            int ob = o + 256 * b;
            for (int n = 0; n < 2; n++) {
                long ql = blk + 64L * n;
                long qh = blk + 128 + 32L * n;
                long sc = blk + 192 + 8L * n;
                for (int quarter = 0; quarter < 4; quarter++) {
                    long lowAt = ql + 32L * (quarter & 1);
                    int lowShift = 4 * (quarter >> 1);
                    int highShift = 2 * quarter;
                    for (int l = 0; l < 32; l += L) {
                        float ds = d * w.get(ValueLayout.JAVA_BYTE, sc + l / 16 + 2 * quarter);
                        IntVector lo = (IntVector) ByteVector.fromMemorySegment(B, w, lowAt + l, LE)
                                .convertShape(VectorOperators.B2I, I, 0);
                        IntVector hi = (IntVector) ByteVector.fromMemorySegment(B, w, qh + l, LE)
                                .convertShape(VectorOperators.B2I, I, 0);
                        IntVector qv = lo.lanewise(VectorOperators.ASHR, lowShift).and(0xF)
                                .or(hi.lanewise(VectorOperators.ASHR, highShift).and(3).lanewise(VectorOperators.LSHL, 4))
                                .sub(32);
                        ((FloatVector) qv.convert(VectorOperators.I2F, 0)).mul(ds)
                                .intoArray(out, ob + 128 * n + 32 * quarter + l);
                    }
                }
            }
        }
    }

    /** Sum of the L lanes of the vector stored at v[o, o + L): pairwise, in a fixed order. */
    static float sumLanes(float[] v, int o) {
        for (int width = L / 2; width >= 1; width >>= 1) {
            for (int i = 0; i < width; i++) {
                v[o + i] = v[o + i] + v[o + i + width];
            }
        }
        return v[o];
    }

    /** One decoded row (w[wOff, +cols)) times up to four tokens' x rows into out[o + k·stride]. */
    static void dotTokens(float[] w, int wOff, int cols, float[] x, int t0, int tokens, float[] out, int o,
                          int stride, float[] scratch, int lanes) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        int x0 = t0 * cols;
        int x1 = (t0 + Math.min(1, tokens - 1)) * cols; // missing tokens repeat the first; not stored
        int x2 = (t0 + Math.min(2, tokens - 1)) * cols;
        int x3 = (t0 + Math.min(3, tokens - 1)) * cols;
        for (int c = 0; c < cols; c += L) {
            FloatVector wv = FloatVector.fromArray(F, w, wOff + c);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + c), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x1 + c), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x2 + c), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x3 + c), a3);
        }
        a0.intoArray(scratch, lanes);
        out[o] = sumLanes(scratch, lanes);
        if (tokens > 1) {
            a1.intoArray(scratch, lanes);
            out[o + stride] = sumLanes(scratch, lanes);
        }
        if (tokens > 2) {
            a2.intoArray(scratch, lanes);
            out[o + 2 * stride] = sumLanes(scratch, lanes);
        }
        if (tokens > 3) {
            a3.intoArray(scratch, lanes);
            out[o + 3 * stride] = sumLanes(scratch, lanes);
        }
    }

    private static float f16(MemorySegment w, long off) {
        return Float.float16ToFloat(w.get(I16_LE, off));
    }

    /** One Q4_K row · x[xOff, +cols), decoded in registers. */
    static float dotQ4K(MemorySegment w, long off, int cols, float[] x, int xOff, float[] scratch, int lanes) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < cols / 256; b++) {
            long blk = off + 144L * b;
            float d = f16(w, blk);
            float dmin = f16(w, blk + 2);
            long sc = blk + 4;
            long qs = blk + 16;
            int xb = xOff + 256 * b;
            for (int s = 0; s < 8; s++) {
                float ds = d * KQuants.scaleK4(w, sc, s);
                float ms = dmin * KQuants.minK4(w, sc, s);
                int shift = 4 * (s & 1);
                long q = qs + 32L * (s >> 1);
                for (int l = 0; l < 32; l += L) {
                    IntVector v = (IntVector) ByteVector.fromMemorySegment(B, w, q + l, LE)
                            .convertShape(VectorOperators.B2I, I, 0);
                    FloatVector wv = (FloatVector) v.lanewise(VectorOperators.ASHR, shift).and(0xF)
                            .convert(VectorOperators.I2F, 0);
                    wv = wv.mul(ds).sub(ms);
                    acc = wv.fma(FloatVector.fromArray(F, x, xb + 32 * s + l), acc);
                }
            }
        }
        acc.intoArray(scratch, lanes);
        return sumLanes(scratch, lanes);
    }

    /** One Q5_K row · x[xOff, +cols), decoded in registers. */
    static float dotQ5K(MemorySegment w, long off, int cols, float[] x, int xOff, float[] scratch, int lanes) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < cols / 256; b++) {
            long blk = off + 176L * b;
            float d = f16(w, blk);
            float dmin = f16(w, blk + 2);
            long sc = blk + 4;
            long qh = blk + 16;
            long qs = blk + 48;
            int xb = xOff + 256 * b;
            for (int s = 0; s < 8; s++) {
                float ds = d * KQuants.scaleK4(w, sc, s);
                float ms = dmin * KQuants.minK4(w, sc, s);
                int shift = 4 * (s & 1);
                long q = qs + 32L * (s >> 1);
                for (int l = 0; l < 32; l += L) {
                    IntVector v = (IntVector) ByteVector.fromMemorySegment(B, w, q + l, LE)
                            .convertShape(VectorOperators.B2I, I, 0);
                    IntVector h = (IntVector) ByteVector.fromMemorySegment(B, w, qh + l, LE)
                            .convertShape(VectorOperators.B2I, I, 0);
                    IntVector qv = v.lanewise(VectorOperators.ASHR, shift).and(0xF)
                            .or(h.lanewise(VectorOperators.ASHR, s).and(1).lanewise(VectorOperators.LSHL, 4));
                    FloatVector wv = (FloatVector) qv.convert(VectorOperators.I2F, 0);
                    wv = wv.mul(ds).sub(ms);
                    acc = wv.fma(FloatVector.fromArray(F, x, xb + 32 * s + l), acc);
                }
            }
        }
        acc.intoArray(scratch, lanes);
        return sumLanes(scratch, lanes);
    }

    /** One Q6_K row · x[xOff, +cols), decoded in registers. */
    static float dotQ6K(MemorySegment w, long off, int cols, float[] x, int xOff, float[] scratch, int lanes) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < cols / 256; b++) {
            long blk = off + 210L * b;
            float d = f16(w, blk + 208);
            int xb = xOff + 256 * b;
            for (int n = 0; n < 2; n++) {
                long ql = blk + 64L * n;
                long qh = blk + 128 + 32L * n;
                long sc = blk + 192 + 8L * n;
                for (int quarter = 0; quarter < 4; quarter++) {
                    long lowAt = ql + 32L * (quarter & 1);
                    int lowShift = 4 * (quarter >> 1);
                    int highShift = 2 * quarter;
                    for (int l = 0; l < 32; l += L) {
                        // one scale per 16 values, and L ≤ 16 here, so one per vector
                        float ds = d * w.get(ValueLayout.JAVA_BYTE, sc + l / 16 + 2 * quarter);
                        IntVector lo = (IntVector) ByteVector.fromMemorySegment(B, w, lowAt + l, LE)
                                .convertShape(VectorOperators.B2I, I, 0);
                        IntVector hi = (IntVector) ByteVector.fromMemorySegment(B, w, qh + l, LE)
                                .convertShape(VectorOperators.B2I, I, 0);
                        IntVector qv = lo.lanewise(VectorOperators.ASHR, lowShift).and(0xF)
                                .or(hi.lanewise(VectorOperators.ASHR, highShift).and(3).lanewise(VectorOperators.LSHL, 4))
                                .sub(32);
                        FloatVector wv = ((FloatVector) qv.convert(VectorOperators.I2F, 0)).mul(ds);
                        acc = wv.fma(FloatVector.fromArray(F, x, xb + 128 * n + 32 * quarter + l), acc);
                    }
                }
            }
        }
        acc.intoArray(scratch, lanes);
        return sumLanes(scratch, lanes);
    }
}
