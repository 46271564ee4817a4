package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.WeightFormat;
import org.junit.jupiter.api.Test;

import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.Random;

import static ai.k2j.kernels.cpu.TestSupport.buffer;
import static ai.k2j.kernels.cpu.TestSupport.random;
import static ai.k2j.kernels.cpu.TestSupport.tensor;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * After warm-up (so the kernels are compiled and their vectors live in registers), 1000 forward-pass-like
 * rounds of every op allocate nothing on the calling thread or on the worker threads. A per-call allocation of
 * even one small object would show up as ≥ 16 KB; the bound is 1 KB per thread to tolerate a stray JIT event,
 * and the measurement is retried up to ten times for the same reason and because on a busy machine C2 may still be
 * compiling some kernel when warm-up ends (a real per-call allocation fails every try).
 */
class CpuAllocationTest {

    @Test
    void opsAllocateNothing() {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        assertTrue(mx.isThreadAllocatedMemorySupported());
        mx.setThreadAllocatedMemoryEnabled(true);
        try (CpuBackend backend = new CpuBackend(2)) {
            Round round = new Round(backend);
            for (int i = 0; i < 3000; i++) {
                round.run();
            }
            long[] workers = backend.workerThreadIds();
            String last = "";
            for (int attempt = 0; attempt < 10; attempt++) {
                long callerBefore = mx.getCurrentThreadAllocatedBytes();
                long[] workersBefore = new long[workers.length];
                for (int w = 0; w < workers.length; w++) {
                    workersBefore[w] = mx.getThreadAllocatedBytes(workers[w]);
                }
                for (int i = 0; i < 1000; i++) {
                    round.run();
                }
                long caller = mx.getCurrentThreadAllocatedBytes() - callerBefore;
                long worst = 0;
                for (int w = 0; w < workers.length; w++) {
                    worst = Math.max(worst, mx.getThreadAllocatedBytes(workers[w]) - workersBefore[w]);
                }
                if (caller < 1024 && worst < 1024) {
                    return;
                }
                last = "caller allocated " + caller + " bytes, a worker " + worst + " bytes over 1000 rounds";
            }
            throw new AssertionError(last);
        }
    }

    /** One round: every op, shapes large enough that the parallel ops use the worker. */
    private static final class Round {
        final CpuBackend b;
        final Weight bf16;
        final Weight f16;
        final Weight f32;
        final Weight q8;
        final Weight q4;
        final Buffer bias;
        final Buffer x;
        final Buffer out;
        final Buffer gamma;
        final Buffer qkv;
        final Rows qk;
        final Rows queries;
        final Rows keys;
        final Rows values;
        final Buffer attn;
        final Buffer gateUp;
        final Buffer act;
        final Buffer logits;
        final RopeTable rope;
        final KvCache cache;
        final Batch decode;
        final Batch prefill;
        final Batch[] batches;
        final float[] host = new float[64];
        final int[] ids = new int[8];
        static final int HIDDEN = 256;
        static final int ROWS = 386; // not a multiple of 4: leftover rows
        static final int HEADS = 4;
        static final int KV_HEADS = 2;
        static final int HEAD_DIM = 64;
        static final int STRIDE = (HEADS + 2 * KV_HEADS) * HEAD_DIM;

        Round(CpuBackend b) {
            this.b = b;
            Random rnd = new Random(5);
            bf16 = b.matrix(List.of(tensor("a", DType.BF16, random(rnd, 100 * HIDDEN, 1), 100, HIDDEN),
                    tensor("b", DType.BF16, random(rnd, (ROWS - 100) * HIDDEN, 1), ROWS - 100, HIDDEN)), null);
            f16 = b.matrix(List.of(tensor("c", DType.F16, random(rnd, ROWS * HIDDEN, 1), ROWS, HIDDEN)), null);
            f32 = b.matrix(List.of(tensor("d", DType.F32, random(rnd, ROWS * HIDDEN, 1), ROWS, HIDDEN)), null);
            q8 = b.matrix(List.of(tensor("e", DType.BF16, random(rnd, ROWS * HIDDEN, 1), ROWS, HIDDEN)), WeightFormat.Q8_0);
            q4 = b.matrix(List.of(tensor("f", DType.F16, random(rnd, ROWS * HIDDEN, 1), ROWS, HIDDEN)), WeightFormat.Q4_0);
            bias = buffer(b, random(rnd, ROWS, 1));
            x = buffer(b, random(rnd, 8 * HIDDEN, 1));
            out = b.allocate(8L * ROWS);
            gamma = buffer(b, random(rnd, HIDDEN, 1));
            qkv = buffer(b, random(rnd, 8 * STRIDE, 1));
            qk = Rows.of(qkv, 0, STRIDE, (HEADS + KV_HEADS) * HEAD_DIM);  // views made once, as a model does
            queries = Rows.of(qkv, 0, STRIDE, HEADS * HEAD_DIM);
            keys = Rows.of(qkv, HEADS * HEAD_DIM, STRIDE, KV_HEADS * HEAD_DIM);
            values = Rows.of(qkv, (HEADS + KV_HEADS) * HEAD_DIM, STRIDE, KV_HEADS * HEAD_DIM);
            attn = b.allocate(8L * HEADS * HEAD_DIM);
            gateUp = buffer(b, random(rnd, 8 * 2 * HIDDEN, 1));
            act = b.allocate(8L * HIDDEN);
            logits = buffer(b, random(rnd, 8 * ROWS, 1));
            float[] invFreq = new float[HEAD_DIM / 2];
            for (int i = 0; i < invFreq.length; i++) {
                invFreq[i] = (float) Math.pow(10000, -2.0 * i / HEAD_DIM);
            }
            rope = b.ropeTable(invFreq, 1f, 512);
            cache = b.kvCache(1, KV_HEADS * HEAD_DIM, 64, 16);
            decode = TestSupport.singleSequence(1, 300, 64);
            prefill = TestSupport.singleSequence(7, 100, 64);
            batches = new Batch[] {decode, prefill};
            prefill.nLogits = 2;
            prefill.logitRows[0] = 6;
            prefill.logitRows[1] = 3;
            for (int t = 0; t < 8; t++) {
                decode.tokens[0] = 17;
                prefill.tokens[Math.min(t, 6)] = t * 11;
            }
        }

        void run() {
            for (Batch batch : batches) {
                int n = batch.nTokens;
                b.embed(bf16, batch, x);
                b.rmsNorm(x, gamma, 1e-6f, n, HIDDEN, x);
                b.matmul(bf16, bias, x, n, out);
                b.matmul(f16, null, x, n, out);
                b.matmul(f32, bias, x, n, out);
                b.matmul(q8, bias, x, n, out);
                b.matmul(q4, null, x, n, out);
                b.embed(q4, batch, x);
                b.rope(qk, HEAD_DIM, batch, rope);
                b.storeKv(cache, 0, keys, values, batch);
                b.attention(queries, cache, 0, batch, KV_HEADS, HEAD_DIM, 0.125f, attn);
                b.ropeStoreKv(queries, keys, values, HEAD_DIM, cache, 0, batch, rope);
                b.addRmsNorm(x, act, gamma, 1e-6f, n, HIDDEN, x);
                b.siluMul(gateUp, n, HIDDEN, act);
                b.add(x, act, n, HIDDEN);
                b.gatherRows(out, ROWS, batch, logits);
                b.argmax(logits, n, ROWS, ids);
                b.download(logits, 0, host, 0, host.length);
                cache.copyBlock(3, 5);
                b.sync();
            }
        }
    }
}
