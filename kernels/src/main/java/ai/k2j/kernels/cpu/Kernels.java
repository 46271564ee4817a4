package ai.k2j.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;


/**
 * Row kernels over float32 activations (everything but the weight matrices). Each works on one row (or one
 * attention head of one token) and accumulates in float32 in a fixed order, so results do not depend on how rows
 * are spread over threads. The exponential is k2j's own ({@link #exp}): fused multiply-adds only, so its result
 * is the same in interpreted and compiled code and in vector lanes and scalar tails, unlike a vector EXP.
 */
final class Kernels {
    private Kernels() {
    }

    private static final VectorSpecies<Float> F = MatmulKernels.F;
    private static final int L = F.length();

    // e^x = 2^n · e^r with n = round(x·log2 e), r = x − n·ln 2 (ln 2 in two parts), e^r by Cephes' degree-6
    // polynomial (relative error ~1e-7). Only fused multiply-adds and exact steps: the vector lanes and the scalar
    // version give identical results in every JIT tier, unlike a vector EXP (SVML when compiled, Math.exp when
    // interpreted), and it is an order of magnitude faster than Math.exp per element.
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
     * Numerically stable softmax of v[0, len) in place: e^(v − max) / Σ, the exponentials by {@link #exp}'s
     * arithmetic, the sum in a fixed order (one vector accumulator, its lanes by MatmulKernels.treeSum, then the
     * tail). {@code lanes} is scratch of one vector. The exp is written out in the loop: no vector crosses a call.
     */
    static void softmax(float[] v, int len, float[] lanes) {
        int upper = F.loopBound(len);
        float max = Float.NEGATIVE_INFINITY;
        if (upper > 0) {
            FloatVector m = FloatVector.fromArray(F, v, 0);
            for (int i = L; i < upper; i += L) {
                m = m.max(FloatVector.fromArray(F, v, i));
            }
            m.intoArray(lanes, 0);
            for (int i = 0; i < L; i++) {
                max = Math.max(max, lanes[i]); // max is exact in any order
            }
        }
        for (int i = upper; i < len; i++) {
            max = Math.max(max, v[i]);
        }
        FloatVector ln2Hi = FloatVector.broadcast(F, NEG_LN2_HI);
        FloatVector ln2Lo = FloatVector.broadcast(F, NEG_LN2_LO);
        FloatVector p2 = FloatVector.broadcast(F, P2);
        FloatVector p3 = FloatVector.broadcast(F, P3);
        FloatVector p4 = FloatVector.broadcast(F, P4);
        FloatVector p5 = FloatVector.broadcast(F, P5);
        FloatVector acc = FloatVector.zero(F);
        for (int i = 0; i < upper; i += L) {
            FloatVector x = FloatVector.fromArray(F, v, i).sub(max);
            FloatVector xc = x.max(EXP_MIN).min(EXP_MAX);
            FloatVector n = xc.fma(LOG2E, ROUND).sub(ROUND);
            FloatVector r = n.fma(ln2Hi, xc);
            r = n.fma(ln2Lo, r);
            FloatVector p = r.fma(P0, P1).fma(r, p2).fma(r, p3).fma(r, p4).fma(r, p5);
            FloatVector y = p.fma(r.mul(r), r.add(1f));
            IntVector bits = ((IntVector) n.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
            FloatVector e = y.mul(bits.reinterpretAsFloats());
            e.intoArray(v, i);
            acc = acc.add(e);
        }
        acc.intoArray(lanes, 0);
        float sum = MatmulKernels.treeSum(lanes, 0);
        for (int i = upper; i < len; i++) {
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

    /** out[o + i] = silu(g[go + i]) · u[uo + i], silu(g) = g / (1 + e^−g), e^−g by {@link #exp}'s arithmetic. */
    static void siluMul(float[] g, int go, float[] u, int uo, int dim, float[] out, int o) {
        int upper = F.loopBound(dim);
        FloatVector ln2Hi = FloatVector.broadcast(F, NEG_LN2_HI);
        FloatVector ln2Lo = FloatVector.broadcast(F, NEG_LN2_LO);
        FloatVector p2 = FloatVector.broadcast(F, P2);
        FloatVector p3 = FloatVector.broadcast(F, P3);
        FloatVector p4 = FloatVector.broadcast(F, P4);
        FloatVector p5 = FloatVector.broadcast(F, P5);
        for (int i = 0; i < upper; i += L) {
            FloatVector gv = FloatVector.fromArray(F, g, go + i);
            FloatVector xc = gv.neg().max(EXP_MIN).min(EXP_MAX);
            FloatVector n = xc.fma(LOG2E, ROUND).sub(ROUND);
            FloatVector r = n.fma(ln2Hi, xc);
            r = n.fma(ln2Lo, r);
            FloatVector p = r.fma(P0, P1).fma(r, p2).fma(r, p3).fma(r, p4).fma(r, p5);
            FloatVector y = p.fma(r.mul(r), r.add(1f));
            IntVector bits = ((IntVector) n.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
            FloatVector e = y.mul(bits.reinterpretAsFloats());
            gv.div(e.add(1f)).mul(FloatVector.fromArray(F, u, uo + i)).intoArray(out, o + i);
        }
        for (int i = upper; i < dim; i++) {
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
