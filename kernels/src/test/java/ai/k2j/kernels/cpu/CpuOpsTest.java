package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static ai.k2j.kernels.cpu.CpuMatmulTest.assertMessage;
import static ai.k2j.kernels.cpu.TestSupport.buffer;
import static ai.k2j.kernels.cpu.TestSupport.data;
import static ai.k2j.kernels.cpu.TestSupport.random;
import static ai.k2j.kernels.cpu.TestSupport.tensor;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every non-matmul op against a plain double-precision implementation, on odd sizes, with 1 and 2 threads. */
class CpuOpsTest {

    private static final double EPS = 0x1p-24;
    private static final int[] DIMS = {1, 3, 7, 8, 9, 16, 31, 64, 100, 257, 1000};

    private static CpuBackend one;
    private static CpuBackend two;

    @BeforeAll
    static void start() {
        one = new CpuBackend(1);
        two = new CpuBackend(2, 0); // split even tiny ops over both threads
    }

    @AfterAll
    static void stop() {
        one.close();
        two.close();
    }

    private static void assertClose(String what, double ref, float got, double bound) {
        if (!(Math.abs(got - ref) <= bound)) {
            throw new AssertionError(what + " = " + got + ", reference " + ref + ", bound " + bound);
        }
    }

    // ------------------------------------------------------------------------------------------- rmsNorm

    /** Relative error ≤ (dim/8 + 16)·2⁻²⁴ per element: the sum of squares' rounding plus a few operations. */
    @Test
    void rmsNormMatchesReferenceInPlaceAndOut() {
        Random rnd = new Random(11);
        for (int dim : DIMS) {
            for (int n = 1; n <= 9; n += 4) {
                float[] x = random(rnd, n * dim, 3f);
                float[] gamma = random(rnd, dim, 2f);
                float eps = 1e-6f;
                float[][] results = new float[3][];
                for (int k = 0; k < 3; k++) {
                    CpuBackend b = k == 0 ? one : two;
                    Buffer xb = buffer(b, x);
                    Buffer out = k == 2 ? xb : b.allocate((long) n * dim);
                    b.rmsNorm(xb, buffer(b, gamma), eps, n, dim, out);
                    results[k] = data(out).clone();
                }
                assertArrayEquals(results[0], results[1], "threads 1 vs 2");
                assertArrayEquals(results[0], results[2], "in place");
                for (int t = 0; t < n; t++) {
                    double ss = 0;
                    for (int i = 0; i < dim; i++) {
                        ss += (double) x[t * dim + i] * x[t * dim + i];
                    }
                    double inv = 1 / Math.sqrt(ss / dim + eps);
                    for (int i = 0; i < dim; i++) {
                        double ref = x[t * dim + i] * inv * gamma[i];
                        assertClose("rmsNorm[" + t + "," + i + "] dim " + dim, ref, results[0][t * dim + i],
                                (dim / 8.0 + 16) * EPS * Math.abs(ref) + 1e-30);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------- rope

    /**
     * The table as HF builds it in float32 (angle = float(p)·invFreq rounded to float), the rotation in double;
     * per element |err| ≤ 8·2⁻²⁴·(|x1| + |x2|)·scale (table entries and the rotation each round a few times).
     */
    @Test
    void ropeRotatesHalvesAtEachTokensPosition() {
        Random rnd = new Random(12);
        for (int headDim : new int[] {2, 6, 16, 18, 64, 128}) {
            int half = headDim / 2;
            float[] invFreq = new float[half];
            for (int i = 0; i < half; i++) {
                invFreq[i] = (float) Math.pow(10000, -2.0 * i / headDim);
            }
            float scaling = 1.25f;
            int maxPos = 300;
            RopeTable table1 = one.ropeTable(invFreq, scaling, maxPos);
            RopeTable table2 = two.ropeTable(invFreq, scaling, maxPos);
            assertEquals(half, table1.halfDim());
            assertEquals(maxPos, table1.maxPositions());
            int heads = 3;
            int colOffset = 5;
            int rowStride = colOffset + heads * headDim + 4;
            for (int n = 1; n <= 9; n++) {
                Batch batch = new Batch(n, 1, 1);
                batch.nTokens = n;
                for (int t = 0; t < n; t++) {
                    batch.positions[t] = rnd.nextInt(maxPos);
                }
                float[] x = random(rnd, n * rowStride, 1f);
                Buffer b1 = buffer(one, x);
                Buffer b2 = buffer(two, x);
                one.rope(Rows.of(b1, colOffset, rowStride, heads * headDim), headDim, batch, table1);
                two.rope(Rows.of(b2, colOffset, rowStride, heads * headDim), headDim, batch, table2);
                assertArrayEquals(data(b1), data(b2));
                float[] got = data(b1);
                for (int t = 0; t < n; t++) {
                    int p = batch.positions[t];
                    for (int c = 0; c < rowStride; c++) {
                        int col = c - colOffset;
                        int idx = t * rowStride + c;
                        if (col < 0 || col >= heads * headDim) {
                            assertEquals(x[idx], got[idx], "untouched column " + c);
                            continue;
                        }
                        int base = t * rowStride + colOffset + (col / headDim) * headDim;
                        int i = col % headDim;
                        int j = i % half;
                        double angle = (float) p * invFreq[j];
                        double cos = Math.cos(angle) * scaling;
                        double sin = Math.sin(angle) * scaling;
                        double x1 = x[base + j];
                        double x2 = x[base + half + j];
                        double ref = i < half ? x1 * cos - x2 * sin : x2 * cos + x1 * sin;
                        assertClose("rope t" + t + " col " + c, ref, got[idx],
                                8 * EPS * (Math.abs(x1) + Math.abs(x2)) * scaling);
                    }
                }
            }
            Batch far = new Batch(1, 1, 1);
            far.positions[0] = maxPos;
            far.nTokens = 1;
            assertMessage(() -> one.rope(Rows.of(one.allocate(rowStride), colOffset, rowStride, heads * headDim), headDim, far, table1),
                    "position " + maxPos);
        }
    }

    // ------------------------------------------------------------------------------------------- siluMul, add

    @Test
    void siluMulMatchesReference() {
        Random rnd = new Random(13);
        for (int dim : DIMS) {
            for (int n = 1; n <= 9; n += 2) {
                float[] gu = random(rnd, 2 * n * dim, 6f);
                float[][] results = new float[3][];
                for (int k = 0; k < 3; k++) {
                    CpuBackend b = k == 0 ? one : two;
                    Buffer g = buffer(b, gu);
                    Buffer out = k == 2 ? g : b.allocate((long) n * dim);
                    b.siluMul(g, n, dim, out);
                    results[k] = Arrays.copyOf(data(out), n * dim);
                }
                assertArrayEquals(results[0], results[1], "threads 1 vs 2");
                assertArrayEquals(results[0], results[2], "in place");
                for (int t = 0; t < n; t++) {
                    for (int i = 0; i < dim; i++) {
                        double g = gu[2 * t * dim + i];
                        double u = gu[2 * t * dim + dim + i];
                        double ref = g / (1 + Math.exp(-g)) * u;
                        assertClose("silu", ref, results[0][t * dim + i], 6 * EPS * Math.abs(ref) + 1e-30);
                    }
                }
            }
        }
    }

    /** The one-pass addRmsNorm gives the bits of add then rmsNorm, for 1 and 2 threads, out = x or separate. */
    @Test
    void addRmsNormIsBitEqualToTheUnfusedPair() {
        Random rnd = new Random(15);
        for (int dim : DIMS) {
            for (int n : new int[] {1, 3, 70}) {
                float[] x = random(rnd, n * dim, 1f);
                float[] y = random(rnd, n * dim, 1f);
                float[] gamma = random(rnd, dim, 1f);
                for (CpuBackend b : new CpuBackend[] {one, two}) {
                    for (boolean inPlace : new boolean[] {false, true}) {
                        Buffer x1 = buffer(b, x);
                        Buffer o1 = inPlace ? x1 : b.allocate((long) n * dim);
                        b.add(x1, buffer(b, y), n, dim);
                        b.rmsNorm(x1, buffer(b, gamma), 1e-6f, n, dim, o1);
                        Buffer x2 = buffer(b, x);
                        Buffer o2 = inPlace ? x2 : b.allocate((long) n * dim);
                        b.addRmsNorm(x2, buffer(b, y), buffer(b, gamma), 1e-6f, n, dim, o2);
                        assertArrayEquals(data(x1), data(x2), "x + y, dim " + dim + " n " + n);
                        assertArrayEquals(data(o1), data(o2), "norm, dim " + dim + " n " + n + " in place " + inPlace);
                    }
                }
            }
        }
    }

    @Test
    void addIsExactFloatAddition() {
        Random rnd = new Random(14);
        for (int dim : DIMS) {
            for (int n : new int[] {1, 2, 9, 70}) {
                float[] x = random(rnd, n * dim, 1f);
                float[] y = random(rnd, n * dim + 3, 1f);
                for (CpuBackend b : new CpuBackend[] {one, two}) {
                    Buffer xb = buffer(b, x);
                    b.add(xb, buffer(b, y), n, dim);
                    for (int i = 0; i < n * dim; i++) {
                        assertEquals(x[i] + y[i], data(xb)[i]);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------- rows

    @Test
    void gatherRowsCopiesTheLogitRows() {
        Random rnd = new Random(15);
        int dim = 37;
        int n = 9;
        float[] x = random(rnd, n * dim, 1f);
        Batch batch = new Batch(n, 1, 1);
        batch.nLogits = 3;
        batch.logitRows[0] = 8;
        batch.logitRows[1] = 2;
        batch.logitRows[2] = 5;
        Buffer out = two.allocate(3 * dim);
        two.gatherRows(buffer(two, x), dim, batch, out);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(Arrays.copyOfRange(x, batch.logitRows[i] * dim, (batch.logitRows[i] + 1) * dim),
                    Arrays.copyOfRange(data(out), i * dim, (i + 1) * dim));
        }
        batch.logitRows[1] = n;
        assertMessage(() -> two.gatherRows(buffer(two, x), dim, batch, out), "logit row " + n);
    }

    @Test
    void argmaxPicksTheFirstLargest() {
        Random rnd = new Random(16);
        for (int dim : DIMS) {
            int n = 5;
            float[] x = random(rnd, n * dim, 10f);
            int[] expected = new int[n];
            for (int t = 0; t < n; t++) {
                int best = 0;
                for (int i = 1; i < dim; i++) {
                    if (x[t * dim + i] > x[t * dim + best]) {
                        best = i;
                    }
                }
                expected[t] = best;
            }
            // A tie later in row 0 must not win.
            if (dim > 2) {
                x[dim - 1] = x[expected[0]];
            }
            int[] got = new int[n];
            two.argmax(buffer(two, x), n, dim, got);
            assertArrayEquals(expected, got, "dim " + dim);
        }
        float[] ties = {1, 5, 3, 5, 5, 0, 5, 2, 5, 5, 1};
        int[] got = new int[1];
        one.argmax(buffer(one, ties), 1, ties.length, got);
        assertEquals(1, got[0]);
        float[] withNaN = {1, Float.NaN, 3, 2, 0, 0, 0, 0, 0, 0, 7, Float.NaN};
        one.argmax(buffer(one, withNaN), 1, withNaN.length, got);
        assertEquals(10, got[0], "NaN is skipped");
        float[] negInf = new float[20];
        Arrays.fill(negInf, Float.NEGATIVE_INFINITY);
        one.argmax(buffer(one, negInf), 1, negInf.length, got);
        assertEquals(0, got[0]);
    }

    @Test
    void downloadCopiesARange() {
        float[] x = {1, 2, 3, 4, 5, 6};
        float[] dst = new float[5];
        two.download(buffer(two, x), 2, dst, 1, 3);
        assertArrayEquals(new float[] {0, 3, 4, 5, 0}, dst);
        assertThrows(IndexOutOfBoundsException.class, () -> two.download(buffer(two, x), 4, dst, 0, 3));
        assertThrows(IndexOutOfBoundsException.class, () -> two.download(buffer(two, x), 0, dst, 3, 3));
    }

    // ------------------------------------------------------------------------------------------- embed, vector

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void embedDequantizesTheTokensRows(DType dtype) {
        Random rnd = new Random(17);
        for (int dim : DIMS) {
            int vocab = 11;
            float[] values = random(rnd, vocab * dim, 2f);
            Tensor t1 = tensor("embed.a", dtype, Arrays.copyOf(values, 4 * dim), 4, dim);
            float[] rest = Arrays.copyOfRange(values, 4 * dim, vocab * dim);
            Tensor t2 = tensor("embed.b", dtype, rest, vocab - 4, dim);
            float[] exact = new float[vocab * dim];
            for (int i = 0; i < vocab * dim; i++) {
                exact[i] = TestSupport.round(dtype, values[i]);
            }
            Weight table = two.matrix(List.of(t1, t2), null);
            Batch batch = new Batch(9, 1, 1);
            batch.nTokens = 9;
            int[] ids = {0, 10, 3, 4, 4, 7, 1, 9, 5};
            System.arraycopy(ids, 0, batch.tokens, 0, 9);
            Buffer out = two.allocate(9L * dim);
            two.embed(table, batch, out);
            for (int t = 0; t < 9; t++) {
                assertArrayEquals(Arrays.copyOfRange(exact, ids[t] * dim, (ids[t] + 1) * dim),
                        Arrays.copyOfRange(data(out), t * dim, (t + 1) * dim), "token " + ids[t]);
            }
            batch.tokens[3] = vocab;
            assertMessage(() -> two.embed(table, batch, out), "token id " + vocab);
        }
    }

    /** The vector half→float and bf16→float conversions against the JDK's scalar ones, for all 65536 inputs. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void everySixteenBitPatternDecodesExactly(DType dtype) {
        short[] bits = new short[65536];
        for (int i = 0; i < bits.length; i++) {
            bits[i] = (short) i;
        }
        // Two rows: one a multiple of the vector length, one ending in a scalar tail.
        Weight w = two.matrix(List.of(TestSupport.rawTensor16("all", dtype, bits, 2, 32768)), null);
        Weight odd = two.matrix(List.of(TestSupport.rawTensor16("odd", dtype, Arrays.copyOf(bits, 65531), 1, 65531)), null);
        Batch batch = new Batch(2, 1, 1);
        batch.nTokens = 2;
        batch.tokens[1] = 1;
        Buffer out = two.allocate(65536);
        two.embed(w, batch, out);
        Buffer outOdd = two.allocate(65531);
        batch.nTokens = 1;
        two.embed(odd, batch, outOdd);
        for (int k = 0; k < 65536; k++) {
            int i = k;
            float expected = dtype == DType.F16 ? Float.float16ToFloat((short) i) : Float.intBitsToFloat(i << 16);
            for (float got : i < 65531 ? new float[] {data(out)[i], data(outOdd)[i]} : new float[] {data(out)[i]}) {
                if (Float.isNaN(expected)) {
                    assertTrue(Float.isNaN(got), "pattern " + Integer.toHexString(i));
                } else {
                    assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(got),
                            () -> "pattern 0x" + Integer.toHexString(i) + ": " + got + " vs " + expected);
                }
            }
        }
    }

    @Test
    void vectorConcatenatesPartsAsFloat32() {
        Random rnd = new Random(18);
        float[] a = random(rnd, 5, 1);
        float[] b = random(rnd, 9, 1);
        float[] c = random(rnd, 17, 1);
        Buffer v = two.vector(List.of(tensor("a", DType.F32, a, 5), tensor("b", DType.BF16, b, 9),
                tensor("c", DType.F16, c, 17)));
        float[] expected = new float[31];
        System.arraycopy(a, 0, expected, 0, 5);
        System.arraycopy(b, 0, expected, 5, 9);
        System.arraycopy(c, 0, expected, 14, 17);
        assertEquals(31, v.size());
        assertArrayEquals(expected, data(v));
        assertMessage(() -> two.vector(List.of(new Tensor("i", DType.I64, new long[] {2},
                TestSupport.ARENA.allocate(16)))), "'i'", "I64");
    }

    // ------------------------------------------------------------------------------------------- misc

    @Test
    void copyBlockCopiesEveryLayer() {
        KvCache cache = two.kvCache(3, 5, 4, 2);
        CpuKvCache c = (CpuKvCache) cache;
        Random rnd = new Random(19);
        for (int l = 0; l < 3; l++) {
            System.arraycopy(random(rnd, 40, 1), 0, c.keys[l], 0, 40);
            System.arraycopy(random(rnd, 40, 1), 0, c.values[l], 0, 40);
        }
        float[][] keysBefore = new float[3][];
        for (int l = 0; l < 3; l++) {
            keysBefore[l] = c.keys[l].clone();
        }
        cache.copyBlock(1, 3);
        for (int l = 0; l < 3; l++) {
            assertArrayEquals(Arrays.copyOfRange(c.keys[l], 10, 20), Arrays.copyOfRange(c.keys[l], 30, 40));
            assertArrayEquals(Arrays.copyOfRange(c.values[l], 10, 20), Arrays.copyOfRange(c.values[l], 30, 40));
            assertArrayEquals(Arrays.copyOf(keysBefore[l], 30), Arrays.copyOf(c.keys[l], 30));
        }
        assertThrows(IndexOutOfBoundsException.class, () -> cache.copyBlock(0, 4));
        assertEquals(3, cache.layers());
        assertEquals(5, cache.kvDim());
        assertEquals(4, cache.numBlocks());
        assertEquals(2, cache.blockSize());
    }

    @Test
    void buffersAndBackendBasics() {
        assertEquals("cpu", one.name());
        assertEquals(1, one.threads());
        assertEquals(2, two.threads());
        Buffer b = two.allocate(10);
        assertEquals(10, b.size());
        assertArrayEquals(new float[10], data(b));
        assertThrows(IllegalArgumentException.class, () -> two.allocate(-1));
        assertThrows(IllegalArgumentException.class, () -> two.allocate(1L << 32));
        assertThrows(IllegalArgumentException.class, () -> new CpuBackend(-1));
        try (CpuBackend all = new CpuBackend(0)) {
            assertEquals(Runtime.getRuntime().availableProcessors(), all.threads());
        }
        CpuBackend closed = new CpuBackend(2);
        Buffer x = closed.allocate(4);
        closed.close();
        assertThrows(IllegalStateException.class, () -> closed.add(x, x, 1, 4));
        closed.close(); // idempotent
        Buffer foreign = () -> 4;
        assertMessage(() -> one.add(foreign, one.allocate(4), 1, 4), "not allocated by a CpuBackend");
    }
}
