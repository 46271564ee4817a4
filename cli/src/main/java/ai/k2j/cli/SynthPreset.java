package ai.k2j.cli;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Architectures {@code k2j synth} can build. The qwen2.5-* values are those of the published Qwen2.5-*-Instruct
 * {@code config.json} files (hidden, intermediate, layers, heads, kv heads, vocab, tying, max_window_layers,
 * sliding_window; all use rope_theta 1e6, rms_norm_eps 1e-6, 32768 positions). {@code tiny} is a toy for tests.
 */
record SynthPreset(String name, int hidden, int intermediate, int layers, int heads, int kvHeads, int vocab,
                   boolean tie, int maxWindowLayers, int slidingWindow) {

    static final int BOS = 151643;       // <|endoftext|>
    static final int EOS_CHAT = 151645;  // <|im_end|>
    static final int MAX_POSITIONS = 32768;
    static final double ROPE_THETA = 1_000_000.0;
    static final double RMS_NORM_EPS = 1e-6;

    static final Map<String, SynthPreset> ALL = new LinkedHashMap<>();

    static {
        add(new SynthPreset("tiny", 64, 128, 2, 4, 2, 1024, true, 2, MAX_POSITIONS));
        add(new SynthPreset("qwen2.5-0.5b", 896, 4864, 24, 14, 2, 151936, true, 21, 32768));
        add(new SynthPreset("qwen2.5-1.5b", 1536, 8960, 28, 12, 2, 151936, true, 21, 32768));
        add(new SynthPreset("qwen2.5-3b", 2048, 11008, 36, 16, 2, 151936, true, 70, 32768));
        add(new SynthPreset("qwen2.5-7b", 3584, 18944, 28, 28, 4, 152064, false, 28, 131072));
        add(new SynthPreset("qwen2.5-14b", 5120, 13824, 48, 40, 8, 152064, false, 70, 131072));
        add(new SynthPreset("qwen2.5-32b", 5120, 27648, 64, 40, 8, 152064, false, 70, 131072));
    }

    private static void add(SynthPreset p) {
        ALL.put(p.name, p);
    }

    int headDim() {
        return hidden / heads;
    }

    /** The same architecture with another vocabulary size (tiny takes its tokenizer's). */
    SynthPreset withVocab(int v) {
        return new SynthPreset(name, hidden, intermediate, layers, heads, kvHeads, v, tie, maxWindowLayers,
                slidingWindow);
    }
}
