package ai.k2j.engine.model;

import ai.k2j.engine.TestModels;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.RopeScaling;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Expected values come from HF's formulas evaluated in numpy float32 (the same float32 operations torch
 * performs in {@code _compute_yarn_parameters} / {@code _compute_default_rope_parameters}); float32 pow may
 * differ in its last bit between libms, hence a one-ulp-scale tolerance.
 */
class RopeFrequenciesTest {

    private static ModelConfig config(int headDim, double theta, int maxPos, RopeScaling rope) {
        return new TestModels.Spec("rope", headDim * 2, 8, 1, 2, 1, headDim, 10, true, DType.F32, rope, theta, maxPos)
                .config();
    }

    private static RopeScaling yarn(double factor, int orig, double mscale, double mscaleAllDim,
                                    double attentionFactor, boolean truncate) {
        return new RopeScaling("yarn", factor, orig, Double.NaN, Double.NaN, mscale, mscaleAllDim, attentionFactor,
                truncate);
    }

    private static void assertUlps(double expected, float actual, String what) {
        assertEquals(expected, actual, 2 * Math.ulp((float) expected), what);
    }

    @Test
    void defaultMatchesHf() {
        RopeFrequencies f = RopeFrequencies.of(config(128, 1e6, 32768, RopeScaling.NONE), 8192);
        assertEquals(64, f.invFreq().length);
        assertEquals(1f, f.attentionScaling());
        assertUlps(0x1.0p+0, f.invFreq()[0], "0");
        assertUlps(0x1.9c975ap-1, f.invFreq()[1], "1");
        assertUlps(0x1.a1835p-6, f.invFreq()[17], "17");
        assertUlps(0x1.4d1c98p-20, f.invFreq()[63], "63");
    }

    /** Qwen2.5's long-context recipe: factor 4 over original_max_position_embeddings 32768, head_dim 128, theta 1e6. */
    @Test
    void yarnQwenRecipeMatchesHf() {
        RopeFrequencies f = RopeFrequencies.of(config(128, 1e6, 32768, TestModels.yarn(4, 32768)), 131072);
        float[] inv = f.invFreq();
        // correction range [23, 40]: below it frequencies are kept, above it divided by the factor
        double[][] expected = {
                {0, 0x1.0p+0}, {1, 0x1.9c975ap-1}, {22, 0x1.1bc25ap-7}, {23, 0x1.c9548cp-8},
                {24, 0x1.6046eep-8}, {30, 0x1.17041p-10}, {39, 0x1.103a14p-14}, {40, 0x1.74eea6p-15},
                {41, 0x1.2c8646p-15}, {63, 0x1.4d1c98p-22}};
        for (double[] e : expected) {
            assertUlps(e[1], inv[(int) e[0]], "yarn frequency " + (int) e[0]);
        }
        assertEquals((float) (0.1 * Math.log(4) + 1), f.attentionScaling(), "attention factor = 0.1·ln(factor) + 1");
        // exact structure: extrapolated below low, interpolated (÷ factor) at and above high
        float[] plain = RopeFrequencies.of(config(128, 1e6, 32768, RopeScaling.NONE), 8192).invFreq();
        assertEquals(plain[10], inv[10]);
        assertEquals(plain[50] / 4f, inv[50], Math.ulp(inv[50]));
    }

    @Test
    void yarnWithoutTruncationMatchesHf() {
        RopeFrequencies f = RopeFrequencies.of(
                config(64, 10000, 4096, yarn(8, 4096, Double.NaN, Double.NaN, Double.NaN, false)), 4096);
        double[][] expected = {
                {0, 0x1.0p+0}, {5, 0x1.e5a84ap-3}, {10, 0x1.ccab84p-5}, {12, 0x1.cc969ep-6},
                {13, 0x1.3d28cep-6}, {20, 0x1.fe0ebep-11}, {31, 0x1.17a8e4p-16}};
        for (double[] e : expected) {
            assertUlps(e[1], f.invFreq()[(int) e[0]], "untruncated yarn frequency " + (int) e[0]);
        }
    }

    @Test
    void yarnAttentionFactorRules() {
        // mscale and mscale_all_dim both set: ratio of get_mscale values
        RopeFrequencies deepseek = RopeFrequencies.of(
                config(64, 10000, 4096, yarn(40, 4096, 1.0, 0.707, Double.NaN, true)), 4096);
        double expected = (0.1 * Math.log(40) + 1) / (0.1 * 0.707 * Math.log(40) + 1);
        assertEquals((float) expected, deepseek.attentionScaling());
        // only one of them set: plain get_mscale(factor)
        RopeFrequencies one = RopeFrequencies.of(
                config(64, 10000, 4096, yarn(40, 4096, 1.0, Double.NaN, Double.NaN, true)), 4096);
        assertEquals((float) (0.1 * Math.log(40) + 1), one.attentionScaling());
        // explicit attention_factor wins
        RopeFrequencies explicit = RopeFrequencies.of(
                config(64, 10000, 4096, yarn(40, 4096, 1.0, 0.707, 0.5, true)), 4096);
        assertEquals(0.5f, explicit.attentionScaling());
        // factor <= 1: get_mscale is 1
        RopeFrequencies small = RopeFrequencies.of(
                config(64, 10000, 4096, yarn(1, 4096, Double.NaN, Double.NaN, Double.NaN, true)), 4096);
        assertEquals(1f, small.attentionScaling());
        // no original_max_position_embeddings: HF falls back to max_position_embeddings
        RopeFrequencies fallback = RopeFrequencies.of(config(128, 1e6, 32768, TestModels.yarn(4, 0)), 8192);
        RopeFrequencies given = RopeFrequencies.of(config(128, 1e6, 65536, TestModels.yarn(4, 32768)), 8192);
        assertEquals(java.util.Arrays.toString(given.invFreq()), java.util.Arrays.toString(fallback.invFreq()));
    }

    @Test
    void linearDividesByFactorAndDynamicIsDefaultWithinTrainingLength() {
        float[] plain = RopeFrequencies.of(config(64, 10000, 2048, RopeScaling.NONE), 2048).invFreq();
        float[] linear = RopeFrequencies.of(config(64, 10000, 2048, TestModels.linear(4)), 2048).invFreq();
        RopeScaling dynamicScaling = new RopeScaling("dynamic", 2, 0, Double.NaN, Double.NaN, Double.NaN,
                Double.NaN, Double.NaN, true);
        float[] dynamicShort = RopeFrequencies.of(config(64, 10000, 2048, dynamicScaling), 2048).invFreq();
        float[] dynamicLong = RopeFrequencies.of(config(64, 10000, 2048, dynamicScaling), 4096).invFreq();
        for (int i = 0; i < plain.length; i++) {
            assertEquals(plain[i] / 4f, linear[i]);
            assertEquals(plain[i], dynamicShort[i], "dynamic NTK leaves the base alone up to max_position_embeddings");
        }
        // seq_len 4096 = 2·max_pos, factor 2: base · 3^(64/62)
        double base = 10000 * Math.pow(3, 64.0 / 62);
        assertEquals(1 / Math.pow(base, 2.0 * 10 / 64), dynamicLong[10], 1e-6 * dynamicLong[10]);
        assertEquals(1f, dynamicLong[0]);
    }

    /**
     * Llama 3.1's recipe (head_dim 128, theta 5e5, factor 8, low/high 1/4 over 8192): frequencies of wavelength
     * below 2048 kept, above 8192 divided by 8, between blended. Expected values: HF's formula in numpy float32.
     */
    @Test
    void llama3MatchesHf() {
        RopeScaling llama3 = new RopeScaling("llama3", 8, 8192, Double.NaN, Double.NaN, Double.NaN, Double.NaN,
                Double.NaN, true, 1, 4);
        RopeFrequencies f = RopeFrequencies.of(config(128, 5e5, 131072, llama3), 16384);
        float[] inv = f.invFreq();
        double[][] expected = {
                {0, 0x1.0p+0}, {1, 0x1.a11582p-1}, {20, 0x1.0f5386p-6}, {29, 0x1.1bfa0cp-9},
                {30, 0x1.67a23ap-10}, {35, 0x1.90d10ep-14}, {40, 0x1.1f91fp-15}, {63, 0x1.4985fep-22}};
        for (double[] e : expected) {
            assertUlps(e[1], inv[(int) e[0]], "llama3 frequency " + (int) e[0]);
        }
        assertEquals(1f, f.attentionScaling());
    }
}
