package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.KQuants;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The K-quant matmul kernels against float64 dot products of the rows as {@link KQuants} decodes them (bit-exact
 * to ggml, KQuantsTest), and their invariants: one token and many give the same bits per (row, token), any thread
 * count gives the same bits, stacked parts work, embedding rows decode exactly, and decode allocates nothing.
 */
class KQuantMatmulTest {

    static final DType[] TYPES = {DType.Q4_K, DType.Q5_K, DType.Q6_K};

    /** Random blocks: random bits everywhere, with finite f16 super-block factors of about 1/cols magnitude. */
    static Tensor randomKQuant(String name, DType type, int rows, int cols, long seed) {
        Random rnd = new Random(seed);
        long blocks = (long) rows * cols / 256;
        MemorySegment s = Arena.ofAuto().allocate(blocks * type.blockBytes());
        byte[] b = new byte[(int) s.byteSize()];
        rnd.nextBytes(b);
        MemorySegment.copy(b, 0, s, ValueLayout.JAVA_BYTE, 0, b.length);
        for (long k = 0; k < blocks; k++) {
            long at = k * type.blockBytes();
            short d = Float.floatToFloat16((float) (0.002 * (0.5 + rnd.nextDouble())));
            if (type == DType.Q6_K) {
                s.set(ValueLayout.JAVA_SHORT_UNALIGNED, at + 208, d);
            } else {
                s.set(ValueLayout.JAVA_SHORT_UNALIGNED, at, d);
                s.set(ValueLayout.JAVA_SHORT_UNALIGNED, at + 2, Float.floatToFloat16((float) (0.004 * rnd.nextDouble())));
            }
        }
        return new Tensor(name, type, new long[] {rows, cols}, s);
    }

    static float[] decoded(Tensor t) {
        int rows = (int) t.dim(0);
        int cols = (int) t.dim(1);
        float[] w = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            KQuants.dequantizeRow(t.dtype(), t.data(), r * t.dtype().bytesFor(cols), cols, w, r * cols);
        }
        return w;
    }

    static float[] random(Random rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        return x;
    }

    static float[] matmul(CpuBackend b, Weight w, float[] x, int n) {
        Buffer xb = b.allocate(x.length);
        System.arraycopy(x, 0, TestSupport.data(xb), 0, x.length);
        Buffer out = b.allocate((long) n * w.rows());
        b.matmul(w, null, xb, n, out);
        return TestSupport.data(out).clone();
    }

    @Test
    void matchesFloat64DotProductsOfTheDecodedRows() {
        int rows = 37;
        int cols = 768;
        int n = 7;
        Random rnd = new Random(1);
        float[] x = random(rnd, n * cols);
        for (DType type : TYPES) {
            Tensor t = randomKQuant("w", type, rows, cols, 2);
            float[] w = decoded(t);
            try (CpuBackend b = new CpuBackend(2, 0)) {
                Weight weight = b.matrix(List.of(t), null);
                assertEquals(type, weight.dtype());
                assertEquals((long) rows * cols / 256 * type.blockBytes(), weight.byteSize());
                float[] many = matmul(b, weight, x, n);
                for (int tok = 0; tok < n; tok++) {
                    float[] one = matmul(b, weight, java.util.Arrays.copyOfRange(x, tok * cols, (tok + 1) * cols), 1);
                    for (int r = 0; r < rows; r++) {
                        double ref = 0;
                        double mag = 0;
                        for (int c = 0; c < cols; c++) {
                            ref += (double) w[r * cols + c] * x[tok * cols + c];
                            mag += Math.abs((double) w[r * cols + c] * x[tok * cols + c]);
                        }
                        assertEquals(ref, many[tok * rows + r], 1e-5 * mag + 1e-7, type + " row " + r + " token " + tok);
                        assertEquals(Float.floatToRawIntBits(many[tok * rows + r]), Float.floatToRawIntBits(one[r]),
                                type + ": decode and prefill give the same bits (row " + r + ", token " + tok + ")");
                    }
                }
                try (CpuBackend single = new CpuBackend(1)) {
                    assertArrayEquals(many, matmul(single, single.matrix(List.of(t), null), x, n), 0f,
                            type + ": one thread gives the same bits");
                }
            }
        }
    }

    @Test
    void stackedPartsEmbeddingAndConversionToF32() {
        int cols = 512;
        for (DType type : TYPES) {
            Tensor a = randomKQuant("a", type, 5, cols, 3);
            Tensor c = randomKQuant("c", type, 9, cols, 4);
            try (CpuBackend b = new CpuBackend(2, 0)) {
                Weight fused = b.matrix(List.of(a, c), null);
                Random rnd = new Random(5);
                float[] x = random(rnd, 2 * cols);
                float[] both = matmul(b, fused, x, 2);
                float[] first = matmul(b, b.matrix(List.of(a), null), x, 2);
                float[] second = matmul(b, b.matrix(List.of(c), null), x, 2);
                for (int t = 0; t < 2; t++) {
                    for (int r = 0; r < 5; r++) {
                        assertEquals(first[t * 5 + r], both[t * 14 + r], 0f);
                    }
                    for (int r = 0; r < 9; r++) {
                        assertEquals(second[t * 9 + r], both[t * 14 + 5 + r], 0f);
                    }
                }
                // embedding rows are the decoded rows
                ai.k2j.kernels.Batch batch = TestSupport.singleSequence(2, 0, 4);
                batch.tokens[0] = 13;
                batch.tokens[1] = 2;
                Buffer out = b.allocate(2L * cols);
                b.embed(fused, batch, out);
                float[] wc = decoded(c);
                float[] wa = decoded(a);
                for (int i = 0; i < cols; i++) {
                    assertEquals(wc[8 * cols + i], TestSupport.data(out)[i], 0f);
                    assertEquals(wa[2 * cols + i], TestSupport.data(out)[cols + i], 0f);
                }
                // f32 conversion at load decodes exactly
                Weight f32 = b.matrix(List.of(a), ai.k2j.loaders.WeightFormat.F32);
                assertEquals(DType.F32, f32.dtype());
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> b.matrix(List.of(a), ai.k2j.loaders.WeightFormat.Q4_0));
                assertTrue(e.getMessage().contains(type.toString()), e.getMessage());
            }
        }
    }

    @Test
    void partsOfDifferentBlockTypesStackAsStored() {
        int cols = 512;
        Tensor q = randomKQuant("attn_q", DType.Q4_K, 6, cols, 11);
        Tensor v = randomKQuant("attn_v", DType.Q6_K, 3, cols, 12);
        try (CpuBackend b = new CpuBackend(2, 0)) {
            Weight fused = b.matrix(List.of(q, v), null);
            assertEquals(6L * 2 * 144 + 3L * 2 * 210, fused.byteSize());
            float[] x = random(new Random(13), 3 * cols);
            float[] both = matmul(b, fused, x, 3);
            float[] a = matmul(b, b.matrix(List.of(q), null), x, 3);
            float[] c = matmul(b, b.matrix(List.of(v), null), x, 3);
            for (int t = 0; t < 3; t++) {
                for (int r = 0; r < 6; r++) {
                    assertEquals(a[t * 6 + r], both[t * 9 + r], 0f);
                }
                for (int r = 0; r < 3; r++) {
                    assertEquals(c[t * 3 + r], both[t * 9 + 6 + r], 0f);
                }
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> b.matrix(List.of(q, v), ai.k2j.loaders.WeightFormat.F32));
            assertTrue(e.getMessage().contains("attn_v") && e.getMessage().contains("share a dtype"), e.getMessage());
        }
    }

    @Test
    void vectorDecodeIsTheScalarDecode() {
        for (DType type : TYPES) {
            Tensor t = randomKQuant("w", type, 3, 768, 9);
            float[] expected = decoded(t);
            float[] actual = new float[expected.length];
            for (int r = 0; r < 3; r++) {
                KQuantKernels.decodeRow(type, t.data(), r * type.bytesFor(768), 768, actual, r * 768);
            }
            assertArrayEquals(expected, actual, 0f, type.toString());
        }
    }

    @Test
    void rowsThatAreNotWholeSuperBlocksAreRefused() {
        Tensor bad = new Tensor("blk.0.ffn_down.weight", DType.Q4_K, new long[] {2, 128},
                Arena.ofAuto().allocate(144));
        try (CpuBackend b = new CpuBackend(1)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.matrix(List.of(bad), null));
            assertTrue(e.getMessage().contains("blk.0.ffn_down.weight") && e.getMessage().contains("256"), e.getMessage());
        }
    }

    @Test
    void decodeAllocatesNothing() {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        mx.setThreadAllocatedMemoryEnabled(true);
        int cols = 512;
        try (CpuBackend b = new CpuBackend(2, 0)) {
            Weight[] ws = new Weight[TYPES.length];
            for (int i = 0; i < TYPES.length; i++) {
                ws[i] = b.matrix(List.of(randomKQuant("w", TYPES[i], 64, cols, i)), null);
            }
            Buffer x = b.allocate(4L * cols);
            Buffer out = b.allocate(4L * 64);
            Runnable round = () -> {
                for (Weight w : ws) {
                    b.matmul(w, null, x, 1, out);
                    b.matmul(w, null, x, 4, out);
                }
            };
            for (int i = 0; i < 600; i++) {
                round.run();
            }
            long[] workers = b.workerThreadIds();
            String last = "";
            for (int attempt = 0; attempt < 10; attempt++) {
                long before = mx.getCurrentThreadAllocatedBytes();
                long[] wb = new long[workers.length];
                for (int w = 0; w < workers.length; w++) {
                    wb[w] = mx.getThreadAllocatedBytes(workers[w]);
                }
                for (int i = 0; i < 200; i++) {
                    round.run();
                }
                long caller = mx.getCurrentThreadAllocatedBytes() - before;
                long worst = 0;
                for (int w = 0; w < workers.length; w++) {
                    worst = Math.max(worst, mx.getThreadAllocatedBytes(workers[w]) - wb[w]);
                }
                if (caller < 1024 && worst < 1024) {
                    return;
                }
                last = "caller allocated " + caller + " bytes, a worker " + worst + " bytes over 200 rounds";
            }
            throw new AssertionError(last);
        }
    }
}
