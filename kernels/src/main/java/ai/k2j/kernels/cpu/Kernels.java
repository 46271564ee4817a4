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
     * Σ a[ao + i]·b[bo + i] for i in [0, len): one fused vector accumulator, lanes summed in MatmulKernels' fixed
     * tree (spilled to {@code lanes[0, L)}: no vector crosses a call, see MatmulKernels), then the tail.
     */
    static float dot(float[] a, int ao, float[] b, int bo, int len, float[] lanes) {
        FloatVector acc = FloatVector.zero(F);
        int upper = F.loopBound(len);
        for (int i = 0; i < upper; i += L) {
            acc = FloatVector.fromArray(F, a, ao + i).fma(FloatVector.fromArray(F, b, bo + i), acc);
        }
        acc.intoArray(lanes, 0);
        float s = MatmulKernels.treeSum(lanes, 0);
        for (int i = upper; i < len; i++) {
            s = Math.fma(a[ao + i], b[bo + i], s);
        }
        return s;
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
     * loops on purpose: a head's softmax can be short, and Vector API code that a tiny model calls too rarely for
     * C2 to compile boxes its vectors (allocating); {@link #exp} already makes this several times cheaper than
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
     * out[o, o + headDim). Keys/values of position p are at slot {@code table[tableOff + p / blockSize]·blockSize
     * + p % blockSize}, head columns starting at {@code headOff} of the slot's kvDim floats.
     *
     * @param scores scratch of at least len floats
     * @param lanes  scratch of at least one vector's floats
     */
    static void attendHead(float[] q, int qo, float[] keys, float[] values, int kvDim, int headOff, int headDim,
                           int[] table, int tableOff, int blockSize, int len, float scale, float[] scores,
                           float[] lanes, float[] out, int o) {
        for (int p = 0; p < len; p++) {
            int slot = table[tableOff + p / blockSize] * blockSize + p % blockSize;
            scores[p] = dot(q, qo, keys, slot * kvDim + headOff, headDim, lanes) * scale;
        }
        softmax(scores, len, lanes);
        java.util.Arrays.fill(out, o, o + headDim, 0f);
        int upper = F.loopBound(headDim);
        for (int p = 0; p < len; p++) {
            int vo = (table[tableOff + p / blockSize] * blockSize + p % blockSize) * kvDim + headOff;
            float w = scores[p];
            FloatVector wv = FloatVector.broadcast(F, w);
            for (int i = 0; i < upper; i += L) {
                FloatVector.fromArray(F, values, vo + i).fma(wv, FloatVector.fromArray(F, out, o + i)).intoArray(out, o + i);
            }
            for (int i = upper; i < headDim; i++) {
                out[o + i] = Math.fma(values[vo + i], w, out[o + i]);
            }
        }
    }

    /**
     * out[o + i] = silu(g[go + i]) · u[uo + i], silu(g) = g / (1 + e^−g) with {@link #exp}. A plain loop, as
     * {@link #softmax}: allocation-free whatever the JIT did with it.
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
