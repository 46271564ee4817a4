package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.Rows;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static ai.k2j.kernels.cpu.TestSupport.buffer;
import static ai.k2j.kernels.cpu.TestSupport.data;
import static ai.k2j.kernels.cpu.TestSupport.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** rmsNormHeads (Qwen3's q/k norm) and the MoE row ops against plain double-precision loops, 1 and 2 threads. */
class CpuHeadNormAndMoeOpsTest {

    private static CpuBackend one;
    private static CpuBackend two;

    @BeforeAll
    static void start() {
        one = new CpuBackend(1);
        two = new CpuBackend(2, 0);
    }

    @AfterAll
    static void stop() {
        one.close();
        two.close();
    }

    /** Each head of the key columns of a q|k|v row is normalized on its own; q and v columns are untouched. */
    @Test
    void rmsNormHeadsNormalizesEachHeadOfAStridedViewInPlace() {
        int n = 5, headDim = 12, qCols = 48, kCols = 24, stride = qCols + 2 * kCols;
        Random rnd = new Random(3);
        float[] x = random(rnd, n * stride, 2f);
        float[] gamma = random(rnd, headDim, 1.5f);
        for (CpuBackend b : new CpuBackend[] {one, two}) {
            Buffer buf = buffer(b, x);
            b.rmsNormHeads(Rows.of(buf, qCols, stride, kCols), headDim, buffer(b, gamma), 1e-6f, n);
            float[] got = data(buf);
            for (int t = 0; t < n; t++) {
                for (int c = 0; c < stride; c++) {
                    int i = t * stride + c;
                    if (c < qCols || c >= qCols + kCols) {
                        assertEquals(x[i], got[i], "untouched column " + c);
                        continue;
                    }
                    int head = (c - qCols) / headDim;
                    int base = t * stride + qCols + head * headDim;
                    double ss = 0;
                    for (int k = 0; k < headDim; k++) {
                        ss += (double) x[base + k] * x[base + k];
                    }
                    double expected = x[i] / Math.sqrt(ss / headDim + 1e-6) * gamma[(c - qCols) % headDim];
                    assertEquals(expected, got[i], 1e-5 * Math.max(1, Math.abs(expected)), "row " + t + " col " + c);
                }
            }
        }
        assertThrows(IllegalArgumentException.class,
                () -> one.rmsNormHeads(Rows.of(buffer(one, x), 0, stride, 20), headDim, buffer(one, gamma), 1e-6f, n),
                "a view of 20 columns is not whole heads of 12");
    }

    @Test
    void gatherAndScatterAddFollowTheRowListAndScales() {
        int dim = 7;
        Random rnd = new Random(5);
        float[] x = random(rnd, 6 * dim, 1f);
        int[] rows = {9, 4, 1, 5, 9}; // the call uses rows[1, 4): 4, 1, 5
        float[] scales = {0f, 0.5f, -2f, 0.25f, 0f};
        Buffer xb = buffer(one, x);
        Buffer gathered = one.allocate(3 * dim);
        one.gatherRows(xb, dim, rows, 1, 3, gathered);
        float[] g = data(gathered);
        for (int i = 0; i < 3; i++) {
            for (int c = 0; c < dim; c++) {
                assertEquals(x[rows[1 + i] * dim + c], g[i * dim + c]);
            }
        }
        float[] dst = random(rnd, 6 * dim, 1f);
        Buffer db = buffer(one, dst);
        one.scatterAdd(gathered, dim, rows, scales, 1, 3, db);
        float[] d = data(db);
        for (int r = 0; r < 6; r++) {
            for (int c = 0; c < dim; c++) {
                float expected = dst[r * dim + c];
                for (int i = 0; i < 3; i++) {
                    if (rows[1 + i] == r) {
                        expected += scales[1 + i] * g[i * dim + c];
                    }
                }
                assertEquals(expected, d[r * dim + c], "row " + r + " col " + c);
            }
        }
        assertTrue(one.supportsMixtureOfExperts());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> one.gatherRows(xb, dim, new int[] {6}, 0, 1, gathered));
        assertTrue(e.getMessage().contains("row 6 is outside x"), e.getMessage());
    }

    @Test
    void referenceBackendAgreesWithTheCpuOnBoth() {
        var ref = new ai.k2j.kernels.ReferenceBackend();
        int n = 3, headDim = 8, width = 32;
        Random rnd = new Random(9);
        float[] x = random(rnd, n * width, 3f);
        float[] gamma = random(rnd, headDim, 1f);
        float[] refData = new float[x.length];
        // vector() makes a float32 buffer of the tensor's values, which the op then normalizes in place
        Buffer rb = ref.vector(java.util.List.of(TestSupport.tensor("x", ai.k2j.loaders.DType.F32, x.clone(), x.length)));
        ref.rmsNormHeads(Rows.of(rb, width), headDim,
                ref.vector(java.util.List.of(TestSupport.tensor("g", ai.k2j.loaders.DType.F32, gamma.clone(), headDim))),
                1e-5f, n);
        ref.download(rb, 0, refData, 0, x.length);
        Buffer cb = buffer(one, x);
        one.rmsNormHeads(Rows.of(cb, width), headDim, buffer(one, gamma), 1e-5f, n);
        float[] cpu = data(cb);
        for (int i = 0; i < x.length; i++) {
            assertEquals(refData[i], cpu[i], 1e-5 * Math.max(1, Math.abs(refData[i])), "element " + i);
        }
        ref.close();
    }
}
