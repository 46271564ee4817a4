package ai.k2j.engine;

/**
 * Speculative acceptance — the one implementation behind both generation paths ({@link SpeculativeDecoder} for one
 * sequence, the batching engine's {@link ModelRunner}). The target scored the newest token and k proposals in one
 * pass (k + 1 logit rows); this keeps the longest acceptable prefix of the proposals plus one token of the target's
 * own, so the output is exactly the target's:
 * <ul>
 *   <li>greedy: a proposal is accepted while it equals the target's argmax at its position; the argmax after the
 *       accepted prefix is the extra token, so the tokens are those of plain greedy decoding;</li>
 *   <li>sampled (Leviathan et al., 2023; Chen et al., 2023): proposal x, drawn from the draft's distribution q, is
 *       accepted with probability min(1, p(x)/q(x)), p the target's; at the first rejection the token is drawn from
 *       norm(max(0, p − q)); when all k pass, from the target's next distribution. p and q are warped by the same
 *       temperature / top-k / top-p / min-p ({@link Sampler#probabilities}). Deterministic proposals (prompt lookup)
 *       have a point-mass q: acceptance is p(x), and a rejection draws from p with x removed.</li>
 * </ul>
 * Preallocated; allocation-free. One per step thread.
 */
final class SpeculativeVerifier {
    private final int vocab;
    private final float[] p;
    private int next;

    SpeculativeVerifier(int vocab) {
        this.vocab = vocab;
        this.p = new float[vocab];
    }

    /**
     * Verifies {@code proposals[from, from + k)} against logit rows {@code [row, row + k]}; returns how many were
     * accepted, and {@link #next()} is the token that follows them.
     *
     * @param logits     the step's host logits, or null when only per-row argmax came back (a greedy step)
     * @param argmax     per-row argmax, read when {@code logits} is null
     * @param greedy     whether this sequence decodes greedily
     * @param sampler    the sequence's sampler (its random stream draws the acceptance uniforms)
     * @param draftProbs the draft's warped distribution at each proposal, {@code [k · vocab]}; null for point-mass
     *                   proposals
     */
    int verify(float[] logits, int[] argmax, int row, int[] proposals, int from, int k, boolean greedy,
               Sampler sampler, float[] draftProbs) {
        if (logits == null || greedy) {
            int ok = 0;
            while (ok < k && argmaxAt(logits, argmax, row + ok) == proposals[from + ok]) {
                ok++;
            }
            next = argmaxAt(logits, argmax, row + ok);
            return ok;
        }
        for (int i = 0; i < k; i++) {
            sampler.probabilities(logits, (row + i) * vocab, p);
            int x = proposals[from + i];
            double q = draftProbs == null ? 1.0 : draftProbs[i * vocab + x];
            if (sampler.nextUniform() * q < p[x]) { // accept with probability min(1, p(x)/q(x))
                continue;
            }
            next = sampleResidual(logits, row + i, draftProbs, i * vocab, x, sampler);
            return i;
        }
        next = sampler.sample(logits, (row + k) * vocab);
        return k;
    }

    /** The token after the accepted proposals of the last {@link #verify}. */
    int next() {
        return next;
    }

    private int argmaxAt(float[] logits, int[] argmax, int row) {
        return logits == null ? argmax[row] : Sampler.argmax(logits, row * vocab, vocab);
    }

    /** Draws from norm(max(0, p − q)) (p is the row's distribution, already in {@link #p}); q null: a point mass on x. */
    private int sampleResidual(float[] logits, int row, float[] q, int qOffset, int x, Sampler sampler) {
        double total = 0;
        if (q == null) {
            p[x] = 0;
            for (int i = 0; i < vocab; i++) {
                total += p[i];
            }
        } else {
            for (int i = 0; i < vocab; i++) {
                float r = p[i] - q[qOffset + i];
                p[i] = r > 0 ? r : 0;
                total += p[i];
            }
        }
        if (!(total > 0)) {
            // p ≤ q everywhere means p = q up to rounding: a rejection then has probability ~0; draw from p
            sampler.probabilities(logits, row * vocab, p);
        }
        return sampler.sampleFrom(p, vocab);
    }
}
