package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static ai.k2j.kernels.cpu.TestSupport.buffer;
import static ai.k2j.kernels.cpu.TestSupport.data;
import static ai.k2j.kernels.cpu.TestSupport.random;
import static ai.k2j.kernels.cpu.TestSupport.tensor;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CpuMatmulTest {

    private static final double EPS = 0x1p-24;
    private static final int L = MatmulKernels.L;

    private static CpuBackend one;
    private static CpuBackend two;
    private static CpuBackend three;

    @BeforeAll
    static void start() {
        one = new CpuBackend(1);
        two = new CpuBackend(2, 0); // split even tiny ops over both threads
        three = new CpuBackend(3, 0);
    }

    @AfterAll
    static void stop() {
        one.close();
        two.close();
        three.close();
    }

    /** A stacked weight made of 1–3 parts with the given row counts, plus the exact float values of all rows. */
    record Stacked(List<Tensor> parts, float[] values, int rows, int cols) {
    }

    static Stacked stacked(Random rnd, DType dtype, int[] partRows, int cols) {
        List<Tensor> parts = new ArrayList<>();
        int rows = Arrays.stream(partRows).sum();
        float[] all = new float[rows * cols];
        int r = 0;
        for (int p = 0; p < partRows.length; p++) {
            float[] v = random(rnd, partRows[p] * cols, 1f);
            parts.add(tensor("w.part" + p, dtype, v, partRows[p], cols));
            System.arraycopy(v, 0, all, r * cols, v.length);
            r += partRows[p];
        }
        return new Stacked(parts, all, rows, cols);
    }

    /**
     * Checks out against a double-precision reference with the rigorous bound for the kernels' summation:
     * a fused chain of cols/L steps per lane, L lane additions, the tail, and the bias add, each rounding once:
     * |err| ≤ (cols/L + L + 2)·2⁻²⁴·(Σ|w·x| + |b|).
     */
    static void assertMatmul(Stacked w, float[] bias, float[] x, int n, float[] out) {
        for (int t = 0; t < n; t++) {
            for (int r = 0; r < w.rows; r++) {
                double ref = 0;
                double mag = 0;
                for (int c = 0; c < w.cols; c++) {
                    double p = (double) w.values[r * w.cols + c] * x[t * w.cols + c];
                    ref += p;
                    mag += Math.abs(p);
                }
                if (bias != null) {
                    ref += bias[r];
                    mag += Math.abs(bias[r]);
                }
                double bound = (w.cols / (double) L + L + 2) * EPS * mag + Double.MIN_NORMAL;
                float got = out[t * w.rows + r];
                if (!(Math.abs(got - ref) <= bound)) {
                    throw new AssertionError("out[" + t + ", " + r + "] = " + got + ", reference " + ref + ", bound "
                            + bound + " (" + w.rows + " x " + w.cols + ")");
                }
            }
        }
    }

    private static final int[][] SHAPES = {
            // rows per part..., cols (last)
            {1, 1}, {3, 7}, {5, 8}, {4, 16}, {9, 17}, {2, 3, 33}, {13, 100}, {6, 1, 5, 63}, {70, 257}, {33, 31, 130},
    };

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void matchesScalarReferenceForEveryTokenCount(DType dtype) {
        Random rnd = new Random(42 + dtype.ordinal());
        for (int[] shape : SHAPES) {
            int cols = shape[shape.length - 1];
            Stacked w = stacked(rnd, dtype, Arrays.copyOf(shape, shape.length - 1), cols);
            Weight weight = two.matrix(w.parts, null);
            assertEquals(w.rows, weight.rows());
            assertEquals(cols, weight.cols());
            assertEquals(dtype, weight.dtype());
            assertEquals((long) w.rows * dtype.bytesFor(cols), weight.byteSize());
            float[] biasValues = rnd.nextBoolean() ? random(rnd, w.rows, 1f) : null;
            Buffer bias = biasValues == null ? null : buffer(two, biasValues);
            for (int n = 1; n <= 9; n++) {
                float[] x = random(rnd, n * cols, 1f);
                Buffer out = two.allocate(n * w.rows + 5);
                Arrays.fill(data(out), 123f);
                two.matmul(weight, bias, buffer(two, x), n, out);
                assertMatmul(w, biasValues, x, n, data(out));
                assertEquals(123f, data(out)[n * w.rows], "matmul wrote past n·rows");
            }
        }
    }

    /** Big enough to split over threads and to span several cache chunks of rows; checked bit for bit. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void identicalForAnyThreadCountAndBatchSize(DType dtype) {
        // BF16 decode reads rows of up to MatmulKernels.ONE_ROW_MAX_COLS one at a time, longer ones four at a time
        int[] widths = dtype == DType.BF16 ? new int[] {1000, MatmulKernels.ONE_ROW_MAX_COLS + 4} : new int[] {1000};
        for (int cols : widths) {
            identicalForAnyThreadCountAndBatchSize(dtype, cols);
        }
    }

    private void identicalForAnyThreadCountAndBatchSize(DType dtype, int cols) {
        Random rnd = new Random(7);
        Stacked w = stacked(rnd, dtype, new int[] {150, 67, 130}, cols);
        int n = 9;
        float[] x = random(rnd, n * cols, 1f);
        float[] bias = random(rnd, w.rows, 1f);
        float[][] results = new float[3][];
        CpuBackend[] backends = {one, two, three};
        for (int i = 0; i < 3; i++) {
            CpuBackend b = backends[i];
            Buffer out = b.allocate((long) n * w.rows);
            b.matmul(b.matrix(w.parts, null), buffer(b, bias), buffer(b, x), n, out);
            results[i] = data(out).clone();
        }
        assertMatmul(w, bias, x, n, results[0]);
        assertArrayEquals(results[0], results[1], "1 vs 2 threads");
        assertArrayEquals(results[0], results[2], "1 vs 3 threads");

        // Each token's row equals what a batch of that token alone (and of sizes 1..8 ending in it) computes.
        Weight weight = two.matrix(w.parts, null);
        Buffer biasBuf = buffer(two, bias);
        for (int m = 1; m < n; m++) {
            int first = n - m;
            Buffer out = two.allocate((long) m * w.rows);
            two.matmul(weight, biasBuf, buffer(two, Arrays.copyOfRange(x, first * cols, n * cols)), m, out);
            assertArrayEquals(Arrays.copyOfRange(results[0], first * w.rows, n * w.rows), data(out),
                    "batch of " + m + " differs from the same tokens in a batch of " + n);
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void f32FormatIsAnExactConvertedCopy(DType dtype) {
        Random rnd = new Random(3);
        Stacked w = stacked(rnd, dtype, new int[] {11, 6}, 45);
        Weight kept = two.matrix(w.parts, null);
        Weight converted = two.matrix(w.parts, WeightFormat.F32);
        assertEquals(DType.F32, converted.dtype());
        assertEquals((long) w.rows * 45 * 4, converted.byteSize());
        assertEquals(w.rows, converted.rows());
        for (int n : new int[] {1, 5, 9}) {
            float[] x = random(rnd, n * 45, 1f);
            Buffer a = two.allocate(n * w.rows);
            Buffer b = two.allocate(n * w.rows);
            two.matmul(kept, null, buffer(two, x), n, a);
            two.matmul(converted, null, buffer(two, x), n, b);
            assertArrayEquals(data(a), data(b), "same values, same summation order");
        }
        assertEquals(dtype, two.matrix(w.parts, WeightFormat.parse(dtype.name())).dtype(), "own dtype name keeps it");
    }

    @Test
    void heapSegmentsAreCopiedNotRejected() {
        float[] v = {1, 2, 3, 4, 5, 6};
        Tensor heap = new Tensor("heap", DType.F32, new long[] {2, 3},
                java.lang.foreign.MemorySegment.ofArray(v));
        Weight w = two.matrix(List.of(heap), null);
        Buffer out = two.allocate(2);
        two.matmul(w, null, buffer(two, new float[] {1, 1, 1}), 1, out);
        assertArrayEquals(new float[] {6, 15}, data(out));
    }

    @Test
    void badWeightsAndFormatsAreRejectedWithTheirNames() {
        Random rnd = new Random(1);
        Tensor a = tensor("a", DType.BF16, random(rnd, 12, 1), 3, 4);
        Tensor b = tensor("b", DType.BF16, random(rnd, 10, 1), 2, 5);
        Tensor c = tensor("c", DType.F16, random(rnd, 8, 1), 2, 4);
        Tensor vec = tensor("vec", DType.F32, random(rnd, 4, 1), 4);
        Tensor shortData = new Tensor("short", DType.F32, new long[] {3, 4}, TestSupport.ARENA.allocate(40));
        Tensor ints = new Tensor("ints", DType.I32, new long[] {2, 2}, TestSupport.ARENA.allocate(16));

        assertMessage(() -> two.matrix(List.of(a), WeightFormat.Q8_0), "'a'", "Q8_0", "multiple of 32");
        assertMessage(() -> two.matrix(List.of(a), WeightFormat.Q4_0), "'a'", "Q4_0", "multiple of 32");
        assertMessage(() -> two.matrix(List.of(a), WeightFormat.parse("int4")), "int4", "q8_0");
        assertMessage(() -> two.matrix(List.of(a), WeightFormat.F16), "BF16", "f16");
        assertMessage(() -> two.matrix(List.of(a, b), null), "'b'", "[rows, 4]");
        assertMessage(() -> two.matrix(List.of(a, c), null), "'c'", "dtype");
        assertMessage(() -> two.matrix(List.of(vec), null), "'vec'", "not a matrix");
        assertMessage(() -> two.matrix(List.of(shortData), null), "'short'", "40 bytes");
        assertMessage(() -> two.matrix(List.of(ints), null), "'ints'", "I32");
        assertMessage(() -> two.matrix(List.of(), null), "at least one");

        Weight w = two.matrix(List.of(a), null);
        Buffer x = two.allocate(4);
        assertMessage(() -> two.matmul(w, null, x, 2, two.allocate(6)), "matmul x");
        assertMessage(() -> two.matmul(w, null, x, 1, two.allocate(2)), "matmul out");
        assertMessage(() -> two.matmul(w, two.allocate(2), x, 1, two.allocate(3)), "bias");
        assertMessage(() -> two.matmul(w, null, x, 1, x), "alias");
    }

    static void assertMessage(org.junit.jupiter.api.function.Executable call, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), () -> "message '" + e.getMessage() + "' lacks '" + p + "'");
        }
    }
}
