package ai.k2j.plan;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Published model shapes by name, for {@code --model preset:NAME}. The qwen2.5-* values are those of the
 * published Qwen2.5-*-Instruct config.json files (the same as {@code k2j synth}'s presets); llama-3.1-* are
 * Meta's Llama-3.1-8B/70B configs (the models of Cerebras' published inference speeds), which have no q/k/v bias.
 * {@code tiny} is a toy for tests.
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
