package ai.k2j.engine.model;

import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.LanguageModelAccess;
import ai.k2j.engine.TestModels;
import ai.k2j.kernels.Backend;
import ai.k2j.kernels.Batch;
import ai.k2j.kernels.Buffer;
import ai.k2j.kernels.RopeTable;
import ai.k2j.kernels.Rows;
import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Qwen2.5-32B's YaRN recipe (rope_scaling {type: yarn, factor: 4, original_max_position_embeddings: 32768},
 * head_dim 128, theta 1e6) against an independent double-precision evaluation of the YaRN paper's formulas (Peng
 * et al. 2023, as HF's {@code _compute_yarn_parameters} writes them): every frequency and the attention factor; the
 * backends' RoPE tables applied at positions past the native 32k (up to 131,071) against cos/sin of the same
 * angles; and the context limit those settings give (131,072 positions, a warning beyond, 8192 by default).
 */
class YarnLongContextTest {

    private static final int HEAD_DIM = 128;
    private static final double THETA = 1e6;
    private static final int ORIGINAL = 32768;
    private static final double FACTOR = 4;

    private static ModelConfig config(int maxPositions, RopeScaling rope) {
        return new ModelConfig("Qwen2ForCausalLM", "qwen2", 5120, 27648, 1, 40, 8, HEAD_DIM, 152064, maxPositions,
                1e-6, THETA, rope, false, "bfloat16", 151643, new int[] {151645});
    }

    /** YaRN in doubles: blend of extrapolated 1/θ^(2i/d) and interpolated ones ÷ factor over a linear ramp. */
    private static double[] independentYarn() {
        double low = Math.floor(HEAD_DIM * Math.log(ORIGINAL / (32 * 2 * Math.PI)) / (2 * Math.log(THETA)));
        double high = Math.ceil(HEAD_DIM * Math.log(ORIGINAL / (1 * 2 * Math.PI)) / (2 * Math.log(THETA)));
        low = Math.max(low, 0);
        high = Math.min(high, HEAD_DIM - 1);
        double[] inv = new double[HEAD_DIM / 2];
        for (int i = 0; i < inv.length; i++) {
            double posFreq = Math.pow(THETA, 2.0 * i / HEAD_DIM);
            double ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
            inv[i] = (1 / (FACTOR * posFreq)) * ramp + (1 / posFreq) * (1 - ramp);
        }
        return inv;
    }

    @Test
    void frequenciesAndAttentionFactorEqualTheFormulas() {
        RopeFrequencies f = RopeFrequencies.of(config(ORIGINAL, TestModels.yarn(FACTOR, ORIGINAL)), 131072);
        double[] expected = independentYarn();
        float[] inv = f.invFreq();
        assertEquals(expected.length, inv.length);
        for (int i = 0; i < inv.length; i++) {
            // float32 pow and blend (as torch) vs doubles: a few float32 ulps
            assertEquals(expected[i], inv[i], 4 * Math.ulp((float) expected[i]), "frequency " + i);
        }
        assertEquals(0.1 * Math.log(FACTOR) + 1, f.attentionScaling(), 1e-6, "attention factor 0.1 ln(factor) + 1");
        // the ramp is real: the fastest frequencies are kept, the slowest divided by the factor
        assertEquals(1.0, inv[0], 0);
        assertEquals(1 / (FACTOR * Math.pow(THETA, 126.0 / 128)), inv[63], 4 * Math.ulp(inv[63]));
    }

    @Test
    void ropeTablesReachPastTheNativeContext() {
        RopeFrequencies f = RopeFrequencies.of(config(ORIGINAL, TestModels.yarn(FACTOR, ORIGINAL)), 131072);
        float[] inv = f.invFreq();
        int[] positions = {0, 32767, 32768, 100003, 131071};
        for (String name : List.of("reference", "cpu")) {
            try (Backend backend = LanguageModel.createBackend(name, 1); Arena arena = Arena.ofConfined()) {
                RopeTable table = backend.ropeTable(inv, f.attentionScaling(), 131072);
                float[] x = new float[positions.length * HEAD_DIM];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) Math.sin(i * 0.37) + 0.25f;
                }
                MemorySegment seg = arena.allocate(4L * x.length, 16);
                MemorySegment.copy(x, 0, seg, ValueLayout.JAVA_FLOAT, 0, x.length);
                Buffer buf = backend.vector(List.of(new Tensor("x", DType.F32, new long[] {x.length}, seg)));
                Batch batch = new Batch(positions.length, 1, 1);
                batch.nTokens = positions.length;
                batch.nSeqs = 1;
                System.arraycopy(positions, 0, batch.positions, 0, positions.length);
                backend.rope(Rows.of(buf, 0, HEAD_DIM, HEAD_DIM), HEAD_DIM, batch, table);
                float[] got = new float[x.length];
                backend.download(buf, 0, got, 0, got.length);
                int half = HEAD_DIM / 2;
                for (int t = 0; t < positions.length; t++) {
                    for (int i = 0; i < half; i++) {
                        float angle = inv[i] * (float) positions[t]; // a float32 product, as HF
                        double c = Math.cos(angle) * f.attentionScaling();
                        double s = Math.sin(angle) * f.attentionScaling();
                        double x1 = x[t * HEAD_DIM + i];
                        double x2 = x[t * HEAD_DIM + half + i];
                        assertEquals(x1 * c - x2 * s, got[t * HEAD_DIM + i], 1e-5,
                                name + " position " + positions[t] + " dim " + i);
                        assertEquals(x2 * c + x1 * s, got[t * HEAD_DIM + half + i], 1e-5,
                                name + " position " + positions[t] + " dim " + (half + i));
                    }
                }
            }
        }
    }

    @Test
    void theContextLimitFollowsYarn() {
        ModelConfig yarn = config(ORIGINAL, TestModels.yarn(FACTOR, ORIGINAL));
        ModelConfig plain = config(ORIGINAL, RopeScaling.NONE);
        assertEquals(131072, LanguageModel.contextLimit(yarn));
        assertEquals(32768, LanguageModel.contextLimit(plain));
        // without original_max_position_embeddings HF takes max_position_embeddings as the pre-YaRN length
        assertEquals(131072, LanguageModel.contextLimit(config(ORIGINAL, TestModels.yarn(FACTOR, 0))));
        // a config whose max_position_embeddings already holds the extended length
        assertEquals(131072, LanguageModel.contextLimit(config(131072, TestModels.yarn(FACTOR, ORIGINAL))));
        String plainWarning = LanguageModelAccess.warning(plain, 40000);
        assertTrue(plainWarning.contains("40000") && plainWarning.contains("32768") && plainWarning.contains("yarn"),
                plainWarning);
        String yarnWarning = LanguageModelAccess.warning(yarn, 131073);
        assertTrue(yarnWarning.contains("factor 4.0 x original_max_position_embeddings 32768"), yarnWarning);
        assertEquals(131073, LanguageModelAccess.resolve(yarn, 131073), "honoured, with the warning");
        assertEquals(131072, LanguageModelAccess.resolve(yarn, 131072));
        assertEquals(8192, LanguageModelAccess.resolve(yarn, 0), "8192 is the default, not a limit");
    }
}
