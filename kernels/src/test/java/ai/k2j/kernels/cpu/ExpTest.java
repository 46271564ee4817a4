package ai.k2j.kernels.cpu;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** k2j's exponential: accurate to a few ulp; softmax and silu compute exactly the documented formulas with it. */
class ExpTest {

    @Test
    void closeToMathExpOverTheUsefulRange() {
        double worst = 0;
        for (int i = 0; i <= 1_000_000; i++) {
            float x = -87f + 175f * i / 1_000_000;
            double want = Math.exp(x);
            double rel = Math.abs(Kernels.exp(x) - want) / want;
            worst = Math.max(worst, rel);
        }
        assertTrue(worst < 3e-7, "max relative error " + worst);
        assertEquals(1f, Kernels.exp(0f));
        assertTrue(Float.isNaN(Kernels.exp(Float.NaN)));
        assertEquals(Kernels.exp(-87f), Kernels.exp(-1000f), "clamped below");
        assertTrue(Kernels.exp(Float.NEGATIVE_INFINITY) < 1e-37f);
        assertTrue(Float.isFinite(Kernels.exp(1000f)));
    }

    @Test
    void softmaxAndSiluEqualTheirFormulasBitForBit() {
        Random rnd = new Random(3);
        int n = 8 * MatmulKernels.L + 5; // full vectors and a tail
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (rnd.nextFloat() - 0.5f) * 40;
        }
        float[] soft = v.clone();
        Kernels.softmax(soft, n, new float[MatmulKernels.L]);
        float max = Float.NEGATIVE_INFINITY;
        for (float x : v) {
            max = Math.max(max, x);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Kernels.exp(v[i] - max);
        }
        for (int i = 0; i < n; i++) {
            assertEquals(Kernels.exp(v[i] - max) / sum, soft[i], 1e-6 * soft[i] + 1e-12, "softmax " + i);
        }

        float[] gate = new float[n];
        float[] up = new float[n];
        for (int i = 0; i < n; i++) {
            gate[i] = (rnd.nextFloat() - 0.5f) * 30;
            up[i] = rnd.nextFloat() - 0.5f;
        }
        float[] out = new float[n];
        Kernels.siluMul(gate, 0, up, 0, n, out, 0);
        for (int i = 0; i < n; i++) {
            float want = gate[i] / (1f + Kernels.exp(-gate[i])) * up[i];
            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(out[i]), "silu " + i + " of " + n);
        }
    }
}
