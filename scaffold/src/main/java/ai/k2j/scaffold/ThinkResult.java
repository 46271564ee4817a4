package ai.k2j.scaffold;

import java.util.List;

/**
 * What one scaffold run did: the plan (null without planning) and its tokens, the reasoning prompt the
 * candidates answered, every candidate with its tokens and extracted answer, and the verifier's choice.
 */
public record ThinkResult(String question, String plan, int planTokens, String prompt, List<Candidate> candidates,
                          String verifier, Verdict verdict) {

    public ThinkResult {
        candidates = List.copyOf(candidates);
    }

    public Candidate chosen() {
        for (Candidate c : candidates) {
            if (c.index() == verdict.chosen()) {
                return c;
            }
        }
        throw new IllegalStateException("verdict chose candidate " + verdict.chosen() + ", which does not exist");
    }

    /** Tokens of the response the user gets (the chosen candidate). */
    public int responseTokens() {
        return chosen().tokens();
    }

    /** Every token generated: plan, all candidates, and the verifier's own. */
    public int totalTokens() {
        int t = planTokens + verdict.tokens();
        for (Candidate c : candidates) {
            t += c.tokens();
        }
        return t;
    }
}
