package ai.k2j.kernels.cpu;

import ai.k2j.loaders.PackedInt;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * AWQ / GPTQ matmuls on the packed int32 form ({@link PackedInt}): out[t, n] = Σ_k W[n, k]·x[t, k] with
 * {@code W[n, k] = (q − zero)·scale} decoded in registers. Each output feature n is one float32 chain
 * {@code acc = fma(W[n, k], x[k], acc)} over k = 0, 1, ... in order, so the result is exactly that of
 * dequantizing to float32 and multiplying in that order, for any split of the columns, thread count or batch.
 *
 * <p>Vectors run across output features (the packed layouts keep a feature's values in one lane): GPTQ loads L
 * consecutive columns of a packed row; AWQ, whose int holds eight columns, broadcasts the L/8 ints of a block of L
 * columns into their lanes and shifts each lane by its column's nibble position. Zeros and scales are unpacked at
 * load into float arrays [groups, out] (1/group_size of the weights' size; the weights stay packed). Columns a
 * vector block does not cover (range edges) run the same chain in scalar code. Many tokens run the one-token
 * kernel per token (not optimized for prefill).
 */
final class PackedIntKernels {
    private PackedIntKernels() {
    }

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    static final boolean VECTOR = L == 8 || L == 16;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** AWQ: lane i of a block of L columns (starting at a multiple of 8) is shifted by its column's nibble. */
    private static final IntVector AWQ_SHIFTS;
    /** AWQ with 16 lanes: the second eight lanes take the block's second int. */
    private static final VectorMask<Integer> HIGH_HALF;

    static {
        int[] shifts = new int[L];
        for (int i = 0; i < L; i++) {
            shifts[i] = 4 * PackedInt.AWQ_NIBBLE[i % 8];
        }
        AWQ_SHIFTS = IntVector.fromArray(I, shifts, 0);
        boolean[] high = new boolean[L];
        for (int i = 8; i < L; i++) {
            high[i] = true;
        }
        HIGH_HALF = VectorMask.fromArray(I, high, 0);
    }

    /** A packed layer prepared for the kernels. */
    static final class Part {
        final PackedInt p;
        final MemorySegment qweight;
        final int in;
        final int out;
        final int bits;
        final boolean awq;
        final int[] group;
        final float[] zeros;
        final float[] scales;

        Part(PackedInt p) {
            this.p = p;
            this.qweight = p.qweight().data();
            this.in = p.inFeatures();
            this.out = p.outFeatures();
            this.bits = p.bits();
            this.awq = p.method() == PackedInt.Method.AWQ;
            this.group = new int[in];
            for (int k = 0; k < in; k++) {
                group[k] = p.group(k);
            }
            int groups = p.groups();
            this.zeros = new float[groups * out];
            this.scales = new float[groups * out];
            for (int g = 0; g < groups; g++) {
                for (int n = 0; n < out; n++) {
                    zeros[g * out + n] = p.zero(g, n);
                    scales[g * out + n] = p.scale(g, n);
                }
            }
        }
    }

    /**
     * Output features [c0, c0 + count) of the part for n tokens (x rows of stride in) into
     * {@code out[t·outStride + outRow + (c − c0)]}.
     */
    static void rows(Part part, int c0, int count, float[] x, int n, float[] out, int outRow, int outStride) {
        for (int t = 0; t < n; t++) {
            columns(part, c0, count, x, t * part.in, out, t * outStride + outRow);
        }
    }

    static void columns(Part part, int c0, int count, float[] x, int xOff, float[] out, int o) {
        int end = c0 + count;
        int c = c0;
        if (VECTOR) {
            int first = part.awq ? Math.min(end, (c0 + 7) & ~7) : c0;
            for (; c < first; c++) {
                out[o + c - c0] = scalarColumn(part, c, x, xOff);
            }
            for (; c + L <= end; c += L) {
                if (part.awq) {
                    awqBlock(part, c, x, xOff, out, o + c - c0);
                } else {
                    gptqBlock(part, c, x, xOff, out, o + c - c0);
                }
            }
        }
        for (; c < end; c++) {
            out[o + c - c0] = scalarColumn(part, c, x, xOff);
        }
    }

    /** One output feature in scalar code: the same chain as a vector lane. */
    static float scalarColumn(Part part, int n, float[] x, int xOff) {
        float acc = 0f;
        PackedInt p = part.p;
        for (int k = 0; k < part.in; k++) {
            int g = part.group[k];
            float w = ((float) p.q(k, n) - part.zeros[g * part.out + n]) * part.scales[g * part.out + n];
            acc = Math.fma(w, x[xOff + k], acc);
        }
        return acc;
    }

    /** GPTQ: columns [c, c + L); qweight row i holds inputs [i·32/bits, (i+1)·32/bits) of each column. */
    static void gptqBlock(Part part, int c, float[] x, int xOff, float[] out, int o) {
        int bits = part.bits;
        int perInt = 32 / bits;
        int mask = (1 << bits) - 1;
        int outF = part.out;
        FloatVector acc = FloatVector.zero(F);
        for (int i = 0; i < part.in / perInt; i++) {
            IntVector v = IntVector.fromMemorySegment(I, part.qweight, ((long) i * outF + c) * 4, ByteOrder.LITTLE_ENDIAN);
            for (int j = 0; j < perInt; j++) {
                int k = i * perInt + j;
                int zg = part.group[k] * outF + c;
                FloatVector q = (FloatVector) v.lanewise(VectorOperators.LSHR, bits * j).and(mask)
                        .convert(VectorOperators.I2F, 0);
                FloatVector w = q.sub(FloatVector.fromArray(F, part.zeros, zg)).mul(FloatVector.fromArray(F, part.scales, zg));
                acc = w.fma(FloatVector.broadcast(F, x[xOff + k]), acc);
            }
        }
        acc.intoArray(out, o);
    }

    /** AWQ: columns [c, c + L), c a multiple of 8; qweight row k holds the eight columns of an int in AWQ order. */
    static void awqBlock(Part part, int c, float[] x, int xOff, float[] out, int o) {
        int outF = part.out;
        long rowInts = outF / 8;
        FloatVector acc = FloatVector.zero(F);
        for (int k = 0; k < part.in; k++) {
            long at = (k * rowInts + c / 8) * 4;
            IntVector v = IntVector.broadcast(I, part.qweight.get(I32, at));
            if (L == 16) {
                v = v.blend(part.qweight.get(I32, at + 4), HIGH_HALF);
            }
            int zg = part.group[k] * outF + c;
            FloatVector q = (FloatVector) v.lanewise(VectorOperators.LSHR, AWQ_SHIFTS).and(0xF)
                    .convert(VectorOperators.I2F, 0);
            FloatVector w = q.sub(FloatVector.fromArray(F, part.zeros, zg)).mul(FloatVector.fromArray(F, part.scales, zg));
            acc = w.fma(FloatVector.broadcast(F, x[xOff + k]), acc);
        }
        acc.intoArray(out, o);
    }
}
