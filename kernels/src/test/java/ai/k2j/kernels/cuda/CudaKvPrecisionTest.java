package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.KvPrecision;
import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * BF16 and FP8 KV caches on CUDA against the reference backend's caches of the same precision (which round on
 * store, {@link ai.k2j.kernels.KvCodec}): the store kernels (store_kv_bf16, rope_store_kv_bf16, store_kv_fp8 after
 * rope) and both attention kernels (attention_dec_* for up to 8 tokens, attention_g* for a prefill chunk) over
 * scattered blocks, head dims 64 and 128, groups 1, 5, 7; the decode step captured as a graph equals it eager.
 * Attention tolerance ≤ 1e-4 · max|v| (the cached values are the same; only summation orders differ).
 */
@Tag("gpu")
class CudaKvPrecisionTest {

    private static CudaBackend backend;

    @BeforeAll
    static void open() {
        try {
            backend = new CudaBackend();
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

    @Test
    void bf16MatchesTheReference() {
        for (int[] shape : new int[][] {{14, 2, 64}, {40, 8, 128}, {7, 1, 128}}) {
            for (int n : new int[] {1, 4, 37}) {
                run(KvPrecision.BF16, shape[0], shape[1], shape[2], n, false);
                run(KvPrecision.BF16, shape[0], shape[1], shape[2], n, true);
            }
        }
    }

    @Test
    void fp8MatchesTheReference() {
        for (int[] shape : new int[][] {{14, 2, 64}, {40, 8, 128}, {7, 1, 128}}) {
            for (int n : new int[] {1, 4, 37}) {
                run(KvPrecision.FP8_E4M3, shape[0], shape[1], shape[2], n, false);
                run(KvPrecision.FP8_E4M3, shape[0], shape[1], shape[2], n, true);
            }
        }
    }

    @Test
    void decodeStepGraphEqualsEager() {
        for (KvPrecision p : new KvPrecision[] {KvPrecision.BF16, KvPrecision.FP8_E4M3}) {
            float[] eager = decodeStep(p, false);
            float[] graph = decodeStep(p, true);
            assertArrayEquals(eager, graph, p + ": a recorded rope_store_kv + attention step equals the eager one");
        }
    }

    /**
     * A prefix of 53 tokens stored through storeKv, then n query tokens stored (through ropeStoreKv when
     * {@code fused}, else rope + storeKv) and attended to, on CUDA and on the reference backend.
     */
    private static void run(KvPrecision precision, int heads, int kvHeads, int headDim, int n, boolean fused) {
        String what = precision + " heads " + heads + "/" + kvHeads + "x" + headDim + " n=" + n + (fused ? " fused" : "");
        int kvDim = kvHeads * headDim;
        int qDim = heads * headDim;
        int stride = qDim + 2 * kvDim;
        int prefix = 53;
        int block = 16;
        int maxBlocks = 8;
        Random rnd = new Random(heads * 1000 + n * 7 + headDim + (fused ? 1 : 0));
        float[] invFreq = new float[headDim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) Math.pow(1e6, -2.0 * i / headDim);
        }
        int[] table = {5, 0, 9, 3, 7, 1, 2, 4};
        float[] prefixRows = randn(rnd, prefix * stride, 2f);
        float[] rows = randn(rnd, n * stride, 2f);
        float[][] outs = new float[2][];
        try (ReferenceBackend ref = new ReferenceBackend()) {
            Backend[] backends = {backend, ref};
            for (int bi = 0; bi < 2; bi++) {
                Backend be = backends[bi];
                KvCache cache = be.kvCache(2, kvDim, 12, block, precision, headDim);
                assertEquals(precision, cache.precision());
                RopeTable rope = be.ropeTable(invFreq, 1f, 256);
                Batch pb = batch(0, prefix, table, maxBlocks);
                Buffer pbuf = upload(be, prefixRows);
                be.storeKv(cache, 1, Rows.of(pbuf, qDim, stride, kvDim), Rows.of(pbuf, qDim + kvDim, stride, kvDim), pb);
                Batch b = batch(prefix, n, table, maxBlocks);
                Buffer qkv = upload(be, rows);
                Rows q = Rows.of(qkv, 0, stride, qDim);
                Rows k = Rows.of(qkv, qDim, stride, kvDim);
                Rows v = Rows.of(qkv, qDim + kvDim, stride, kvDim);
                if (fused) {
                    be.ropeStoreKv(q, k, v, headDim, cache, 1, b, rope);
                } else {
                    be.rope(q, headDim, b, rope);
                    be.rope(k, headDim, b, rope);
                    be.storeKv(cache, 1, k, v, b);
                }
                Buffer out = be.allocate((long) n * qDim);
                be.attention(q, cache, 1, b, kvHeads, headDim, (float) (1 / Math.sqrt(headDim)), out);
                outs[bi] = new float[n * qDim];
                be.download(out, 0, outs[bi], 0, n * qDim);
            }
        }
        float vmax = 0;
        for (float x : prefixRows) {
            vmax = Math.max(vmax, Math.abs(x));
        }
        for (float x : rows) {
            vmax = Math.max(vmax, Math.abs(x));
        }
        for (int i = 0; i < outs[0].length; i++) {
            if (!(Math.abs(outs[0][i] - outs[1][i]) <= 1e-4 * vmax)) {
                throw new AssertionError(what + ": element " + i + " cuda " + outs[0][i] + " vs reference " + outs[1][i]);
            }
        }
    }

    private static float[] decodeStep(KvPrecision precision, boolean graph) {
        int heads = 14;
        int kvHeads = 2;
        int headDim = 64;
        int kvDim = kvHeads * headDim;
        int qDim = heads * headDim;
        int stride = qDim + 2 * kvDim;
        int[] table = {2, 0, 3, 1};
        Random rnd = new Random(5);
        float[] invFreq = new float[headDim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) Math.pow(1e6, -2.0 * i / headDim);
        }
        RopeTable rope = backend.ropeTable(invFreq, 1f, 64);
        KvCache cache = backend.kvCache(1, kvDim, 4, 16, precision, headDim);
        Buffer prefix = upload(backend, randn(rnd, 40 * stride, 1f));
        Batch pb = batch(0, 40, table, 4);
        backend.storeKv(cache, 0, Rows.of(prefix, qDim, stride, kvDim), Rows.of(prefix, qDim + kvDim, stride, kvDim), pb);
        Batch b = batch(40, 1, table, 4);
        Buffer qkv = upload(backend, randn(rnd, stride, 1f));
        Buffer out = backend.allocate(qDim);
        Rows q = Rows.of(qkv, 0, stride, qDim);
        Rows k = Rows.of(qkv, qDim, stride, kvDim);
        Rows v = Rows.of(qkv, qDim + kvDim, stride, kvDim);
        if (graph) {
            backend.beginCapture(b);
            backend.ropeStoreKv(q, k, v, headDim, cache, 0, b, rope);
            backend.attention(q, cache, 0, b, kvHeads, headDim, 0.125f, out);
            try (CudaGraph g = backend.endCapture()) {
                backend.replay(g, b);
            }
        } else {
            backend.ropeStoreKv(q, k, v, headDim, cache, 0, b, rope);
            backend.attention(q, cache, 0, b, kvHeads, headDim, 0.125f, out);
        }
        float[] o = new float[qDim];
        backend.download(out, 0, o, 0, qDim);
        return o;
    }

    private static Batch batch(int start, int n, int[] table, int maxBlocks) {
        Batch b = new Batch(Math.max(n, 1), 1, maxBlocks);
        b.nTokens = n;
        b.nSeqs = 1;
        b.seqKvLength[0] = start + n;
        for (int t = 0; t < n; t++) {
            b.positions[t] = start + t;
            b.seqOfToken[t] = 0;
        }
        System.arraycopy(table, 0, b.blockTables, 0, Math.min(table.length, maxBlocks));
        return b;
    }

    private static Buffer upload(Backend be, float[] data) {
        return be.vector(List.of(CudaBackendTest.f32("data", data)));
    }

    private static float[] randn(Random rnd, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextGaussian() * scale * (1 + (i % 97) / 24.0));
        }
        return a;
    }
}
