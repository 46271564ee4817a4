package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.Rows;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static ai.k2j.kernels.cpu.CpuMatmulTest.assertMessage;
import static ai.k2j.kernels.cpu.TestSupport.buffer;
import static ai.k2j.kernels.cpu.TestSupport.data;
import static ai.k2j.kernels.cpu.TestSupport.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * storeKv + attention over a paged cache: several sequences whose blocks are scattered (shuffled physical blocks,
 * unused table entries set to -1), a prefill step with many tokens per sequence followed by a decode step with
 * one or two tokens per sequence, for MHA, GQA and MQA head layouts, against a double-precision reference built
 * from the sequences' logical keys and values. Output error bound: 5e-5·max|v| (scores of unit-range q, k with
 * scale 1/√headDim carry a few 1e-6 of absolute error, which the softmax turns into a relative weight error of
 * the same size).
 */
class CpuAttentionTest {

    private static final int BLOCK = 3;
    private static final int NUM_BLOCKS = 40;
    private static final int MAX_BLOCKS_PER_SEQ = 12;

    record Layout(int heads, int kvHeads, int headDim) {
        int qWidth() {
            return heads * headDim;
        }

        int kvDim() {
            return kvHeads * headDim;
        }

        int rowStride() {
            return qWidth() + 2 * kvDim() + 3; // padding: rows are not packed
        }
    }

    @Test
    void mha() {
        run(new Layout(4, 4, 16));
    }

    @Test
    void gqa() {
        run(new Layout(6, 2, 12));
        run(new Layout(14, 2, 64));
    }

    @Test
    void mqa() {
        run(new Layout(5, 1, 9));
    }

    /** Runs the two steps with 1 and 2 threads; both must agree bit for bit and with the reference. */
    private static void run(Layout layout) {
        float[] out1;
        float[] out2;
        try (CpuBackend one = new CpuBackend(1); CpuBackend two = new CpuBackend(2, 0)) {
            out1 = scenario(one, layout);
            out2 = scenario(two, layout);
        }
        assertArrayEquals(out1, out2, "threads 1 vs 2");
    }

    /** Returns the concatenated attention outputs of both steps. */
    private static float[] scenario(CpuBackend backend, Layout lay) {
        Random rnd = new Random(lay.heads() * 31 + lay.kvHeads() * 7 + lay.headDim());
        int[] promptLengths = {5, 1, 11, 7};
        int[][] decodeTokens = {{1}, {2}, {1}, {0}}; // tokens per sequence in step 2 (seq 3 sits this step out)
        int seqs = promptLengths.length;

        List<Integer> free = new ArrayList<>();
        for (int b = 0; b < NUM_BLOCKS; b++) {
            free.add(b);
        }
        Collections.shuffle(free, rnd);
        Batch batch = new Batch(32, seqs, MAX_BLOCKS_PER_SEQ);
        Arrays.fill(batch.blockTables, -1);
        for (int s = 0; s < seqs; s++) {
            int finalLength = promptLengths[s] + decodeTokens[s][0];
            for (int j = 0; j < (finalLength + BLOCK - 1) / BLOCK; j++) {
                batch.blockTables[s * MAX_BLOCKS_PER_SEQ + j] = free.removeFirst();
            }
        }

        KvCache cache = backend.kvCache(2, lay.kvDim(), NUM_BLOCKS, BLOCK);
        int layer = 1;
        // Garbage in the other layer and in every slot: only written slots of this layer may be read.
        for (float[] a : ((CpuKvCache) cache).keys) {
            Arrays.fill(a, 1e6f);
        }
        for (float[] a : ((CpuKvCache) cache).values) {
            Arrays.fill(a, 1e6f);
        }
        List<List<float[]>> keys = new ArrayList<>();
        List<List<float[]>> values = new ArrayList<>();
        for (int s = 0; s < seqs; s++) {
            keys.add(new ArrayList<>());
            values.add(new ArrayList<>());
        }
        float scale = (float) (1 / Math.sqrt(lay.headDim()));
        float[] all = new float[0];

        for (int step = 0; step < 2; step++) {
            int n = 0;
            batch.nSeqs = seqs;
            for (int s = 0; s < seqs; s++) {
                int count = step == 0 ? promptLengths[s] : decodeTokens[s][0];
                for (int k = 0; k < count; k++) {
                    batch.seqOfToken[n] = s;
                    batch.positions[n] = keys.get(s).size() + k;
                    n++;
                }
                batch.seqKvLength[s] = keys.get(s).size() + count;
            }
            batch.nTokens = n;
            float[] qkv = random(rnd, n * lay.rowStride(), 1f);
            int kOff = lay.qWidth();
            int vOff = kOff + lay.kvDim();
            for (int t = 0; t < n; t++) {
                int s = batch.seqOfToken[t];
                keys.get(s).add(Arrays.copyOfRange(qkv, t * lay.rowStride() + kOff, t * lay.rowStride() + kOff + lay.kvDim()));
                values.get(s).add(Arrays.copyOfRange(qkv, t * lay.rowStride() + vOff, t * lay.rowStride() + vOff + lay.kvDim()));
            }
            Buffer qkvBuf = buffer(backend, qkv);
            backend.storeKv(cache, layer, Rows.of(qkvBuf, kOff, lay.rowStride(), cache.kvDim()), Rows.of(qkvBuf, vOff, lay.rowStride(), cache.kvDim()), batch);
            for (int t = 0; t < n; t++) {
                int slot = batch.slotOf(t, cache);
                int s = batch.seqOfToken[t];
                CpuKvCache c = (CpuKvCache) cache;
                assertArrayEquals(keys.get(s).get(batch.positions[t]), c.key(layer, slot / BLOCK, slot % BLOCK),
                        "stored key");
                assertArrayEquals(values.get(s).get(batch.positions[t]),
                        Arrays.copyOfRange(c.values[layer], slot * lay.kvDim(), (slot + 1) * lay.kvDim()), "stored value");
            }
            Buffer out = backend.allocate((long) n * lay.qWidth());
            backend.attention(Rows.of(qkvBuf, 0, lay.rowStride(), lay.heads() * lay.headDim()), cache, layer, batch, lay.kvHeads(), lay.headDim(), scale, out);
            float[] got = data(out);
            for (int t = 0; t < n; t++) {
                checkToken(lay, qkv, t, batch.positions[t], keys.get(batch.seqOfToken[t]),
                        values.get(batch.seqOfToken[t]), scale, got);
            }
            float[] joined = Arrays.copyOf(all, all.length + got.length);
            System.arraycopy(got, 0, joined, all.length, got.length);
            all = joined;
        }

        // Bad batches are refused before anything runs.
        batch.nTokens = 1;
        batch.seqOfToken[0] = 0;
        batch.positions[0] = 2 * BLOCK; // seq 0 has 6 tokens in blocks 0, 1: entry 2 is unassigned (-1)
        Buffer qkv = backend.allocate(lay.rowStride());
        Buffer out = backend.allocate(lay.qWidth());
        assertMessage(() -> backend.attention(Rows.of(qkv, 0, lay.rowStride(), lay.heads() * lay.headDim()), cache, layer, batch, lay.kvHeads(), lay.headDim(), scale, out), "block table entry 2 of sequence 0 is -1");
        assertMessage(() -> backend.storeKv(cache, layer, Rows.of(qkv, lay.qWidth(), lay.rowStride(), cache.kvDim()), Rows.of(qkv, lay.qWidth() + lay.kvDim(), lay.rowStride(), cache.kvDim()), batch), "block table entry 2 of sequence 0 is -1");
        batch.positions[0] = MAX_BLOCKS_PER_SEQ * BLOCK;
        assertMessage(() -> backend.attention(Rows.of(qkv, 0, lay.rowStride(), lay.heads() * lay.headDim()), cache, layer, batch, lay.kvHeads(), lay.headDim(), scale, out), "outside the block table");
        batch.positions[0] = 0;
        batch.seqOfToken[0] = seqs;
        assertMessage(() -> backend.attention(Rows.of(qkv, 0, lay.rowStride(), lay.heads() * lay.headDim()), cache, layer, batch, lay.kvHeads(), lay.headDim(), scale, out), "sequence " + seqs);
        batch.seqOfToken[0] = 0;
        assertMessage(() -> backend.attention(Rows.of(qkv, 0, lay.rowStride(), 3 * lay.headDim()), cache, layer, batch, 2, lay.headDim(), scale, out),
                "multiple of kvHeads");
        assertMessage(() -> backend.attention(Rows.of(qkv, 0, lay.rowStride(), lay.heads() * lay.headDim()), cache, 2, batch, lay.kvHeads(), lay.headDim(), scale, out), "layer 2");
        assertMessage(() -> backend.attention(Rows.of(qkv, 0, lay.rowStride(), lay.heads() * lay.headDim()), cache, layer, batch, lay.kvHeads(), lay.headDim(), scale, qkv), "alias");
        return all;
    }

    private static void checkToken(Layout lay, float[] qkv, int t, int pos, List<float[]> keys, List<float[]> values,
                                   float scale, float[] got) {
        int group = lay.heads() / lay.kvHeads();
        for (int h = 0; h < lay.heads(); h++) {
            int kvOff = (h / group) * lay.headDim();
            int qOff = t * lay.rowStride() + h * lay.headDim();
            double[] w = new double[pos + 1];
            double max = Double.NEGATIVE_INFINITY;
            for (int p = 0; p <= pos; p++) {
                double s = 0;
                for (int i = 0; i < lay.headDim(); i++) {
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
            for (int i = 0; i < lay.headDim(); i++) {
                double ref = 0;
                double vmax = 0;
                for (int p = 0; p <= pos; p++) {
                    ref += w[p] / sum * values.get(p)[kvOff + i];
                    vmax = Math.max(vmax, Math.abs(values.get(p)[kvOff + i]));
                }
                float g = got[(t * lay.heads() + h) * lay.headDim() + i];
                if (!(Math.abs(g - ref) <= 5e-5 * vmax)) {
                    throw new AssertionError("attention token " + t + " (pos " + pos + ") head " + h + " dim " + i
                            + ": " + g + " vs " + ref + " " + lay);
                }
            }
        }
    }
}
