package ai.k2j.kernels.cuda;

import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.KvCache;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.kernels.Weight;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.Tensor;
import ai.k2j.loaders.WeightFormat;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Every CUDA op against scalar double-precision references computed here from the very same (dequantized)
 * inputs, plus a small composed forward pass and the weight quantizers against {@link ai.k2j.kernels.ReferenceBackend}. Tolerances: matmul |gpu − ref| ≤ tol · Σ|w·x| (tol 1e-5 for F32 weights, 1e-4 otherwise — the inputs are
 * identical, only the FP32 summation order differs; 5e-3 for the BF16 tensor-core prefill path, which rounds
 * activations to BF16); element-wise ops 1e-5 relative; attention ≤ 1e-4 · max|v|; embedding and gathers exact.
 *
 * <p>Needs a CUDA GPU: skipped (JUnit assumption) when no driver/device is found, unless -Dk2j.cuda.required=true
 * (tools/gpu/run-gpu-tests.sh sets it) makes that a failure.
 */
@Tag("gpu")
class CudaBackendTest {

    private static final DType[] ALL = {DType.F32, DType.F16, DType.BF16, DType.Q8_0, DType.Q4_0};
    private static CudaBackend backend;
    private static final Arena ARENA = Arena.ofShared();

    @BeforeAll
    static void open() {
        try {
            // the FP32 attention kernels (the tensor-core prefill attention has its own test, CudaFlashPrefillTest)
            backend = new CudaBackend(new CudaBackend.Options(0, CudaBackend.PrefillGemm.AUTO, 9)
                    .withFlashPrefill(false));
        } catch (CudaException.Unavailable e) {
            if (Boolean.getBoolean("k2j.cuda.required")) {
                throw new AssertionError("CUDA is required (-Dk2j.cuda.required) but unavailable: " + e.getMessage(), e);
            }
            Assumptions.abort("no CUDA here: " + e.getMessage());
        }
        System.out.println(backend.describe());
    }

    @AfterAll
    static void close() {
        if (backend != null) {
            backend.close();
        }
    }

    // =========================================================================================== setup

    @Test
    void kernelsWereCompiledByNvrtc() {
        assertNull(backend.nvrtcFailure(), "NVRTC failed and prebuilt CUBINs stood in: " + backend.nvrtcFailure());
        assertEquals("cuda", backend.name());
        assertTrue(backend.computeCapability().matches("\\d+\\.\\d+"), backend.computeCapability());
    }

    // =========================================================================================== matmul

    @Test
    void gemvAllDtypesFastPath() {
        Random rnd = new Random(1);
        int[][] shapes = {{67, 256}, {5, 1024}, {130, 384}};
        for (DType dt : ALL) {
            for (int[] s : shapes) {
                for (int n : new int[] {1, 2, 3, 5, 8}) {
                    checkMatmul(backend, dt, s[0], s[1], n, n % 2 == 1, dt == DType.F32 ? 1e-5 : 1e-4, rnd);
                }
            }
        }
    }

    @Test
    void gemvOddColumnsUseTheGenericKernel() {
        Random rnd = new Random(2);
        for (DType dt : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            for (int cols : new int[] {37, 100, 1}) {
                for (int n : new int[] {1, 4, 8}) {
                    checkMatmul(backend, dt, 23, cols, n, true, dt == DType.F32 ? 1e-5 : 1e-4, rnd);
                }
            }
        }
    }

    @Test
    void manyRowsUseCublasOrGroupsOfEight() {
        Random rnd = new Random(3);
        // AUTO: BF16 activations on tensor cores (looser), F16/Q8_0/Q4_0 weights dequantized to BF16 (rounding
        // the weights too: 1e-2), F32 by SGEMM
        for (DType dt : ALL) {
            for (int n : new int[] {9, 33}) {
                checkMatmul(backend, dt, 70, 256, n, true, dt == DType.BF16 ? 5e-3 : dt == DType.F32 ? 1e-4 : 1e-2, rnd);
            }
        }
        assertNull(backend.cublasProblem(), "cuBLAS should load on the GPU machine: " + backend.cublasProblem());
        try (CudaBackend fp32 = new CudaBackend(new CudaBackend.Options(0, CudaBackend.PrefillGemm.FP32, 9));
             CudaBackend kern = new CudaBackend(new CudaBackend.Options(0, CudaBackend.PrefillGemm.KERNEL, 9))) {
            for (DType dt : ALL) {
                checkMatmul(fp32, dt, 70, 256, 17, true, dt == DType.F32 ? 1e-5 : 1e-4, rnd);
                checkMatmul(kern, dt, 70, 256, 21, false, dt == DType.F32 ? 1e-5 : 1e-4, rnd);
            }
            checkMatmul(kern, DType.BF16, 9, 36, 19, true, 1e-4, rnd);  // generic kernel in groups of 8
        }
    }

    @Test
    void stackedPartsAndFormatConversion() {
        Random rnd = new Random(4);
        int cols = 128;
        Tensor a = tensor("a", DType.F32, 20, cols, rnd);
        Tensor b = tensor("b", DType.F32, 12, cols, rnd);
        float[] src = concat(dequant(a), dequant(b));
        for (DType target : ALL) {
            Weight w = backend.matrix(List.of(a, b), WeightFormat.parse(target.name()));
            assertEquals(32, w.rows());
            assertEquals(cols, w.cols());
            assertEquals(target, w.dtype());
            assertEquals(32L * target.bytesFor(cols), w.byteSize());
            float[] expected = referenceConvert(src, target);
            float[] x = randn(rnd, 3 * cols);
            float[] got = runMatmul(backend, w, null, x, 3);
            assertClose(matmulRef(expected, 32, cols, null, x, 3), got, absSums(expected, 32, cols, x, 3), 1e-5,
                    "matrix(F32 -> " + target + ")");
        }
        // quantized source converted to another type
        Tensor q = tensor("q", DType.Q8_0, 8, 64, rnd);
        Weight w = backend.matrix(List.of(q), WeightFormat.BF16);
        float[] x = randn(rnd, 64);
        float[] expected = referenceConvert(dequant(q), DType.BF16);
        assertClose(matmulRef(expected, 8, 64, null, x, 1), runMatmul(backend, w, null, x, 1),
                absSums(expected, 8, 64, x, 1), 1e-5, "matrix(Q8_0 -> BF16)");
    }

    // =========================================================================================== element-wise

    @Test
    void embedDequantizesRowsExactly() {
        Random rnd = new Random(5);
        for (DType dt : ALL) {
            int rows = 50;
            int cols = 64;
            Tensor table = tensor("emb", dt, rows, cols, rnd);
            float[] ref = dequant(table);
            Weight w = backend.matrix(List.of(table), null);
            Batch batch = new Batch(8, 1, 1);
            int[] toks = {0, 49, 7, 7, 23};
            batch.nTokens = toks.length;
            batch.nSeqs = 1;
            System.arraycopy(toks, 0, batch.tokens, 0, toks.length);
            for (int t = 0; t < toks.length; t++) {
                batch.positions[t] = t;
            }
            batch.seqKvLength[0] = toks.length;
            Buffer out = backend.allocate((long) toks.length * cols);
            backend.embed(w, batch, out);
            float[] got = download(out, toks.length * cols);
            for (int t = 0; t < toks.length; t++) {
                float[] expect = Arrays.copyOfRange(ref, toks[t] * cols, (toks[t] + 1) * cols);
                float[] row = Arrays.copyOfRange(got, t * cols, (t + 1) * cols);
                assertArrayEquals(expect, row, "embed " + dt + " token " + toks[t]);
            }
        }
    }

    @Test
    void rmsNormSiluMulAddGather() {
        Random rnd = new Random(6);
        for (int dim : new int[] {896, 37}) {
            int n = 3;
            float eps = 1e-6f;
            float[] x = randn(rnd, n * dim);
            float[] gamma = randn(rnd, dim);
            Buffer xb = upload(x);
            Buffer gb = upload(gamma);
            Buffer out = backend.allocate((long) n * dim);
            backend.rmsNorm(xb, gb, eps, n, dim, out);
            float[] expect = new float[n * dim];
            for (int t = 0; t < n; t++) {
                double ss = 0;
                for (int i = 0; i < dim; i++) {
                    ss += (double) x[t * dim + i] * x[t * dim + i];
                }
                double inv = 1.0 / Math.sqrt(ss / dim + eps);
                for (int i = 0; i < dim; i++) {
                    expect[t * dim + i] = (float) (x[t * dim + i] * inv * gamma[i]);
                }
            }
            assertRelClose(expect, download(out, n * dim), 1e-5, "rmsNorm dim " + dim);
            backend.rmsNorm(xb, gb, eps, n, dim, xb);  // in place
            assertRelClose(expect, download(xb, n * dim), 1e-5, "rmsNorm in place dim " + dim);

            float[] gu = randn(rnd, n * 2 * dim);
            Buffer gub = upload(gu);
            Buffer act = backend.allocate((long) n * dim);
            backend.siluMul(gub, n, dim, act);
            float[] silu = new float[n * dim];
            for (int t = 0; t < n; t++) {
                for (int i = 0; i < dim; i++) {
                    double g = gu[t * 2 * dim + i];
                    silu[t * dim + i] = (float) (g / (1 + Math.exp(-g)) * gu[t * 2 * dim + dim + i]);
                }
            }
            assertRelClose(silu, download(act, n * dim), 1e-5, "siluMul dim " + dim);
            backend.siluMul(gub, n, dim, gub);  // in place over several rows goes through a temporary
            assertRelClose(silu, download(gub, n * dim), 1e-5, "siluMul in place dim " + dim);

            float[] y = randn(rnd, n * dim);
            Buffer xb2 = upload(x);
            backend.add(xb2, upload(y), n, dim);
            float[] sum = new float[n * dim];
            for (int i = 0; i < sum.length; i++) {
                sum[i] = x[i] + y[i];
            }
            assertArrayEquals(sum, download(xb2, n * dim), "add dim " + dim);

            Batch batch = new Batch(4, 1, 1);
            batch.nTokens = n;
            batch.nSeqs = 1;
            batch.nLogits = 2;
            batch.logitRows[0] = 2;
            batch.logitRows[1] = 0;
            Buffer g = backend.allocate(2L * dim);
            backend.gatherRows(upload(x), dim, batch, g);
            float[] expectG = concat(Arrays.copyOfRange(x, 2 * dim, 3 * dim), Arrays.copyOfRange(x, 0, dim));
            assertArrayEquals(expectG, download(g, 2 * dim), "gatherRows dim " + dim);
        }
    }

    @Test
    void ropeRotatesQueryAndKeyHeadsAtBatchPositions() {
        Random rnd = new Random(7);
        int headDim = 64;
        int half = headDim / 2;
        int qHeads = 3;
        int kHeads = 2;
        int rowStride = (qHeads + 2 * kHeads) * headDim + 5;  // odd stride: the kernel must not assume a layout
        float[] invFreq = new float[half];
        for (int i = 0; i < half; i++) {
            invFreq[i] = (float) (1.0 / Math.pow(1_000_000.0, 2.0 * i / headDim));
        }
        float scaling = 1.25f;
        RopeTable table = backend.ropeTable(invFreq, scaling, 4096);
        assertEquals(half, table.halfDim());
        Batch batch = new Batch(4, 2, 1);
        batch.nTokens = 4;
        batch.nSeqs = 2;
        int[] pos = {0, 1, 4095, 77};
        System.arraycopy(pos, 0, batch.positions, 0, 4);
        batch.seqOfToken[2] = 1;
        batch.seqOfToken[3] = 1;
        float[] x = randn(rnd, 4 * rowStride);
        Buffer xb = upload(x);
        backend.rope(Rows.of(xb, 0, rowStride, qHeads * headDim), headDim, batch, table);
        backend.rope(Rows.of(xb, qHeads * headDim, rowStride, kHeads * headDim), headDim, batch, table);
        float[] expect = x.clone();
        for (int t = 0; t < 4; t++) {
            for (int h = 0; h < qHeads + kHeads; h++) {
                int base = t * rowStride + h * headDim;
                for (int i = 0; i < half; i++) {
                    float angle = pos[t] * invFreq[i];
                    float c = (float) Math.cos(angle) * scaling;
                    float s = (float) Math.sin(angle) * scaling;
                    float x0 = x[base + i];
                    float x1 = x[base + i + half];
                    expect[base + i] = x0 * c - x1 * s;
                    expect[base + i + half] = x1 * c + x0 * s;
                }
            }
        }
        assertRelClose(expect, download(xb, 4 * rowStride), 1e-6, "rope");
    }

    // =========================================================================================== attention

    @Test
    void pagedAttentionMultiSequenceGqa() {
        // group 7 (bucket 8), 1, 16, 3 (dim 80: V per element), 2 (dim 30: scalar K loads, V per element)
        int[][] configs = {{14, 2, 64}, {4, 4, 32}, {16, 1, 128}, {6, 2, 80}, {4, 2, 30}};
        long seed = 8;
        for (int[] cfg : configs) {
            new AttentionScenario(cfg[0], cfg[1], cfg[2], seed++).run();
        }
    }

    /**
     * Long context (2100 keys: many splits of the flash-decoding kernel, each with a full 128-key chunk or more)
     * for group sizes 1, 2, 7 and 8, and a two-token decode mixing a short and the long sequence (each token
     * derives its own split length; the short one leaves most splits empty).
     */
    @Test
    void pagedAttentionLongContextGroupSizes() {
        int[][] configs = {{4, 4, 64}, {8, 4, 64}, {14, 2, 64}, {16, 2, 128}};  // groups 1, 2, 7, 8
        long seed = 40;
        for (int[] cfg : configs) {
            AttentionScenario s = new AttentionScenario(cfg[0], cfg[1], cfg[2], seed++, 420, 160, 140);
            s.step(new int[] {0}, new int[] {21}, 0);
            s.step(new int[] {2}, new int[] {2100}, 2096);  // checks only the last 4 prefill tokens (the rest: cost)
            s.step(new int[] {2}, new int[] {1}, 0);
            s.step(new int[] {0, 2}, new int[] {1, 1}, 0);
        }
    }

    // =========================================================================================== kernel variants

    /** GEMV with 1 or 4 warps per row group: every dtype, 1 and 3 tokens, rows not a multiple of the group. */
    @Test
    void gemvWarpSplitsAgree() {
        Random rnd = new Random(77);
        CudaBackend.Options tuned = backend.options();
        try {
            for (DType dt : ALL) {
                int rows = 203;
                int cols = 2048;
                Weight w = backend.matrix(List.of(tensor("w", dt, rows, cols, rnd)), null);
                for (int n : new int[] {1, 3}) {
                    Buffer x = upload(randn(rnd, n * cols));
                    Buffer out = backend.allocate((long) n * rows);
                    backend.retune(tuned.withGemvWarps(1));
                    backend.matmul(w, null, x, n, out);
                    float[] one = download(out, n * rows);
                    backend.retune(tuned.withGemvWarps(4));
                    backend.matmul(w, null, x, n, out);
                    assertCloseToMax(one, download(out, n * rows), 1e-5, "gemv " + dt + " n=" + n + " 4 vs 1 warps");
                }
            }
        } finally {
            backend.retune(tuned);
        }
    }

    /**
     * matmulSiluMul is one launch (counted in a graph) and writes what matmul then siluMul write (both outputs,
     * to float rounding: its own warp split).
     */
    @Test
    void gateUpGemvFusedWithSiluMatchesTwoLaunches() {
        Random rnd = new Random(78);
        int dim = 300;
        int cols = 512;
        Batch one = new Batch(1, 1, 1);
        one.nTokens = 1;
        one.nSeqs = 1;
        for (DType dt : new DType[] {DType.BF16, DType.Q8_0, DType.Q4_0}) {
            Weight w = backend.matrix(List.of(tensor("gu", dt, 2 * dim, cols, rnd)), null);
            for (int n : new int[] {1, 4}) {
                Buffer x = upload(randn(rnd, n * cols));
                Buffer gu = backend.allocate(2L * n * dim);
                Buffer act = backend.allocate((long) n * dim);
                backend.matmul(w, null, x, n, gu);
                backend.siluMul(gu, n, dim, act);
                float[] pairGateUp = download(gu, 2 * n * dim);
                float[] pairAct = download(act, n * dim);
                Buffer gu2 = backend.allocate(2L * n * dim);
                Buffer act2 = backend.allocate((long) n * dim);
                backend.beginCapture(one);
                backend.matmulSiluMul(w, x, n, gu2, act2);
                try (CudaGraph g = backend.endCapture()) {
                    assertEquals(1, g.operations(), dt + " n=" + n + ": one fused launch");
                    backend.replay(g, one);
                }
                assertCloseToMax(pairGateUp, download(gu2, 2 * n * dim), 1e-5, dt + " n=" + n + " gate|up");
                assertCloseToMax(pairAct, download(act2, n * dim), 1e-5, dt + " n=" + n + " silu(gate) * up");
            }
        }
    }

    /**
     * ropeStoreKv on a fused q|k|v row (one launch, counted in a graph) vs rope, rope, storeKv: the rotated rows
     * and the cache are bit-equal (attention over the cache, a deterministic kernel, gives identical outputs).
     */
    @Test
    void ropeStoreKvFusedIsBitEqual() {
        int heads = 14;
        int kvHeads = 2;
        int headDim = 64;
        int qDim = heads * headDim;
        int kvDim = kvHeads * headDim;
        int stride = qDim + 2 * kvDim;
        float[] invFreq = new float[headDim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) Math.pow(1e6, -2.0 * i / headDim);
        }
        RopeTable rope = backend.ropeTable(invFreq, 1f, 64);
        Random rnd = new Random(79);
        int n = 3;
        Batch b = new Batch(n, 1, 4);
        b.nTokens = n;
        b.nSeqs = 1;
        b.seqKvLength[0] = 8;
        for (int t = 0; t < n; t++) {
            b.positions[t] = 5 + t;
        }
        b.blockTables[0] = 2;
        b.blockTables[1] = 0;
        float[] rows = randn(rnd, n * stride);
        float[][] outs = new float[2][];
        float[][] rotated = new float[2][];
        for (int f = 0; f < 2; f++) {
            KvCache cache = backend.kvCache(1, kvDim, 4, 4);
            Buffer prefix = upload(randn(new Random(80), 8 * stride));  // positions 0..4 (same in both caches)
            Batch pb = new Batch(5, 1, 4);
            pb.nTokens = 5;
            pb.nSeqs = 1;
            pb.seqKvLength[0] = 5;
            for (int t = 0; t < 5; t++) {
                pb.positions[t] = t;
            }
            pb.blockTables[0] = 2;
            pb.blockTables[1] = 0;
            backend.storeKv(cache, 0, Rows.of(prefix, qDim, stride, kvDim), Rows.of(prefix, qDim + kvDim, stride, kvDim), pb);
            Buffer qkv = upload(rows);
            Rows q = Rows.of(qkv, 0, stride, qDim);
            Rows k = Rows.of(qkv, qDim, stride, kvDim);
            Rows v = Rows.of(qkv, qDim + kvDim, stride, kvDim);
            if (f == 0) {
                backend.rope(q, headDim, b, rope);
                backend.rope(k, headDim, b, rope);
                backend.storeKv(cache, 0, k, v, b);
            } else {
                backend.beginCapture(b);
                backend.ropeStoreKv(q, k, v, headDim, cache, 0, b, rope);
                try (CudaGraph g = backend.endCapture()) {
                    assertEquals(1, g.operations(), "one rope_store_kv launch");
                    backend.replay(g, b);
                }
            }
            Buffer out = backend.allocate((long) n * qDim);
            backend.attention(q, cache, 0, b, kvHeads, headDim, 0.125f, out);
            outs[f] = download(out, n * qDim);
            rotated[f] = download(qkv, n * stride);
        }
        assertArrayEquals(rotated[0], rotated[1], "rotated q/k rows");
        assertArrayEquals(outs[0], outs[1], "attention over the stored keys and values");
    }

    /** addRmsNorm is one add_rmsnorm launch, bit-equal to add then rmsNorm (also with out = x). */
    @Test
    void addRmsNormFusedIsBitEqual() {
        Random rnd = new Random(83);
        int n = 3;
        int dim = 896;
        Batch one = new Batch(1, 1, 1);
        one.nTokens = 1;
        one.nSeqs = 1;
        float[] xs = randn(rnd, n * dim);
        float[] ys = randn(rnd, n * dim);
        Buffer gamma = upload(randn(rnd, dim));
        for (boolean inPlace : new boolean[] {false, true}) {
            Buffer x1 = upload(xs);
            Buffer y1 = upload(ys);
            Buffer o1 = inPlace ? x1 : backend.allocate((long) n * dim);
            backend.add(x1, y1, n, dim);
            backend.rmsNorm(x1, gamma, 1e-6f, n, dim, o1);
            Buffer x2 = upload(xs);
            Buffer y2 = upload(ys);
            Buffer o2 = inPlace ? x2 : backend.allocate((long) n * dim);
            backend.beginCapture(one);
            backend.addRmsNorm(x2, y2, gamma, 1e-6f, n, dim, o2);
            try (CudaGraph g = backend.endCapture()) {
                assertEquals(1, g.operations(), "one add_rmsnorm launch");
                backend.replay(g, one);
            }
            assertArrayEquals(download(x1, n * dim), download(x2, n * dim), "x + y, in place " + inPlace);
            assertArrayEquals(download(o1, n * dim), download(o2, n * dim), "the norm, in place " + inPlace);
        }
    }

    /**
     * The decode attention kernel vs the general one (checked against a double reference elsewhere): 1 and 3
     * tokens, contexts from 1 to 700, head dims 32/64/128/256, groups 1 to 16.
     */
    @Test
    void decodeAttentionKernelMatchesTheGeneralOne() {
        int[][] configs = {{14, 2, 64}, {28, 4, 128}, {12, 2, 128}, {16, 1, 64}, {4, 4, 32}, {8, 2, 256}};
        Random rnd = new Random(81);
        CudaBackend.Options tuned = backend.options();
        try {
            for (int[] cfg : configs) {
                int heads = cfg[0];
                int kvHeads = cfg[1];
                int headDim = cfg[2];
                int qDim = heads * headDim;
                int kvDim = kvHeads * headDim;
                int stride = qDim + 2 * kvDim;
                int ctx = 700;
                int blockSize = 16;
                int maxBlocks = ctx / blockSize + 1;
                KvCache cache = backend.kvCache(1, kvDim, maxBlocks + 3, blockSize);
                Batch pre = new Batch(ctx, 1, maxBlocks);
                pre.nTokens = ctx;
                pre.nSeqs = 1;
                pre.seqKvLength[0] = ctx;
                for (int t = 0; t < ctx; t++) {
                    pre.positions[t] = t;
                }
                for (int j = 0; j < maxBlocks; j++) {
                    pre.blockTables[j] = (j * 7 + 3) % (maxBlocks + 3);
                }
                Buffer prefill = upload(randn(rnd, ctx * stride));
                backend.storeKv(cache, 0, Rows.of(prefill, qDim, stride, kvDim), Rows.of(prefill, qDim + kvDim, stride, kvDim), pre);
                for (int len : new int[] {1, 33, 64, 700}) {
                    for (int n : new int[] {1, 3}) {
                        if (n > len) {
                            continue;
                        }
                        Batch b = new Batch(n, 1, maxBlocks);
                        b.nTokens = n;
                        b.nSeqs = 1;
                        b.seqKvLength[0] = len;
                        for (int t = 0; t < n; t++) {
                            b.positions[t] = len - n + t;
                        }
                        System.arraycopy(pre.blockTables, 0, b.blockTables, 0, maxBlocks);
                        Buffer q = upload(randn(rnd, n * stride));
                        Buffer out = backend.allocate((long) n * qDim);
                        float[][] got = new float[2][];
                        for (int dec = 0; dec < 2; dec++) {
                            backend.retune(tuned.withDecodeAttention(dec == 1));
                            backend.attention(Rows.of(q, 0, stride, heads * headDim), cache, 0, b, kvHeads, headDim, (float) (1 / Math.sqrt(headDim)), out);
                            got[dec] = download(out, n * qDim);
                        }
                        assertCloseToMax(got[0], got[1], 1e-5, "attention heads " + heads + "/" + kvHeads + " dim "
                                + headDim + " len " + len + " n " + n + ": decode vs general kernel");
                    }
                }
            }
        } finally {
            backend.retune(tuned);
        }
    }

    private static void assertCloseToMax(float[] ref, float[] got, double tol, String what) {
        assertEquals(ref.length, got.length, what);
        double max = 0;
        for (float v : ref) {
            max = Math.max(max, Math.abs(v));
        }
        for (int i = 0; i < ref.length; i++) {
            if (!(Math.abs(ref[i] - got[i]) <= tol * max)) {
                fail(what + ": element " + i + " got " + got[i] + ", expected " + ref[i] + " (max |ref| " + max + ")");
            }
        }
    }

    /** Two sequences in shuffled blocks: a mixed prefill, a decode step, then one long sequence (split path). */
    private static final class AttentionScenario {
        final int heads;
        final int kvHeads;
        final int headDim;
        final int kvDim;
        final int rowStride;
        final Random rnd;
        final int blockSize = 16;
        final int numBlocks;
        final int maxBlocks;
        final KvCache cache;
        final int layer = 1;
        final float scale;
        // host copies of what is stored: [seq][pos] -> k / v row of kvDim
        final List<List<float[]>> keys = new ArrayList<>();
        final List<List<float[]>> values = new ArrayList<>();
        final int[][] tables = new int[3][];

        AttentionScenario(int heads, int kvHeads, int headDim, long seed) {
            this(heads, kvHeads, headDim, seed, 160, 64, 48);  // 768 positions per sequence; the rest is junk
        }

        AttentionScenario(int heads, int kvHeads, int headDim, long seed, int numBlocks, int maxBlocks,
                          int blocksPerSeq) {
            this.numBlocks = numBlocks;
            this.maxBlocks = maxBlocks;
            this.heads = heads;
            this.kvHeads = kvHeads;
            this.headDim = headDim;
            this.kvDim = kvHeads * headDim;
            this.rowStride = (heads + 2 * kvHeads) * headDim;
            this.rnd = new Random(seed);
            this.scale = (float) (1 / Math.sqrt(headDim));
            this.cache = backend.kvCache(2, kvDim, numBlocks, blockSize);
            List<Integer> free = new ArrayList<>();
            for (int i = 0; i < numBlocks; i++) {
                free.add(i);
            }
            java.util.Collections.shuffle(free, rnd);
            for (int s = 0; s < 3; s++) {
                tables[s] = new int[maxBlocks];
                for (int j = 0; j < maxBlocks; j++) {
                    tables[s][j] = j < blocksPerSeq ? free.remove(free.size() - 1) : -1;
                }
                keys.add(new ArrayList<>());
                values.add(new ArrayList<>());
            }
        }

        void run() {
            // prefill: seq 0 positions 0..19, seq 1 positions 0..6 in one batch
            step(new int[] {0, 1}, new int[] {20, 7});
            // decode: one token each
            step(new int[] {0, 1}, new int[] {1, 1});
            // long prefill of seq 2 (several chunks), then decode at position 700 (several splits)
            step(new int[] {2}, new int[] {700});
            step(new int[] {2}, new int[] {1});
        }

        void step(int[] seqs, int[] count) {
            step(seqs, count, 0);
        }

        /**
         * Appends count[i] tokens to sequence seqs[i], stores their keys/values, runs attention, compares the
         * outputs of tokens checkFrom.. of the batch with a double-precision reference.
         */
        void step(int[] seqs, int[] count, int checkFrom) {
            int n = Arrays.stream(count).sum();
            Batch b = new Batch(n, seqs.length, maxBlocks);
            b.nTokens = n;
            b.nSeqs = seqs.length;
            int t = 0;
            int[] seqId = new int[n];
            int[] posOf = new int[n];
            for (int i = 0; i < seqs.length; i++) {
                int start = keys.get(seqs[i]).size();
                for (int c = 0; c < count[i]; c++, t++) {
                    b.seqOfToken[t] = i;
                    b.positions[t] = start + c;
                    b.tokens[t] = 0;
                    seqId[t] = seqs[i];
                    posOf[t] = start + c;
                }
                b.seqKvLength[i] = start + count[i];
                System.arraycopy(tables[seqs[i]], 0, b.blockTables, i * maxBlocks, maxBlocks);
            }
            float[] qkv = randn(rnd, n * rowStride);
            int kOff = heads * headDim;
            int vOff = kOff + kvDim;
            for (t = 0; t < n; t++) {
                keys.get(seqId[t]).add(Arrays.copyOfRange(qkv, t * rowStride + kOff, t * rowStride + kOff + kvDim));
                values.get(seqId[t]).add(Arrays.copyOfRange(qkv, t * rowStride + vOff, t * rowStride + vOff + kvDim));
            }
            Buffer qkvb = upload(qkv);
            backend.storeKv(cache, layer, Rows.of(qkvb, kOff, rowStride, cache.kvDim()), Rows.of(qkvb, vOff, rowStride, cache.kvDim()), b);
            Buffer out = backend.allocate((long) n * heads * headDim);
            backend.attention(Rows.of(qkvb, 0, rowStride, heads * headDim), cache, layer, b, kvHeads, headDim, scale, out);
            float[] got = download(out, n * heads * headDim);
            int group = heads / kvHeads;
            for (t = checkFrom; t < n; t++) {
                List<float[]> ks = keys.get(seqId[t]);
                List<float[]> vs = values.get(seqId[t]);
                int len = posOf[t] + 1;
                for (int h = 0; h < heads; h++) {
                    int kvh = h / group;
                    double[] sc = new double[len];
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < len; j++) {
                        double dot = 0;
                        for (int d = 0; d < headDim; d++) {
                            dot += (double) qkv[t * rowStride + h * headDim + d] * ks.get(j)[kvh * headDim + d];
                        }
                        sc[j] = dot * scale;
                        mx = Math.max(mx, sc[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < len; j++) {
                        sc[j] = Math.exp(sc[j] - mx);
                        sum += sc[j];
                    }
                    for (int d = 0; d < headDim; d++) {
                        double o = 0;
                        double vmax = 0;
                        for (int j = 0; j < len; j++) {
                            float v = vs.get(j)[kvh * headDim + d];
                            o += sc[j] / sum * v;
                            vmax = Math.max(vmax, Math.abs(v));
                        }
                        float g = got[(t * heads + h) * headDim + d];
                        if (!(Math.abs(g - o) <= 1e-4 * Math.max(vmax, 1e-3))) {
                            fail("attention heads=" + heads + " kvHeads=" + kvHeads + " headDim=" + headDim + " token "
                                    + t + " (seq " + seqId[t] + ", pos " + posOf[t] + ") head " + h + " dim " + d
                                    + ": got " + g + ", expected " + o);
                        }
                    }
                }
            }
        }
    }

    @Test
    void copyBlockForksASequence() {
        int kvDim = 32;
        KvCache cache = backend.kvCache(2, kvDim, 8, 4);
        Random rnd = new Random(9);
        Batch b = new Batch(4, 1, 2);
        b.nTokens = 4;
        b.nSeqs = 1;
        for (int t = 0; t < 4; t++) {
            b.positions[t] = t;
        }
        b.seqKvLength[0] = 4;
        b.blockTables[0] = 5;
        int rowStride = 3 * kvDim;
        float[] qkv = randn(rnd, 4 * rowStride);
        Buffer qb = upload(qkv);
        backend.storeKv(cache, 1, Rows.of(qb, kvDim, rowStride, cache.kvDim()), Rows.of(qb, 2 * kvDim, rowStride, cache.kvDim()), b);
        Buffer out1 = backend.allocate(4L * kvDim);
        backend.attention(Rows.of(qb, 0, rowStride, 1 * kvDim), cache, 1, b, 1, kvDim, 0.3f, out1);
        cache.copyBlock(5, 2);
        b.blockTables[0] = 2;  // the fork reads the copy
        Buffer out2 = backend.allocate(4L * kvDim);
        backend.attention(Rows.of(qb, 0, rowStride, 1 * kvDim), cache, 1, b, 1, kvDim, 0.3f, out2);
        assertArrayEquals(download(out1, 4 * kvDim), download(out2, 4 * kvDim));
        assertThrows(IndexOutOfBoundsException.class, () -> cache.copyBlock(0, 8));
    }

    // =========================================================================================== argmax & sampling

    @Test
    void argmaxPicksTheLowestIndexOfTies() {
        Random rnd = new Random(10);
        for (int dim : new int[] {151_936, 1000, 33, 1}) {
            int n = 3;
            float[] x = randn(rnd, n * dim);
            if (dim > 40) {
                x[17] = 9;
                x[dim - 1] = 9;            // tie in row 0: 17 wins
                x[dim + 40] = 7;           // row 1
                x[2 * dim + dim - 1] = 8;  // row 2: last index
            }
            int[] got = new int[n];
            backend.argmax(upload(x), n, dim, got);
            for (int r = 0; r < n; r++) {
                int best = 0;
                for (int i = 1; i < dim; i++) {
                    if (x[r * dim + i] > x[r * dim + best]) {
                        best = i;
                    }
                }
                assertEquals(best, got[r], "argmax row " + r + " dim " + dim);
            }
        }
    }

    @Test
    void samplingIsGreedyAtZeroTemperatureAndStaysInTheNucleus() {
        Random rnd = new Random(11);
        int dim = 50_000;
        int n = 4;
        float[] x = randn(rnd, n * dim);
        for (int i = 0; i < x.length; i++) {
            x[i] *= 3;
        }
        Buffer xb = upload(x);
        int[] greedy = new int[n];
        backend.argmax(xb, n, dim, greedy);
        int[] got = new int[n];
        backend.sample(xb, n, dim, 0f, 20, 0.8f, 1, got);
        assertArrayEquals(greedy, got, "temperature 0");
        backend.sample(xb, n, dim, 0.9f, 1, 1f, 1, got);
        assertArrayEquals(greedy, got, "topK 1");
        for (int[] kp : new int[][] {{20, 80}, {0, 90}, {2000, 95}, {5, 100}, {0, 100}}) {
            int topK = kp[0];
            float topP = kp[1] / 100f;
            for (long seed = 0; seed < 40; seed++) {
                backend.sample(xb, n, dim, 0.7f, topK, topP, seed, got);
                for (int r = 0; r < n; r++) {
                    Set<Integer> allowed = nucleus(Arrays.copyOfRange(x, r * dim, (r + 1) * dim), 0.7f, topK, topP);
                    assertTrue(allowed.contains(got[r]), "topK=" + topK + " topP=" + topP + " seed " + seed + " row " + r
                            + ": token " + got[r] + " not among the " + allowed.size() + " allowed");
                }
            }
        }
        int[] again = new int[n];
        backend.sample(xb, n, dim, 1f, 50, 0.95f, 1234, got);
        backend.sample(xb, n, dim, 1f, 50, 0.95f, 1234, again);
        assertArrayEquals(got, again, "same seed, same tokens");
    }

    @Test
    void samplingFollowsTheDistribution() {
        // 10 logits; many rows sample the same distribution with independent variates
        float[] logits = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -9f};
        int dim = logits.length;
        int n = 20_000;
        float[] x = new float[n * dim];
        for (int r = 0; r < n; r++) {
            System.arraycopy(logits, 0, x, r * dim, dim);
        }
        Buffer xb = upload(x);
        int[] got = new int[n];
        for (int[] kp : new int[][] {{5, 100}, {0, 100}, {0, 70}, {3, 90}}) {
            int topK = kp[0];
            float topP = kp[1] / 100f;
            float temperature = 0.8f;
            backend.sample(xb, n, dim, temperature, topK, topP, 99, got);
            Set<Integer> allowed = nucleus(logits, temperature, topK, topP);
            double z = 0;
            double[] p = new double[dim];
            for (int i : allowed) {
                p[i] = Math.exp(logits[i] / temperature);
                z += p[i];
            }
            int[] counts = new int[dim];
            for (int t : got) {
                counts[t]++;
            }
            for (int i = 0; i < dim; i++) {
                double expected = n * p[i] / z;
                double sigma = Math.sqrt(Math.max(expected * (1 - p[i] / z), 1));
                assertTrue(Math.abs(counts[i] - expected) <= 5 * sigma, "topK=" + topK + " topP=" + topP + " token " + i
                        + ": " + counts[i] + " draws, expected " + expected + " (" + Arrays.toString(counts) + ")");
            }
        }
    }

    /** HF semantics: temperature, top-k (exactly k, ties by index), top-p (keep while preceding mass < p). */
    private static Set<Integer> nucleus(float[] logits, float temperature, int topK, float topP) {
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> logits[a] != logits[b] ? Float.compare(logits[b], logits[a]) : a - b);
        int k = topK > 0 ? Math.min(topK, logits.length) : logits.length;
        double[] p = new double[k];
        double total = 0;
        for (int r = 0; r < k; r++) {
            p[r] = Math.exp((logits[order[r]] - logits[order[0]]) / temperature);
            total += p[r];
        }
        Set<Integer> out = new HashSet<>();
        double before = 0;
        for (int r = 0; r < k; r++) {
            // tolerate float-rounding at the cut: a token within 1e-4 of the boundary is accepted
            if (r == 0 || topP >= 1 || before < topP * total * (1 + 1e-4)) {
                out.add(order[r]);
            }
            before += p[r];
        }
        // top-k ties at the k-th value may be resolved either way by threshold search: accept them
        if (topK > 0 && topK < logits.length) {
            float kth = logits[order[k - 1]];
            for (int i = 0; i < logits.length; i++) {
                if (logits[i] == kth && (topP >= 1)) {
                    out.add(i);
                }
            }
        }
        return out;
    }

    // =========================================================================================== graphs

    @Test
    void graphReplayMatchesEagerDecoding() {
        TinyModel m = new TinyModel(backend, 12);
        KvCache cacheEager = backend.kvCache(1, m.kvDim, 70, 16);
        KvCache cacheGraph = backend.kvCache(1, m.kvDim, 70, 16);
        int maxBlocks = 64;  // capacity 1024 positions: the captured attention uses up to 64 splits
        int[] table = new int[maxBlocks];
        for (int j = 0; j < maxBlocks; j++) {
            table[j] = (j * 37 + 5) % 70;
        }
        // prefill 10 tokens into both caches, eagerly
        Batch prefill = new Batch(16, 1, maxBlocks);
        prefill.nTokens = 10;
        prefill.nSeqs = 1;
        prefill.nLogits = 1;
        prefill.logitRows[0] = 9;
        for (int t = 0; t < 10; t++) {
            prefill.tokens[t] = (t * 31 + 7) % m.vocab;
            prefill.positions[t] = t;
        }
        prefill.seqKvLength[0] = 10;
        System.arraycopy(table, 0, prefill.blockTables, 0, maxBlocks);
        m.forward(prefill, cacheEager);
        m.forward(prefill, cacheGraph);

        Batch eager = new Batch(1, 1, maxBlocks);
        Batch graphBatch = new Batch(1, 1, maxBlocks);
        for (Batch b : new Batch[] {eager, graphBatch}) {
            b.nTokens = 1;
            b.nSeqs = 1;
            b.nLogits = 1;
            b.logitRows[0] = 0;
            System.arraycopy(table, 0, b.blockTables, 0, maxBlocks);
        }
        CudaGraph graph = null;
        int token = 3;
        try {
            for (int step = 0; step < 12; step++) {
                // positions jump (the skipped ones hold zeros in both caches) so that the graph, captured at
                // position 10 with splits for all 1024, replays with 1 up to ~60 live splits
                int pos = 10 + step * 87;
                for (Batch b : new Batch[] {eager, graphBatch}) {
                    b.tokens[0] = token;
                    b.positions[0] = pos;
                    b.seqKvLength[0] = pos + 1;
                }
                float[] want = m.forward(eager, cacheEager);
                if (graph == null) {
                    backend.beginCapture(graphBatch);
                    m.enqueue(graphBatch, cacheGraph);
                    graph = backend.endCapture();
                    assertTrue(graph.operations() >= 10, graph.toString());  // 13 ops, rope+rope and add+rmsNorm fused
                }
                backend.replay(graph, graphBatch);
                float[] got = download(m.logits, m.vocab);
                double max = 0;
                for (float v : want) {
                    max = Math.max(max, Math.abs(v));
                }
                for (int i = 0; i < m.vocab; i++) {
                    assertEquals(want[i], got[i], 1e-4 * max, "step " + step + " logit " + i);
                }
                int[] next = new int[1];
                backend.argmax(m.logits, 1, m.vocab, next);
                token = next[0];
            }
        } finally {
            if (graph != null) {
                graph.close();
            }
        }
    }

    /** One attention layer + lm_head, enough to exercise every op in a captured decode step. */
    private static final class TinyModel {
        final ai.k2j.kernels.Backend be;
        final int vocab = 1000;
        final int hidden = 256;
        final int heads = 4;
        final int kvHeads = 2;
        final int headDim = 64;
        final int kvDim = kvHeads * headDim;
        final int qkvDim = (heads + 2 * kvHeads) * headDim;
        final Weight embedding;
        final Weight wqkv;
        final Buffer bqkv;
        final Weight wo;
        final Buffer gamma;
        final RopeTable rope;
        final Buffer x;
        final Buffer h;
        final Buffer qkv;
        final Buffer att;
        final Buffer o;
        final Buffer hl;
        final Buffer logits;

        /** Same seed, same weights, on any backend. */
        TinyModel(ai.k2j.kernels.Backend be, long seed) {
            this.be = be;
            Random rnd = new Random(seed);
            embedding = be.matrix(List.of(tensor("emb", DType.BF16, vocab, hidden, rnd)), null);
            wqkv = be.matrix(List.of(tensor("q", DType.BF16, heads * headDim, hidden, rnd),
                    tensor("k", DType.BF16, kvDim, hidden, rnd), tensor("v", DType.BF16, kvDim, hidden, rnd)), null);
            bqkv = be.vector(List.of(f32("bqkv", randn(rnd, qkvDim))));
            wo = be.matrix(List.of(tensor("o", DType.Q8_0, hidden, heads * headDim, rnd)), null);
            gamma = be.vector(List.of(f32("gamma", randn(rnd, hidden))));
            float[] invFreq = new float[headDim / 2];
            for (int i = 0; i < invFreq.length; i++) {
                invFreq[i] = (float) Math.pow(10000, -2.0 * i / headDim);
            }
            rope = be.ropeTable(invFreq, 1f, 1024);
            x = be.allocate(16L * hidden);
            h = be.allocate(16L * hidden);
            qkv = be.allocate(16L * qkvDim);
            att = be.allocate(16L * heads * headDim);
            o = be.allocate(16L * hidden);
            hl = be.allocate(16L * hidden);
            logits = be.allocate((long) vocab * 16);
        }

        void enqueue(Batch b, KvCache cache) {
            int n = b.nTokens;
            be.embed(embedding, b, x);
            be.rmsNorm(x, gamma, 1e-6f, n, hidden, h);
            be.matmul(wqkv, bqkv, h, n, qkv);
            be.rope(Rows.of(qkv, 0, qkvDim, heads * headDim), headDim, b, rope);
            be.rope(Rows.of(qkv, heads * headDim, qkvDim, kvHeads * headDim), headDim, b, rope);
            be.storeKv(cache, 0, Rows.of(qkv, heads * headDim, qkvDim, cache.kvDim()), Rows.of(qkv, heads * headDim + kvDim, qkvDim, cache.kvDim()), b);
            be.attention(Rows.of(qkv, 0, qkvDim, heads * headDim), cache, 0, b, kvHeads, headDim, 0.125f, att);
            be.matmul(wo, null, att, n, o);
            be.add(x, o, n, hidden);
            be.rmsNorm(x, gamma, 1e-6f, n, hidden, h);
            be.gatherRows(h, hidden, b, hl);
            be.matmul(embedding, null, hl, b.nLogits, logits);
        }

        float[] forward(Batch b, KvCache cache) {
            enqueue(b, cache);
            float[] out = new float[b.nLogits * vocab];
            be.download(logits, 0, out, 0, out.length);
            return out;
        }
    }

    // =========================================================================================== vs ReferenceBackend

    @Test
    void tinyForwardMatchesReferenceBackend() {
        try (ai.k2j.kernels.ReferenceBackend ref = new ai.k2j.kernels.ReferenceBackend()) {
            TinyModel gpu = new TinyModel(backend, 21);
            TinyModel oracle = new TinyModel(ref, 21);
            KvCache gpuCache = backend.kvCache(1, gpu.kvDim, 8, 16);
            KvCache refCache = ref.kvCache(1, oracle.kvDim, 8, 16);
            Batch b = new Batch(8, 1, 4);
            b.nSeqs = 1;
            int[] table = {6, 1, 3, 0};
            System.arraycopy(table, 0, b.blockTables, 0, 4);
            // a 6-token prefill (GEMV path, no BF16 activation rounding), then 4 decode steps
            b.nTokens = 6;
            b.nLogits = 2;
            b.logitRows[0] = 5;
            b.logitRows[1] = 2;
            for (int t = 0; t < 6; t++) {
                b.tokens[t] = (t * 131 + 17) % gpu.vocab;
                b.positions[t] = t;
            }
            b.seqKvLength[0] = 6;
            for (int step = 0; step < 5; step++) {
                if (step > 0) {
                    b.nTokens = 1;
                    b.nLogits = 1;
                    b.logitRows[0] = 0;
                    b.tokens[0] = (step * 977) % gpu.vocab;
                    b.positions[0] = 5 + step;
                    b.seqKvLength[0] = 6 + step;
                }
                float[] want = oracle.forward(b, refCache);
                float[] got = gpu.forward(b, gpuCache);
                double max = 0;
                for (float v : want) {
                    max = Math.max(max, Math.abs(v));
                }
                for (int i = 0; i < want.length; i++) {
                    assertEquals(want[i], got[i], 1e-4 * max, "step " + step + " logit " + i);
                }
            }
        }
    }

    @Test
    void quantizedConversionsMatchReferenceBackend() {
        Random rnd = new Random(22);
        try (ai.k2j.kernels.ReferenceBackend ref = new ai.k2j.kernels.ReferenceBackend()) {
            for (DType src : new DType[] {DType.F32, DType.BF16}) {
                Tensor t = tensor("w", src, 48, 256, rnd);
                for (String format : new String[] {"q8_0", "q4_0", "f32"}) {
                    Weight gw = backend.matrix(List.of(t), WeightFormat.parse(format));
                    Weight rw = ref.matrix(List.of(t), WeightFormat.parse(format));
                    assertEquals(rw.byteSize(), gw.byteSize(), format);
                    float[] x = randn(rnd, 3 * 256);
                    float[] got = runMatmul(backend, gw, null, x, 3);
                    float[] want = runMatmul(ref, rw, null, x, 3);
                    float[] wq = referenceConvert(dequant(t), DType.valueOf(format.toUpperCase()));
                    assertClose(want, got, absSums(wq, 48, 256, x, 3), 1e-5, src + " -> " + format + " vs reference");
                }
            }
        }
    }

    @Test
    void captureRejectsSynchronizingCallsAndCanBeAborted() {
        Batch b = new Batch(1, 1, 1);
        b.nTokens = 1;
        b.nSeqs = 1;
        Buffer buf = backend.allocate(8);
        backend.beginCapture(b);
        try {
            assertThrows(IllegalStateException.class, () -> backend.download(buf, 0, new float[1], 0, 1));
            assertThrows(IllegalStateException.class, () -> backend.allocate(4));
            assertTrue(backend.capturing());
        } finally {
            backend.abortCapture();
        }
        assertTrue(!backend.capturing());
        float[] one = new float[1];
        backend.download(buf, 0, one, 0, 1);  // the stream works again
        assertEquals(0f, one[0]);
    }

    // =========================================================================================== bad input

    @Test
    void badArgumentsAreRejectedBeforeTheGpuSeesThem() {
        Random rnd = new Random(13);
        Weight w = backend.matrix(List.of(tensor("w", DType.BF16, 8, 64, rnd)), null);
        Buffer small = backend.allocate(10);
        Buffer out = backend.allocate(64);
        assertThrows(IllegalArgumentException.class, () -> backend.matmul(w, null, small, 1, out));
        assertThrows(IllegalArgumentException.class, () -> backend.matmul(w, null, out, 1, out));  // aliasing
        assertThrows(IllegalArgumentException.class, () -> backend.matmul(w, null, new Buffer() {
            @Override
            public long size() {
                return 1000;
            }
        }, 1, out));
        Batch b = new Batch(2, 1, 1);
        b.nTokens = 1;
        b.nSeqs = 1;
        b.tokens[0] = 8;  // table has 8 rows
        assertThrows(IllegalArgumentException.class, () -> backend.embed(w, b, out));
        KvCache cache = backend.kvCache(1, 16, 4, 4);
        b.tokens[0] = 0;
        b.positions[0] = 2;
        b.blockTables[0] = 4;  // out of [0, 4)
        Buffer qkv = backend.allocate(48);
        assertThrows(IllegalArgumentException.class, () -> backend.storeKv(cache, 0, Rows.of(qkv, 16, 48, cache.kvDim()), Rows.of(qkv, 32, 48, cache.kvDim()), b));
        b.positions[0] = 4;  // needs a second block, the table has one
        b.blockTables[0] = 1;
        assertThrows(IllegalArgumentException.class, () -> backend.storeKv(cache, 0, Rows.of(qkv, 16, 48, cache.kvDim()), Rows.of(qkv, 32, 48, cache.kvDim()), b));
        assertThrows(IllegalArgumentException.class, () -> backend.matrix(List.of(tensor("q", DType.F32, 2, 40, rnd)),
                WeightFormat.Q4_0));
        // still healthy
        b.positions[0] = 3;
        backend.storeKv(cache, 0, Rows.of(qkv, 16, 48, cache.kvDim()), Rows.of(qkv, 32, 48, cache.kvDim()), b);
        backend.sync();
    }

    // =========================================================================================== helpers

    private static void checkMatmul(CudaBackend be, DType dt, int rows, int cols, int n, boolean withBias, double tol,
                                    Random rnd) {
        Tensor t = tensor("w", dt, rows, cols, rnd);
        float[] wref = dequant(t);
        Weight w = be.matrix(List.of(t), null);
        assertEquals(dt, w.dtype());
        float[] x = randn(rnd, n * cols);
        float[] bias = withBias ? randn(rnd, rows) : null;
        Buffer bb = bias == null ? null : be.vector(List.of(f32("bias", bias)));
        float[] got = runMatmul(be, w, bb, x, n);
        float[] ref = matmulRef(wref, rows, cols, bias, x, n);
        assertClose(ref, got, absSums(wref, rows, cols, x, n), tol,
                "matmul " + dt + " " + rows + "x" + cols + " n=" + n + (withBias ? " +bias" : "") + " (" + be
                        .describe().lines().filter(l -> l.startsWith("prefill")).findFirst().orElse("") + ")");
    }

    private static float[] runMatmul(ai.k2j.kernels.Backend be, Weight w, Buffer bias, float[] x, int n) {
        Buffer xb = be.vector(List.of(f32("x", x)));
        Buffer out = be.allocate((long) n * w.rows());
        be.matmul(w, bias, xb, n, out);
        float[] got = new float[n * w.rows()];
        be.download(out, 0, got, 0, got.length);
        return got;
    }

    private static float[] matmulRef(float[] w, int rows, int cols, float[] bias, float[] x, int n) {
        float[] out = new float[n * rows];
        for (int t = 0; t < n; t++) {
            for (int r = 0; r < rows; r++) {
                double s = bias == null ? 0 : bias[r];
                for (int c = 0; c < cols; c++) {
                    s += (double) w[r * cols + c] * x[t * cols + c];
                }
                out[t * rows + r] = (float) s;
            }
        }
        return out;
    }

    private static double[] absSums(float[] w, int rows, int cols, float[] x, int n) {
        double[] out = new double[n * rows];
        for (int t = 0; t < n; t++) {
            for (int r = 0; r < rows; r++) {
                double s = 0;
                for (int c = 0; c < cols; c++) {
                    s += Math.abs((double) w[r * cols + c] * x[t * cols + c]);
                }
                out[t * rows + r] = s;
            }
        }
        return out;
    }

    private static void assertClose(float[] ref, float[] got, double[] scale, double tol, String what) {
        assertEquals(ref.length, got.length, what);
        for (int i = 0; i < ref.length; i++) {
            if (!(Math.abs(ref[i] - got[i]) <= tol * scale[i] + 1e-6)) {
                fail(what + ": element " + i + " got " + got[i] + ", expected " + ref[i] + " (error "
                        + Math.abs(ref[i] - got[i]) / scale[i] + " of sum|w·x| = " + scale[i] + ", tolerance " + tol + ")");
            }
        }
    }

    private static void assertRelClose(float[] ref, float[] got, double tol, String what) {
        assertEquals(ref.length, got.length, what);
        for (int i = 0; i < ref.length; i++) {
            if (!(Math.abs(ref[i] - got[i]) <= tol * Math.max(Math.abs(ref[i]), 1e-3))) {
                fail(what + ": element " + i + " got " + got[i] + ", expected " + ref[i]);
            }
        }
    }

    static float[] randn(Random rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return a;
    }

    private static float[] concat(float[] a, float[] b) {
        float[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    private static Buffer upload(float[] data) {
        return backend.vector(List.of(f32("data", data)));
    }

    private static float[] download(Buffer b, int count) {
        float[] out = new float[count];
        backend.download(b, 0, out, 0, count);
        return out;
    }

    static Tensor f32(String name, float[] v) {
        MemorySegment seg = ARENA.allocate(4L * v.length, 16);
        MemorySegment.copy(v, 0, seg, ValueLayout.JAVA_FLOAT, 0, v.length);
        return new Tensor(name, DType.F32, new long[] {v.length}, seg);
    }

    /** Random [rows, cols] weights in dtype's on-disk layout (Q8_0/Q4_0: llama.cpp blocks of 32). */
    static Tensor tensor(String name, DType dt, int rows, int cols, Random rnd) {
        long elements = (long) rows * cols;
        MemorySegment seg = ARENA.allocate(dt.bytesFor(elements), 16);
        switch (dt) {
            case F32 -> {
                for (long i = 0; i < elements; i++) {
                    seg.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (rnd.nextGaussian() * 0.5));
                }
            }
            case F16 -> {
                for (long i = 0; i < elements; i++) {
                    seg.setAtIndex(ValueLayout.JAVA_SHORT, i, Float.floatToFloat16((float) (rnd.nextGaussian() * 0.5)));
                }
            }
            case BF16 -> {
                for (long i = 0; i < elements; i++) {
                    int bits = Float.floatToRawIntBits((float) (rnd.nextGaussian() * 0.5));
                    seg.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (bits >>> 16));
                }
            }
            case Q8_0 -> {
                for (long blk = 0; blk < elements / 32; blk++) {
                    long base = blk * 34;
                    seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, base, Float.floatToFloat16(0.001f + 0.02f * rnd.nextFloat()));
                    for (int j = 0; j < 32; j++) {
                        seg.set(ValueLayout.JAVA_BYTE, base + 2 + j, (byte) (rnd.nextInt(255) - 127));
                    }
                }
            }
            case Q4_0 -> {
                for (long blk = 0; blk < elements / 32; blk++) {
                    long base = blk * 18;
                    float d = (rnd.nextBoolean() ? -1 : 1) * (0.01f + 0.1f * rnd.nextFloat());
                    seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, base, Float.floatToFloat16(d));
                    for (int j = 0; j < 16; j++) {
                        seg.set(ValueLayout.JAVA_BYTE, base + 2 + j, (byte) rnd.nextInt(256));
                    }
                }
            }
            default -> throw new IllegalArgumentException(dt.toString());
        }
        return new Tensor(name, dt, new long[] {rows, cols}, seg);
    }

    /** Reference decoding, written independently of HostCodec. */
    static float[] dequant(Tensor t) {
        int n = Math.toIntExact(t.elements());
        float[] out = new float[n];
        MemorySegment s = t.data();
        switch (t.dtype()) {
            case F32 -> MemorySegment.copy(s, ValueLayout.JAVA_FLOAT, 0, out, 0, n);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.float16ToFloat(s.getAtIndex(ValueLayout.JAVA_SHORT, i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.intBitsToFloat((s.getAtIndex(ValueLayout.JAVA_SHORT, i) & 0xffff) << 16);
                }
            }
            case Q8_0 -> {
                for (int blk = 0; blk < n / 32; blk++) {
                    float d = Float.float16ToFloat(s.get(ValueLayout.JAVA_SHORT_UNALIGNED, blk * 34L));
                    for (int j = 0; j < 32; j++) {
                        out[blk * 32 + j] = s.get(ValueLayout.JAVA_BYTE, blk * 34L + 2 + j) * d;
                    }
                }
            }
            case Q4_0 -> {
                for (int blk = 0; blk < n / 32; blk++) {
                    float d = Float.float16ToFloat(s.get(ValueLayout.JAVA_SHORT_UNALIGNED, blk * 18L));
                    for (int j = 0; j < 16; j++) {
                        int b = s.get(ValueLayout.JAVA_BYTE, blk * 18L + 2 + j) & 0xff;
                        out[blk * 32 + j] = ((b & 0xf) - 8) * d;
                        out[blk * 32 + 16 + j] = ((b >> 4) - 8) * d;
                    }
                }
            }
            default -> throw new IllegalArgumentException(t.dtype().toString());
        }
        return out;
    }

    /** What a float32 matrix becomes in `target`, dequantized back (llama.cpp's reference quantizers). */
    private static float[] referenceConvert(float[] src, DType target) {
        float[] out = new float[src.length];
        switch (target) {
            case F32 -> System.arraycopy(src, 0, out, 0, src.length);
            case F16 -> {
                for (int i = 0; i < src.length; i++) {
                    out[i] = Float.float16ToFloat(Float.floatToFloat16(src[i]));
                }
            }
            case BF16 -> {
                for (int i = 0; i < src.length; i++) {
                    int u = Float.floatToRawIntBits(src[i]);
                    int rounded = (u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000;  // nearest even (no NaNs here)
                    out[i] = Float.intBitsToFloat(rounded);
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < src.length / 32; b++) {
                    float amax = 0;
                    for (int j = 0; j < 32; j++) {
                        amax = Math.max(amax, Math.abs(src[b * 32 + j]));
                    }
                    float d = amax / 127f;
                    float id = d == 0 ? 0 : 1 / d;
                    float dh = Float.float16ToFloat(Float.floatToFloat16(d));
                    for (int j = 0; j < 32; j++) {
                        float v = src[b * 32 + j] * id;
                        long q = v < 0 ? -Math.round(Math.floor(-(double) v + 0.5)) : Math.round(Math.floor(v + 0.5));
                        out[b * 32 + j] = q * dh;
                    }
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < src.length / 32; b++) {
                    float amax = 0;
                    float max = 0;
                    for (int j = 0; j < 32; j++) {
                        if (Math.abs(src[b * 32 + j]) > amax) {
                            amax = Math.abs(src[b * 32 + j]);
                            max = src[b * 32 + j];
                        }
                    }
                    float d = max / -8f;
                    float id = d == 0 ? 0 : 1 / d;
                    float dh = Float.float16ToFloat(Float.floatToFloat16(d));
                    for (int j = 0; j < 32; j++) {
                        int q = Math.min(15, (int) (src[b * 32 + j] * id + 8.5f));
                        out[b * 32 + j] = (q - 8) * dh;
                    }
                }
            }
            default -> throw new IllegalArgumentException(target.toString());
        }
        return out;
    }

    @Test
    void batchesAreReuploadedOnlyWhenTheyChange() {
        // an op after changing positions in place must see the new positions (no stale device copy)
        float[] invFreq = {1f, 0.5f};
        RopeTable table = backend.ropeTable(invFreq, 1f, 64);
        Batch b = new Batch(1, 1, 1);
        b.nTokens = 1;
        b.nSeqs = 1;
        float[] x = {1, 0, 0, 1};
        float[] got = new float[4];
        for (int p : new int[] {3, 3, 9}) {
            b.positions[0] = p;
            Buffer xb = upload(x);
            backend.rope(Rows.of(xb, 0, 4, 1 * 4), 4, b, table);
            backend.download(xb, 0, got, 0, 4);
            assertEquals((float) Math.cos(p * 1f) * 1 - 0f, got[0], 1e-6, "position " + p);
            assertEquals((float) -Math.sin(p * 0.5f), got[1], 1e-6, "position " + p);
        }
        assertNotNull(table);
    }
}
