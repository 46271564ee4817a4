package ai.k2j.plan;

import ai.k2j.loaders.ModelFormatException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelShapeTest {

    /** Qwen3 and Qwen3-MoE configs go through the loader: q/k norm, no q/k/v bias, MLP-only layers stay dense. */
    @Test
    void qwen3ConfigsKeepTheirNormsAndDenseLayers() {
        Path golden = PlanExecutorTest.goldenDir();
        ModelShape dense = ModelSource.resolve(golden.resolve("qwen3_tied_bf16").toString());
        assertTrue(dense.qkNorm());
        assertFalse(dense.qkvBias());
        assertEquals(null, dense.moe());
        ModelShape moe = ModelSource.resolve(golden.resolve("qwen3_moe_f32").toString());
        assertTrue(moe.qkNorm() && !moe.qkvBias());
        assertEquals(8, moe.moe().experts());
        assertEquals(2, moe.moe().topK());
        assertEquals(48, moe.moe().expertIntermediate());
        assertTrue(moe.isMoe(0) && !moe.isMoe(1) && moe.isMoe(2), "mlp_only_layers [1] keeps layer 1 dense");
        ai.k2j.loaders.ModelConfig cfg = ai.k2j.loaders.ModelConfig.read(golden.resolve("qwen3_moe_f32/config.json"));
        assertEquals(cfg.parameterCount(), moe.parameterCount(), "the planner counts what the loader counts");
        assertFalse(Presets.get("qwen3-32b").qkvBias());
        assertTrue(Presets.get("qwen3-32b").qkNorm() && Presets.get("qwen3-235b-a22b").qkNorm());
    }

    /** Parameter counts published on the models' Hugging Face cards. */
    @Test
    void presetsReproduceThePublishedParameterCounts() {
        assertEquals(494_032_768L, Presets.get("qwen2.5-0.5b").parameterCount());
        assertEquals(1_543_714_304L, Presets.get("qwen2.5-1.5b").parameterCount());
        assertEquals(3_085_938_688L, Presets.get("qwen2.5-3b").parameterCount());
        assertEquals(7_615_616_512L, Presets.get("qwen2.5-7b").parameterCount());
        assertEquals(14_770_033_664L, Presets.get("qwen2.5-14b").parameterCount());
        assertEquals(32_763_876_352L, Presets.get("qwen2.5-32b").parameterCount());
        assertEquals(72_706_203_648L, Presets.get("qwen2.5-72b").parameterCount());
        assertEquals(8_030_261_248L, Presets.get("llama-3.1-8b").parameterCount());
        assertEquals(70_553_706_496L, Presets.get("llama-3.1-70b").parameterCount());
        assertFalse(Presets.get("llama-3.1-8b").qkvBias());
        assertTrue(Presets.get("qwen2.5-32b").qkvBias());
    }

    @Test
    void modelSourceReadsADirectoryAConfigFileOrAPreset(@TempDir Path dir) throws IOException {
        Path model = dir.resolve("my-qwen");
        Files.createDirectories(model);
        Files.writeString(model.resolve("config.json"), """
                {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
                 "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                 "vocab_size": 151936, "tie_word_embeddings": true, "max_position_embeddings": 32768}
                """);
        ModelShape fromDir = ModelSource.resolve(model.toString());
        ModelShape fromFile = ModelSource.resolve(model.resolve("config.json").toString());
        assertEquals("my-qwen", fromDir.name());
        assertEquals(Presets.get("qwen2.5-0.5b").parameterCount(), fromDir.parameterCount());
        assertEquals(fromDir.parameterCount(), fromFile.parameterCount());
        assertEquals(64, fromDir.headDim());
        assertEquals("qwen2.5-32b", ModelSource.resolve("preset:Qwen2.5-32B").name());
    }

    @Test
    void badModelArgumentsNameTheProblem(@TempDir Path dir) throws IOException {
        PlanException none = assertThrows(PlanException.class, () -> ModelSource.resolve(dir.resolve("x").toString()));
        assertTrue(none.getMessage().contains("not found") && none.getMessage().contains("preset:"));
        PlanException preset = assertThrows(PlanException.class, () -> ModelSource.resolve("preset:gpt-5"));
        assertTrue(preset.getMessage().contains("gpt-5") && preset.getMessage().contains("qwen2.5-32b"));
        Path bad = dir.resolve("config.json");
        Files.writeString(bad, "{\"hidden_size\": 64}");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelSource.resolve(bad.toString()));
        assertTrue(e.getMessage().contains(bad.toString()), e.getMessage());
    }

    @Test
    void moeShapesArePlannedByTheMeshMappingsOnly() {
        ModelShape dense = Presets.get("qwen2.5-0.5b");
        ModelShape moe = new ModelShape("toy-moe", "DeepseekV3ForCausalLM", 896, 4864, 4, 14, 2, 64, 151936, true,
                false, 32768, new ModelShape.Moe(16, 2, 512, 1, 1));
        assertTrue(moe.isMoe(3) && !moe.isMoe(0));
        assertEquals(moe.routerParams() + 17L * moe.expertParams(), moe.mlpParams(2));
        assertTrue(moe.parameterCount() > dense.parameterCount() / 6);
        PlanException e = assertThrows(PlanException.class,
                () -> Planner.plan(PlanRequest.of(moe, DeviceSpec.builtIn("wse3")).withMapping("layer-pipeline")));
        assertTrue(e.getMessage().contains("MoE") && e.getMessage().contains("mesh mapping"), e.getMessage());
        Plan p = Planner.plan(PlanRequest.of(moe, DeviceSpec.builtIn("wse3")));
        assertTrue(p.shapes().usesMesh(), p.shapes().mapping());
        PlannerPropertyTest.assertLegal(p, "toy-moe");
        assertTrue(p.nodes().stream().anyMatch(n -> n.kind() == NodeKind.ROUTER)
                && p.nodes().stream().anyMatch(n -> n.kind() == NodeKind.EXPERT), "router and expert partitions");
        assertThrows(PlanException.class, () -> new ModelShape.Moe(8, 9, 512, 0, 0));
    }
}
