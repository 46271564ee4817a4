package ai.k2j.cli;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Architectures {@code k2j synth} can build. The values are those of the published {@code config.json} files:
 * qwen2.5-* of Qwen2.5-*-Instruct (rope_theta 1e6, rms_norm_eps 1e-6, 32768 positions); qwen3-* of Qwen3-* (explicit
 * head_dim 128, 40960 positions); qwen3-30b-a3b of Qwen3-30B-A3B (128 experts, 8 per token); llama3.* of
 * Llama-3.2-1B-Instruct and Llama-3.1-8B-Instruct (rope_theta 5e5, rms_norm_eps 1e-5, llama3 RoPE scaling over 8192
 * original positions). {@code tiny} is a toy Qwen2 for tests.
 *
 * @param family          qwen2, qwen3, qwen3_moe or llama: the HF class and tensor layout
 * @param headDim         per-head width (hidden / heads for Qwen2; given by the config for the others)
 * @param experts         MoE experts per layer (0 for dense models), of which {@code expertsPerToken} run per token
 * @param llama3RopeFactor llama3 RoPE scaling factor (0: no scaling)
 */
record SynthPreset(String name, String family, int hidden, int intermediate, int layers, int heads, int kvHeads,
                   int headDim, int vocab, boolean tie, int maxWindowLayers, int slidingWindow, int maxPositions,
                   double ropeTheta, double rmsNormEps, int experts, int expertsPerToken, int moeIntermediate,
                   double llama3RopeFactor) {

    static final int BOS = 151643;       // <|endoftext|>
    static final int EOS_CHAT = 151645;  // <|im_end|>
    static final int MAX_POSITIONS = 32768;
    static final double ROPE_THETA = 1_000_000.0;
    static final double RMS_NORM_EPS = 1e-6;
    static final int LLAMA_BOS = 128000;                            // <|begin_of_text|>
    static final int[] LLAMA_EOS = {128001, 128008, 128009};        // <|end_of_text|>, <|eom_id|>, <|eot_id|>
    static final int LLAMA_ORIGINAL_POSITIONS = 8192;

    static final Map<String, SynthPreset> ALL = new LinkedHashMap<>();

    /** A Qwen2.5 preset. */
    SynthPreset(String name, int hidden, int intermediate, int layers, int heads, int kvHeads, int vocab,
                boolean tie, int maxWindowLayers, int slidingWindow) {
        this(name, "qwen2", hidden, intermediate, layers, heads, kvHeads, hidden / heads, vocab, tie,
                maxWindowLayers, slidingWindow, MAX_POSITIONS, ROPE_THETA, RMS_NORM_EPS, 0, 0, 0, 0);
    }

    static {
        add(new SynthPreset("tiny", 64, 128, 2, 4, 2, 1024, true, 2, MAX_POSITIONS));
        add(new SynthPreset("qwen2.5-0.5b", 896, 4864, 24, 14, 2, 151936, true, 21, 32768));
        add(new SynthPreset("qwen2.5-1.5b", 1536, 8960, 28, 12, 2, 151936, true, 21, 32768));
        add(new SynthPreset("qwen2.5-3b", 2048, 11008, 36, 16, 2, 151936, true, 70, 32768));
        add(new SynthPreset("qwen2.5-7b", 3584, 18944, 28, 28, 4, 152064, false, 28, 131072));
        add(new SynthPreset("qwen2.5-14b", 5120, 13824, 48, 40, 8, 152064, false, 70, 131072));
        add(new SynthPreset("qwen2.5-32b", 5120, 27648, 64, 40, 8, 152064, false, 70, 131072));
        add(qwen3("qwen3-0.6b", 1024, 3072, 28, 16, 8, true));
        add(qwen3("qwen3-8b", 4096, 12288, 36, 32, 8, false));
        add(qwen3("qwen3-32b", 5120, 25600, 64, 64, 8, false));
        add(new SynthPreset("qwen3-30b-a3b", "qwen3_moe", 2048, 6144, 48, 32, 4, 128, 151936, false, 48, 0, 40960,
                ROPE_THETA, RMS_NORM_EPS, 128, 8, 768, 0));
        add(llama("llama3.2-1b", 2048, 8192, 16, 32, 8, 64, true, 32));
        add(llama("llama3.1-8b", 4096, 14336, 32, 32, 8, 128, false, 8));
    }

    private static SynthPreset qwen3(String name, int hidden, int intermediate, int layers, int heads, int kvHeads,
                                     boolean tie) {
        return new SynthPreset(name, "qwen3", hidden, intermediate, layers, heads, kvHeads, 128, 151936, tie, layers,
                0, 40960, ROPE_THETA, RMS_NORM_EPS, 0, 0, 0, 0);
    }

    private static SynthPreset llama(String name, int hidden, int intermediate, int layers, int heads, int kvHeads,
                                     int headDim, boolean tie, double ropeFactor) {
        return new SynthPreset(name, "llama", hidden, intermediate, layers, heads, kvHeads, headDim, 128256, tie, 0,
                0, 131072, 500_000.0, 1e-5, 0, 0, 0, ropeFactor);
    }

    private static void add(SynthPreset p) {
        ALL.put(p.name, p);
    }

    /** The HF class of the preset's config.json. */
    String architecture() {
        return switch (family) {
            case "qwen3" -> "Qwen3ForCausalLM";
            case "qwen3_moe" -> "Qwen3MoeForCausalLM";
            case "llama" -> "LlamaForCausalLM";
            default -> "Qwen2ForCausalLM";
        };
    }

    boolean qwen2() {
        return family.equals("qwen2");
    }

    /** The same architecture with another vocabulary size (tiny takes its tokenizer's). */
    SynthPreset withVocab(int v) {
        return new SynthPreset(name, family, hidden, intermediate, layers, heads, kvHeads, headDim, v, tie,
                maxWindowLayers, slidingWindow, maxPositions, ropeTheta, rmsNormEps, experts, expertsPerToken,
                moeIntermediate, llama3RopeFactor);
    }
}
