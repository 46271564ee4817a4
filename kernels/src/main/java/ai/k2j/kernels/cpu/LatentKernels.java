package ai.k2j.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The CPU's multi-head latent attention (DeepSeek-V3's MLA in its absorbed form): per-head small matmuls
 * ({@link #headRows}) and attention over latent cache rows ({@link #attendLatentHead}). A latent row of
 * 2·kvDim floats lives half in its key slot (column-major within the block, {@link CpuKvCache}) and half in its
 * value slot (row-major).
 */
final class LatentKernels {
    private LatentKernels() {
    }

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();

    /** Σ a[ao + i]·b[bo + i] for i in [0, len): one fused vector accumulator, lanes summed, then the tail. */
    static float dot(float[] a, int ao, float[] b, int bo, int len) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (; i <= len - L; i += L) {
            acc = FloatVector.fromArray(F, a, ao + i).fma(FloatVector.fromArray(F, b, bo + i), acc);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < len; i++) {
            sum = Math.fma(a[ao + i], b[bo + i], sum);
        }
        return sum;
    }

    /**
     * Head h's rows of a per-head matmul: out[t·outStride + h·perHead + j] = row (h·perHead + j) · x[t·xStride +
     * xOff + h·cols ...] for tokens [0, n); each row is decoded once into {@code row} and dotted with every token.
     */
    static void headRows(CpuWeight w, int h, int perHead, float[] x, int xOff, int xStride, int n, float[] out,
                         float[] row) {
        int cols = w.cols;
        for (int j = 0; j < perHead; j++) {
            int r = h * perHead + j;
            int p = w.partOf(r);
            MatmulKernels.dequantize(w.dtype, w.segments[p], (r - w.partStart[p]) * w.rowBytes, cols, row, 0);
            for (int t = 0; t < n; t++) {
                out[t * w.rows + r] = dot(row, 0, x, t * xStride + xOff + h * cols, cols);
            }
        }
    }

    /**
     * One head of one token over positions [0, length) of its sequence: q (2·kvDim floats in {@code q} at 0: the
     * latent query, then the rope query) against each cached latent row, softmax of the scaled scores, and the
     * weighted sum of the rows' first latentDim floats into out[o, o + latentDim). {@code scores} holds
     * {@code length} floats; sums[so, so + latentDim) is scratch.
     */
    static void attendLatentHead(float[] q, float[] keys, float[] values, int kvDim, int latentDim, int[] blockTables,
                                 int tableOff, int blockSize, int length, float scale, float[] scores, float[] sums,
                                 int so, float[] out, int o) {
        float max = Float.NEGATIVE_INFINITY;
        for (int p = 0; p < length; p++) {
            int block = blockTables[tableOff + p / blockSize];
            int j = p % blockSize;
            int keyBase = block * kvDim * blockSize + j; // column c at keyBase + c·blockSize
            float s = 0;
            for (int c = 0; c < kvDim; c++) {
                s = Math.fma(q[c], keys[keyBase + c * blockSize], s);
            }
            s += dot(q, kvDim, values, (block * blockSize + j) * kvDim, kvDim);
            s *= scale;
            scores[p] = s;
            max = Math.max(max, s);
        }
        float total = 0;
        for (int p = 0; p < length; p++) {
            float e = (float) Math.exp(scores[p] - max);
            scores[p] = e;
            total += e;
        }
        java.util.Arrays.fill(sums, so, so + latentDim, 0f);
        int fromKeys = Math.min(kvDim, latentDim);
        for (int p = 0; p < length; p++) {
            int block = blockTables[tableOff + p / blockSize];
            int j = p % blockSize;
            float weight = scores[p];
            int keyBase = block * kvDim * blockSize + j;
            for (int c = 0; c < fromKeys; c++) {
                sums[so + c] = Math.fma(weight, keys[keyBase + c * blockSize], sums[so + c]);
            }
            int valueBase = (block * blockSize + j) * kvDim;
            for (int c = kvDim; c < latentDim; c++) {
                sums[so + c] = Math.fma(weight, values[valueBase + c - kvDim], sums[so + c]);
            }
        }
        float inverse = 1f / total;
        for (int c = 0; c < latentDim; c++) {
            out[o + c] = sums[so + c] * inverse;
        }
    }
}
