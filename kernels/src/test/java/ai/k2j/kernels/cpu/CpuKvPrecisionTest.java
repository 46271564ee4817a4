package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.KvCodec;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.kernels.Rows;
import ai.k2j.loaders.DType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static ai.k2j.kernels.cpu.TestSupport.buffer;
import static ai.k2j.kernels.cpu.TestSupport.data;
import static ai.k2j.kernels.cpu.TestSupport.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * BF16 and FP8 KV caches on the CPU backend: what the cache reads back is exactly {@link KvCodec#roundInPlace} of
 * what was stored (the reference backend's definition), attention over it matches a double-precision computation
 * over those rounded keys and values and the reference backend's cache of the same precision, with the vector
 * (block of 16) and scalar (block of 3) paths, GQA and MHA, a prefill step and then decode steps, scattered blocks;
 * copy-on-write block copies and single-slot copies carry FP8's scales.
 */
class CpuKvPrecisionTest {

    @ParameterizedTest
    @EnumSource(value = KvPrecision.class, names = {"BF16", "FP8_E4M3"})
    void attentionOverTheRoundedCache(KvPrecision precision) {
        for (int block : new int[] {16, 3}) {
            run(precision, block, 14, 2, 64);
            run(precision, block, 4, 4, 16);
            run(precision, block, 6, 2, 12);
        }
    }

    private static void run(KvPrecision precision, int block, int heads, int kvHeads, int headDim) {
        String what = precision + " block " + block + " heads " + heads + "/" + kvHeads + "x" + headDim;
        Random rnd = new Random(block * 131 + heads * 7 + headDim);
        int kvDim = kvHeads * headDim;
        int qWidth = heads * headDim;
        int stride = qWidth + 2 * kvDim;
        int numBlocks = 64;
        int maxBlocks = 16;
        int[] prompt = {37, 5, 20};
        int seqs = prompt.length;
        try (CpuBackend cpu = new CpuBackend(2, 0); ReferenceBackend ref = new ReferenceBackend()) {
            KvCache cc = cpu.kvCache(2, kvDim, numBlocks, block, precision, headDim);
            KvCache rc = ref.kvCache(2, kvDim, numBlocks, block, precision, headDim);
            assertEquals(precision, cc.precision());
            assertEquals(precision, rc.precision());
            List<Integer> free = new ArrayList<>();
            for (int b = 0; b < numBlocks; b++) {
                free.add(b);
            }
            Collections.shuffle(free, rnd);
            Batch batch = new Batch(96, seqs, maxBlocks);
            Arrays.fill(batch.blockTables, -1);
            List<List<float[]>> keys = new ArrayList<>();
            List<List<float[]>> values = new ArrayList<>();
            for (int s = 0; s < seqs; s++) {
                keys.add(new ArrayList<>());
                values.add(new ArrayList<>());
                for (int j = 0; j < (prompt[s] + 3 + block - 1) / block; j++) {
                    batch.blockTables[s * maxBlocks + j] = free.removeFirst();
                }
            }
            float scale = (float) (1 / Math.sqrt(headDim));
            for (int step = 0; step < 4; step++) {
                int n = 0;
                batch.nSeqs = seqs;
                for (int s = 0; s < seqs; s++) {
                    int count = step == 0 ? prompt[s] : 1;
                    for (int k = 0; k < count; k++) {
                        batch.seqOfToken[n] = s;
                        batch.positions[n] = keys.get(s).size() + k;
                        n++;
                    }
                    batch.seqKvLength[s] = keys.get(s).size() + count;
                }
                batch.nTokens = n;
                // values of varied magnitude per head, so FP8's per-head scales matter
                float[] qkv = random(rnd, n * stride, 1f);
                for (int i = 0; i < qkv.length; i++) {
                    qkv[i] *= (float) Math.pow(4, (i / headDim) % 3 - 1);
                }
                for (int t = 0; t < n; t++) {
                    float[] k = Arrays.copyOfRange(qkv, t * stride + qWidth, t * stride + qWidth + kvDim);
                    float[] v = Arrays.copyOfRange(qkv, t * stride + qWidth + kvDim, t * stride + stride);
                    KvCodec.roundInPlace(precision, k, 0, kvDim, headDim);
                    KvCodec.roundInPlace(precision, v, 0, kvDim, headDim);
                    keys.get(batch.seqOfToken[t]).add(k);
                    values.get(batch.seqOfToken[t]).add(v);
                }
                Buffer cb = buffer(cpu, qkv);
                Buffer rb = ref.vector(List.of(TestSupport.tensor("qkv", DType.F32, qkv, qkv.length)));
                cpu.storeKv(cc, 1, Rows.of(cb, qWidth, stride, kvDim), Rows.of(cb, qWidth + kvDim, stride, kvDim), batch);
                ref.storeKv(rc, 1, Rows.of(rb, qWidth, stride, kvDim), Rows.of(rb, qWidth + kvDim, stride, kvDim), batch);
                for (int t = 0; t < n; t++) {
                    int slot = batch.slotOf(t, cc);
                    assertArrayEquals(keys.get(batch.seqOfToken[t]).get(batch.positions[t]),
                            ((CpuKvCache) cc).key(1, slot / block, slot % block), what + ": stored key");
                }
                Buffer co = cpu.allocate((long) n * qWidth);
                Buffer ro = ref.allocate((long) n * qWidth);
                cpu.attention(Rows.of(cb, 0, stride, qWidth), cc, 1, batch, kvHeads, headDim, scale, co);
                ref.attention(Rows.of(rb, 0, stride, qWidth), rc, 1, batch, kvHeads, headDim, scale, ro);
                float[] got = data(co);
                float[] oracle = new float[n * qWidth];
                ref.download(ro, 0, oracle, 0, oracle.length);
                for (int t = 0; t < n; t++) {
                    int s = batch.seqOfToken[t];
                    check(what, qkv, t, stride, heads, kvHeads, headDim, batch.positions[t], keys.get(s), values.get(s),
                            scale, got, oracle);
                }
            }
            // a draft tree's accepted path moves single slots (KvCache.copySlot): the elements, FP8 with its scales
            int slotBlock = free.getLast();
            cc.copySlot(batch.blockTables[0] * block, slotBlock * block + block - 1);
            assertArrayEquals(((CpuKvCache) cc).key(1, batch.blockTables[0], 0),
                    ((CpuKvCache) cc).key(1, slotBlock, block - 1), what + ": key copied by copySlot");
            if (precision == KvPrecision.FP8_E4M3) {
                int src = batch.blockTables[0];
                int dst = free.removeFirst();
                cc.copyBlock(src, dst);
                for (int j = 0; j < block; j++) {
                    assertArrayEquals(((CpuKvCache) cc).key(1, src, j), ((CpuKvCache) cc).key(1, dst, j),
                            what + ": copied key (with its scale)");
                }
                assertThrows(IllegalArgumentException.class, () -> cpu.attention(
                        Rows.of(cpu.allocate(stride), 0, stride, qWidth / 2), cc, 1, batch, kvHeads, headDim / 2, scale,
                        cpu.allocate(qWidth)), "head dim other than the FP8 scales'");
            }
        }
    }

    private static void check(String what, float[] qkv, int t, int stride, int heads, int kvHeads, int headDim, int pos,
                              List<float[]> keys, List<float[]> values, float scale, float[] got, float[] oracle) {
        int group = heads / kvHeads;
        for (int h = 0; h < heads; h++) {
            int kvOff = (h / group) * headDim;
            int qOff = t * stride + h * headDim;
            double[] w = new double[pos + 1];
            double max = Double.NEGATIVE_INFINITY;
            for (int p = 0; p <= pos; p++) {
                double s = 0;
                for (int i = 0; i < headDim; i++) {
                    s += (double) qkv[qOff + i] * keys.get(p)[kvOff + i];
                }
                w[p] = s * scale;
                max = Math.max(max, w[p]);
            }
            double sum = 0;
            for (int p = 0; p <= pos; p++) {
                w[p] = Math.exp(w[p] - max);
                sum += w[p];
            }
            for (int i = 0; i < headDim; i++) {
                double expected = 0;
                double vmax = 0;
                for (int p = 0; p <= pos; p++) {
                    expected += w[p] / sum * values.get(p)[kvOff + i];
                    vmax = Math.max(vmax, Math.abs(values.get(p)[kvOff + i]));
                }
                int at = (t * heads + h) * headDim + i;
                if (!(Math.abs(got[at] - expected) <= 1e-4 * vmax) || !(Math.abs(oracle[at] - expected) <= 1e-4 * vmax)) {
                    throw new AssertionError(what + ": token " + t + " (pos " + pos + ") head " + h + " dim " + i
                            + ": cpu " + got[at] + ", reference " + oracle[at] + ", expected " + expected);
                }
            }
        }
    }
}
