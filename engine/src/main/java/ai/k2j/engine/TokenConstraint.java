package ai.k2j.engine;

/**
 * Restricts which tokens a sequence may produce next (constrained decoding: a grammar compiled from a JSON schema,
 * a forced tool call). The engine asks it at every step; tokens it refuses get probability zero, so the output
 * always follows the constraint, greedy or sampled, with or without speculation (a draft token the constraint
 * refuses is rejected by the verifier like any other token of probability zero).
 *
 * <p>Stateful, one per sequence: {@link #accept} advances it past each token the sequence produced. Speculative
 * verification walks {@link #copy() copies} over the drafted tokens, leaving this one where the sequence is.
 * End-of-sequence ids must be allowed exactly where the constrained text may end.
 */
public interface TokenConstraint {

    /** Whether {@code tokenId} may come next. */
    boolean allows(int tokenId);

    /** Sets {@code logits[offset + id]} to negative infinity for every id that may not come next. */
    void mask(float[] logits, int offset);

    /** Advances past {@code tokenId}, which {@link #allows} accepted. */
    void accept(int tokenId);

    /** An independent constraint in the same state. */
    TokenConstraint copy();
}
