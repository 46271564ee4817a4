package ai.k2j.engine;


import java.util.List;

/**
 * One generation: the prompt as token ids (see {@link LanguageModel#encode} and
 * {@link LanguageModel#encodeChat}), how many tokens at most, how to sample, and extra stop strings.
 * Generation also stops at the model's end-of-sequence ids unless {@code ignoreEos}.
 * {@code speculation}: how to draft tokens for speculative decoding, or null for the model's default (the
 * adaptive draft model when one is loaded, else plain decoding); the output distribution is the same either way.
 */
public record GenerationRequest(int[] promptIds, int maxTokens, SamplingParams sampling, List<String> stop,
                                boolean ignoreEos, Speculation speculation) {

    public GenerationRequest {
        if (promptIds == null || promptIds.length == 0) {
            throw new IllegalArgumentException("prompt must hold at least one token");
        }
        if (maxTokens < 0) {
            throw new IllegalArgumentException("max_tokens must be >= 0, got " + maxTokens);
        }
        promptIds = promptIds.clone();
        sampling = sampling == null ? SamplingParams.greedy() : sampling;
        stop = stop == null ? List.of() : List.copyOf(stop);
    }

    /** A request with the model's default speculation. */
    public GenerationRequest(int[] promptIds, int maxTokens, SamplingParams sampling, List<String> stop,
                             boolean ignoreEos) {
        this(promptIds, maxTokens, sampling, stop, ignoreEos, null);
    }

    public static GenerationRequest of(int[] promptIds, int maxTokens, SamplingParams sampling) {
        return new GenerationRequest(promptIds, maxTokens, sampling, List.of(), false, null);
    }

    /** This request with another speculation setting (null: the model's default). */
    public GenerationRequest withSpeculation(Speculation s) {
        return new GenerationRequest(promptIds, maxTokens, sampling, stop, ignoreEos, s);
    }

    @Override
    public int[] promptIds() {
        return promptIds.clone();
    }
}
