package ai.k2j.kernels.cpu;

import ai.k2j.kernels.KvCodec;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link Kernels#attendHead} over BF16 and FP8 E4M3 caches ({@link CpuKvCache}): the same layout, loops and
 * summation order, each cache element widened to float32 in registers (bfloat16: the bits shifted into a float's
 * high half; E4M3: sign, exponent and mantissa moved into a float's fields and rescaled by 2^120). FP8's per-slot
 * scales multiply each score (keys) and each softmax weight (values), loaded as one vector per run of slots since
 * they are stored head-major.
 */
final class KvAttention {
    private KvAttention() {
    }

    private static final VectorSpecies<Float> F = MatmulKernels.F;
    private static final VectorSpecies<Integer> I = MatmulKernels.I;
    private static final VectorSpecies<Short> S = MatmulKernels.S;
    private static final int L = F.length();
    /** L bytes as one vector; E4M3 vector decoding needs at least 8 lanes (no 32-bit byte vectors). */
    private static final VectorSpecies<Byte> B8 = L >= 8 ? VectorSpecies.of(byte.class, VectorShape.forBitSize(8 * L))
            : null;
    private static final float TWO_POW_120 = 0x1p120f;

    private static FloatVector bf16(short[] a, int off) {
        return ((IntVector) ShortVector.fromArray(S, a, off).convertShape(VectorOperators.S2I, I, 0))
                .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector fp8(byte[] a, int off) {
        IntVector i = (IntVector) ByteVector.fromArray(B8, a, off).convertShape(VectorOperators.B2I, I, 0);
        return i.and(0x80).lanewise(VectorOperators.LSHL, 24).or(i.and(0x7f).lanewise(VectorOperators.LSHL, 20))
                .reinterpretAsFloats().mul(TWO_POW_120);
    }

    /** {@link Kernels#attendHead} over bfloat16 keys and values. */
    static void attendHeadBf16(float[] q, int qo, short[] keys, short[] values, int kvDim, int headOff, int headDim,
                               int[] table, int tableOff, int blockSize, int len, float scale, float[] scores,
                               float[] lanes, float[] out, int o) {
        int blocks = (len + blockSize - 1) / blockSize;
        scoresBf16(q, qo, keys, kvDim, headOff, headDim, table, tableOff, blockSize, len, scale, scores);
        Kernels.softmax(scores, len, lanes);
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
                    a0 = bf16(values, v).fma(w, a0);
                    a1 = bf16(values, v + L).fma(w, a1);
                    a2 = bf16(values, v + 2 * L).fma(w, a2);
                    a3 = bf16(values, v + 3 * L).fma(w, a3);
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
                    a0 = bf16(values, (slot0 + j) * kvDim + headOff + i)
                            .fma(FloatVector.broadcast(F, scores[b * blockSize + j]), a0);
                }
            }
            a0.intoArray(out, o + i);
        }
        for (; i < headDim; i++) {
            float a = 0f;
            for (int p = 0; p < len; p++) {
                int slot = table[tableOff + p / blockSize] * blockSize + p % blockSize;
                a = Math.fma(KvCodec.bf16Value(values[slot * kvDim + headOff + i]), scores[p], a);
            }
            out[o + i] = a;
        }
    }

    /**
     * {@link Kernels#attendHead} over E4M3 keys and values with per-(head, slot) scales: a score is
     * (q·k₈)·scale·keyScale, a value's weight p·valueScale (the softmax itself is over the true scores).
     *
     * @param slots the cache's slots per layer (numBlocks · blockSize): the scales' row length per head
     * @param kvh   the kv head (headOff = kvh · headDim)
     */
    static void attendHeadFp8(float[] q, int qo, byte[] keys, byte[] values, float[] keyScales, float[] valueScales,
                              int slots, int kvDim, int kvh, int headDim, int[] table, int tableOff, int blockSize,
                              int len, float scale, float[] scores, float[] lanes, float[] out, int o) {
        int headOff = kvh * headDim;
        int scaleRow = kvh * slots;
        int blocks = (len + blockSize - 1) / blockSize;
        scoresFp8(q, qo, keys, keyScales, slots, kvDim, kvh, headDim, table, tableOff, blockSize, len, scale, scores);
        Kernels.softmax(scores, len, lanes);
        int i = 0;
        if (B8 != null) {
            int upper = F.loopBound(headDim);
            for (; i + 2 * L <= upper; i += 2 * L) {
                FloatVector a0 = FloatVector.zero(F);
                FloatVector a1 = a0;
                for (int b = 0; b < blocks; b++) {
                    int slot0 = table[tableOff + b] * blockSize;
                    int end = Math.min(blockSize, len - b * blockSize);
                    for (int j = 0; j < end; j++) {
                        int v = (slot0 + j) * kvDim + headOff + i;
                        FloatVector w = FloatVector.broadcast(F,
                                scores[b * blockSize + j] * valueScales[scaleRow + slot0 + j]);
                        a0 = fp8(values, v).fma(w, a0);
                        a1 = fp8(values, v + L).fma(w, a1);
                    }
                }
                a0.intoArray(out, o + i);
                a1.intoArray(out, o + i + L);
            }
        }
        for (; i < headDim; i++) {
            float a = 0f;
            for (int p = 0; p < len; p++) {
                int slot = table[tableOff + p / blockSize] * blockSize + p % blockSize;
                a = Math.fma(KvCodec.fp8Value(values[slot * kvDim + headOff + i]),
                        scores[p] * valueScales[scaleRow + slot], a);
            }
            out[o + i] = a;
        }
    }

    /** scores[p] = q·k_p·scale over a bfloat16 cache, p in [0, len) (whole last block, as Kernels.headScores). */
    static void scoresBf16(float[] q, int qo, short[] keys, int kvDim, int headOff, int headDim, int[] table,
                           int tableOff, int blockSize, int len, float scale, float[] scores) {
        int blocks = (len + blockSize - 1) / blockSize;
        if (blockSize % L == 0) {
            int perBlock = blockSize / L;
            int units = blocks * perBlock;
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
                    a0 = bf16(keys, k0 + c).fma(qd, a0);
                    a1 = bf16(keys, k1 + c).fma(qd, a1);
                    a2 = bf16(keys, k2 + c).fma(qd, a2);
                    a3 = bf16(keys, k3 + c).fma(qd, a3);
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
                    s = Math.fma(KvCodec.bf16Value(keys[k + d * blockSize]), q[qo + d], s);
                }
                scores[p] = s * scale;
            }
        }
    }

    /** scores[p] = (q·k₈_p)·scale·keyScale_p over an E4M3 cache, p in [0, len) (whole last block). */
    static void scoresFp8(float[] q, int qo, byte[] keys, float[] keyScales, int slots, int kvDim, int kvh,
                          int headDim, int[] table, int tableOff, int blockSize, int len, float scale,
                          float[] scores) {
        int headOff = kvh * headDim;
        int scaleRow = kvh * slots;
        int blocks = (len + blockSize - 1) / blockSize;
        if (B8 != null && blockSize % L == 0) {
            int perBlock = blockSize / L;
            int units = blocks * perBlock;
            for (int u = 0; u < units; u++) {
                int b = u / perBlock;
                int slot0 = table[tableOff + b] * blockSize + (u - b * perBlock) * L;
                int k0 = (table[tableOff + b] * kvDim + headOff) * blockSize + (u - b * perBlock) * L;
                FloatVector a0 = FloatVector.zero(F);
                for (int d = 0; d < headDim; d++) {
                    a0 = fp8(keys, k0 + d * blockSize).fma(FloatVector.broadcast(F, q[qo + d]), a0);
                }
                a0.mul(scale).mul(FloatVector.fromArray(F, keyScales, scaleRow + slot0)).intoArray(scores, u * L);
            }
        } else {
            for (int p = 0; p < len; p++) {
                int slot = table[tableOff + p / blockSize] * blockSize + p % blockSize;
                int k = (table[tableOff + p / blockSize] * kvDim + headOff) * blockSize + p % blockSize;
                float s = 0f;
                for (int d = 0; d < headDim; d++) {
                    s = Math.fma(KvCodec.fp8Value(keys[k + d * blockSize]), q[qo + d], s);
                }
                scores[p] = s * scale * keyScales[scaleRow + slot];
            }
        }
    }

    /**
     * {@link Kernels#attendTreeHead} over bfloat16 keys and values: a draft-tree token attends to cached positions
     * [0, prefix) and to {@code treeBase + j} for each set bit j of {@code ancestors} (all below len).
     */
    static void attendTreeHeadBf16(float[] q, int qo, short[] keys, short[] values, int kvDim, int headOff,
                                   int headDim, int[] table, int tableOff, int blockSize, int len, int prefix,
                                   int treeBase, long ancestors, float scale, float[] scores, float[] lanes,
                                   float[] out, int o) {
        scoresBf16(q, qo, keys, kvDim, headOff, headDim, table, tableOff, blockSize, len, scale, scores);
        int n = compactTree(scores, prefix, treeBase, ancestors);
        Kernels.softmax(scores, n, lanes);
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
                a = bf16(values, slot * kvDim + headOff + i).fma(FloatVector.broadcast(F, scores[p]), a);
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
                a = Math.fma(KvCodec.bf16Value(values[slot * kvDim + headOff + i]), scores[p], a);
            }
            out[o + i] = a;
        }
    }

    /** {@link #attendTreeHeadBf16} over E4M3 keys and values with per-(head, slot) scales (see attendHeadFp8). */
    static void attendTreeHeadFp8(float[] q, int qo, byte[] keys, byte[] values, float[] keyScales,
                                  float[] valueScales, int slots, int kvDim, int kvh, int headDim, int[] table,
                                  int tableOff, int blockSize, int len, int prefix, int treeBase, long ancestors,
                                  float scale, float[] scores, float[] lanes, float[] out, int o) {
        int headOff = kvh * headDim;
        int scaleRow = kvh * slots;
        scoresFp8(q, qo, keys, keyScales, slots, kvDim, kvh, headDim, table, tableOff, blockSize, len, scale, scores);
        int n = compactTree(scores, prefix, treeBase, ancestors);
        Kernels.softmax(scores, n, lanes);
        int i = 0;
        if (B8 != null) {
            int upper = F.loopBound(headDim);
            for (; i < upper; i += L) {
                FloatVector a = FloatVector.zero(F);
                long m = ancestors;
                for (int p = 0; p < n; p++) {
                    int pos = p < prefix ? p : treeBase + Long.numberOfTrailingZeros(m);
                    if (p >= prefix) {
                        m &= m - 1;
                    }
                    int slot = table[tableOff + pos / blockSize] * blockSize + pos % blockSize;
                    a = fp8(values, slot * kvDim + headOff + i)
                            .fma(FloatVector.broadcast(F, scores[p] * valueScales[scaleRow + slot]), a);
                }
                a.intoArray(out, o + i);
            }
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
                a = Math.fma(KvCodec.fp8Value(values[slot * kvDim + headOff + i]),
                        scores[p] * valueScales[scaleRow + slot], a);
            }
            out[o + i] = a;
        }
    }

    /**
     * Moves the scores of the tree positions a token attends to (bits of {@code ancestors}, from treeBase) right
     * after the prefix's, in order; returns how many scores the token attends to. treeBase + j ≥ the write index,
     * so compacting in place is safe.
     */
    private static int compactTree(float[] scores, int prefix, int treeBase, long ancestors) {
        int n = prefix;
        for (long m = ancestors; m != 0; m &= m - 1) {
            scores[n++] = scores[treeBase + Long.numberOfTrailingZeros(m)];
        }
        return n;
    }

    private static int keyUnit(int[] table, int tableOff, int kvDim, int headOff, int blockSize, int perBlock, int u) {
        int b = u / perBlock;
        return (table[tableOff + b] * kvDim + headOff) * blockSize + (u - b * perBlock) * L;
    }
}
