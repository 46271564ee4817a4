package ai.k2j.engine;

import java.util.List;

/**
 * One generation: the prompt as token ids (see {@link LanguageModel#encode} and
 * {@link LanguageModel#encodeChat}), how many tokens at most, how to sample, and extra stop strings.
 * Generation also stops at the model's end-of-sequence ids unless {@code ignoreEos}.
 */
public record GenerationRequest(int[] promptIds, int maxTokens, SamplingParams sampling, List<String> stop,
                                boolean ignoreEos) {

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

    public static GenerationRequest of(int[] promptIds, int maxTokens, SamplingParams sampling) {
        return new GenerationRequest(promptIds, maxTokens, sampling, List.of(), false);
    }

    @Override
    public int[] promptIds() {
        return promptIds.clone();
    }
}
