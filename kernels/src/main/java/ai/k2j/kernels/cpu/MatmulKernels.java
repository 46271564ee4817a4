package ai.k2j.kernels.cpu;

import ai.k2j.loaders.DType;
import jdk.incubator.vector.ByteVector;
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
 * Matrix kernels over weight rows that live in (normally memory-mapped) segments, for F32, BF16, F16, Q8_0 and
 * Q4_0 (llama.cpp's blocks of 32: an f16 scale d, then 32 int8 q, or 16 bytes holding 32 4-bit q + 8; a value
 * is d·q, exactly representable in float32).
 *
 * <p><b>One summation order for everything.</b> Every dot product, whichever kernel computes it, is the same
 * float32 computation over the exactly decoded weights: one vector accumulator, {@code acc = w·x + acc} (fused)
 * over full vectors in column order, the lanes summed in a fixed tree ({@link #sumLanes}), then the tail elements
 * fused in order. So out[t, r] depends only on row r and token t's x row: not on the batch size, the thread
 * count, how rows are split, or whether the weights were decoded in registers or into a scratch tile.
 *
 * <p><b>One token (decode)</b> is bound by reading the weights: the {@code dot4Rows*} kernels stream four rows
 * at a time, decoding each weight vector in registers (bf16: widen and shift; q8: sign-extend bytes to floats;
 * q4: mask or shift nibbles, then one exact fused {@code q·d − 8·d}) and sharing each x load between the rows.
 * JDK 25 has no half-float vector conversion, so F16 rows are decoded into a float[] four at a time.
 *
 * <p><b>Many tokens (prefill, verification)</b> are bound by multiply-adds: {@link #rows} decodes a block of
 * rows (about 128 KB of floats) into per-thread scratch once, then {@link #tile} computes 4 rows × 3 tokens per
 * pass with twelve accumulators in registers, so every weight is read from memory once per call and from cache
 * once per three tokens. BF16 batches of up to {@link #REGISTER_TILE_MAX_TOKENS} tokens (speculative
 * verification) skip the scratch: {@link #tileBF16} decodes each weight vector in registers for three tokens at a
 * time, as decode does for one (writing and re-reading a float copy costs more than the multiply-adds there).
 *
 * <p>Inlining discipline: C2 stops inlining once a compilation's graph passes a node budget, and a Vector API
 * call it leaves un-inlined boxes its vectors (allocating, and 100× slower). So each kernel is large enough to be
 * compiled on its own (KernelShapeTest) and handles its partial rows/tokens itself, leaving the drivers free of
 * vector code except row decoders. The allocation tests check the result.
 */
final class MatmulKernels {
    private MatmulKernels() {
    }

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    /** Half-width shorts that widen into one float vector. */
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    static final int L = F.length();
    /** Bytes loaded at once for Q8_0/Q4_0: one float vector's worth (at least 8: the smallest vector shape). */
    static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * L)));
    static final int BL = B.length();
    /** Float vectors one byte vector widens into (1, or 2 with 128-bit floats). */
    static final int PARTS = BL / L;
    /** The quantized register kernels need a half block (16 values) to be whole byte vectors. */
    static final boolean QUANT_IN_REGISTERS = BL <= 16;
    /**
     * With 16-lane floats (AVX-512) a Q4_0 block decodes by table lookup: the 16 values (q − 8)·d a nibble can
     * stand for fit one vector, so a permute replaces the int→float conversion and the scaling per weight vector
     * (measured ~35% faster than converting, single thread, on Zen 4).
     */
    static final boolean Q4_LOOKUP = L == 16;
    /** q − 8 for q = 0..15: times a block's d, the block's 16 possible values (exact). */
    private static final FloatVector Q4_LEVELS = L == 16
            ? FloatVector.fromArray(F, new float[] {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7}, 0) : null;

    /** Tokens per {@link #tile} pass (and rows: 4). Twelve accumulators + three x + one w fill AVX2's 16. */
    static final int TILE_TOKENS = 3;
    /** Floats of decoded weights per thread for the multi-token path: 128 KB, half a small L2. */
    static final int TILE_FLOATS = 32 * 1024;

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    /** Rows decoded per scratch block for matrices of {@code cols} columns: a multiple of 4, at least 4. */
    static int rowBlock(int cols) {
        return Math.max(4, (TILE_FLOATS / Math.max(1, cols)) & ~3);
    }

    /** Floats at the end of the scratch where kernels spill their accumulators to sum the lanes. */
    static final int LANES = 12 * L;

    /** Scratch floats per thread that {@link #rows} needs for matrices of {@code cols} columns. */
    static long scratchFloats(int cols) {
        return Math.max((long) rowBlock(cols) * cols, 4L * cols) + LANES;
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

    /**
     * {@link #sumLanes} of the vector stored at v[o, o + L), in scalar code and in the same order (so the same
     * result; v is overwritten). The big kernels spill their accumulators and sum them here: a dozen inlined
     * sumLanes would push them past C2's inlining budget, and a vector passed to a call that is not inlined is
     * boxed.
     */
    static float treeSum(float[] v, int o) {
        if (L == 16) { // the common shapes spelled out: loads and adds in registers, no stores
            float s0 = v[o] + v[o + 8];
            float s1 = v[o + 1] + v[o + 9];
            float s2 = v[o + 2] + v[o + 10];
            float s3 = v[o + 3] + v[o + 11];
            float s4 = v[o + 4] + v[o + 12];
            float s5 = v[o + 5] + v[o + 13];
            float s6 = v[o + 6] + v[o + 14];
            float s7 = v[o + 7] + v[o + 15];
            return ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7));
        }
        if (L == 8) {
            float s0 = v[o] + v[o + 4];
            float s1 = v[o + 1] + v[o + 5];
            float s2 = v[o + 2] + v[o + 6];
            float s3 = v[o + 3] + v[o + 7];
            return (s0 + s2) + (s1 + s3);
        }
        if (L > 16) {
            float s = v[o];
            for (int i = 1; i < L; i++) {
                s += v[o + i];
            }
            return s;
        }
        for (int width = L / 2; width >= 1; width >>= 1) {
            for (int i = 0; i < width; i++) {
                v[o + i] = v[o + i] + v[o + i + width];
            }
        }
        return v[o];
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

    // ================================================================================================ drivers

    /**
     * Rows [0, count) of a segment of {@code dtype} rows (row r at {@code base + r·rowBytes}) times n token rows
     * of x (row stride cols) into {@code out[t·outStride + outRow + r]}. {@code scratch} holds at least
     * {@link #scratchFloats}(cols) floats (and 4·cols).
     */
    static void rows(DType dtype, MemorySegment w, long base, long rowBytes, int count, int cols,
            float[] x, int n, float[] out, int outRow, int outStride, float[] scratch) {
        int lanes = scratch.length - LANES;
        if (n == 1) {
            rowsOneToken(dtype, w, base, rowBytes, count, cols, x, out, outRow, scratch, lanes);
            return;
        }
        if (dtype == DType.BF16 && n <= REGISTER_TILE_MAX_TOKENS) {
            // few tokens (verification): decode in registers, as decode does; the scratch round trip (write and
            // re-read 4 bytes per weight to save decoding 2) would cost more than the multiply-adds
            for (int r = 0; r < count; r += 4) {
                int k = Math.min(4, count - r);
                long off = base + r * rowBytes;
                int t = 0;
                for (; n - t >= 2; t += TILE_TOKENS) { // 3 tokens a pass, the last pass 2 or 3
                    tileBF16(w, off, rowBytes, k, cols, x, t * cols, cols, Math.min(TILE_TOKENS, n - t),
                            out, t * outStride + outRow + r, outStride, scratch, lanes);
                }
                if (t < n) { // one token left: the decode kernel (4 accumulators instead of 12)
                    dot4RowsBF16(w, off, rowBytes, k, cols, x, t * cols, out, t * outStride + outRow + r, 1,
                            scratch, lanes);
                }
            }
            return;
        }
        int block = rowBlock(cols);
        for (int r0 = 0; r0 < count; r0 += block) {
            int k = Math.min(block, count - r0);
            for (int i = 0; i < k; i++) {
                dequantize(dtype, w, base + (r0 + i) * rowBytes, cols, scratch, i * cols);
            }
            for (int t = 0; t < n; t += TILE_TOKENS) {
                int tokens = Math.min(TILE_TOKENS, n - t);
                for (int r = 0; r < k; r += 4) {
                    tile(scratch, r * cols, cols, Math.min(4, k - r), cols, x, t * cols, cols, tokens,
                            out, t * outStride + outRow + r0 + r, outStride, scratch, lanes);
                }
            }
        }
    }

    /**
     * The decode path: four rows per pass, decoded in registers where the dtype allows. The four rows of a pass
     * come from the four quarters of the range (r, r + q, r + 2q, r + 3q), so each of the kernel's four load
     * streams walks its quarter contiguously from row to row: the hardware prefetchers follow four long streams.
     * Taking four adjacent rows instead restarts every stream after one row and measured 1.5–2× slower from
     * memory on short (896-column) rows. Rows left over by the quarters go in one last pass. BF16 rows of up to
     * {@link #ONE_ROW_MAX_COLS} columns go one at a time instead ({@link #dot1RowsBF16}: one stream); Q8_0 rows go
     * eight at a time from eight eighths where registers allow ({@link #dot8RowsQ8_0}), the rest by quarters.
     */
    private static void rowsOneToken(DType dtype, MemorySegment w, long base, long rowBytes, int count, int cols,
            float[] x, float[] out, int outRow, float[] scratch, int lanes) {
        boolean registers = switch (dtype) {
            case F32, BF16 -> true;
            case Q8_0, Q4_0 -> QUANT_IN_REGISTERS;
            default -> false;
        };
        if (!registers) {
            for (int r = 0; r < count; r += 4) {
                int k = Math.min(4, count - r);
                for (int i = 0; i < k; i++) {
                    dequantize(dtype, w, base + (r + i) * rowBytes, cols, scratch, i * cols);
                }
                dot4Rows(scratch, cols, k, cols, x, 0, out, outRow + r, 1, scratch, lanes);
            }
            return;
        }
        if (dtype == DType.BF16 && cols <= ONE_ROW_MAX_COLS) {
            dot1RowsBF16(w, base, rowBytes, count, cols, x, 0, out, outRow, scratch, lanes);
            return;
        }
        if (dtype == DType.Q8_0 && Q8_EIGHT_ROWS) {
            int e = count / 8; // eighths, then the rest by fours
            for (int r = 0; r < e; r++) {
                dot8RowsQ8_0(w, base + r * rowBytes, e * rowBytes, cols, x, 0, out, outRow + r, e, scratch, lanes);
            }
            base += 8L * e * rowBytes;
            outRow += 8 * e;
            count -= 8 * e;
        }
        int q = count / 4;
        for (int r = 0; r < q; r++) {
            registerPass(dtype, w, base + r * rowBytes, q * rowBytes, 4, cols, x, out, outRow + r, q, scratch, lanes);
        }
        if (4 * q < count) {
            registerPass(dtype, w, base + 4L * q * rowBytes, rowBytes, count - 4 * q, cols, x, out, outRow + 4 * q, 1,
                    scratch, lanes);
        }
    }

    /** One register-kernel pass over rows at off + k·stride into out[o + k·oStride], k < rows ≤ 4. */
    private static void registerPass(DType dtype, MemorySegment w, long off, long stride, int rows, int cols, float[] x,
            float[] out, int o, int oStride, float[] scratch, int lanes) {
        switch (dtype) {
            case F32 -> dot4RowsF32(w, off, stride, rows, cols, x, 0, out, o, oStride, scratch, lanes);
            case BF16 -> dot4RowsBF16(w, off, stride, rows, cols, x, 0, out, o, oStride, scratch, lanes);
            case Q8_0 -> dot4RowsQ8_0(w, off, stride, rows, cols, x, 0, out, o, oStride, scratch, lanes);
            case Q4_0 -> {
                if (Q4_LOOKUP) {
                    dot4RowsQ4_0Lookup(w, off, stride, rows, cols, x, 0, out, o, oStride, scratch, lanes);
                } else {
                    dot4RowsQ4_0(w, off, stride, rows, cols, x, 0, out, o, oStride, scratch, lanes);
                }
            }
            default -> throw new IllegalStateException("no register kernel for " + dtype);
        }
    }

    /** Decodes one row ({@code cols} values at {@code off}) into out[o, o + cols). */
    static void dequantize(DType dtype, MemorySegment w, long off, int cols, float[] out, int o) {
        switch (dtype) {
            case F32 -> dequantizeF32(w, off, cols, out, o);
            case BF16 -> dequantizeBF16(w, off, cols, out, o);
            case F16 -> dequantizeF16(w, off, cols, out, o);
            case Q8_0 -> {
                if (QUANT_IN_REGISTERS) {
                    dequantizeQ8_0(w, off, cols, out, o);
                } else {
                    ScalarRows.decode(dtype, w, off, cols, out, o);
                }
            }
            case Q4_0 -> {
                if (QUANT_IN_REGISTERS) {
                    dequantizeQ4_0(w, off, cols, out, o);
                } else {
                    ScalarRows.decode(dtype, w, off, cols, out, o);
                }
            }
            default -> throw new IllegalStateException("no CPU kernel for " + dtype);
        }
    }

    // ================================================================================================ loaders

    /*
     * Vector loads and decodes are written out inside each kernel rather than called through helpers: a helper
     * taking or returning a vector must be inlined by C2 or the vector is boxed (allocating), and C2 declines to
     * inline a method that is already compiled into a big body elsewhere (InlineSmallCode), which depends on what
     * ran earlier in the process. Scalar helpers are safe either way.
     */

    static float atF32(MemorySegment w, long off) {
        return w.get(F32_LE, off);
    }

    /** bf16 is the top half of a float32 (vectors: widen the shorts to ints and shift them left by 16). */
    static float atBF16(MemorySegment w, long off) {
        return Float.intBitsToFloat(w.get(I16_LE, off) << 16);
    }

    static float atF16(MemorySegment w, long off) {
        return Float.float16ToFloat(w.get(I16_LE, off));
    }

    /** The f16 scale at the start of a Q8_0/Q4_0 block (F16C converts it in one instruction). */
    static float scale(MemorySegment w, long blockOff) {
        return Float.float16ToFloat(w.get(I16_LE, blockOff));
    }

    // ================================================================================================ one token

    /**
     * Up to four F32 rows (the first {@code rows} of those at {@code off + k·rowBytes}; rowBytes is the stride
     * between them, not necessarily one row) · x[xOff, +cols) into out[o + k·oStride]. Missing rows repeat the
     * first one (same memory, so nearly free) and are not stored.
     */
    static void dot4RowsF32(MemorySegment w, long off, long rowBytes, int rows, int cols, float[] x, int xOff,
            float[] out, int o, int oStride, float[] lanes, int lo) {
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
            a0 = FloatVector.fromMemorySegment(F, w, o0 + b, LE).fma(xv, a0);
            a1 = FloatVector.fromMemorySegment(F, w, o1 + b, LE).fma(xv, a1);
            a2 = FloatVector.fromMemorySegment(F, w, o2 + b, LE).fma(xv, a2);
            a3 = FloatVector.fromMemorySegment(F, w, o3 + b, LE).fma(xv, a3);
        }
        a0.intoArray(lanes, lo + 0 * L);
        a1.intoArray(lanes, lo + 1 * L);
        a2.intoArray(lanes, lo + 2 * L);
        a3.intoArray(lanes, lo + 3 * L);
        float s0 = treeSum(lanes, lo);
        float s1 = treeSum(lanes, lo + L);
        float s2 = treeSum(lanes, lo + 2 * L);
        float s3 = treeSum(lanes, lo + 3 * L);
        for (int c = upper; c < cols; c++) {
            float xc = x[xOff + c];
            long b = 4L * c;
            s0 = Math.fma(atF32(w, o0 + b), xc, s0);
            s1 = Math.fma(atF32(w, o1 + b), xc, s1);
            s2 = Math.fma(atF32(w, o2 + b), xc, s2);
            s3 = Math.fma(atF32(w, o3 + b), xc, s3);
        }
        store4(out, o, oStride, rows, s0, s1, s2, s3);
    }

    /** As {@link #dot4RowsF32} for BF16 rows. */
    static void dot4RowsBF16(MemorySegment w, long off, long rowBytes, int rows, int cols, float[] x, int xOff,
            float[] out, int o, int oStride, float[] lanes, int lo) {
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
            a0 = ((IntVector) ShortVector.fromMemorySegment(S, w, o0 + b, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(xv, a0);
            a1 = ((IntVector) ShortVector.fromMemorySegment(S, w, o1 + b, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(xv, a1);
            a2 = ((IntVector) ShortVector.fromMemorySegment(S, w, o2 + b, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(xv, a2);
            a3 = ((IntVector) ShortVector.fromMemorySegment(S, w, o3 + b, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(xv, a3);
        }
        a0.intoArray(lanes, lo + 0 * L);
        a1.intoArray(lanes, lo + 1 * L);
        a2.intoArray(lanes, lo + 2 * L);
        a3.intoArray(lanes, lo + 3 * L);
        float s0 = treeSum(lanes, lo);
        float s1 = treeSum(lanes, lo + L);
        float s2 = treeSum(lanes, lo + 2 * L);
        float s3 = treeSum(lanes, lo + 3 * L);
        for (int c = upper; c < cols; c++) {
            float xc = x[xOff + c];
            long b = 2L * c;
            s0 = Math.fma(atBF16(w, o0 + b), xc, s0);
            s1 = Math.fma(atBF16(w, o1 + b), xc, s1);
            s2 = Math.fma(atBF16(w, o2 + b), xc, s2);
            s3 = Math.fma(atBF16(w, o3 + b), xc, s3);
        }
        store4(out, o, oStride, rows, s0, s1, s2, s3);
    }

    /**
     * Longest BF16 rows that decode reads one at a time: x (4 bytes a column) then fills at most half of a 32 KB L1.
     * Measured from memory, two threads, interleaved (GB/s, one row vs four quarter streams): 896 columns 29.7 vs
     * 28.9, 1536: 31.2 vs 28.9, 3584: 29.2 vs 27.8, 4864: 27.1 vs 30.5 (with one row at a time x is loaded once
     * per weight vector instead of once per four, and long rows push it out of L1).
     */
    static final int ONE_ROW_MAX_COLS = 4096;

    /**
     * Decode's BF16 path for rows of up to {@link #ONE_ROW_MAX_COLS} columns: {@code rows} rows at {@code off + r·rowBytes}, one after another, into out[o + r]. Per
     * row exactly {@link #dot4RowsBF16}'s arithmetic (one accumulator, columns in order, the lane tree, the tail),
     * so the same bits. One row at a time keeps one load stream per thread, which the hardware prefetchers follow
     * best: measured against four quarter streams, interleaved matrix by matrix from memory with two threads, up to
     * 1.3× as fast on 896-column rows (24–36 vs 22–28 GB/s). BF16 decode is memory-bound, so the x loads that four
     * rows would share cost little; the quantized formats are compute-bound and keep four rows. Two vectors per iteration on the
     * same chain: the same order, and a body too big for C2 to inline into its driver (KernelShapeTest).
     */
    static void dot1RowsBF16(MemorySegment w, long off, long rowBytes, int rows, int cols, float[] x, int xOff,
            float[] out, int o, float[] lanes, int lo) {
        int upper = F.loopBound(cols);
        int pairs = upper - upper % (2 * L);
        for (int r = 0; r < rows; r++) {
            long base = off + r * rowBytes;
            FloatVector a = FloatVector.zero(F);
            int c = 0;
            for (; c < pairs; c += 2 * L) {
                long b = base + 2L * c;
                a = ((IntVector) ShortVector.fromMemorySegment(S, w, b, LE).convertShape(VectorOperators.S2I, I, 0))
                        .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, x, xOff + c), a);
                a = ((IntVector) ShortVector.fromMemorySegment(S, w, b + 2L * L, LE).convertShape(VectorOperators.S2I, I, 0))
                        .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                        .fma(FloatVector.fromArray(F, x, xOff + c + L), a);
            }
            for (; c < upper; c += L) {
                a = ((IntVector) ShortVector.fromMemorySegment(S, w, base + 2L * c, LE).convertShape(VectorOperators.S2I, I, 0))
                        .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, x, xOff + c), a);
            }
            a.intoArray(lanes, lo);
            float sum = treeSum(lanes, lo);
            for (c = upper; c < cols; c++) {
                sum = Math.fma(atBF16(w, base + 2L * c), x[xOff + c], sum);
            }
            out[o + r] = sum;
        }
    }

    /**
     * As {@link #dot4RowsF32} for Q8_0 rows (cols a multiple of 32): per block, each row's bytes are widened to
     * floats and scaled by its d (exact), then fused into the accumulator like any other weight vector.
     */
    static void dot4RowsQ8_0(MemorySegment w, long off, long rowBytes, int rows, int cols, float[] x, int xOff,
            float[] out, int o, int oStride, float[] lanes, int lo) {
        long o0 = off;
        long o1 = rows > 1 ? o0 + rowBytes : o0;
        long o2 = rows > 2 ? o0 + 2 * rowBytes : o0;
        long o3 = rows > 3 ? o0 + 3 * rowBytes : o0;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int blocks = cols >>> 5;
        for (int b = 0; b < blocks; b++) {
            long q = 34L * b;
            FloatVector d0 = FloatVector.broadcast(F, scale(w, o0 + q));
            FloatVector d1 = FloatVector.broadcast(F, scale(w, o1 + q));
            FloatVector d2 = FloatVector.broadcast(F, scale(w, o2 + q));
            FloatVector d3 = FloatVector.broadcast(F, scale(w, o3 + q));
            int xb = xOff + 32 * b;
            for (int c = 0; c < 32; c += BL) {
                long at = q + 2 + c;
                ByteVector q0 = ByteVector.fromMemorySegment(B, w, o0 + at, LE);
                ByteVector q1 = ByteVector.fromMemorySegment(B, w, o1 + at, LE);
                ByteVector q2 = ByteVector.fromMemorySegment(B, w, o2 + at, LE);
                ByteVector q3 = ByteVector.fromMemorySegment(B, w, o3 + at, LE);
                for (int p = 0; p < PARTS; p++) {
                    FloatVector xv = FloatVector.fromArray(F, x, xb + c + p * L);
                    a0 = ((FloatVector) q0.convertShape(VectorOperators.B2F, F, p)).mul(d0).fma(xv, a0);
                    a1 = ((FloatVector) q1.convertShape(VectorOperators.B2F, F, p)).mul(d1).fma(xv, a1);
                    a2 = ((FloatVector) q2.convertShape(VectorOperators.B2F, F, p)).mul(d2).fma(xv, a2);
                    a3 = ((FloatVector) q3.convertShape(VectorOperators.B2F, F, p)).mul(d3).fma(xv, a3);
                }
            }
        }
        a0.intoArray(lanes, lo + 0 * L);
        a1.intoArray(lanes, lo + 1 * L);
        a2.intoArray(lanes, lo + 2 * L);
        a3.intoArray(lanes, lo + 3 * L);
        store4(out, o, oStride, rows, treeSum(lanes, lo), treeSum(lanes, lo + L), treeSum(lanes, lo + 2 * L),
                treeSum(lanes, lo + 3 * L));
    }

    /** Eight Q8_0 rows per decode pass when floats have 16 lanes (32 vector registers: 8 accumulators, 8 scales). */
    static final boolean Q8_EIGHT_ROWS = L == 16 && BL == 16;

    /**
     * {@link #dot4RowsQ8_0} for eight rows at {@code off + k·stride} (all eight present) into out[o + k·oStride],
     * each row the same arithmetic: one accumulator, per block its bytes widened, scaled by its d and fused in
     * column order, lanes summed in the fixed tree. Q8_0 decode is bound by instructions and by how many cache
     * lines are in flight: eight rows share each x load and give the prefetchers eight streams. Measured against
     * four rows from memory, two threads, interleaved matrix by matrix (GB/s): 896 columns 19.6 vs 18.8 and 19.7 vs
     * 17.0, 4864 columns 18.8 vs 17.0 and 17.3 vs 16.4.
     */
    static void dot8RowsQ8_0(MemorySegment w, long off, long stride, int cols, float[] x, int xOff, float[] out,
            int o, int oStride, float[] lanes, int lo) {
        long o0 = off;
        long o1 = off + stride;
        long o2 = off + 2 * stride;
        long o3 = off + 3 * stride;
        long o4 = off + 4 * stride;
        long o5 = off + 5 * stride;
        long o6 = off + 6 * stride;
        long o7 = off + 7 * stride;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        FloatVector a4 = a0;
        FloatVector a5 = a0;
        FloatVector a6 = a0;
        FloatVector a7 = a0;
        int blocks = cols >>> 5;
        for (int b = 0; b < blocks; b++) {
            long q = 34L * b;
            FloatVector d0 = FloatVector.broadcast(F, scale(w, o0 + q));
            FloatVector d1 = FloatVector.broadcast(F, scale(w, o1 + q));
            FloatVector d2 = FloatVector.broadcast(F, scale(w, o2 + q));
            FloatVector d3 = FloatVector.broadcast(F, scale(w, o3 + q));
            FloatVector d4 = FloatVector.broadcast(F, scale(w, o4 + q));
            FloatVector d5 = FloatVector.broadcast(F, scale(w, o5 + q));
            FloatVector d6 = FloatVector.broadcast(F, scale(w, o6 + q));
            FloatVector d7 = FloatVector.broadcast(F, scale(w, o7 + q));
            for (int c = 0; c < 32; c += 16) {
                FloatVector xv = FloatVector.fromArray(F, x, xOff + 32 * b + c);
                long at = q + 2 + c;
                a0 = ((FloatVector) ByteVector.fromMemorySegment(B, w, o0 + at, LE).convertShape(VectorOperators.B2F, F, 0)).mul(d0).fma(xv, a0);
                a1 = ((FloatVector) ByteVector.fromMemorySegment(B, w, o1 + at, LE).convertShape(VectorOperators.B2F, F, 0)).mul(d1).fma(xv, a1);
                a2 = ((FloatVector) ByteVector.fromMemorySegment(B, w, o2 + at, LE).convertShape(VectorOperators.B2F, F, 0)).mul(d2).fma(xv, a2);
                a3 = ((FloatVector) ByteVector.fromMemorySegment(B, w, o3 + at, LE).convertShape(VectorOperators.B2F, F, 0)).mul(d3).fma(xv, a3);
                a4 = ((FloatVector) ByteVector.fromMemorySegment(B, w, o4 + at, LE).convertShape(VectorOperators.B2F, F, 0)).mul(d4).fma(xv, a4);
                a5 = ((FloatVector) ByteVector.fromMemorySegment(B, w, o5 + at, LE).convertShape(VectorOperators.B2F, F, 0)).mul(d5).fma(xv, a5);
                a6 = ((FloatVector) ByteVector.fromMemorySegment(B, w, o6 + at, LE).convertShape(VectorOperators.B2F, F, 0)).mul(d6).fma(xv, a6);
                a7 = ((FloatVector) ByteVector.fromMemorySegment(B, w, o7 + at, LE).convertShape(VectorOperators.B2F, F, 0)).mul(d7).fma(xv, a7);
            }
        }
        a0.intoArray(lanes, lo);
        a1.intoArray(lanes, lo + L);
        a2.intoArray(lanes, lo + 2 * L);
        a3.intoArray(lanes, lo + 3 * L);
        a4.intoArray(lanes, lo + 4 * L);
        a5.intoArray(lanes, lo + 5 * L);
        a6.intoArray(lanes, lo + 6 * L);
        a7.intoArray(lanes, lo + 7 * L);
        store4(out, o, oStride, 4, treeSum(lanes, lo), treeSum(lanes, lo + L), treeSum(lanes, lo + 2 * L),
                treeSum(lanes, lo + 3 * L));
        store4(out, o + 4 * oStride, oStride, 4, treeSum(lanes, lo + 4 * L), treeSum(lanes, lo + 5 * L),
                treeSum(lanes, lo + 6 * L), treeSum(lanes, lo + 7 * L));
    }

    /**
     * As {@link #dot4RowsF32} for Q4_0 rows (cols a multiple of 32). Byte j of a block holds value j in its low
     * nibble and value j + 16 in its high one, both as q + 8: the low nibbles (columns 0–15) go first, then the
     * high ones, each widened to floats and decoded by one fused {@code nibble·d + (−8·d)}, exact.
     */
    static void dot4RowsQ4_0(MemorySegment w, long off, long rowBytes, int rows, int cols, float[] x, int xOff,
            float[] out, int o, int oStride, float[] lanes, int lo) {
        long o0 = off;
        long o1 = rows > 1 ? o0 + rowBytes : o0;
        long o2 = rows > 2 ? o0 + 2 * rowBytes : o0;
        long o3 = rows > 3 ? o0 + 3 * rowBytes : o0;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        int blocks = cols >>> 5;
        for (int b = 0; b < blocks; b++) {
            long q = 18L * b;
            float s0 = scale(w, o0 + q);
            float s1 = scale(w, o1 + q);
            float s2 = scale(w, o2 + q);
            float s3 = scale(w, o3 + q);
            FloatVector d0 = FloatVector.broadcast(F, s0);
            FloatVector d1 = FloatVector.broadcast(F, s1);
            FloatVector d2 = FloatVector.broadcast(F, s2);
            FloatVector d3 = FloatVector.broadcast(F, s3);
            FloatVector m0 = FloatVector.broadcast(F, -8f * s0);
            FloatVector m1 = FloatVector.broadcast(F, -8f * s1);
            FloatVector m2 = FloatVector.broadcast(F, -8f * s2);
            FloatVector m3 = FloatVector.broadcast(F, -8f * s3);
            int xb = xOff + 32 * b;
            for (int h = 0; h < 2; h++) {
                for (int c = 0; c < 16; c += BL) {
                    long at = q + 2 + c;
                    ByteVector q0 = (h == 0 ? ByteVector.fromMemorySegment(B, w, o0 + at, LE).and((byte) 0x0F) : ByteVector.fromMemorySegment(B, w, o0 + at, LE).lanewise(VectorOperators.LSHR, 4));
                    ByteVector q1 = (h == 0 ? ByteVector.fromMemorySegment(B, w, o1 + at, LE).and((byte) 0x0F) : ByteVector.fromMemorySegment(B, w, o1 + at, LE).lanewise(VectorOperators.LSHR, 4));
                    ByteVector q2 = (h == 0 ? ByteVector.fromMemorySegment(B, w, o2 + at, LE).and((byte) 0x0F) : ByteVector.fromMemorySegment(B, w, o2 + at, LE).lanewise(VectorOperators.LSHR, 4));
                    ByteVector q3 = (h == 0 ? ByteVector.fromMemorySegment(B, w, o3 + at, LE).and((byte) 0x0F) : ByteVector.fromMemorySegment(B, w, o3 + at, LE).lanewise(VectorOperators.LSHR, 4));
                    for (int p = 0; p < PARTS; p++) {
                        FloatVector xv = FloatVector.fromArray(F, x, xb + 16 * h + c + p * L);
                        a0 = ((FloatVector) q0.convertShape(VectorOperators.B2F, F, p)).fma(d0, m0).fma(xv, a0);
                        a1 = ((FloatVector) q1.convertShape(VectorOperators.B2F, F, p)).fma(d1, m1).fma(xv, a1);
                        a2 = ((FloatVector) q2.convertShape(VectorOperators.B2F, F, p)).fma(d2, m2).fma(xv, a2);
                        a3 = ((FloatVector) q3.convertShape(VectorOperators.B2F, F, p)).fma(d3, m3).fma(xv, a3);
                    }
                }
            }
        }
        a0.intoArray(lanes, lo + 0 * L);
        a1.intoArray(lanes, lo + 1 * L);
        a2.intoArray(lanes, lo + 2 * L);
        a3.intoArray(lanes, lo + 3 * L);
        store4(out, o, oStride, rows, treeSum(lanes, lo), treeSum(lanes, lo + L), treeSum(lanes, lo + 2 * L),
                treeSum(lanes, lo + 3 * L));
    }

    /**
     * {@link #dot4RowsQ4_0} for 16-lane floats: the 16 bytes of a block widen to 16 int lanes whose low nibbles
     * index columns 0–15 and high nibbles columns 16–31 in a per-row table of the block's values (q − 8)·d.
     * The weights are the same exact values in the same order (a zero may come out as −0, which adds nothing).
     */
    static void dot4RowsQ4_0Lookup(MemorySegment w, long off, long rowBytes, int rows, int cols, float[] x, int xOff,
            float[] out, int o, int oStride, float[] lanes, int lo) {
        long o0 = off;
        long o1 = rows > 1 ? o0 + rowBytes : o0;
        long o2 = rows > 2 ? o0 + 2 * rowBytes : o0;
        long o3 = rows > 3 ? o0 + 3 * rowBytes : o0;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        FloatVector levels = Q4_LEVELS;
        int blocks = cols >>> 5;
        for (int b = 0; b < blocks; b++) {
            long q = 18L * b;
            FloatVector x0 = FloatVector.fromArray(F, x, xOff + 32 * b);
            FloatVector x1 = FloatVector.fromArray(F, x, xOff + 32 * b + 16);
            IntVector t0 = levels.mul(scale(w, o0 + q)).reinterpretAsInts();
            IntVector t1 = levels.mul(scale(w, o1 + q)).reinterpretAsInts();
            IntVector t2 = levels.mul(scale(w, o2 + q)).reinterpretAsInts();
            IntVector t3 = levels.mul(scale(w, o3 + q)).reinterpretAsInts();
            IntVector n0 = ((IntVector) ByteVector.fromMemorySegment(B, w, o0 + q + 2, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0));
            IntVector n1 = ((IntVector) ByteVector.fromMemorySegment(B, w, o1 + q + 2, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0));
            IntVector n2 = ((IntVector) ByteVector.fromMemorySegment(B, w, o2 + q + 2, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0));
            IntVector n3 = ((IntVector) ByteVector.fromMemorySegment(B, w, o3 + q + 2, LE).convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0));
            a0 = n0.and(15).selectFrom(t0).reinterpretAsFloats().fma(x0, a0);
            a1 = n1.and(15).selectFrom(t1).reinterpretAsFloats().fma(x0, a1);
            a2 = n2.and(15).selectFrom(t2).reinterpretAsFloats().fma(x0, a2);
            a3 = n3.and(15).selectFrom(t3).reinterpretAsFloats().fma(x0, a3);
            a0 = n0.lanewise(VectorOperators.LSHR, 4).selectFrom(t0).reinterpretAsFloats().fma(x1, a0);
            a1 = n1.lanewise(VectorOperators.LSHR, 4).selectFrom(t1).reinterpretAsFloats().fma(x1, a1);
            a2 = n2.lanewise(VectorOperators.LSHR, 4).selectFrom(t2).reinterpretAsFloats().fma(x1, a2);
            a3 = n3.lanewise(VectorOperators.LSHR, 4).selectFrom(t3).reinterpretAsFloats().fma(x1, a3);
        }
        a0.intoArray(lanes, lo);
        a1.intoArray(lanes, lo + L);
        a2.intoArray(lanes, lo + 2 * L);
        a3.intoArray(lanes, lo + 3 * L);
        store4(out, o, oStride, rows, treeSum(lanes, lo), treeSum(lanes, lo + L), treeSum(lanes, lo + 2 * L),
                treeSum(lanes, lo + 3 * L));
    }

    /** As the segment kernels, over float rows w[k·rowStride, k·rowStride + cols) (F16 and fallbacks). */
    static void dot4Rows(float[] w, int rowStride, int rows, int cols, float[] x, int xOff, float[] out, int o,
            int oStride, float[] lanes, int lo) {
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
        a0.intoArray(lanes, lo + 0 * L);
        a1.intoArray(lanes, lo + 1 * L);
        a2.intoArray(lanes, lo + 2 * L);
        a3.intoArray(lanes, lo + 3 * L);
        float s0 = treeSum(lanes, lo);
        float s1 = treeSum(lanes, lo + L);
        float s2 = treeSum(lanes, lo + 2 * L);
        float s3 = treeSum(lanes, lo + 3 * L);
        for (int c = upper; c < cols; c++) {
            float xc = x[xOff + c];
            s0 = Math.fma(w[o0 + c], xc, s0);
            s1 = Math.fma(w[o1 + c], xc, s1);
            s2 = Math.fma(w[o2 + c], xc, s2);
            s3 = Math.fma(w[o3 + c], xc, s3);
        }
        store4(out, o, oStride, rows, s0, s1, s2, s3);
    }

    // ================================================================================================ many tokens

    /**
     * Up to 4 decoded rows (w[wOff + r·wStride, +cols), the first {@code rows}) times up to 3 x rows
     * (x[xOff + t·xStride, +cols), the first {@code tokens}) into out[o + t·oStride + r]: twelve dot products in
     * registers, each weight vector loaded once for three tokens. Missing rows/tokens repeat the first.
     */
    static void tile(float[] w, int wOff, int wStride, int rows, int cols, float[] x, int xOff, int xStride,
            int tokens, float[] out, int o, int oStride, float[] lanes, int lo) {
        int w0 = wOff;
        int w1 = rows > 1 ? w0 + wStride : w0;
        int w2 = rows > 2 ? w0 + 2 * wStride : w0;
        int w3 = rows > 3 ? w0 + 3 * wStride : w0;
        int x0 = xOff;
        int x1 = tokens > 1 ? x0 + xStride : x0;
        int x2 = tokens > 2 ? x0 + 2 * xStride : x0;
        FloatVector a00 = FloatVector.zero(F);
        FloatVector a01 = a00;
        FloatVector a02 = a00;
        FloatVector a10 = a00;
        FloatVector a11 = a00;
        FloatVector a12 = a00;
        FloatVector a20 = a00;
        FloatVector a21 = a00;
        FloatVector a22 = a00;
        FloatVector a30 = a00;
        FloatVector a31 = a00;
        FloatVector a32 = a00;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector xv0 = FloatVector.fromArray(F, x, x0 + c);
            FloatVector xv1 = FloatVector.fromArray(F, x, x1 + c);
            FloatVector xv2 = FloatVector.fromArray(F, x, x2 + c);
            FloatVector wv = FloatVector.fromArray(F, w, w0 + c);
            a00 = wv.fma(xv0, a00);
            a01 = wv.fma(xv1, a01);
            a02 = wv.fma(xv2, a02);
            wv = FloatVector.fromArray(F, w, w1 + c);
            a10 = wv.fma(xv0, a10);
            a11 = wv.fma(xv1, a11);
            a12 = wv.fma(xv2, a12);
            wv = FloatVector.fromArray(F, w, w2 + c);
            a20 = wv.fma(xv0, a20);
            a21 = wv.fma(xv1, a21);
            a22 = wv.fma(xv2, a22);
            wv = FloatVector.fromArray(F, w, w3 + c);
            a30 = wv.fma(xv0, a30);
            a31 = wv.fma(xv1, a31);
            a32 = wv.fma(xv2, a32);
        }
        a00.intoArray(lanes, lo + 0 * L);
        a01.intoArray(lanes, lo + 1 * L);
        a02.intoArray(lanes, lo + 2 * L);
        a10.intoArray(lanes, lo + 3 * L);
        a11.intoArray(lanes, lo + 4 * L);
        a12.intoArray(lanes, lo + 5 * L);
        a20.intoArray(lanes, lo + 6 * L);
        a21.intoArray(lanes, lo + 7 * L);
        a22.intoArray(lanes, lo + 8 * L);
        a30.intoArray(lanes, lo + 9 * L);
        a31.intoArray(lanes, lo + 10 * L);
        a32.intoArray(lanes, lo + 11 * L);
        float s00 = treeSum(lanes, lo + 0 * L);
        float s01 = treeSum(lanes, lo + 1 * L);
        float s02 = treeSum(lanes, lo + 2 * L);
        float s10 = treeSum(lanes, lo + 3 * L);
        float s11 = treeSum(lanes, lo + 4 * L);
        float s12 = treeSum(lanes, lo + 5 * L);
        float s20 = treeSum(lanes, lo + 6 * L);
        float s21 = treeSum(lanes, lo + 7 * L);
        float s22 = treeSum(lanes, lo + 8 * L);
        float s30 = treeSum(lanes, lo + 9 * L);
        float s31 = treeSum(lanes, lo + 10 * L);
        float s32 = treeSum(lanes, lo + 11 * L);
        for (int c = upper; c < cols; c++) {
            float xc0 = x[x0 + c];
            float xc1 = x[x1 + c];
            float xc2 = x[x2 + c];
            float wc = w[w0 + c];
            s00 = Math.fma(wc, xc0, s00);
            s01 = Math.fma(wc, xc1, s01);
            s02 = Math.fma(wc, xc2, s02);
            wc = w[w1 + c];
            s10 = Math.fma(wc, xc0, s10);
            s11 = Math.fma(wc, xc1, s11);
            s12 = Math.fma(wc, xc2, s12);
            wc = w[w2 + c];
            s20 = Math.fma(wc, xc0, s20);
            s21 = Math.fma(wc, xc1, s21);
            s22 = Math.fma(wc, xc2, s22);
            wc = w[w3 + c];
            s30 = Math.fma(wc, xc0, s30);
            s31 = Math.fma(wc, xc1, s31);
            s32 = Math.fma(wc, xc2, s32);
        }
        store4(out, o, 1, rows, s00, s10, s20, s30);
        if (tokens > 1) {
            store4(out, o + oStride, 1, rows, s01, s11, s21, s31);
        }
        if (tokens > 2) {
            store4(out, o + 2 * oStride, 1, rows, s02, s12, s22, s32);
        }
    }

    /**
     * Most tokens for which {@link #rows} multiplies BF16 weights decoded in registers ({@link #tileBF16}) rather
     * than through the scratch tile: verification passes of up to 8 tokens read each row group from memory once
     * and then from L1.
     */
    static final int REGISTER_TILE_MAX_TOKENS = 8;

    /**
     * {@link #tile} over BF16 rows at {@code off + r·rowBytes}, each weight vector decoded in registers (widen and
     * shift, exact) and used for up to three tokens: the same sums in the same order as {@link #tile} over the
     * decoded rows, so the results are bit-identical.
     */
    static void tileBF16(MemorySegment w, long off, long rowBytes, int rows, int cols, float[] x, int xOff,
            int xStride, int tokens, float[] out, int o, int oStride, float[] lanes, int lo) {
        long w0 = off;
        long w1 = rows > 1 ? w0 + rowBytes : w0;
        long w2 = rows > 2 ? w0 + 2 * rowBytes : w0;
        long w3 = rows > 3 ? w0 + 3 * rowBytes : w0;
        int x0 = xOff;
        int x1 = tokens > 1 ? x0 + xStride : x0;
        int x2 = tokens > 2 ? x0 + 2 * xStride : x0;
        FloatVector a00 = FloatVector.zero(F);
        FloatVector a01 = a00;
        FloatVector a02 = a00;
        FloatVector a10 = a00;
        FloatVector a11 = a00;
        FloatVector a12 = a00;
        FloatVector a20 = a00;
        FloatVector a21 = a00;
        FloatVector a22 = a00;
        FloatVector a30 = a00;
        FloatVector a31 = a00;
        FloatVector a32 = a00;
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            FloatVector xv0 = FloatVector.fromArray(F, x, x0 + c);
            FloatVector xv1 = FloatVector.fromArray(F, x, x1 + c);
            FloatVector xv2 = FloatVector.fromArray(F, x, x2 + c);
            long b = 2L * c;
            FloatVector wv = ((IntVector) ShortVector.fromMemorySegment(S, w, w0 + b, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a00 = wv.fma(xv0, a00);
            a01 = wv.fma(xv1, a01);
            a02 = wv.fma(xv2, a02);
            wv = ((IntVector) ShortVector.fromMemorySegment(S, w, w1 + b, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a10 = wv.fma(xv0, a10);
            a11 = wv.fma(xv1, a11);
            a12 = wv.fma(xv2, a12);
            wv = ((IntVector) ShortVector.fromMemorySegment(S, w, w2 + b, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a20 = wv.fma(xv0, a20);
            a21 = wv.fma(xv1, a21);
            a22 = wv.fma(xv2, a22);
            wv = ((IntVector) ShortVector.fromMemorySegment(S, w, w3 + b, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a30 = wv.fma(xv0, a30);
            a31 = wv.fma(xv1, a31);
            a32 = wv.fma(xv2, a32);
        }
        a00.intoArray(lanes, lo + 0 * L);
        a01.intoArray(lanes, lo + 1 * L);
        a02.intoArray(lanes, lo + 2 * L);
        a10.intoArray(lanes, lo + 3 * L);
        a11.intoArray(lanes, lo + 4 * L);
        a12.intoArray(lanes, lo + 5 * L);
        a20.intoArray(lanes, lo + 6 * L);
        a21.intoArray(lanes, lo + 7 * L);
        a22.intoArray(lanes, lo + 8 * L);
        a30.intoArray(lanes, lo + 9 * L);
        a31.intoArray(lanes, lo + 10 * L);
        a32.intoArray(lanes, lo + 11 * L);
        float s00 = treeSum(lanes, lo + 0 * L);
        float s01 = treeSum(lanes, lo + 1 * L);
        float s02 = treeSum(lanes, lo + 2 * L);
        float s10 = treeSum(lanes, lo + 3 * L);
        float s11 = treeSum(lanes, lo + 4 * L);
        float s12 = treeSum(lanes, lo + 5 * L);
        float s20 = treeSum(lanes, lo + 6 * L);
        float s21 = treeSum(lanes, lo + 7 * L);
        float s22 = treeSum(lanes, lo + 8 * L);
        float s30 = treeSum(lanes, lo + 9 * L);
        float s31 = treeSum(lanes, lo + 10 * L);
        float s32 = treeSum(lanes, lo + 11 * L);
        for (int c = upper; c < cols; c++) {
            float xc0 = x[x0 + c];
            float xc1 = x[x1 + c];
            float xc2 = x[x2 + c];
            long b = 2L * c;
            float wc = atBF16(w, w0 + b);
            s00 = Math.fma(wc, xc0, s00);
            s01 = Math.fma(wc, xc1, s01);
            s02 = Math.fma(wc, xc2, s02);
            wc = atBF16(w, w1 + b);
            s10 = Math.fma(wc, xc0, s10);
            s11 = Math.fma(wc, xc1, s11);
            s12 = Math.fma(wc, xc2, s12);
            wc = atBF16(w, w2 + b);
            s20 = Math.fma(wc, xc0, s20);
            s21 = Math.fma(wc, xc1, s21);
            s22 = Math.fma(wc, xc2, s22);
            wc = atBF16(w, w3 + b);
            s30 = Math.fma(wc, xc0, s30);
            s31 = Math.fma(wc, xc1, s31);
            s32 = Math.fma(wc, xc2, s32);
        }
        store4(out, o, 1, rows, s00, s10, s20, s30);
        if (tokens > 1) {
            store4(out, o + oStride, 1, rows, s01, s11, s21, s31);
        }
        if (tokens > 2) {
            store4(out, o + 2 * oStride, 1, rows, s02, s12, s22, s32);
        }
    }

    // ================================================================================================ probes

    /** Sum of the floats in w[off, off + bytes) (bytes a multiple of 4 vectors): a pure streaming read. */
    static float sum(MemorySegment w, long off, long bytes) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        long step = 4L * L * Float.BYTES;
        long vb = (long) L * Float.BYTES;
        for (long b = off; b < off + bytes; b += step) {
            a0 = a0.add(FloatVector.fromMemorySegment(F, w, b, LE));
            a1 = a1.add(FloatVector.fromMemorySegment(F, w, b + vb, LE));
            a2 = a2.add(FloatVector.fromMemorySegment(F, w, b + 2 * vb, LE));
            a3 = a3.add(FloatVector.fromMemorySegment(F, w, b + 3 * vb, LE));
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }

    private static final VectorSpecies<Float> F256 = FloatVector.SPECIES_256;

    /**
     * {@link #sum} with 256-bit vectors (bytes a multiple of 128): on Zen 4 a 512-bit load is two 256-bit ones, and
     * the narrower stream was seen reading faster, so the bandwidth probe takes the better of both.
     */
    static float sum256(MemorySegment w, long off, long bytes) {
        FloatVector a0 = FloatVector.zero(F256);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (long b = off; b < off + bytes; b += 128) {
            a0 = a0.add(FloatVector.fromMemorySegment(F256, w, b, LE));
            a1 = a1.add(FloatVector.fromMemorySegment(F256, w, b + 32, LE));
            a2 = a2.add(FloatVector.fromMemorySegment(F256, w, b + 64, LE));
            a3 = a3.add(FloatVector.fromMemorySegment(F256, w, b + 96, LE));
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }

    // ================================================================================================ row decoders

    /** Dequantizes one F32 row (cols values at {@code off}) into out[o, o + cols). */
    static void dequantizeF32(MemorySegment w, long off, int cols, float[] out, int o) {
        MemorySegment.copy(w, F32_LE, off, out, o, cols);
    }

    /** Dequantizes one BF16 row into out[o, o + cols). */
    static void dequantizeBF16(MemorySegment w, long off, int cols, float[] out, int o) {
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            ((IntVector) ShortVector.fromMemorySegment(S, w, off + 2L * c, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(out, o + c);
        }
        for (int c = upper; c < cols; c++) {
            out[o + c] = atBF16(w, off + 2L * c);
        }
    }

    /**
     * Dequantizes one F16 row into out[o, o + cols): IEEE half → float without a hardware conversion (JDK 25 has
     * no vector one). Shifting the sign-extended half left by 13 puts its sign, exponent and mantissa where a float
     * keeps them; multiplying by 2^112 rebiases the exponent, which also turns half subnormals into the right
     * normal floats, exactly. Exponent 31 (inf/NaN) gets the float's all-ones exponent instead. Exact for all
     * 65536 inputs (see the tests).
     */
    static void dequantizeF16(MemorySegment w, long off, int cols, float[] out, int o) {
        int upper = F.loopBound(cols);
        for (int c = 0; c < upper; c += L) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(S, w, off + 2L * c, LE)
                    .convertShape(VectorOperators.S2I, I, 0);
            IntVector bits = h.lanewise(VectorOperators.LSHL, 13).and(0x8FFF_E000); // sign: bit 31 after extension
            FloatVector finite = bits.reinterpretAsFloats().mul(0x1p112f);
            VectorMask<Integer> infOrNan = h.and(0x7C00).compare(VectorOperators.EQ, 0x7C00);
            finite.reinterpretAsInts().blend(bits.or(0x7F80_0000), infOrNan).reinterpretAsFloats().intoArray(out, o + c);
        }
        for (int c = upper; c < cols; c++) {
            out[o + c] = atF16(w, off + 2L * c);
        }
    }

    /** Dequantizes one Q8_0 row (cols a multiple of 32) into out[o, o + cols): the same values as the kernels. */
    static void dequantizeQ8_0(MemorySegment w, long off, int cols, float[] out, int o) {
        int blocks = cols >>> 5;
        for (int b = 0; b < blocks; b++) {
            long q = off + 34L * b;
            FloatVector d = FloatVector.broadcast(F, scale(w, q));
            for (int c = 0; c < 32; c += BL) {
                ByteVector v = ByteVector.fromMemorySegment(B, w, q + 2 + c, LE);
                for (int p = 0; p < PARTS; p++) {
                    ((FloatVector) v.convertShape(VectorOperators.B2F, F, p)).mul(d).intoArray(out, o + 32 * b + c + p * L);
                }
            }
        }
    }

    /** Dequantizes one Q4_0 row (cols a multiple of 32) into out[o, o + cols): the same values as the kernels. */
    static void dequantizeQ4_0(MemorySegment w, long off, int cols, float[] out, int o) {
        int blocks = cols >>> 5;
        for (int b = 0; b < blocks; b++) {
            long q = off + 18L * b;
            float s = scale(w, q);
            FloatVector d = FloatVector.broadcast(F, s);
            FloatVector m = FloatVector.broadcast(F, -8f * s);
            for (int h = 0; h < 2; h++) {
                for (int c = 0; c < 16; c += BL) {
                    ByteVector v = (h == 0 ? ByteVector.fromMemorySegment(B, w, q + 2 + c, LE).and((byte) 0x0F) : ByteVector.fromMemorySegment(B, w, q + 2 + c, LE).lanewise(VectorOperators.LSHR, 4));
                    for (int p = 0; p < PARTS; p++) {
                        ((FloatVector) v.convertShape(VectorOperators.B2F, F, p)).fma(d, m).intoArray(out, o + 32 * b + 16 * h + c + p * L);
                    }
                }
            }
        }
    }
}
