package ai.k2j.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;


/**
 * Row kernels over float32 activations (everything but the weight matrices). Each works on one row (or one
 * attention head of one token) and accumulates in float32 in a fixed order, so results do not depend on how rows
 * are spread over threads. The exponential is k2j's own ({@link #exp}): fused multiply-adds only, so its result
 * is the same in interpreted and compiled code.
 */
final class Kernels {
    private Kernels() {
    }

    private static final VectorSpecies<Float> F = MatmulKernels.F;
    private static final int L = F.length();

    // e^x = 2^n · e^r with n = round(x·log2 e), r = x − n·ln 2 (ln 2 in two parts), e^r by Cephes' degree-6
    // polynomial (relative error ~1e-7). Only fused multiply-adds and exact steps, so the same in every JIT tier
    // (and if C2 vectorizes a loop of it), and several times cheaper than Math.exp.
    static final float EXP_MIN = -87f;   // n >= -126: 2^n stays a normal float
    static final float EXP_MAX = 88f;    // n <= 127
    static final float LOG2E = 1.44269504088896341f;
    static final float ROUND = 12582912f; // 1.5·2^23: adding and subtracting it rounds to an integer
    static final float NEG_LN2_HI = -0.693359375f;
    static final float NEG_LN2_LO = 2.12194440e-4f;
    static final float P0 = 1.9875691500e-4f;
    static final float P1 = 1.3981999507e-3f;
    static final float P2 = 8.3334519073e-3f;
    static final float P3 = 4.1665795894e-2f;
    static final float P4 = 1.6666665459e-1f;
    static final float P5 = 5.0000001201e-1f;

    /** e^x, the same arithmetic as the vector loops below (NaN stays NaN; below −87 gives e^−87). */
    static float exp(float x) {
        float xc = Math.min(Math.max(x, EXP_MIN), EXP_MAX);
        float n = Math.fma(xc, LOG2E, ROUND) - ROUND;
        float r = Math.fma(n, NEG_LN2_HI, xc);
        r = Math.fma(n, NEG_LN2_LO, r);
        float p = Math.fma(P0, r, P1);
        p = Math.fma(p, r, P2);
        p = Math.fma(p, r, P3);
        p = Math.fma(p, r, P4);
        p = Math.fma(p, r, P5);
        float y = Math.fma(p, r * r, r + 1f);
        return y * Float.intBitsToFloat(((int) n + 127) << 23);
    }

    /**
     * out[o..] = x[xo..] / rms(x[xo..]) * gamma, as HF's Qwen2RMSNorm in float32: (x · rsqrt(mean(x²) + eps)) · γ
     * (the sum of squares in double). Plain loops: C2 vectorizes the elementwise one by itself, and scalar code
     * allocates nothing in any JIT tier (this op runs a few times per token, too little to rely on C2 having
     * compiled Vector API code here, which otherwise boxes its vectors).
     */
    static void rmsNorm(float[] x, int xo, float[] gamma, float eps, int dim, float[] out, int o) {
        double ss = 0;
        for (int i = 0; i < dim; i++) {
            float v = x[xo + i];
            ss += v * v;
        }
        float inv = (float) (1.0 / Math.sqrt((float) (ss / dim) + eps));
        for (int i = 0; i < dim; i++) {
            out[o + i] = x[xo + i] * inv * gamma[i];
        }
    }

    /**
     * Rotate-half RoPE on one head at x[base, base + 2·half): (x1, x2) ← (x1·cos − x2·sin, x2·cos + x1·sin),
     * cos/sin from table row {@code co}. Products then sum, unfused, as HF's {@code q·cos + rotate_half(q)·sin}.
     * A plain loop, as {@link #rmsNorm}.
     */
    static void rope(float[] x, int base, int half, float[] cos, float[] sin, int co) {
        int hi = base + half;
        for (int i = 0; i < half; i++) {
            float x1 = x[base + i];
            float x2 = x[hi + i];
            float c = cos[co + i];
            float s = sin[co + i];
            x[base + i] = x1 * c - x2 * s;
            x[hi + i] = x2 * c + x1 * s;
        }
    }

    /**
     * Numerically stable softmax of v[0, len) in place: {@link #exp}(v − max) / Σ, summed in index order. Plain
     * loops on purpose: len changes with every position, and a Vector API version (tried) had C2 compile its
     * vector loop from short-context profiles, trap and give up recompiling, so it then ran boxed for good
     * (NoAllocationTest: 26 KB per decode step). {@link #exp} already makes this several times cheaper than
     * Math.exp. ({@code lanes} is unused scratch, kept for a vector version.)
     */
    static void softmax(float[] v, int len, float[] lanes) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < len; i++) {
            max = Math.max(max, v[i]);
        }
        float sum = 0f;
        for (int i = 0; i < len; i++) {
            float e = exp(v[i] - max);
            v[i] = e;
            sum += e;
        }
        float inv = 1f / sum;
        for (int i = 0; i < len; i++) {
            v[i] *= inv;
        }
    }

    /**
     * One query head over cached positions [0, len) of one sequence: scores = q·k·scale, softmax, Σ p·v into
     * out[o, o + headDim). Position p lives in slot {@code j = p % blockSize} of block {@code table[tableOff + p /
     * blockSize]}. Keys are stored column-major within a block ({@link CpuKvCache}): column c of the block's slots
     * is {@code blockSize} consecutive floats at {@code (block·kvDim + c)·blockSize}, so one vector load gives one
     * head column for a run of positions and a score needs no horizontal sum. Values are row-major: slot j's row
     * starts at {@code (block·blockSize + j)·kvDim}.
     *
     * <p>Summation order (the same for every vector width, thread count and batch): a score is
     * q[0]·k[0] + q[1]·k[1] + … fused in column order, times scale; an output column is Σ p·v fused in position
     * order.
     *
     * @param scores scratch of at least len rounded up to a multiple of blockSize floats
     * @param lanes  scratch of at least one vector's floats
     */
    static void attendHead(float[] q, int qo, float[] keys, float[] values, int kvDim, int headOff, int headDim,
                           int[] table, int tableOff, int blockSize, int len, float scale, float[] scores,
                           float[] lanes, float[] out, int o) {
        int blocks = (len + blockSize - 1) / blockSize;
        headScores(q, qo, keys, kvDim, headOff, headDim, table, tableOff, blockSize, len, scale, scores);
        softmax(scores, len, lanes);
        // Σ p·v: up to four vectors of output columns held in registers across all positions.
        int upper = F.loopBound(headDim);
        int i = 0;
        for (; i + 4 * L <= upper; i += 4 * L) {
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = a0;
            FloatVector a2 = a0;
            FloatVector a3 = a0;
            for (int b = 0; b < blocks; b++) {
                int slot0 = table[tableOff + b] * blockSize;
                int end = Math.min(blockSize, len - b * blockSize);
                for (int j = 0; j < end; j++) {
                    int v = (slot0 + j) * kvDim + headOff + i;
                    FloatVector w = FloatVector.broadcast(F, scores[b * blockSize + j]);
                    a0 = FloatVector.fromArray(F, values, v).fma(w, a0);
                    a1 = FloatVector.fromArray(F, values, v + L).fma(w, a1);
                    a2 = FloatVector.fromArray(F, values, v + 2 * L).fma(w, a2);
                    a3 = FloatVector.fromArray(F, values, v + 3 * L).fma(w, a3);
                }
            }
            a0.intoArray(out, o + i);
            a1.intoArray(out, o + i + L);
            a2.intoArray(out, o + i + 2 * L);
            a3.intoArray(out, o + i + 3 * L);
        }
        for (; i < upper; i += L) {
            FloatVector a0 = FloatVector.zero(F);
            for (int b = 0; b < blocks; b++) {
                int slot0 = table[tableOff + b] * blockSize;
                int end = Math.min(blockSize, len - b * blockSize);
                for (int j = 0; j < end; j++) {
                    a0 = FloatVector.fromArray(F, values, (slot0 + j) * kvDim + headOff + i)
                            .fma(FloatVector.broadcast(F, scores[b * blockSize + j]), a0);
                }
            }
            a0.intoArray(out, o + i);
        }
        for (; i < headDim; i++) {
            float a = 0f;
            for (int p = 0; p < len; p++) {
                int slot = table[tableOff + p / blockSize] * blockSize + p % blockSize;
                a = Math.fma(values[slot * kvDim + headOff + i], scores[p], a);
            }
            out[o + i] = a;
        }
    }

    /**
     * scores[p] = q·k_p·scale for the cached positions p in [0, len) of one head (see {@link #attendHead}); slots of
     * the last block past len are computed too (scores must hold len rounded up to whole blocks).
     */
    static void headScores(float[] q, int qo, float[] keys, int kvDim, int headOff, int headDim, int[] table,
                           int tableOff, int blockSize, int len, float scale, float[] scores) {
        int blocks = (len + blockSize - 1) / blockSize;
        if (blockSize % L == 0) {
            // Units of L slots; four units at a time share each broadcast of q[d] and keep four FMA chains going.
            int perBlock = blockSize / L;
            int units = blocks * perBlock;
            // A last group of fewer than four units repeats its first unit in the missing chains (not stored).
            for (int u = 0; u < units; u += 4) {
                int k0 = keyUnit(table, tableOff, kvDim, headOff, blockSize, perBlock, u);
                int k1 = u + 1 < units ? keyUnit(table, tableOff, kvDim, headOff, blockSize, perBlock, u + 1) : k0;
                int k2 = u + 2 < units ? keyUnit(table, tableOff, kvDim, headOff, blockSize, perBlock, u + 2) : k0;
                int k3 = u + 3 < units ? keyUnit(table, tableOff, kvDim, headOff, blockSize, perBlock, u + 3) : k0;
                FloatVector a0 = FloatVector.zero(F);
                FloatVector a1 = a0;
                FloatVector a2 = a0;
                FloatVector a3 = a0;
                for (int d = 0; d < headDim; d++) {
                    FloatVector qd = FloatVector.broadcast(F, q[qo + d]);
                    int c = d * blockSize;
                    a0 = FloatVector.fromArray(F, keys, k0 + c).fma(qd, a0);
                    a1 = FloatVector.fromArray(F, keys, k1 + c).fma(qd, a1);
                    a2 = FloatVector.fromArray(F, keys, k2 + c).fma(qd, a2);
                    a3 = FloatVector.fromArray(F, keys, k3 + c).fma(qd, a3);
                }
                a0.mul(scale).intoArray(scores, u * L);
                if (u + 1 < units) {
                    a1.mul(scale).intoArray(scores, (u + 1) * L);
                }
                if (u + 2 < units) {
                    a2.mul(scale).intoArray(scores, (u + 2) * L);
                }
                if (u + 3 < units) {
                    a3.mul(scale).intoArray(scores, (u + 3) * L);
                }
            }
        } else {
            for (int p = 0; p < len; p++) {
                int k = (table[tableOff + p / blockSize] * kvDim + headOff) * blockSize + p % blockSize;
                float s = 0f;
                for (int d = 0; d < headDim; d++) {
                    s = Math.fma(keys[k + d * blockSize], q[qo + d], s);
                }
                scores[p] = s * scale;
            }
        }
    }

    /**
     * {@link #attendHead} for a token of a draft tree: it attends to cached positions [0, prefix) and to
     * {@code treeBase + j} for each set bit j of {@code ancestors} (its ancestors and itself, all below len). The
     * attended positions are taken in that order, as one run: the result is bit-identical to attendHead over the
     * same keys and values stored at consecutive positions (the scores are computed per position alike, softmax and
     * Σ p·v run over the same sequence of values in the same order).
     */
    static void attendTreeHead(float[] q, int qo, float[] keys, float[] values, int kvDim, int headOff, int headDim,
                               int[] table, int tableOff, int blockSize, int len, int prefix, int treeBase,
                               long ancestors, float scale, float[] scores, float[] lanes, float[] out, int o) {
        headScores(q, qo, keys, kvDim, headOff, headDim, table, tableOff, blockSize, len, scale, scores);
        int n = prefix;
        for (long m = ancestors; m != 0; m &= m - 1) { // treeBase + j >= n: compacting in place is safe
            scores[n++] = scores[treeBase + Long.numberOfTrailingZeros(m)];
        }
        softmax(scores, n, lanes);
        int upper = F.loopBound(headDim);
        int i = 0;
        for (; i < upper; i += L) {
            FloatVector a = FloatVector.zero(F);
            long m = ancestors;
            for (int p = 0; p < n; p++) {
                int pos = p < prefix ? p : treeBase + Long.numberOfTrailingZeros(m);
                if (p >= prefix) {
                    m &= m - 1;
                }
                int slot = table[tableOff + pos / blockSize] * blockSize + pos % blockSize;
                a = FloatVector.fromArray(F, values, slot * kvDim + headOff + i)
                        .fma(FloatVector.broadcast(F, scores[p]), a);
            }
            a.intoArray(out, o + i);
        }
        for (; i < headDim; i++) {
            float a = 0f;
            long m = ancestors;
            for (int p = 0; p < n; p++) {
                int pos = p < prefix ? p : treeBase + Long.numberOfTrailingZeros(m);
                if (p >= prefix) {
                    m &= m - 1;
                }
                int slot = table[tableOff + pos / blockSize] * blockSize + pos % blockSize;
                a = Math.fma(values[slot * kvDim + headOff + i], scores[p], a);
            }
            out[o + i] = a;
        }
    }

    /** Float offset of unit u (L slots) of a head's key columns: column 0 of those slots. */
    private static int keyUnit(int[] table, int tableOff, int kvDim, int headOff, int blockSize, int perBlock, int u) {
        int b = u / perBlock;
        return (table[tableOff + b] * kvDim + headOff) * blockSize + (u - b * perBlock) * L;
    }

    /**
     * out[o + i] = silu(g[go + i]) · u[uo + i], silu(g) = g / (1 + e^−g) with {@link #exp}. A plain loop, as
     * {@link #softmax}: allocation-free whatever the JIT did with it (a Vector API version, tried, ran boxed for good
     * on a small model whose siluMul stays on one thread: NoAllocationTest).
     */
    static void siluMul(float[] g, int go, float[] u, int uo, int dim, float[] out, int o) {
        for (int i = 0; i < dim; i++) {
            float gi = g[go + i];
            out[o + i] = gi / (1f + exp(-gi)) * u[uo + i];
        }
    }

    /** x[xo, xo + len) += y[yo, yo + len). A plain loop (C2 vectorizes it), as {@link #rmsNorm}. */
    static void add(float[] x, int xo, float[] y, int yo, int len) {
        for (int i = 0; i < len; i++) {
            x[xo + i] += y[yo + i];
        }
    }

    /** Index of the largest of x[xo, xo + len); ties pick the lowest index; NaNs are never picked (all NaN: 0). */
    static int argmax(float[] x, int xo, int len) {
        int upper = F.loopBound(len);
        float max = Float.NEGATIVE_INFINITY;
        if (upper > 0) {
            FloatVector m = FloatVector.fromArray(F, x, xo);
            for (int i = L; i < upper; i += L) {
                m = m.max(FloatVector.fromArray(F, x, xo + i));
            }
            max = m.reduceLanes(VectorOperators.MAX); // max is exact in any order (NaN is handled below)
        }
        for (int i = upper; i < len; i++) {
            max = Math.max(max, x[xo + i]);
        }
        if (!Float.isNaN(max)) {
            for (int i = 0; i < len; i++) {
                if (x[xo + i] == max) {
                    return i;
                }
            }
        }
        // NaN present (vector max propagates it) or nothing found: plain scan that skips NaN.
        int best = 0;
        float bestValue = Float.NEGATIVE_INFINITY;
        boolean found = false;
        for (int i = 0; i < len; i++) {
            float v = x[xo + i];
            if (v > bestValue || (!found && v == bestValue)) {
                best = i;
                bestValue = v;
                found = true;
            }
        }
        return best;
    }
}
