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
        assertPublishedCount(name, published);
    }

    /**
     * The same for the Qwen3, Qwen3-MoE and Llama 3.x presets (HF's safetensors parameter counts), and the active
     * parameters of Qwen3-30B-A3B (8 of 128 experts: all but 120 experts' weights per layer).
     */
    @ParameterizedTest
    @CsvSource({
            "qwen3-0.6b, 596049920",
            "qwen3-8b, 8190735360",
            "qwen3-32b, 32762123264",
            "qwen3-30b-a3b, 30532122624",
            "llama3.2-1b, 1235814400",
            "llama3.1-8b, 8030261248"})
    void newArchitecturePresetsMatchPublishedParameterCounts(String name, long published) {
        ModelConfig c = assertPublishedCount(name, published);
        SynthPreset p = SynthPreset.ALL.get(name);
        assertEquals(p.architecture(), c.architecture());
        assertEquals(p.headDim(), c.headDim());
        if (p.experts() > 0) {
            long perExpert = 3L * p.hidden() * p.moeIntermediate();
            assertEquals(published - (long) p.layers() * (p.experts() - p.expertsPerToken()) * perExpert,
                    c.activeParameterCount());
        } else {
            assertEquals(published, c.activeParameterCount());
        }
        if (p.family().equals("llama")) {
            assertEquals("llama3", c.ropeScaling().type());
            assertEquals(8192, c.ropeScaling().originalMaxPositionEmbeddings());
            assertArrayEquals(new int[] {128001, 128008, 128009}, c.eosTokenIds());
            assertEquals(128000, c.bosTokenId());
        }
    }

    private static ModelConfig assertPublishedCount(String name, long published) {
        SynthPreset p = SynthPreset.ALL.get(name);
        long fromTensors = SynthCommand.tensors(p).stream().mapToLong(SynthCommand.TensorSpec::elements).sum();
        assertEquals(published, fromTensors, name);
        int bos = p.family().equals("llama") ? SynthPreset.LLAMA_BOS : SynthPreset.BOS;
        ModelConfig c = ModelConfig.parse(
                SynthCommand.configJson(p, DType.BF16, bos, SynthCommand.eosIds(p, null)).toString(), name);
        assertEquals(published, c.parameterCount(), name);
        return c;
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
            if (!p.qwen2()) {
                continue; // the Qwen2.5 layout; the others are checked against published counts above
            }
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

    /**
     * Each family's tensor list and config.json, shrunk to toy sizes, load as the engine's definition of that class
     * (every name and shape as the loader expects) and run a step on the reference backend.
     */
    @ParameterizedTest
    @CsvSource({"qwen2", "qwen3", "qwen3_moe", "llama"})
    void everyFamilysLayoutLoadsAndRuns(String family) {
        SynthPreset p = new SynthPreset("toy-" + family, family, 32, 48, 2, 4, 2, 16, 300, family.equals("qwen3"),
                2, 0, 256, 1e4, 1e-6, family.equals("qwen3_moe") ? 4 : 0, family.equals("qwen3_moe") ? 2 : 0,
                family.equals("qwen3_moe") ? 24 : 0, family.equals("llama") ? 8 : 0);
        if (family.equals("qwen2")) {
            p = new SynthPreset("toy-qwen2", 32, 48, 2, 4, 2, 300, true, 2, 256);
        }
        ModelConfig c = ModelConfig.parse(SynthCommand.configJson(p, DType.F32, 1, new int[] {2}).toString(), p.name());
        try (Arena arena = Arena.ofConfined()) {
            java.util.Map<String, ai.k2j.loaders.Tensor> tensors = new java.util.HashMap<>();
            java.util.SplittableRandom rnd = new java.util.SplittableRandom(5);
            for (SynthCommand.TensorSpec s : SynthCommand.tensors(p)) {
                MemorySegment seg = arena.allocate(4 * s.elements(), 4);
                for (long i = 0; i < s.elements(); i++) {
                    seg.setAtIndex(ValueLayout.JAVA_FLOAT, i, s.kind() == SynthCommand.Kind.ONES ? 1f
                            : (float) (rnd.nextDouble() - 0.5) * 0.2f);
                }
                tensors.put(s.name(), new ai.k2j.loaders.Tensor(s.name(), DType.F32, s.shape(), seg));
            }
            ai.k2j.kernels.Backend backend = new ai.k2j.kernels.ReferenceBackend();
            var model = ai.k2j.engine.ModelContext.load(c, n -> java.util.Optional.ofNullable(tensors.get(n)),
                    p.name(), backend, ai.k2j.engine.ModelContext.Limits.singleSequence(64), null);
            var batch = model.newBatch();
            try (var seq = model.newSequence()) {
                batch.clear();
                seq.addTo(batch, new int[] {3, 4, 5, 6, 7}, 0, 5, 1);
                float[] logits = model.forward(batch);
                for (int v = 0; v < p.vocab(); v++) {
                    assertTrue(Float.isFinite(logits[v]), p.name() + ": logit " + v);
                }
            }
            assertEquals(c.architecture(), model.config().architecture());
            backend.close();
        }
    }
}
