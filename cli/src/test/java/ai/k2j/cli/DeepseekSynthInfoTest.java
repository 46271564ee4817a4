package ai.k2j.cli;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code k2j synth}'s DeepSeek-V3-class presets and {@code k2j info} on them: the tensors a preset writes add up to
 * the parameters its config implies, the real shapes' totals are the published ones, and info prints MLA, experts
 * and total/active parameters.
 */
class DeepseekSynthInfoTest {

    private static ModelConfig config(DeepseekPreset p) {
        return ModelConfig.parse(p.configJson(DType.BF16).toString(), p.name());
    }

    private static long tensorElements(DeepseekPreset p) {
        return p.tensors().stream().mapToLong(SynthCommand.TensorSpec::elements).sum();
    }

    @Test
    void presetTensorsAddUpToTheConfigsParameters() {
        for (DeepseekPreset p : DeepseekPreset.ALL.values()) {
            assertEquals(config(p).parameterCount(), tensorElements(p), p.name());
        }
    }

    /**
     * Published totals: Kimi K2 1.04T total / 32.6B activated (model card: "1T total, 32B activated"), DeepSeek-V3
     * 671B / 37B (its report counts 671B main model + 14B MTP; k2j, like HF, loads no MTP layer), DeepSeek-V2-Lite
     * 15.7B / 2.4B.
     */
    @Test
    void realShapesHaveThePublishedParameterCounts() {
        ModelConfig kimi = config(DeepseekPreset.ALL.get("kimi-k2"));
        assertEquals(1.03e12, kimi.parameterCount(), 0.02e12);
        assertEquals(32.9e9, kimi.activeParameterCount(), 0.5e9);
        ModelConfig v3 = config(DeepseekPreset.ALL.get("deepseek-v3"));
        assertEquals(671e9, v3.parameterCount(), 1e9);
        assertEquals(37.5e9, v3.activeParameterCount(), 0.6e9);
        ModelConfig lite = config(DeepseekPreset.ALL.get("deepseek-lite"));
        assertEquals(15.7e9, lite.parameterCount(), 0.2e9);
        assertEquals(2.6e9, lite.activeParameterCount(), 0.3e9);
        ModelConfig mini = config(DeepseekPreset.ALL.get("kimi-mini"));
        assertTrue(2 * mini.parameterCount() < 4L << 30, "kimi-mini in BF16 must stay far below 24 GiB");
        assertEquals(576, kimi.deepseek().latentWidth());
        assertEquals(1, kimi.deepseek().firstKDenseReplace());
        assertEquals(163840, kimi.vocabSize());
    }

    @Test
    void infoPrintsMlaExpertsAndActiveParameters(@TempDir Path tmp) {
        String root = System.getProperty("k2j.repoRoot");
        Path base = root != null ? Path.of(root, "engine") : Path.of("").toAbsolutePath().resolveSibling("engine");
        Path model = base.resolve("src/test/resources/golden-mla/dsv3_kimi_like_bf16");
        CliRunner info = CliRunner.run("info", "--model", model.toString());
        assertEquals(0, info.code(), info.err());
        String out = info.out();
        assertTrue(out.contains("architecture     DeepseekV3ForCausalLM (model_type kimi_k2)\n"), out);
        assertTrue(out.contains("MLA: no q LoRA, kv_lora_rank 32, qk nope/rope 16/8, v 16; cache 40 floats per token"
                + " and layer (expanded: 160)"), out);
        assertTrue(out.contains("8 routed per MoE layer, 3 per token (width 24), 2 shared, sigmoid routing in 1 of 1"
                + " groups"), out);
        assertTrue(out.contains("from the config: the router's top 3 experts and 2 shared"), out);
    }
}
