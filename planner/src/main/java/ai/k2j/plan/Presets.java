package ai.k2j.plan;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Published model shapes by name, for {@code --model preset:NAME}. The qwen2.5-* values are those of the
 * published Qwen2.5-*-Instruct config.json files (the same as {@code k2j synth}'s presets); llama-3.1-* are
 * Meta's Llama-3.1-8B/70B configs (the models of Cerebras' published inference speeds), which have no q/k/v bias.
 * {@code tiny} is a toy for tests. The validation shapes (llama-3.1-405b, llama-3.3-70b, qwen3-32b,
 * qwen3-235b-a22b, gpt-oss-120b), kimi-k2 and deepseek-v3 (MLA and sigmoid-routed MoE) are their published config.json values;
 * docs/wafer-plan.md lists them with sources.
 */
public final class Presets {
    private static final Map<String, ModelShape> ALL = new LinkedHashMap<>();

    static {
        qwen("tiny", 64, 128, 2, 4, 2, 1024, true, 32768);
        qwen("qwen2.5-0.5b", 896, 4864, 24, 14, 2, 151936, true, 32768);
        qwen("qwen2.5-1.5b", 1536, 8960, 28, 12, 2, 151936, true, 32768);
        qwen("qwen2.5-3b", 2048, 11008, 36, 16, 2, 151936, true, 32768);
        qwen("qwen2.5-7b", 3584, 18944, 28, 28, 4, 152064, false, 32768);
        qwen("qwen2.5-14b", 5120, 13824, 48, 40, 8, 152064, false, 32768);
        qwen("qwen2.5-32b", 5120, 27648, 64, 40, 8, 152064, false, 32768);
        qwen("qwen2.5-72b", 8192, 29568, 80, 64, 8, 152064, false, 32768);
        llama("llama-3.1-8b", 4096, 14336, 32, 32, 8, 128256);
        llama("llama-3.1-70b", 8192, 28672, 80, 64, 8, 128256);
        // the validation set (docs/wafer-plan.md "validation"): shapes of the published config.json files
        llama("llama-3.1-405b", 16384, 53248, 126, 128, 8, 128256);
        llama("llama-3.3-70b", 8192, 28672, 80, 64, 8, 128256);
        ALL.put("llama-3.2-1b", new ModelShape("llama-3.2-1b", "LlamaForCausalLM", 2048, 8192, 16, 32, 8, 64, 128256,
                true, false, 131072, null));
        ALL.put("qwen3-32b", new ModelShape("qwen3-32b", "Qwen3ForCausalLM", 5120, 25600, 64, 64, 8, 128, 151936,
                false, false, 40960, null).withQkNorm());
        ALL.put("qwen3-235b-a22b", new ModelShape("qwen3-235b-a22b", "Qwen3MoeForCausalLM", 4096, 12288, 94, 64, 4,
                128, 151936, false, false, 40960, new ModelShape.Moe(128, 8, 1536, 0, 0)).withQkNorm());
        ALL.put("gpt-oss-120b", new ModelShape("gpt-oss-120b", "GptOssForCausalLM", 2880, 2880, 36, 64, 8, 64,
                201088, false, true, 131072, new ModelShape.Moe(128, 4, 2880, 0, 0)));
        ALL.put("kimi-k2", new ModelShape("kimi-k2", "DeepseekV3ForCausalLM", 7168, 18432, 61, 64, 64, 192, 163840,
                false, false, 131072, new ModelShape.Moe(384, 8, 2048, 1, 1),
                new ModelShape.Mla(1536, 512, 128, 64, 128)));
        // DeepSeek-V3 (and R1): 128 MLA heads, 256 routed experts, the first three layers dense; the MTP module
        // (num_nextn_predict_layers) is not part of decoding and not planned
        ALL.put("deepseek-v3", new ModelShape("deepseek-v3", "DeepseekV3ForCausalLM", 7168, 18432, 61, 128, 128, 192,
                129280, false, false, 163840, new ModelShape.Moe(256, 8, 2048, 1, 3),
                new ModelShape.Mla(1536, 512, 128, 64, 128)));
    }

    private Presets() {
    }

    private static void qwen(String name, int h, int ff, int layers, int heads, int kv, int vocab, boolean tie,
                             int maxPos) {
        ALL.put(name, new ModelShape(name, "Qwen2ForCausalLM", h, ff, layers, heads, kv, h / heads, vocab, tie,
                true, maxPos, null));
    }

    private static void llama(String name, int h, int ff, int layers, int heads, int kv, int vocab) {
        ALL.put(name, new ModelShape(name, "LlamaForCausalLM", h, ff, layers, heads, kv, h / heads, vocab, false,
                false, 131072, null));
    }

    public static Map<String, ModelShape> all() {
        return java.util.Collections.unmodifiableMap(ALL);
    }

    public static ModelShape get(String name) {
        ModelShape s = ALL.get(name.toLowerCase(Locale.ROOT));
        if (s == null) {
            throw new PlanException("unknown preset '" + name + "' (known: " + String.join(", ", ALL.keySet()) + ")");
        }
        return s;
    }
}
