package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.Rows;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The tensor-core prefill attention ({@code native/prefill.cu}, {@code Options.flashPrefill} in the AUTO mode)
 * against a double-precision reference and against the FP32 general kernel on the same cache: several sequences in
 * one batch (tiles spanning sequence boundaries), prompts continuing earlier context (chunked prefill), long
 * prompts that split the keys, and the head dims / group sizes of Qwen2.5 0.5B, 7B, 32B and the golden fixtures.
 *
 * <p>Tolerance: Q, K, V and the probabilities are rounded to BF16 (unit roundoff 2^-9), scores and sums stay FP32,
 * so each output is within {@value #ELEMENT_TOL}·max|v| of the exact value and the RMS error over a case within
 * {@value #RMS_TOL}·max|v| (a wrong key, mask or row mapping gives errors of the order of |v| itself).
 * Also checks that the FP32 mode and {@code flashPrefill = false} keep the general kernel (1e-4·max|v|).
 */
@Tag("gpu")
class CudaFlashPrefillTest {

    static final double ELEMENT_TOL = 3e-2;
    static final double RMS_TOL = 6e-3;
    static final double EXACT_TOL = 1e-4;
    private static final Arena ARENA = Arena.ofShared();
    private static CudaBackend backend;

    @BeforeAll
    static void open() {
        try {
            backend = new CudaBackend(new CudaBackend.Options(0, CudaBackend.PrefillGemm.AUTO, 9)
                    .withFlashPrefill(true));
        } catch (CudaException.Unavailable e) {
            if (Boolean.getBoolean("k2j.cuda.required")) {
                throw new AssertionError("CUDA is required (-Dk2j.cuda.required) but unavailable: " + e.getMessage(), e);
            }
            Assumptions.abort("no CUDA here: " + e.getMessage());
        }
    }

    @AfterAll
    static void close() {
        if (backend != null) {
            backend.close();
        }
    }

    /** heads, kvHeads, headDim: Qwen2.5 0.5B, 7B, 32B, MHA, the fixtures' dims 16 and 32, a group of 16. */
    private static final int[][] CONFIGS = {{14, 2, 64}, {28, 4, 128}, {40, 8, 128}, {4, 4, 32}, {6, 2, 16},
            {16, 1, 64}};

    @Test
    void severalSequencesInOneBatchMatchTheReference() {
        Random rnd = new Random(7);
        for (int[] cfg : CONFIGS) {
            // sequence lengths: prompts from scratch of odd lengths (tiles straddle the sequence boundaries)
            Scenario sc = new Scenario(cfg[0], cfg[1], cfg[2], new int[] {37, 9, 120, 1}, rnd);
            sc.check(new int[] {0, 0, 0, 0}, 1.0f, "mixed prompts");
        }
    }

    /** A batched decode step of 20 sequences, one token each (n > 8: the tensor-core kernel, a pass per sequence). */
    @Test
    void oneTokenPerSequenceOfABatchedStep() {
        Random rnd = new Random(10);
        int[] lengths = new int[20];
        int[] from = new int[20];
        for (int i = 0; i < lengths.length; i++) {
            lengths[i] = 40 + 37 * i;
            from[i] = lengths[i] - 1;
        }
        for (int[] cfg : new int[][] {{14, 2, 64}, {28, 4, 128}}) {
            new Scenario(cfg[0], cfg[1], cfg[2], lengths, rnd).check(from, 2.0f, "batched decode step");
        }
    }

    @Test
    void chunkContinuingEarlierContextAndLongPromptsSplitTheKeys() {
        Random rnd = new Random(8);
        for (int[] cfg : new int[][] {{14, 2, 64}, {28, 4, 128}, {4, 2, 32}}) {
            // one sequence of 1800 keys; the batch is its last 256 positions (a later prefill chunk): split keys
            Scenario chunk = new Scenario(cfg[0], cfg[1], cfg[2], new int[] {1800}, rnd);
            chunk.check(new int[] {1800 - 256}, 1.0f, "chunk at 1544");
            // a whole 1000-token prompt, sharper attention (scores scaled 4x)
            Scenario whole = new Scenario(cfg[0], cfg[1], cfg[2], new int[] {1000, 300}, rnd);
            whole.check(new int[] {0, 200}, 4.0f, "prompt of 1000 + chunk of 100");
        }
    }

    @Test
    void fp32ModeAndTheSwitchKeepTheGeneralKernel() {
        Random rnd = new Random(9);
        CudaBackend.Options tuned = backend.options();
        try {
            for (CudaBackend.Options o : List.of(tuned.withFlashPrefill(false),
                    tuned.withPrefillGemm(CudaBackend.PrefillGemm.FP32))) {
                backend.retune(o);
                Scenario sc = new Scenario(28, 4, 128, new int[] {70, 33}, rnd);
                sc.tolerance = EXACT_TOL;
                sc.rmsTolerance = EXACT_TOL;
                sc.check(new int[] {0, 10}, 1.0f, "general kernel (" + o.prefillGemm() + ", flash "
                        + o.flashPrefill() + ")");
            }
        } finally {
            backend.retune(tuned);
        }
    }

    /** Random keys/values for a few sequences in shuffled cache blocks; queries for a suffix of each. */
    private static final class Scenario {
        final int heads;
        final int kvHeads;
        final int headDim;
        final int kvDim;
        final int blockSize = 16;
        final int maxBlocks;
        final int[] lengths;
        final KvCache cache;
        final int[][] tables;
        final float[][][] keys;    // [seq][pos][kvDim]
        final float[][][] values;
        final Random rnd;
        double tolerance = ELEMENT_TOL;
        double rmsTolerance = RMS_TOL;

        Scenario(int heads, int kvHeads, int headDim, int[] lengths, Random rnd) {
            this.heads = heads;
            this.kvHeads = kvHeads;
            this.headDim = headDim;
            this.kvDim = kvHeads * headDim;
            this.lengths = lengths;
            this.rnd = rnd;
            int longest = 0;
            int blocks = 0;
            for (int l : lengths) {
                longest = Math.max(longest, l);
                blocks += (l + blockSize - 1) / blockSize;
            }
            this.maxBlocks = (longest + blockSize - 1) / blockSize;
            int numBlocks = blocks + 5;
            this.cache = backend.kvCache(2, kvDim, numBlocks, blockSize);
            List<Integer> free = new ArrayList<>();
            for (int i = 0; i < numBlocks; i++) {
                free.add(i);
            }
            Collections.shuffle(free, rnd);
            int s = lengths.length;
            tables = new int[s][maxBlocks];
            keys = new float[s][][];
            values = new float[s][][];
            for (int i = 0; i < s; i++) {
                java.util.Arrays.fill(tables[i], -1);
                for (int j = 0; j < (lengths[i] + blockSize - 1) / blockSize; j++) {
                    tables[i][j] = free.remove(free.size() - 1);
                }
                // store every position of sequence i (layer 1) in one batch
                int n = lengths[i];
                Batch b = new Batch(n, 1, maxBlocks);
                b.nTokens = n;
                b.nSeqs = 1;
                b.seqKvLength[0] = n;
                System.arraycopy(tables[i], 0, b.blockTables, 0, maxBlocks);
                float[] kv = new float[n * 2 * kvDim];
                keys[i] = new float[n][kvDim];
                values[i] = new float[n][kvDim];
                for (int t = 0; t < n; t++) {
                    b.positions[t] = t;
                    for (int d = 0; d < kvDim; d++) {
                        float k = (float) rnd.nextGaussian();
                        float v = (float) rnd.nextGaussian();
                        kv[t * 2 * kvDim + d] = k;
                        kv[t * 2 * kvDim + kvDim + d] = v;
                        keys[i][t][d] = k;
                        values[i][t][d] = v;
                    }
                }
                Buffer kvb = upload(kv);
                backend.storeKv(cache, 1, Rows.of(kvb, 0, 2 * kvDim, kvDim), Rows.of(kvb, kvDim, 2 * kvDim, kvDim), b);
            }
        }

        /** Queries for positions from[i]..lengths[i]-1 of every sequence i (in one batch), scores scaled by sharp. */
        void check(int[] from, float sharp, String what) {
            int n = 0;
            for (int i = 0; i < lengths.length; i++) {
                n += lengths[i] - from[i];
            }
            int qDim = heads * headDim;
            int stride = qDim + 8;  // rows wider than the queries, as in a fused q|k|v activation
            Batch b = new Batch(n, lengths.length, maxBlocks);
            b.nTokens = n;
            b.nSeqs = lengths.length;
            int[] seqOf = new int[n];
            int t = 0;
            for (int i = 0; i < lengths.length; i++) {
                b.seqKvLength[i] = lengths[i];
                System.arraycopy(tables[i], 0, b.blockTables, i * maxBlocks, maxBlocks);
                for (int p = from[i]; p < lengths[i]; p++, t++) {
                    b.seqOfToken[t] = i;
                    b.positions[t] = p;
                    seqOf[t] = i;
                }
            }
            float[] q = new float[n * stride];
            for (int i = 0; i < q.length; i++) {
                q[i] = (float) rnd.nextGaussian();
            }
            float scale = (float) (sharp / Math.sqrt(headDim));
            Buffer qb = upload(q);
            Buffer out = backend.allocate((long) n * qDim);
            backend.attention(Rows.of(qb, 0, stride, qDim), cache, 1, b, kvHeads, headDim, scale, out);
            float[] got = new float[n * qDim];
            backend.download(out, 0, got, 0, got.length);

            int group = heads / kvHeads;
            double vmax = 0;
            double sq = 0;
            double worst = 0;
            for (int tt = 0; tt < n; tt++) {
                int s = seqOf[tt];
                int len = b.positions[tt] + 1;
                for (int h = 0; h < heads; h++) {
                    int kvh = h / group;
                    double[] w = new double[len];
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < len; j++) {
                        double dot = 0;
                        for (int d = 0; d < headDim; d++) {
                            dot += (double) q[tt * stride + h * headDim + d] * keys[s][j][kvh * headDim + d];
                        }
                        w[j] = dot * scale;
                        mx = Math.max(mx, w[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < len; j++) {
                        w[j] = Math.exp(w[j] - mx);
                        sum += w[j];
                    }
                    for (int d = 0; d < headDim; d++) {
                        double o = 0;
                        for (int j = 0; j < len; j++) {
                            double v = values[s][j][kvh * headDim + d];
                            o += w[j] / sum * v;
                            vmax = Math.max(vmax, Math.abs(v));
                        }
                        double err = Math.abs(got[(tt * heads + h) * headDim + d] - o);
                        if (!(err <= tolerance * Math.max(vmax, 1e-3))) {
                            fail(what + ": heads " + heads + "/" + kvHeads + " dim " + headDim + ", token " + tt
                                    + " (seq " + s + ", pos " + b.positions[tt] + ") head " + h + " dim " + d + ": got "
                                    + got[(tt * heads + h) * headDim + d] + ", expected " + o);
                        }
                        worst = Math.max(worst, err);
                        sq += err * err;
                    }
                }
            }
            double rms = Math.sqrt(sq / got.length);
            System.out.printf("flash prefill %s, heads %d/%d dim %d, %d tokens: max err %.2e, rms %.2e (max|v| %.2f)%n",
                    what, heads, kvHeads, headDim, n, worst, rms, vmax);
            assertTrue(rms <= rmsTolerance * vmax, what + ": rms error " + rms + " > " + rmsTolerance + " * " + vmax);
            assertEquals(n * qDim, got.length);
        }
    }

    private static Buffer upload(float[] data) {
        MemorySegment seg = ARENA.allocate(4L * data.length, 16);
        MemorySegment.copy(data, 0, seg, ValueLayout.JAVA_FLOAT, 0, data.length);
        return backend.vector(List.of(new Tensor("data", DType.F32, new long[] {data.length}, seg)));
    }
}
