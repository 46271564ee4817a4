package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.ReferenceBackend;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Quantizer;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
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
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Q8_0 and Q4_0 on the CPU backend: the bytes quantization writes (against llama.cpp's rules and the
 * ReferenceBackend's quantizer), the matmul against a double-precision dot over the dequantized weights, bit
 * identity across thread counts and batch sizes, zero-copy loading of pre-quantized tensors, and refusals.
 */
class CpuQuantTest {

    private static final int L = MatmulKernels.L;
    private static CpuBackend one;
    private static CpuBackend two;
    private static CpuBackend three;

    @BeforeAll
    static void start() {
        one = new CpuBackend(1);
        two = new CpuBackend(2, 0);
        three = new CpuBackend(3, 0);
    }

    @AfterAll
    static void stop() {
        one.close();
        two.close();
        three.close();
    }

    /** Every row of {@code w} decoded through the embedding gather (scalar decoder). */
    static float[] dequantized(CpuBackend b, Weight w) {
        Batch batch = new Batch(w.rows(), 1, 1);
        batch.nTokens = w.rows();
        batch.nSeqs = 1;
        for (int r = 0; r < w.rows(); r++) {
            batch.tokens[r] = r;
        }
        Buffer out = b.allocate((long) w.rows() * w.cols());
        b.embed(w, batch, out);
        return data(out);
    }

    static float[] dequantized(ReferenceBackend b, Weight w) {
        Batch batch = new Batch(w.rows(), 1, 1);
        batch.nTokens = w.rows();
        batch.nSeqs = 1;
        for (int r = 0; r < w.rows(); r++) {
            batch.tokens[r] = r;
        }
        Buffer out = b.allocate((long) w.rows() * w.cols());
        b.embed(w, batch, out);
        float[] host = new float[w.rows() * w.cols()];
        b.download(out, 0, host, 0, host.length);
        return host;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0"})
    void quantizesToTheSameValuesAsTheReferenceBackend(DType q) {
        Random rnd = new Random(11);
        for (DType source : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            float[] v = random(rnd, 37 * 96, 3f);
            // blocks with exact ties, zeros, and a lone extreme value
            for (int j = 0; j < 32; j++) {
                v[j] = 0;
                v[32 + j] = (j - 16) * 0.25f;
                v[64 + j] = j == 7 ? -5f : 0.01f * j;
            }
            Tensor t = tensor("w", source, v, 37, 96);
            Weight cpu = two.matrix(List.of(t), WeightFormat.parse(q.name()));
            assertEquals(q, cpu.dtype());
            assertEquals(37L * q.bytesFor(96), cpu.byteSize());
            try (ReferenceBackend ref = new ReferenceBackend()) {
                Weight r = ref.matrix(List.of(t), WeightFormat.parse(q.name()));
                assertSameValues(dequantized(ref, r), dequantized(two, cpu), source + " → " + q);
            }
        }
    }

    /** Equal as numbers (a Q4_0 zero may be −0 or +0 depending on the decoder; products and sums do not care). */
    static void assertSameValues(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] != actual[i]) {
                throw new AssertionError(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i]);
            }
        }
    }

    @Test
    void followsLlamaCppRounding() {
        float[] x = new float[32];
        for (int j = 0; j < 32; j++) {
            x[j] = j - 15.5f; // |x| = 15.5 at j = 0 (negative) and j = 31: the first one counts for Q4_0
        }
        MemorySegment q8 = TestSupport.ARENA.allocate(34);
        Quantizer.quantizeRow(DType.Q8_0, x, 0, 32, q8, 0);
        float d8 = 15.5f / 127f;
        assertEquals(Float.floatToFloat16(d8), q8.get(ValueLayout.JAVA_SHORT_UNALIGNED, 0));
        for (int j = 0; j < 32; j++) {
            float scaled = x[j] * (1f / d8);
            int expect = (int) Math.copySign(Math.floor(Math.abs(scaled) + 0.5f), scaled); // half away from zero
            assertEquals(expect, q8.get(ValueLayout.JAVA_BYTE, 2 + j), "q8 " + j);
        }
        assertEquals(2, Quantizer.roundHalfAway(1.5f));
        assertEquals(-2, Quantizer.roundHalfAway(-1.5f));
        assertEquals(-3, Quantizer.roundHalfAway(-2.5f));

        MemorySegment q4 = TestSupport.ARENA.allocate(18);
        Quantizer.quantizeRow(DType.Q4_0, x, 0, 32, q4, 0);
        float d4 = -15.5f / -8f; // the largest-magnitude value keeps its sign
        assertEquals(Float.floatToFloat16(d4), q4.get(ValueLayout.JAVA_SHORT_UNALIGNED, 0));
        for (int j = 0; j < 16; j++) {
            int packed = q4.get(ValueLayout.JAVA_BYTE, 2 + j) & 0xFF;
            assertEquals(Math.min(15, (int) (x[j] * (1f / d4) + 8.5f)), packed & 0xF, "q4 low " + j);
            assertEquals(Math.min(15, (int) (x[16 + j] * (1f / d4) + 8.5f)), packed >>> 4, "q4 high " + j);
        }
        MemorySegment zero = TestSupport.ARENA.allocate(34);
        Quantizer.quantizeRow(DType.Q8_0, new float[32], 0, 32, zero, 0);
        for (int i = 0; i < 34; i++) {
            assertEquals(0, zero.get(ValueLayout.JAVA_BYTE, i));
        }
    }

    /** A quantized stacked weight and the exact float values of its rows. */
    record Quantized(Weight weight, float[] values, int rows, int cols, List<Tensor> parts) {
    }

    static Quantized quantized(CpuBackend b, Random rnd, DType q, int[] partRows, int cols) {
        List<Tensor> parts = new ArrayList<>();
        for (int p = 0; p < partRows.length; p++) {
            parts.add(tensor("w.part" + p, DType.BF16, random(rnd, partRows[p] * cols, 1f), partRows[p], cols));
        }
        Weight w = b.matrix(parts, WeightFormat.parse(q.name()));
        return new Quantized(w, dequantized(b, w), w.rows(), cols, parts);
    }

    /** |err| ≤ (cols/L + L + 2)·2⁻²⁴·(Σ|w·x| + |b|), as CpuMatmulTest's bound, with w the dequantized values. */
    static void assertMatmul(Quantized w, float[] bias, float[] x, int n, float[] out) {
        CpuMatmulTest.assertMatmul(new CpuMatmulTest.Stacked(w.parts, w.values, w.rows, w.cols), bias, x, n, out);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0"})
    void matchesDequantizedReferenceForEveryTokenCount(DType q) {
        Random rnd = new Random(5 + q.ordinal());
        int[][] shapes = {{1, 32}, {3, 64}, {5, 96}, {2, 3, 160}, {13, 224}, {6, 1, 5, 320}, {70, 896}};
        for (int[] shape : shapes) {
            int cols = shape[shape.length - 1];
            Quantized w = quantized(two, rnd, q, Arrays.copyOf(shape, shape.length - 1), cols);
            float[] biasValues = rnd.nextBoolean() ? random(rnd, w.rows, 1f) : null;
            Buffer bias = biasValues == null ? null : buffer(two, biasValues);
            for (int n = 1; n <= 8; n++) {
                float[] x = random(rnd, n * cols, 1f);
                Buffer out = two.allocate(n * w.rows + 3);
                Arrays.fill(data(out), 77f);
                two.matmul(w.weight, bias, buffer(two, x), n, out);
                assertMatmul(w, biasValues, x, n, data(out));
                assertEquals(77f, data(out)[n * w.rows], "matmul wrote past n·rows");
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0"})
    void identicalForAnyThreadCountAndBatchSize(DType q) {
        Random rnd = new Random(9);
        int cols = 1024;
        List<Tensor> parts = List.of(tensor("a", DType.F16, random(rnd, 150 * cols, 1f), 150, cols),
                tensor("b", DType.F16, random(rnd, 67 * cols, 1f), 67, cols));
        int n = 11;
        float[] x = random(rnd, n * cols, 1f);
        float[][] results = new float[3][];
        CpuBackend[] backends = {one, two, three};
        for (int i = 0; i < 3; i++) {
            CpuBackend b = backends[i];
            Weight w = b.matrix(parts, WeightFormat.parse(q.name()));
            Buffer out = b.allocate((long) n * w.rows());
            b.matmul(w, null, buffer(b, x), n, out);
            results[i] = data(out).clone();
        }
        assertArrayEquals(results[0], results[1], "1 vs 2 threads");
        assertArrayEquals(results[0], results[2], "1 vs 3 threads");
        Weight w = two.matrix(parts, WeightFormat.parse(q.name()));
        int rows = w.rows();
        for (int m = 1; m < n; m++) {
            int first = n - m;
            Buffer out = two.allocate((long) m * rows);
            two.matmul(w, null, buffer(two, Arrays.copyOfRange(x, first * cols, n * cols)), m, out);
            assertArrayEquals(Arrays.copyOfRange(results[0], first * rows, n * rows), data(out),
                    "batch of " + m + " differs from the same tokens in a batch of " + n);
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0"})
    void preQuantizedTensorsLoadZeroCopyAndComputeTheSame(DType q) {
        Random rnd = new Random(21);
        Tensor src = tensor("w", DType.BF16, random(rnd, 40 * 128, 1f), 40, 128);
        MemorySegment bytes = TestSupport.ARENA.allocate(Quantizer.bytesFor(q, 40, 128), 16);
        Quantizer.quantize(src, q, bytes, 2);
        Tensor stored = new Tensor("w.q", q, new long[] {40, 128}, bytes);
        Weight kept = two.matrix(List.of(stored), null);
        Weight atLoad = two.matrix(List.of(src), WeightFormat.parse(q.name()));
        assertEquals(q, kept.dtype());
        assertEquals(bytes.byteSize(), kept.byteSize());
        assertTrue(((CpuWeight) kept).segments[0] == bytes, "zero-copy: the weight reads the given segment");
        for (int n : new int[] {1, 4, 7}) {
            float[] x = random(rnd, n * 128, 1f);
            Buffer a = two.allocate(n * 40);
            Buffer b = two.allocate(n * 40);
            two.matmul(kept, null, buffer(two, x), n, a);
            two.matmul(atLoad, null, buffer(two, x), n, b);
            assertArrayEquals(data(b), data(a));
        }
        // f32 from a quantized tensor is an exact dequantized copy
        Weight f32 = two.matrix(List.of(stored), WeightFormat.F32);
        assertArrayEquals(dequantized(two, kept), dequantized(two, f32));
    }

    @Test
    void closeToTheReferenceBackendsQuantizedMatmul() {
        Random rnd = new Random(3);
        Tensor t = tensor("w", DType.BF16, random(rnd, 64 * 256, 1f), 64, 256);
        try (ReferenceBackend ref = new ReferenceBackend()) {
            for (DType q : new DType[] {DType.Q8_0, DType.Q4_0}) {
                Weight rw = ref.matrix(List.of(t), WeightFormat.parse(q.name()));
                Weight cw = two.matrix(List.of(t), WeightFormat.parse(q.name()));
                float[] x = random(rnd, 3 * 256, 1f);
                Buffer rx = ref.vector(List.of(tensor("x", DType.F32, x.clone(), x.length))); // an upload
                Buffer rout = ref.allocate(3 * 64);
                ref.matmul(rw, null, rx, 3, rout);
                float[] expect = new float[3 * 64];
                ref.download(rout, 0, expect, 0, expect.length);
                Buffer cout = two.allocate(3 * 64);
                two.matmul(cw, null, buffer(two, x), 3, cout);
                for (int i = 0; i < expect.length; i++) {
                    assertEquals(expect[i], data(cout)[i], 1e-4 * (1 + Math.abs(expect[i])), q + " out " + i);
                }
            }
        }
    }

    @Test
    void refusesWhatCannotBeQuantized() {
        Random rnd = new Random(1);
        Tensor narrow = tensor("narrow", DType.BF16, random(rnd, 2 * 48, 1), 2, 48);
        assertMessage(() -> two.matrix(List.of(narrow), WeightFormat.Q4_0), "'narrow'", "48 columns", "multiple of 32");
        MemorySegment bytes = TestSupport.ARENA.allocate(34L * 2);
        Tensor q8 = new Tensor("q8", DType.Q8_0, new long[] {2, 32}, bytes);
        assertMessage(() -> two.matrix(List.of(q8), WeightFormat.Q4_0), "Q8_0", "q4_0", "'q8'");
        assertMessage(() -> two.vector(List.of(q8)), "'q8'", "Q8_0");
        Tensor q8bad = new Tensor("q8bad", DType.Q8_0, new long[] {2, 32}, TestSupport.ARENA.allocate(60));
        assertMessage(() -> two.matrix(List.of(q8bad), null), "'q8bad'", "60 bytes");
    }

    @Test
    void scalarTreeSumEqualsTheVectorLaneSum() {
        Random rnd = new Random(12);
        float[] v = new float[L];
        for (int trial = 0; trial < 1000; trial++) {
            for (int i = 0; i < L; i++) {
                v[i] = (rnd.nextFloat() - 0.5f) * (float) Math.pow(2, rnd.nextInt(40) - 20);
            }
            float expected = MatmulKernels.sumLanes(jdk.incubator.vector.FloatVector.fromArray(MatmulKernels.F, v, 0));
            assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(MatmulKernels.treeSum(v.clone(), 0)),
                    "trial " + trial);
        }
    }

    @Test
    void everyWidthQuantizedKernelAgreesWithTheDecoder() {
        // a direct check of the register kernels against dot4Rows over decoded rows, independent of dispatch
        Random rnd = new Random(8);
        int cols = 64 * 3;
        for (DType q : new DType[] {DType.Q8_0, DType.Q4_0}) {
            Tensor src = tensor("w", DType.F32, random(rnd, 4 * cols, 2f), 4, cols);
            MemorySegment bytes = TestSupport.ARENA.allocate(Quantizer.bytesFor(q, 4, cols), 16);
            Quantizer.quantize(src, q, bytes, 1);
            long rowBytes = q.bytesFor(cols);
            float[] decoded = new float[4 * cols];
            float[] scalar = new float[4 * cols];
            for (int r = 0; r < 4; r++) {
                MatmulKernels.dequantize(q, bytes, r * rowBytes, cols, decoded, r * cols);
                ScalarRows.decode(q, bytes, r * rowBytes, cols, scalar, r * cols);
            }
            assertSameValues(scalar, decoded, q + ": vector and scalar decoders");
            float[] x = random(rnd, cols, 1f);
            float[] lanes = new float[MatmulKernels.LANES];
            float[] viaRows = new float[4];
            float[] fused = new float[4];
            MatmulKernels.dot4Rows(decoded, cols, 4, cols, x, 0, viaRows, 0, 1, lanes, 0);
            if (q == DType.Q8_0) {
                MatmulKernels.dot4RowsQ8_0(bytes, 0, rowBytes, 4, cols, x, 0, fused, 0, 1, lanes, 0);
            } else {
                MatmulKernels.dot4RowsQ4_0(bytes, 0, rowBytes, 4, cols, x, 0, fused, 0, 1, lanes, 0);
                if (MatmulKernels.Q4_LOOKUP) {
                    float[] lookup = new float[4];
                    MatmulKernels.dot4RowsQ4_0Lookup(bytes, 0, rowBytes, 4, cols, x, 0, lookup, 0, 1, lanes, 0);
                    assertArrayEquals(viaRows, lookup, "Q4_0 by lookup");
                }
            }
            assertArrayEquals(viaRows, fused, q + " with " + L + "-lane vectors");
        }
    }
}
