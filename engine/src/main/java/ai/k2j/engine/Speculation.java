package ai.k2j.engine;

/**
 * How a generation drafts tokens for the target to verify. Whatever the setting, the output has exactly the
 * target's distribution (greedy: the target's greedy tokens); speculation changes only the speed.
 *
 * <ul>
 *   <li>{@link Mode#NONE}: plain decoding, one target pass per token.</li>
 *   <li>{@link Mode#DRAFT_MODEL}: the draft model loaded next to the target proposes up to {@code draftTokens}
 *       tokens per target pass. {@code adaptive}: cost-aware ({@link AdaptiveDraftLength}): each round drafts the
 *       length (0 = a plain step) that maximizes the expected tokens per second under the measured costs of
 *       drafting and of target passes and the running acceptance rate, up to {@link #MAX_DRAFT_TOKENS};
 *       {@code draftTokens} is the length used until the costs are measured, and a round stops early when the
 *       draft's own confidence drops.</li>
 *   <li>{@link Mode#PROMPT_LOOKUP}: no draft model; the tokens that followed the latest earlier occurrence of the
 *       context's last n-gram ({@code ngram} down to 1 tokens) are proposed, up to {@code draftTokens} of them
 *       (good for code and retrieval-style prompts that repeat their context). {@code adaptive}: the cap per
 *       round is chosen cost-aware as for a draft model (0 = a plain step).</li>
 * </ul>
 *
 * @param draftTokens tokens proposed per target pass (the start length when adaptive), 1 to
 *                    {@link #MAX_DRAFT_TOKENS}
 * @param ngram       prompt lookup: the longest n-gram matched (1 to 8); ignored otherwise
 * @param tree        draft model only: the draft proposes a tree of {@code draftTokens} tokens (its most likely
 *                    continuation plus its next most likely tokens where it is unsure), verified in one target pass
 *                    under a tree attention mask (see docs/speculative.md, "Draft trees"); not adaptive
 */
public record Speculation(Mode mode, int draftTokens, boolean adaptive, int ngram, boolean tree) {

    /** The longest draft a target pass verifies (k + 1 = 16 logit rows, the engine's per-step maximum). */
    public static final int MAX_DRAFT_TOKENS = 15;
    /** Draft length when none is given. */
    public static final int DEFAULT_DRAFT_TOKENS = 4;
    /** Prompt lookup's longest n-gram when none is given. */
    public static final int DEFAULT_NGRAM = 3;

    public enum Mode { NONE, DRAFT_MODEL, PROMPT_LOOKUP }

    public Speculation {
        if (mode == null) {
            throw new IllegalArgumentException("speculation mode must not be null");
        }
        if (mode != Mode.NONE && (draftTokens < 1 || draftTokens > MAX_DRAFT_TOKENS)) {
            throw new IllegalArgumentException("draft tokens must be in [1, " + MAX_DRAFT_TOKENS + "], got "
                    + draftTokens);
        }
        if (mode == Mode.PROMPT_LOOKUP && (ngram < 1 || ngram > 8)) {
            throw new IllegalArgumentException("prompt lookup n-gram must be in [1, 8], got " + ngram);
        }
        if (tree && (mode != Mode.DRAFT_MODEL || adaptive)) {
            throw new IllegalArgumentException("a draft tree needs a draft model and a fixed size, not " + mode
                    + (adaptive ? " adaptive" : ""));
        }
    }

    /** A linear setting (no draft tree). */
    public Speculation(Mode mode, int draftTokens, boolean adaptive, int ngram) {
        this(mode, draftTokens, adaptive, ngram, false);
    }

    /**
     * The draft model proposes a tree of {@code nodes} tokens per target pass: its greedy (or sampled) continuation,
     * and its runner-up tokens where it is unsure, chosen by the draft's path probability (EAGLE-2's rule).
     */
    public static Speculation draftTree(int nodes) {
        return new Speculation(Mode.DRAFT_MODEL, nodes, false, 0, true);
    }

    /** Plain decoding. */
    public static Speculation none() {
        return new Speculation(Mode.NONE, 0, false, 0);
    }

    /** The draft model proposes {@code k} tokens per target pass. */
    public static Speculation draftModel(int k) {
        return new Speculation(Mode.DRAFT_MODEL, k, false, 0);
    }

    /** The draft model proposes a length adapted to its confidence and the acceptance rate, starting at {@code k}. */
    public static Speculation adaptiveDraftModel(int k) {
        return new Speculation(Mode.DRAFT_MODEL, k, true, 0);
    }

    /** Prompt lookup proposing up to {@code k} tokens, matching n-grams of up to {@link #DEFAULT_NGRAM} tokens. */
    public static Speculation promptLookup(int k) {
        return new Speculation(Mode.PROMPT_LOOKUP, k, false, DEFAULT_NGRAM);
    }

    /** Prompt lookup proposing up to a cost-aware length per round (0 to 15; {@code k} until costs are measured). */
    public static Speculation adaptivePromptLookup(int k) {
        return new Speculation(Mode.PROMPT_LOOKUP, k, true, DEFAULT_NGRAM);
    }

    public boolean isOff() {
        return mode == Mode.NONE;
    }

    /**
     * A short description for logs and JSON, e.g. "draft k=4", "draft adaptive k0=4", "lookup k=8 n=3",
     * "lookup adaptive k0=6 n=3", "none".
     */
    public String describe() {
        return switch (mode) {
            case NONE -> "none";
            case DRAFT_MODEL -> tree ? "draft tree n=" + draftTokens
                    : adaptive ? "draft adaptive k0=" + draftTokens : "draft k=" + draftTokens;
            case PROMPT_LOOKUP -> (adaptive ? "lookup adaptive k0=" : "lookup k=") + draftTokens + " n=" + ngram;
        };
    }
}
