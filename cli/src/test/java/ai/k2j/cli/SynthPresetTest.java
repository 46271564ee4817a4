package ai.k2j.cli;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SynthPresetTest {

    /**
     * Parameter counts Hugging Face reports for the published Qwen2.5 checkpoints (safetensors metadata). Both the
     * preset's tensor list and the config it writes (read back by the loader's ModelConfig) must give them.
     */
    @ParameterizedTest
    @CsvSource({
            "qwen2.5-0.5b, 494032768",
            "qwen2.5-1.5b, 1543714304",
            "qwen2.5-3b, 3085938688",
            "qwen2.5-7b, 7615616512",
            "qwen2.5-14b, 14770033664",
            "qwen2.5-32b, 32763876352"})
    void presetsMatchPublishedParameterCounts(String name, long published) {
        SynthPreset p = SynthPreset.ALL.get(name);
        long fromTensors = SynthCommand.tensors(p).stream().mapToLong(SynthCommand.TensorSpec::elements).sum();
        assertEquals(published, fromTensors, name);
        ModelConfig c = ModelConfig.parse(
                SynthCommand.configJson(p, DType.BF16, SynthPreset.BOS, SynthCommand.eosIds(p, null)).toString(), name);
        assertEquals(published, c.parameterCount(), name);
    }

    @Test
    void writtenConfigReadsBackAsTheSevenB() {
        SynthPreset p = SynthPreset.ALL.get("qwen2.5-7b");
        int[] eos = SynthCommand.eosIds(p, null);
        assertArrayEquals(new int[] {151645, 151643}, eos);
        ModelConfig c = ModelConfig.parse(SynthCommand.configJson(p, DType.F16, 151643, eos).toString(), "7b");
        assertEquals("Qwen2ForCausalLM", c.architecture());
        assertEquals("qwen2", c.modelType());
        assertEquals(3584, c.hiddenSize());
        assertEquals(18944, c.intermediateSize());
        assertEquals(28, c.numLayers());
        assertEquals(28, c.numHeads());
        assertEquals(4, c.numKvHeads());
        assertEquals(128, c.headDim());
        assertEquals(152064, c.vocabSize());
        assertEquals(32768, c.maxPositionEmbeddings());
        assertEquals(1e6, c.ropeTheta());
        assertEquals(1e-6, c.rmsNormEps());
        assertTrue(c.ropeScaling().isDefault());
        assertFalse(c.tieWordEmbeddings());
        assertEquals("float16", c.torchDtype());
        assertEquals(151643, c.bosTokenId());
        assertArrayEquals(new int[] {151645}, c.eosTokenIds());
    }

    @Test
    void smallPresetsTieEmbeddingsAndLargeOnesHaveAnLmHead() {
        for (SynthPreset p : SynthPreset.ALL.values()) {
            List<String> names = SynthCommand.tensors(p).stream().map(SynthCommand.TensorSpec::name).toList();
            assertEquals(names.size(), new HashSet<>(names).size(), "unique names in " + p.name());
            assertEquals(!p.tie(), names.contains("lm_head.weight"), p.name());
            assertEquals(p.vocab() >= 152064, !p.tie(), p.name());
            assertEquals(2 + 12 * p.layers() + (p.tie() ? 0 : 1), names.size(), p.name());
            assertEquals(0, p.hidden() % p.heads(), p.name());
        }
    }

    @Test
    void generationConfigIsGreedyWithBothEndTokens() {
        var g = SynthCommand.generationConfigJson(151643, new int[] {151645, 151643});
        assertFalse(g.get("do_sample").asBoolean());
        assertEquals("[151645,151643]", g.get("eos_token_id").toString());
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals((short) 0x3F80, SynthCommand.toBf16(1.0f));
        assertEquals((short) 0x3F80, SynthCommand.toBf16(Float.intBitsToFloat(0x3F808000))); // tie → even
        assertEquals((short) 0x3F82, SynthCommand.toBf16(Float.intBitsToFloat(0x3F818000))); // tie → even (up)
        assertEquals((short) 0x3F81, SynthCommand.toBf16(Float.intBitsToFloat(0x3F808001))); // above half
        assertEquals((short) 0xBF80, SynthCommand.toBf16(-1.0f));
    }

    @Test
    void randomPoolIsSeededAndShapedLikeTheInit() {
        int n = 3 << 20; // several generator chunks
        try (Arena arena = Arena.ofShared()) {
            MemorySegment a = SynthCommand.randomPool(arena, n, DType.F32, 7);
            MemorySegment b = SynthCommand.randomPool(arena, n, DType.F32, 7);
            MemorySegment c = SynthCommand.randomPool(arena, n, DType.F32, 8);
            assertEquals(-1, a.mismatch(b), "same seed, same values");
            assertTrue(a.mismatch(c) >= 0, "another seed, other values");
            double sum = 0, sq = 0;
            for (long i = 0; i < n; i++) {
                double v = a.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                sum += v;
                sq += v * v;
            }
            double mean = sum / n, std = Math.sqrt(sq / n - mean * mean);
            assertEquals(0, mean, 1e-4);
            assertEquals(SynthCommand.INIT_STD, std, SynthCommand.INIT_STD * 0.01);

            MemorySegment h = SynthCommand.randomPool(arena, 1000, DType.BF16, 7);
            for (int i = 0; i < 1000; i++) {
                assertEquals(SynthCommand.toBf16(a.getAtIndex(ValueLayout.JAVA_FLOAT, i)),
                        h.getAtIndex(ValueLayout.JAVA_SHORT, i), "bf16 pool is the f32 pool rounded, at " + i);
            }
        }
    }
}
