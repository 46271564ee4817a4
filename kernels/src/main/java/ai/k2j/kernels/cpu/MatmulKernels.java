package ai.k2j.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Matrix kernels over weight rows that live in (normally memory-mapped) segments, one set per dtype. The three
 * sets are the same code with a different element loader, written out so that every inner loop is monomorphic.
 *
 * <p>Every dot product, whichever kernel computes it (4 rows × 1 token for decode, 1 row × 8 or 4 tokens for
 * prefill, 1 × 1 for leftovers), runs the same float32 operations in the same order: one vector accumulator,
 * {@code acc = w·x + acc} (fused) over full vectors, lanes summed 0..L-1, then the tail elements fused in order.
 * So out[t, r] depends only on row r and token t's x row: not on the batch size, the thread count or how rows
 * are split. Lanes are summed by hand because {@code reduceLanes(ADD)} may use a different order in compiled
 * and interpreted code.
 *
 * <p>Each token-block kernel holds all its accumulators in registers and decodes a weight vector once for all its
 * tokens; {@link #chunkRows} keeps a block of rows cache-resident while the token blocks pass over it.
 */
final class MatmulKernels {
    private MatmulKernels() {
    }

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    /** Half-width shorts that widen into one float vector. */
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    static final int L = F.length();

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    /** Weight bytes a row block may span during a multi-token pass: about half a typical L2. */
    static final long CHUNK_BYTES = 256 * 1024;

    static int chunkRows(long rowBytes, int count) {
        return (int) Math.max(1, Math.min(count, CHUNK_BYTES / rowBytes));
    }

    /** Sum of the lanes in lane order (a fixed order; see the class comment). */
    static float sumLanes(FloatVector v) {
        float s = v.lane(0);
        for (int i = 1; i < L; i++) {
            s += v.lane(i);
        }
        return s;
    }

    // ------------------------------------------------------------------------------------------------ loaders

    static FloatVector loadF32(MemorySegment w, long off) {
        return FloatVector.fromMemorySegment(F, w, off, LE);
    }

    static float atF32(MemorySegment w, long off) {
        return w.get(F32_LE, off);
    }

    /** bf16 is the top half of a float32: widen the shorts to ints and shift them into place. */
    static FloatVector loadBF16(MemorySegment w, long off) {
        IntVector h = (IntVector) ShortVector.fromMemorySegment(S, w, off, LE).convertShape(VectorOperators.S2I, I, 0);
        return h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    static float atBF16(MemorySegment w, long off) {
        return Float.intBitsToFloat(w.get(I16_LE, off) << 16);
    }

    /**
     * IEEE half → float without a hardware conversion (JDK 25 has no vector one): move exponent and mantissa into
     * float position and multiply by 2^112 to rebias the exponent, which also turns half subnormals into the right
     * normal floats exactly; exponent 31 (inf/NaN) gets the float's all-ones exponent instead; then the sign.
     * Exact for every one of the 65536 inputs (see the tests).
     */
    static FloatVector loadF16(MemorySegment w, long off) {
        IntVector h = (IntVector) ShortVector.fromMemorySegment(S, w, off, LE).convertShape(VectorOperators.S2I, I, 0);
        IntVector em = h.and(0x7FFF);
        IntVector shifted = em.lanewise(VectorOperators.LSHL, 13);
        IntVector finite = shifted.reinterpretAsFloats().mul(0x1p112f).reinterpretAsInts();
        VectorMask<Integer> infOrNan = em.compare(VectorOperators.GE, 0x7C00);
        IntVector magnitude = finite.blend(shifted.or(0x7F80_0000), infOrNan);
        return magnitude.or(h.and(0x8000_0000)).reinterpretAsFloats(); // h is sign-extended: bit 31 = half's sign
    }

    static float atF16(MemorySegment w, long off) {
        return Float.float16ToFloat(w.get(I16_LE, off));
    }
    // ------------------------------------------------------------------------------------------------ F32

    /** Rows [0, count) of a F32 segment (row r at {@code base + r·rowBytes}) times n token rows of x into out. */
    static void rowsF32(MemorySegment w, long base, long rowBytes, int count, int cols,
                      float[] x, int n, float[] out, int outRow, int outStride) {
        if (n == 1) {
            matvecF32(w, base, rowBytes, count, cols, x, 0, out, outRow);
            return;
        }
        int chunk = chunkRows(rowBytes, count);
        for (int c0 = 0; c0 < count; c0 += chunk) {
            int c1 = Math.min(count, c0 + chunk);
            int t = 0;
            for (; t + 8 <= n; t += 8) {
                for (int r = c0; r < c1; r++) {
                    dot8TokensF32(w, base + r * rowBytes, cols, x, t * cols, cols, out, t * outStride + outRow + r, outStride);
                }
            }
            for (; t + 4 <= n; t += 4) {
                for (int r = c0; r < c1; r++) {
                    dot4TokensF32(w, base + r * rowBytes, cols, x, t * cols, cols, out, t * outStride + outRow + r, outStride);
                }
            }
            for (; t < n; t++) {
                matvecF32(w, base + c0 * rowBytes, rowBytes, c1 - c0, cols, x, t * cols, out, t * outStride + outRow + c0);
            }
        }
    }

    /** out[o + r] = row r · x[xOff, xOff + cols) for r in [0, count), four rows per pass. */
    static void matvecF32(MemorySegment w, long base, long rowBytes, int count, int cols,
                        float[] x, int xOff, float[] out, int o) {
        int r = 0;
        for (; r + 4 <= count; r += 4) {
            dot4RowsF32(w, base + r * rowBytes, rowBytes, cols, x, xOff, out, o + r);
        }
        for (; r < count; r++) {
            out[o + r] = dotF32(w, base + r * rowBytes, cols, x, xOff);
        }
    }

    /** One row at {@code off} · x[xOff, xOff + cols). */
    static float dotF32(MemorySegment w, long off, int cols, float[] x, int xOff) {
        FloatVector a = FloatVector.zero(F);
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            a = loadF32(w, off + 4L * c).fma(FloatVector.fromArray(F, x, xOff + c), a);
        }
        float s = sumLanes(a);
        for (int c = upper; c < cols; c++) {
            s = Math.fma(atF32(w, off + 4L * c), x[xOff + c], s);
        }
        return s;
    }

    /** Four consecutive rows starting at {@code off} · one x row, into out[o, o + 4). */
    static void dot4RowsF32(MemorySegment w, long off, long rowBytes, int cols, float[] x, int xOff, float[] out, int o) {
        long o0 = off;
        long o1 = o0 + rowBytes;
        long o2 = o1 + rowBytes;
        long o3 = o2 + rowBytes;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xOff + c);
            long b = 4L * c;
            a0 = loadF32(w, o0 + b).fma(xv, a0);
            a1 = loadF32(w, o1 + b).fma(xv, a1);
            a2 = loadF32(w, o2 + b).fma(xv, a2);
            a3 = loadF32(w, o3 + b).fma(xv, a3);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        for (int c = upper; c < cols; c++) {
            float xc = x[xOff + c];
            long b = 4L * c;
            s0 = Math.fma(atF32(w, o0 + b), xc, s0);
            s1 = Math.fma(atF32(w, o1 + b), xc, s1);
            s2 = Math.fma(atF32(w, o2 + b), xc, s2);
            s3 = Math.fma(atF32(w, o3 + b), xc, s3);
        }
        out[o] = s0;
        out[o + 1] = s1;
        out[o + 2] = s2;
        out[o + 3] = s3;
    }

    /** One row · four x rows (xOff + k·xStride) into out[o + k·oStride]: the row is decoded once for 4 tokens. */
    static void dot4TokensF32(MemorySegment w, long off, int cols, float[] x, int xOff, int xStride,
                            float[] out, int o, int oStride) {
        int x0 = xOff;
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector wv = loadF32(w, off + 4L * c);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + c), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x1 + c), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x2 + c), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x3 + c), a3);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        for (int c = upper; c < cols; c++) {
            float wc = atF32(w, off + 4L * c);
            s0 = Math.fma(wc, x[x0 + c], s0);
            s1 = Math.fma(wc, x[x1 + c], s1);
            s2 = Math.fma(wc, x[x2 + c], s2);
            s3 = Math.fma(wc, x[x3 + c], s3);
        }
        out[o] = s0;
        out[o + oStride] = s1;
        out[o + 2 * oStride] = s2;
        out[o + 3 * oStride] = s3;
    }

    /** One row · eight x rows: eight accumulators stay in registers while the row streams once. */
    static void dot8TokensF32(MemorySegment w, long off, int cols, float[] x, int xOff, int xStride,
                            float[] out, int o, int oStride) {
        int x0 = xOff;
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        int x4 = x3 + xStride;
        int x5 = x4 + xStride;
        int x6 = x5 + xStride;
        int x7 = x6 + xStride;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        FloatVector a4 = a0;
        FloatVector a5 = a0;
        FloatVector a6 = a0;
        FloatVector a7 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector wv = loadF32(w, off + 4L * c);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + c), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x1 + c), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x2 + c), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x3 + c), a3);
            a4 = wv.fma(FloatVector.fromArray(F, x, x4 + c), a4);
            a5 = wv.fma(FloatVector.fromArray(F, x, x5 + c), a5);
            a6 = wv.fma(FloatVector.fromArray(F, x, x6 + c), a6);
            a7 = wv.fma(FloatVector.fromArray(F, x, x7 + c), a7);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        float s4 = sumLanes(a4);
        float s5 = sumLanes(a5);
        float s6 = sumLanes(a6);
        float s7 = sumLanes(a7);
        for (int c = upper; c < cols; c++) {
            float wc = atF32(w, off + 4L * c);
            s0 = Math.fma(wc, x[x0 + c], s0);
            s1 = Math.fma(wc, x[x1 + c], s1);
            s2 = Math.fma(wc, x[x2 + c], s2);
            s3 = Math.fma(wc, x[x3 + c], s3);
            s4 = Math.fma(wc, x[x4 + c], s4);
            s5 = Math.fma(wc, x[x5 + c], s5);
            s6 = Math.fma(wc, x[x6 + c], s6);
            s7 = Math.fma(wc, x[x7 + c], s7);
        }
        out[o] = s0;
        out[o + oStride] = s1;
        out[o + 2 * oStride] = s2;
        out[o + 3 * oStride] = s3;
        out[o + 4 * oStride] = s4;
        out[o + 5 * oStride] = s5;
        out[o + 6 * oStride] = s6;
        out[o + 7 * oStride] = s7;
    }

    /** Dequantizes one row (cols values at {@code off}) into out[o, o + cols). */
    static void dequantizeF32(MemorySegment w, long off, int cols, float[] out, int o) {
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            loadF32(w, off + 4L * c).intoArray(out, o + c);
        }
        for (int c = upper; c < cols; c++) {
            out[o + c] = atF32(w, off + 4L * c);
        }
    }
    // ------------------------------------------------------------------------------------------------ BF16

    /** Rows [0, count) of a BF16 segment (row r at {@code base + r·rowBytes}) times n token rows of x into out. */
    static void rowsBF16(MemorySegment w, long base, long rowBytes, int count, int cols,
                      float[] x, int n, float[] out, int outRow, int outStride) {
        if (n == 1) {
            matvecBF16(w, base, rowBytes, count, cols, x, 0, out, outRow);
            return;
        }
        int chunk = chunkRows(rowBytes, count);
        for (int c0 = 0; c0 < count; c0 += chunk) {
            int c1 = Math.min(count, c0 + chunk);
            int t = 0;
            for (; t + 8 <= n; t += 8) {
                for (int r = c0; r < c1; r++) {
                    dot8TokensBF16(w, base + r * rowBytes, cols, x, t * cols, cols, out, t * outStride + outRow + r, outStride);
                }
            }
            for (; t + 4 <= n; t += 4) {
                for (int r = c0; r < c1; r++) {
                    dot4TokensBF16(w, base + r * rowBytes, cols, x, t * cols, cols, out, t * outStride + outRow + r, outStride);
                }
            }
            for (; t < n; t++) {
                matvecBF16(w, base + c0 * rowBytes, rowBytes, c1 - c0, cols, x, t * cols, out, t * outStride + outRow + c0);
            }
        }
    }

    /** out[o + r] = row r · x[xOff, xOff + cols) for r in [0, count), four rows per pass. */
    static void matvecBF16(MemorySegment w, long base, long rowBytes, int count, int cols,
                        float[] x, int xOff, float[] out, int o) {
        int r = 0;
        for (; r + 4 <= count; r += 4) {
            dot4RowsBF16(w, base + r * rowBytes, rowBytes, cols, x, xOff, out, o + r);
        }
        for (; r < count; r++) {
            out[o + r] = dotBF16(w, base + r * rowBytes, cols, x, xOff);
        }
    }

    /** One row at {@code off} · x[xOff, xOff + cols). */
    static float dotBF16(MemorySegment w, long off, int cols, float[] x, int xOff) {
        FloatVector a = FloatVector.zero(F);
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            a = loadBF16(w, off + 2L * c).fma(FloatVector.fromArray(F, x, xOff + c), a);
        }
        float s = sumLanes(a);
        for (int c = upper; c < cols; c++) {
            s = Math.fma(atBF16(w, off + 2L * c), x[xOff + c], s);
        }
        return s;
    }

    /** Four consecutive rows starting at {@code off} · one x row, into out[o, o + 4). */
    static void dot4RowsBF16(MemorySegment w, long off, long rowBytes, int cols, float[] x, int xOff, float[] out, int o) {
        long o0 = off;
        long o1 = o0 + rowBytes;
        long o2 = o1 + rowBytes;
        long o3 = o2 + rowBytes;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xOff + c);
            long b = 2L * c;
            a0 = loadBF16(w, o0 + b).fma(xv, a0);
            a1 = loadBF16(w, o1 + b).fma(xv, a1);
            a2 = loadBF16(w, o2 + b).fma(xv, a2);
            a3 = loadBF16(w, o3 + b).fma(xv, a3);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        for (int c = upper; c < cols; c++) {
            float xc = x[xOff + c];
            long b = 2L * c;
            s0 = Math.fma(atBF16(w, o0 + b), xc, s0);
            s1 = Math.fma(atBF16(w, o1 + b), xc, s1);
            s2 = Math.fma(atBF16(w, o2 + b), xc, s2);
            s3 = Math.fma(atBF16(w, o3 + b), xc, s3);
        }
        out[o] = s0;
        out[o + 1] = s1;
        out[o + 2] = s2;
        out[o + 3] = s3;
    }

    /** One row · four x rows (xOff + k·xStride) into out[o + k·oStride]: the row is decoded once for 4 tokens. */
    static void dot4TokensBF16(MemorySegment w, long off, int cols, float[] x, int xOff, int xStride,
                            float[] out, int o, int oStride) {
        int x0 = xOff;
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector wv = loadBF16(w, off + 2L * c);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + c), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x1 + c), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x2 + c), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x3 + c), a3);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        for (int c = upper; c < cols; c++) {
            float wc = atBF16(w, off + 2L * c);
            s0 = Math.fma(wc, x[x0 + c], s0);
            s1 = Math.fma(wc, x[x1 + c], s1);
            s2 = Math.fma(wc, x[x2 + c], s2);
            s3 = Math.fma(wc, x[x3 + c], s3);
        }
        out[o] = s0;
        out[o + oStride] = s1;
        out[o + 2 * oStride] = s2;
        out[o + 3 * oStride] = s3;
    }

    /** One row · eight x rows: eight accumulators stay in registers while the row streams once. */
    static void dot8TokensBF16(MemorySegment w, long off, int cols, float[] x, int xOff, int xStride,
                            float[] out, int o, int oStride) {
        int x0 = xOff;
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        int x4 = x3 + xStride;
        int x5 = x4 + xStride;
        int x6 = x5 + xStride;
        int x7 = x6 + xStride;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        FloatVector a4 = a0;
        FloatVector a5 = a0;
        FloatVector a6 = a0;
        FloatVector a7 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector wv = loadBF16(w, off + 2L * c);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + c), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x1 + c), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x2 + c), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x3 + c), a3);
            a4 = wv.fma(FloatVector.fromArray(F, x, x4 + c), a4);
            a5 = wv.fma(FloatVector.fromArray(F, x, x5 + c), a5);
            a6 = wv.fma(FloatVector.fromArray(F, x, x6 + c), a6);
            a7 = wv.fma(FloatVector.fromArray(F, x, x7 + c), a7);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        float s4 = sumLanes(a4);
        float s5 = sumLanes(a5);
        float s6 = sumLanes(a6);
        float s7 = sumLanes(a7);
        for (int c = upper; c < cols; c++) {
            float wc = atBF16(w, off + 2L * c);
            s0 = Math.fma(wc, x[x0 + c], s0);
            s1 = Math.fma(wc, x[x1 + c], s1);
            s2 = Math.fma(wc, x[x2 + c], s2);
            s3 = Math.fma(wc, x[x3 + c], s3);
            s4 = Math.fma(wc, x[x4 + c], s4);
            s5 = Math.fma(wc, x[x5 + c], s5);
            s6 = Math.fma(wc, x[x6 + c], s6);
            s7 = Math.fma(wc, x[x7 + c], s7);
        }
        out[o] = s0;
        out[o + oStride] = s1;
        out[o + 2 * oStride] = s2;
        out[o + 3 * oStride] = s3;
        out[o + 4 * oStride] = s4;
        out[o + 5 * oStride] = s5;
        out[o + 6 * oStride] = s6;
        out[o + 7 * oStride] = s7;
    }

    /** Dequantizes one row (cols values at {@code off}) into out[o, o + cols). */
    static void dequantizeBF16(MemorySegment w, long off, int cols, float[] out, int o) {
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            loadBF16(w, off + 2L * c).intoArray(out, o + c);
        }
        for (int c = upper; c < cols; c++) {
            out[o + c] = atBF16(w, off + 2L * c);
        }
    }
    // ------------------------------------------------------------------------------------------------ F16

    /** Rows [0, count) of a F16 segment (row r at {@code base + r·rowBytes}) times n token rows of x into out. */
    static void rowsF16(MemorySegment w, long base, long rowBytes, int count, int cols,
                      float[] x, int n, float[] out, int outRow, int outStride) {
        if (n == 1) {
            matvecF16(w, base, rowBytes, count, cols, x, 0, out, outRow);
            return;
        }
        int chunk = chunkRows(rowBytes, count);
        for (int c0 = 0; c0 < count; c0 += chunk) {
            int c1 = Math.min(count, c0 + chunk);
            int t = 0;
            for (; t + 8 <= n; t += 8) {
                for (int r = c0; r < c1; r++) {
                    dot8TokensF16(w, base + r * rowBytes, cols, x, t * cols, cols, out, t * outStride + outRow + r, outStride);
                }
            }
            for (; t + 4 <= n; t += 4) {
                for (int r = c0; r < c1; r++) {
                    dot4TokensF16(w, base + r * rowBytes, cols, x, t * cols, cols, out, t * outStride + outRow + r, outStride);
                }
            }
            for (; t < n; t++) {
                matvecF16(w, base + c0 * rowBytes, rowBytes, c1 - c0, cols, x, t * cols, out, t * outStride + outRow + c0);
            }
        }
    }

    /** out[o + r] = row r · x[xOff, xOff + cols) for r in [0, count), four rows per pass. */
    static void matvecF16(MemorySegment w, long base, long rowBytes, int count, int cols,
                        float[] x, int xOff, float[] out, int o) {
        int r = 0;
        for (; r + 4 <= count; r += 4) {
            dot4RowsF16(w, base + r * rowBytes, rowBytes, cols, x, xOff, out, o + r);
        }
        for (; r < count; r++) {
            out[o + r] = dotF16(w, base + r * rowBytes, cols, x, xOff);
        }
    }

    /** One row at {@code off} · x[xOff, xOff + cols). */
    static float dotF16(MemorySegment w, long off, int cols, float[] x, int xOff) {
        FloatVector a = FloatVector.zero(F);
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            a = loadF16(w, off + 2L * c).fma(FloatVector.fromArray(F, x, xOff + c), a);
        }
        float s = sumLanes(a);
        for (int c = upper; c < cols; c++) {
            s = Math.fma(atF16(w, off + 2L * c), x[xOff + c], s);
        }
        return s;
    }

    /** Four consecutive rows starting at {@code off} · one x row, into out[o, o + 4). */
    static void dot4RowsF16(MemorySegment w, long off, long rowBytes, int cols, float[] x, int xOff, float[] out, int o) {
        long o0 = off;
        long o1 = o0 + rowBytes;
        long o2 = o1 + rowBytes;
        long o3 = o2 + rowBytes;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xOff + c);
            long b = 2L * c;
            a0 = loadF16(w, o0 + b).fma(xv, a0);
            a1 = loadF16(w, o1 + b).fma(xv, a1);
            a2 = loadF16(w, o2 + b).fma(xv, a2);
            a3 = loadF16(w, o3 + b).fma(xv, a3);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        for (int c = upper; c < cols; c++) {
            float xc = x[xOff + c];
            long b = 2L * c;
            s0 = Math.fma(atF16(w, o0 + b), xc, s0);
            s1 = Math.fma(atF16(w, o1 + b), xc, s1);
            s2 = Math.fma(atF16(w, o2 + b), xc, s2);
            s3 = Math.fma(atF16(w, o3 + b), xc, s3);
        }
        out[o] = s0;
        out[o + 1] = s1;
        out[o + 2] = s2;
        out[o + 3] = s3;
    }

    /** One row · four x rows (xOff + k·xStride) into out[o + k·oStride]: the row is decoded once for 4 tokens. */
    static void dot4TokensF16(MemorySegment w, long off, int cols, float[] x, int xOff, int xStride,
                            float[] out, int o, int oStride) {
        int x0 = xOff;
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector wv = loadF16(w, off + 2L * c);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + c), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x1 + c), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x2 + c), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x3 + c), a3);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        for (int c = upper; c < cols; c++) {
            float wc = atF16(w, off + 2L * c);
            s0 = Math.fma(wc, x[x0 + c], s0);
            s1 = Math.fma(wc, x[x1 + c], s1);
            s2 = Math.fma(wc, x[x2 + c], s2);
            s3 = Math.fma(wc, x[x3 + c], s3);
        }
        out[o] = s0;
        out[o + oStride] = s1;
        out[o + 2 * oStride] = s2;
        out[o + 3 * oStride] = s3;
    }

    /** One row · eight x rows: eight accumulators stay in registers while the row streams once. */
    static void dot8TokensF16(MemorySegment w, long off, int cols, float[] x, int xOff, int xStride,
                            float[] out, int o, int oStride) {
        int x0 = xOff;
        int x1 = x0 + xStride;
        int x2 = x1 + xStride;
        int x3 = x2 + xStride;
        int x4 = x3 + xStride;
        int x5 = x4 + xStride;
        int x6 = x5 + xStride;
        int x7 = x6 + xStride;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        FloatVector a4 = a0;
        FloatVector a5 = a0;
        FloatVector a6 = a0;
        FloatVector a7 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector wv = loadF16(w, off + 2L * c);
            a0 = wv.fma(FloatVector.fromArray(F, x, x0 + c), a0);
            a1 = wv.fma(FloatVector.fromArray(F, x, x1 + c), a1);
            a2 = wv.fma(FloatVector.fromArray(F, x, x2 + c), a2);
            a3 = wv.fma(FloatVector.fromArray(F, x, x3 + c), a3);
            a4 = wv.fma(FloatVector.fromArray(F, x, x4 + c), a4);
            a5 = wv.fma(FloatVector.fromArray(F, x, x5 + c), a5);
            a6 = wv.fma(FloatVector.fromArray(F, x, x6 + c), a6);
            a7 = wv.fma(FloatVector.fromArray(F, x, x7 + c), a7);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        float s4 = sumLanes(a4);
        float s5 = sumLanes(a5);
        float s6 = sumLanes(a6);
        float s7 = sumLanes(a7);
        for (int c = upper; c < cols; c++) {
            float wc = atF16(w, off + 2L * c);
            s0 = Math.fma(wc, x[x0 + c], s0);
            s1 = Math.fma(wc, x[x1 + c], s1);
            s2 = Math.fma(wc, x[x2 + c], s2);
            s3 = Math.fma(wc, x[x3 + c], s3);
            s4 = Math.fma(wc, x[x4 + c], s4);
            s5 = Math.fma(wc, x[x5 + c], s5);
            s6 = Math.fma(wc, x[x6 + c], s6);
            s7 = Math.fma(wc, x[x7 + c], s7);
        }
        out[o] = s0;
        out[o + oStride] = s1;
        out[o + 2 * oStride] = s2;
        out[o + 3 * oStride] = s3;
        out[o + 4 * oStride] = s4;
        out[o + 5 * oStride] = s5;
        out[o + 6 * oStride] = s6;
        out[o + 7 * oStride] = s7;
    }

    /** Dequantizes one row (cols values at {@code off}) into out[o, o + cols). */
    static void dequantizeF16(MemorySegment w, long off, int cols, float[] out, int o) {
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            loadF16(w, off + 2L * c).intoArray(out, o + c);
        }
        for (int c = upper; c < cols; c++) {
            out[o + c] = atF16(w, off + 2L * c);
        }
    }
}
