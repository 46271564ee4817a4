package ai.k2j.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Matrix kernels over weight rows that live in (normally memory-mapped) segments. F32 and BF16 have fused
 * kernels (the same code with a different element loader, written out so every inner loop is monomorphic);
 * F16 decodes rows into a float[] first (see {@link #rowsF16}).
 *
 * <p>Every dot product, whichever kernel computes it (4 rows × 1 token for decode, 1 row × 4 tokens for
 * prefill), runs the same float32 operations in the same order: one vector accumulator, {@code acc = w·x + acc}
 * (fused) over full vectors, the lanes summed in a fixed tree ({@link #sumLanes}), then the tail elements fused
 * in order. So out[t, r] depends only on row r and token t's x row: not on the batch size, the thread count or
 * how rows are split.
 *
 * <p>The token kernel keeps its accumulators in registers and decodes each weight vector once for four tokens;
 * {@link #chunkRows} keeps a block of rows cache-resident while the token blocks pass over it.
 *
 * <p>Inlining discipline: C2 stops inlining once a compilation's graph passes a node budget, and a Vector API
 * call it leaves un-inlined boxes its vectors (allocating, and 100× slower). So the 4-way kernels are compiled
 * on their own (their bytecode is larger than C2 inlines into hot callers) and handle 1–4 rows or tokens
 * themselves, leaving the drivers that call them free of vector code; F16 adds only its decode loop. The
 * allocation tests check the result.
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

    /** Lane i ← lane (i + L/2^k) mod L: the steps of a fixed pairwise lane sum. */
    private static final VectorShuffle<Float> FOLD_1 = fold(L / 2);
    private static final VectorShuffle<Float> FOLD_2 = fold(L / 4);
    private static final VectorShuffle<Float> FOLD_3 = fold(L / 8);
    private static final VectorShuffle<Float> FOLD_4 = fold(L / 16);

    private static VectorShuffle<Float> fold(int shift) {
        int s = Math.max(1, shift);
        return VectorShuffle.fromOp(F, i -> (i + s) % L);
    }

    /**
     * Sum of the lanes as a fixed pairwise tree (lane i + lane i+L/2, then +L/4, ...): plain vector adds, so the
     * same in compiled and interpreted code, unlike {@code reduceLanes(ADD)} whose order is left to the JIT.
     * A handful of nodes, so it does not crowd big kernels out of C2's inlining budget.
     */
    static float sumLanes(FloatVector v) {
        if (L > 16) {
            float s = v.lane(0);
            for (int i = 1; i < L; i++) {
                s += v.lane(i);
            }
            return s;
        }
        if (L >= 2) {
            v = v.add(v.rearrange(FOLD_1));
        }
        if (L >= 4) {
            v = v.add(v.rearrange(FOLD_2));
        }
        if (L >= 8) {
            v = v.add(v.rearrange(FOLD_3));
        }
        if (L >= 16) {
            v = v.add(v.rearrange(FOLD_4));
        }
        return v.lane(0);
    }

    /** Stores the first {@code count} of four results at out[o + k·stride]. */
    static void store4(float[] out, int o, int stride, int count, float s0, float s1, float s2, float s3) {
        out[o] = s0;
        if (count > 1) {
            out[o + stride] = s1;
        }
        if (count > 2) {
            out[o + 2 * stride] = s2;
        }
        if (count > 3) {
            out[o + 3 * stride] = s3;
        }
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
     * IEEE half → float without a hardware conversion (JDK 25 has no vector one). Shifting the sign-extended half
     * left by 13 puts its sign, exponent and mantissa where a float keeps them; multiplying by 2^112 rebiases the
     * exponent, which also turns half subnormals into the right normal floats, exactly. Exponent 31 (inf/NaN)
     * gets the float's all-ones exponent instead. Exact for all 65536 inputs (see the tests). Kept to few vector
     * ops: C2 stops inlining in a kernel whose graph grows too big, and a vector crossing a call is boxed.
     */
    static FloatVector loadF16(MemorySegment w, long off) {
        IntVector h = (IntVector) ShortVector.fromMemorySegment(S, w, off, LE).convertShape(VectorOperators.S2I, I, 0);
        IntVector bits = h.lanewise(VectorOperators.LSHL, 13).and(0x8FFF_E000); // sign (bit 31 after sign extension)
        FloatVector finite = bits.reinterpretAsFloats().mul(0x1p112f);
        VectorMask<Integer> infOrNan = h.and(0x7C00).compare(VectorOperators.EQ, 0x7C00);
        return finite.reinterpretAsInts().blend(bits.or(0x7F80_0000), infOrNan).reinterpretAsFloats();
    }

    static float atF16(MemorySegment w, long off) {
        return Float.float16ToFloat(w.get(I16_LE, off));
    }
    // ------------------------------------------------------------------------------------------------ F32

    /**
     * Rows [0, count) of a F32 segment (row r at {@code base + r·rowBytes}) times n token rows of x (row stride
     * cols) into {@code out[t·outStride + outRow + r]}: four rows per pass for one token, else four tokens per
     * row pass over cache-sized blocks of rows.
     */
    static void rowsF32(MemorySegment w, long base, long rowBytes, int count, int cols,
            float[] x, int n, float[] out, int outRow, int outStride) {
        if (n == 1) {
            for (int r = 0; r < count; r += 4) {
                dot4RowsF32(w, base + r * rowBytes, rowBytes, Math.min(4, count - r), cols, x, 0, out, outRow + r);
            }
            return;
        }
        int chunk = chunkRows(rowBytes, count);
        for (int c0 = 0; c0 < count; c0 += chunk) {
            int c1 = Math.min(count, c0 + chunk);
            for (int t = 0; t < n; t += 4) {
                int tokens = Math.min(4, n - t);
                for (int r = c0; r < c1; r++) {
                    dot4TokensF32(w, base + r * rowBytes, cols, x, t * cols, cols, tokens,
                            out, t * outStride + outRow + r, outStride);
                }
            }
        }
    }

    /**
     * Up to four consecutive rows (the first {@code rows} of those at {@code off + k·rowBytes}) · x[xOff, +cols) into
     * out[o, o + rows). Missing rows repeat the first one (same memory, so nearly free) and are not stored.
     */
    static void dot4RowsF32(MemorySegment w, long off, long rowBytes, int rows, int cols, float[] x, int xOff,
            float[] out, int o) {
        long o0 = off;
        long o1 = rows > 1 ? o0 + rowBytes : o0;
        long o2 = rows > 2 ? o0 + 2 * rowBytes : o0;
        long o3 = rows > 3 ? o0 + 3 * rowBytes : o0;
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
        store4(out, o, 1, rows, s0, s1, s2, s3);
    }

    /**
     * One row at {@code off} · up to four x rows (the first {@code tokens} of those at xOff + k·xStride) into
     * out[o + k·oStride]: each weight vector is decoded once for all of them. Missing tokens repeat the first.
     */
    static void dot4TokensF32(MemorySegment w, long off, int cols, float[] x, int xOff, int xStride, int tokens,
            float[] out, int o, int oStride) {
        int x0 = xOff;
        int x1 = tokens > 1 ? x0 + xStride : x0;
        int x2 = tokens > 2 ? x0 + 2 * xStride : x0;
        int x3 = tokens > 3 ? x0 + 3 * xStride : x0;
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
        store4(out, o, oStride, tokens, s0, s1, s2, s3);
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

    /**
     * Rows [0, count) of a BF16 segment (row r at {@code base + r·rowBytes}) times n token rows of x (row stride
     * cols) into {@code out[t·outStride + outRow + r]}: four rows per pass for one token, else four tokens per
     * row pass over cache-sized blocks of rows.
     */
    static void rowsBF16(MemorySegment w, long base, long rowBytes, int count, int cols,
            float[] x, int n, float[] out, int outRow, int outStride) {
        if (n == 1) {
            for (int r = 0; r < count; r += 4) {
                dot4RowsBF16(w, base + r * rowBytes, rowBytes, Math.min(4, count - r), cols, x, 0, out, outRow + r);
            }
            return;
        }
        int chunk = chunkRows(rowBytes, count);
        for (int c0 = 0; c0 < count; c0 += chunk) {
            int c1 = Math.min(count, c0 + chunk);
            for (int t = 0; t < n; t += 4) {
                int tokens = Math.min(4, n - t);
                for (int r = c0; r < c1; r++) {
                    dot4TokensBF16(w, base + r * rowBytes, cols, x, t * cols, cols, tokens,
                            out, t * outStride + outRow + r, outStride);
                }
            }
        }
    }

    /**
     * Up to four consecutive rows (the first {@code rows} of those at {@code off + k·rowBytes}) · x[xOff, +cols) into
     * out[o, o + rows). Missing rows repeat the first one (same memory, so nearly free) and are not stored.
     */
    static void dot4RowsBF16(MemorySegment w, long off, long rowBytes, int rows, int cols, float[] x, int xOff,
            float[] out, int o) {
        long o0 = off;
        long o1 = rows > 1 ? o0 + rowBytes : o0;
        long o2 = rows > 2 ? o0 + 2 * rowBytes : o0;
        long o3 = rows > 3 ? o0 + 3 * rowBytes : o0;
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
        store4(out, o, 1, rows, s0, s1, s2, s3);
    }

    /**
     * One row at {@code off} · up to four x rows (the first {@code tokens} of those at xOff + k·xStride) into
     * out[o + k·oStride]: each weight vector is decoded once for all of them. Missing tokens repeat the first.
     */
    static void dot4TokensBF16(MemorySegment w, long off, int cols, float[] x, int xOff, int xStride, int tokens,
            float[] out, int o, int oStride) {
        int x0 = xOff;
        int x1 = tokens > 1 ? x0 + xStride : x0;
        int x2 = tokens > 2 ? x0 + 2 * xStride : x0;
        int x3 = tokens > 3 ? x0 + 3 * xStride : x0;
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
        store4(out, o, oStride, tokens, s0, s1, s2, s3);
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

    /*
     * F16 rows are decoded into a float[] and multiplied from there by the float[] kernels below. A fused F16
     * kernel needs so many vector operations per weight load that C2 runs out of its inlining budget in a 4-way
     * kernel. Decoding costs an L1 round trip per element; the products go through the same operations in the
     * same order as the other dtypes' kernels.
     */

    /**
     * Rows [0, count) of an F16 segment times n token rows of x into out, as {@link #rowsF32}: for one token four
     * rows are decoded per pass, else one row per pass serves all tokens of a cache-sized tile. {@code rows} is
     * scratch of at least 4·cols floats. (One decode call site, so C2 inlines one decode loop here.)
     */
    static void rowsF16(MemorySegment w, long base, long rowBytes, int count, int cols,
            float[] x, int n, float[] out, int outRow, int outStride, float[] rows) {
        int step = n == 1 ? 4 : 1;
        int chunk = n == 1 ? Math.max(1, count) : chunkRows(rowBytes, count);
        int tile = n == 1 ? 1 : (int) Math.max(4, CHUNK_BYTES / (4L * cols) & ~3L); // x rows kept cache-resident
        for (int c0 = 0; c0 < count; c0 += chunk) {
            int c1 = Math.min(count, c0 + chunk);
            for (int t0 = 0; t0 < n; t0 += tile) {
                int t1 = Math.min(n, t0 + tile);
                for (int r = c0; r < c1; r += step) {
                    int k = Math.min(step, c1 - r);
                    for (int i = 0; i < k; i++) {
                        dequantizeF16(w, base + (r + i) * rowBytes, cols, rows, i * cols);
                    }
                    if (n == 1) {
                        dot4Rows(rows, cols, k, cols, x, 0, out, outRow + r);
                    } else {
                        for (int t = t0; t < t1; t += 4) {
                            dot4Tokens(rows, cols, x, t * cols, cols, Math.min(4, t1 - t),
                                    out, t * outStride + outRow + r, outStride);
                        }
                    }
                }
            }
        }
    }

    /** As the segment dot4Rows, over float rows w[k·rowStride, k·rowStride + cols). */
    static void dot4Rows(float[] w, int rowStride, int rows, int cols, float[] x, int xOff, float[] out, int o) {
        int o0 = 0;
        int o1 = rows > 1 ? rowStride : 0;
        int o2 = rows > 2 ? 2 * rowStride : 0;
        int o3 = rows > 3 ? 3 * rowStride : 0;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xOff + c);
            a0 = FloatVector.fromArray(F, w, o0 + c).fma(xv, a0);
            a1 = FloatVector.fromArray(F, w, o1 + c).fma(xv, a1);
            a2 = FloatVector.fromArray(F, w, o2 + c).fma(xv, a2);
            a3 = FloatVector.fromArray(F, w, o3 + c).fma(xv, a3);
        }
        float s0 = sumLanes(a0);
        float s1 = sumLanes(a1);
        float s2 = sumLanes(a2);
        float s3 = sumLanes(a3);
        for (int c = upper; c < cols; c++) {
            float xc = x[xOff + c];
            s0 = Math.fma(w[o0 + c], xc, s0);
            s1 = Math.fma(w[o1 + c], xc, s1);
            s2 = Math.fma(w[o2 + c], xc, s2);
            s3 = Math.fma(w[o3 + c], xc, s3);
        }
        store4(out, o, 1, rows, s0, s1, s2, s3);
    }

    /** As the segment dot4Tokens, over the float row w[0, cols). */
    static void dot4Tokens(float[] w, int cols, float[] x, int xOff, int xStride, int tokens,
            float[] out, int o, int oStride) {
        int x0 = xOff;
        int x1 = tokens > 1 ? x0 + xStride : x0;
        int x2 = tokens > 2 ? x0 + 2 * xStride : x0;
        int x3 = tokens > 3 ? x0 + 3 * xStride : x0;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector wv = FloatVector.fromArray(F, w, c);
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
            float wc = w[c];
            s0 = Math.fma(wc, x[x0 + c], s0);
            s1 = Math.fma(wc, x[x1 + c], s1);
            s2 = Math.fma(wc, x[x2 + c], s2);
            s3 = Math.fma(wc, x[x3 + c], s3);
        }
        store4(out, o, oStride, tokens, s0, s1, s2, s3);
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
