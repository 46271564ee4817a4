package ai.k2j.kernels.cpu;

import ai.k2j.kernels.Buffer;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static ai.k2j.kernels.cpu.TestSupport.buffer;
import static ai.k2j.kernels.cpu.TestSupport.data;
import static ai.k2j.kernels.cpu.TestSupport.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The bandwidth probe, and siluMul rows split into column units across threads. */
class CpuBackendExtrasTest {

    @Test
    void bandwidthProbeMeasuresAPlausibleRate() {
        try (CpuBackend b = new CpuBackend(2)) {
            double bw = b.measureReadBandwidth(64L << 20, 2);
            assertTrue(bw > 1e8 && bw < 1e13, "read bandwidth " + bw + " B/s");
            assertThrows(IllegalArgumentException.class, () -> b.measureReadBandwidth(1000, 1));
            assertThrows(IllegalArgumentException.class, () -> b.measureReadBandwidth(64L << 20, 0));
        }
        CpuBackend closed = new CpuBackend(1);
        closed.close();
        assertThrows(IllegalStateException.class, () -> closed.measureReadBandwidth(64L << 20, 1));
    }

    @Test
    void reusableProbePassesAreInterleavableWithOps() {
        try (CpuBackend b = new CpuBackend(2, 0); CpuBackend.ReadProbe probe = b.readProbe(16L << 20)) {
            for (boolean narrow : new boolean[] {false, true, false}) {
                double bw = probe.pass(narrow);
                assertTrue(bw > 1e8 && bw < 1e13, "read bandwidth " + bw + " B/s");
                Buffer o = b.allocate(8);
                b.siluMul(buffer(b, new float[16]), 1, 8, o); // an op between passes
            }
            assertThrows(IllegalArgumentException.class, () -> b.readProbe(1000));
            b.close();
            assertThrows(IllegalStateException.class, () -> probe.pass(false));
        }
    }

    @Test
    void siluMulOfOneLongRowIsSplitAndIdenticalForAnyThreadCount() {
        Random rnd = new Random(4);
        int dim = 2500; // three 1024-column units, the last one short
        for (int n : new int[] {1, 3}) {
            float[] gu = random(rnd, 2 * n * dim, 8f);
            float[][] out = new float[3][];
            for (int threads = 1; threads <= 3; threads++) {
                try (CpuBackend b = new CpuBackend(threads, 0)) {
                    Buffer o = b.allocate((long) n * dim);
                    b.siluMul(buffer(b, gu), n, dim, o);
                    out[threads - 1] = data(o).clone();
                }
            }
            assertArrayEquals(out[0], out[1], "1 vs 2 threads");
            assertArrayEquals(out[0], out[2], "1 vs 3 threads");
            for (int t = 0; t < n; t++) {
                for (int i = 0; i < dim; i++) {
                    float g = gu[2 * t * dim + i];
                    float u = gu[2 * t * dim + dim + i];
                    assertEquals(Float.floatToRawIntBits(g / (1f + Kernels.exp(-g)) * u),
                            Float.floatToRawIntBits(out[0][t * dim + i]), "row " + t + " column " + i);
                }
            }
        }
    }
}
