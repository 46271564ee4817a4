package ai.k2j.engine.batch;

import ai.k2j.engine.GenerationRequest;
import ai.k2j.engine.SamplingParams;

/**
 * One request to the {@link BatchEngine}: a generation (prompt ids, max tokens, sampling, stop strings), how many
 * choices to sample from it, and whether to speculate with the engine's draft model.
 *
 * <p>The {@code n} choices share the prompt's KV cache (prefilled once, then forked copy-on-write) and decode in
 * the same batch; choice {@code i} samples with seed {@code sampling.seed() + i}, so choice 0 of a request is
 * exactly what the same request with {@code n = 1} produces.
 */
public record EngineRequest(GenerationRequest generation, int n, boolean speculative) {

    public EngineRequest {
        if (generation == null) {
            throw new IllegalArgumentException("generation must not be null");
        }
        if (n < 1) {
            throw new IllegalArgumentException("n must be >= 1, got " + n);
        }
    }

    public static EngineRequest of(GenerationRequest generation) {
        return new EngineRequest(generation, 1, false);
    }

    /** The sampling parameters of choice {@code i} (seed + i). */
    public SamplingParams samplingOf(int choice) {
        SamplingParams s = generation.sampling();
        return new SamplingParams(s.temperature(), s.topP(), s.topK(), s.minP(), s.seed() + choice);
    }
}
