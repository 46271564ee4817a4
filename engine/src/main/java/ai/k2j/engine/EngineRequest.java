package ai.k2j.engine;


/**
 * One request to the {@link BatchEngine}: a generation (prompt ids, max tokens, sampling, stop strings), how many
 * choices to sample from it, and whether to speculate with the engine's draft model.
 *
 * <p>The {@code n} choices share the prompt's KV cache (prefilled once, then forked copy-on-write) and decode in
 * the same batch; choice {@code i} samples with seed {@code sampling.seed() + i}, so choice 0 of a request is
 * exactly what the same request with {@code n = 1} produces.
 *
 * <p>{@code speculative} applies when {@link GenerationRequest#speculation()} is null; a non-null speculation
 * setting wins: {@code NONE} decodes plainly, {@code DRAFT_MODEL} speculates with the engine's draft, proposing
 * min(its {@code draftTokens}, the engine's) tokens per step (fixed: the batch does not adapt the length per
 * sequence); {@code PROMPT_LOOKUP} is not offered by the batching engine.
 */
public record EngineRequest(GenerationRequest generation, int n, boolean speculative,
                            java.util.function.Supplier<TokenConstraint> constraint, int topLogprobs) {

    /** Most alternatives per token {@link #topLogprobs} may ask for (OpenAI's limit). */
    public static final int MAX_TOP_LOGPROBS = 20;

    /**
     * @param constraint  makes each choice's {@link TokenConstraint} (constrained decoding), or null for none
     * @param topLogprobs -1: no log-probabilities; k in [0, {@link #MAX_TOP_LOGPROBS}]: each generated token's
     *                    {@link TokenLogprob} with the k most likely alternatives ({@link ChoiceResult#logprobs})
     */
    public EngineRequest {
        if (generation == null) {
            throw new IllegalArgumentException("generation must not be null");
        }
        if (n < 1) {
            throw new IllegalArgumentException("n must be >= 1, got " + n);
        }
        if (topLogprobs < -1 || topLogprobs > MAX_TOP_LOGPROBS) {
            throw new IllegalArgumentException("topLogprobs must be in [-1, " + MAX_TOP_LOGPROBS + "], got "
                    + topLogprobs);
        }
    }

    public EngineRequest(GenerationRequest generation, int n, boolean speculative) {
        this(generation, n, speculative, null, -1);
    }

    public static EngineRequest of(GenerationRequest generation) {
        return new EngineRequest(generation, 1, false);
    }

    /**
     * Tokens to draft per step for this request (0: plain decoding), given the engine's draft length
     * ({@code engineDraftTokens}, 0 without a draft model).
     *
     * @throws IllegalArgumentException when the request asks for speculation the engine cannot do
     */
    public int draftTokens(int engineDraftTokens) {
        Speculation s = generation.speculation();
        if (s == null) {
            if (speculative && engineDraftTokens == 0) {
                throw new IllegalArgumentException("speculative decoding needs a draft model, and none is loaded");
            }
            return speculative ? engineDraftTokens : 0;
        }
        return switch (s.mode()) {
            case NONE -> 0;
            case DRAFT_MODEL -> {
                if (engineDraftTokens == 0) {
                    throw new IllegalArgumentException("speculation '" + s.describe() + "' needs a draft model, and"
                            + " none is loaded");
                }
                yield Math.min(s.draftTokens(), engineDraftTokens);
            }
            case PROMPT_LOOKUP -> throw new IllegalArgumentException("speculation '" + s.describe()
                    + "' (prompt lookup) is not offered by the batching engine; use a draft model");
        };
    }

    /** The sampling parameters of choice {@code i} (seed + i). */
    public SamplingParams samplingOf(int choice) {
        SamplingParams s = generation.sampling();
        return new SamplingParams(s.temperature(), s.topP(), s.topK(), s.minP(), s.seed() + choice);
    }
}
