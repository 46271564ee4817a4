package ai.k2j.engine;

import ai.k2j.kernels.Batch;

import java.util.List;

/**
 * Executes a planned step (vLLM's model runner): one batch for the target model holding every scheduled
 * sequence's tokens — prefill chunks, decode tokens, and [last token, drafts…] for speculative sequences — one
 * forward pass (the weights stream once for the whole batch), then per sequence a sampled token, or the verified
 * drafts plus one token. Drafts come from the draft model, run for all speculative sequences together, one
 * batched forward per draft position, before the target step.
 *
 * <p>Samplers live in slots (one per batch place), so the step allocates nothing: the batch, logit buffers,
 * argmax and probability scratch are sized once. Owned by the step thread.
 */
final class ModelRunner {

    private final ModelContext target;
    private final ModelContext draft;
    private final int vocab;
    /** The draft's vocabulary (the target's less padding rows); draft distributions are padded with zeros. */
    private final int draftVocab;
    private final int maxDrafts;
    private final Batch batch;
    private final Batch draftBatch;
    private final int[] argmax;
    private final int[] draftArgmax;

    private final Sampler[] samplers;
    private final Sampler[] draftSamplers;
    /** per slot: the draft's warped distribution at each draft position [maxDrafts · vocab], made on first use */
    private final float[][] draftProbs;
    private final SpeculativeVerifier verifier;
    private final int[] freeSlots;
    private int freeSlotCount;

    /** Draft tokens proposed and accepted in the last {@link #run}. */
    int stepProposed;
    int stepAccepted;

    /**
     * @param draft     the draft model sharing the target's vocabulary, or null
     * @param maxDrafts tokens drafted per step at most (0 without a draft)
     */
    ModelRunner(ModelContext target, ModelContext draft, int maxDrafts) {
        this.target = target;
        this.draft = draft;
        this.vocab = target.vocabSize();
        this.draftVocab = draft == null ? vocab : draft.vocabSize();
        if (draftVocab > vocab) {
            throw new IllegalArgumentException("the draft's vocabulary (" + draftVocab + " tokens) is larger than the"
                    + " target's (" + vocab + ")");
        }
        if (draftVocab < vocab) {
            draft.readForeignTokensAs(0); // the target's padding ids (DraftCompatibility checked the pair)
        }
        this.maxDrafts = draft == null ? 0 : maxDrafts;
        this.batch = target.newBatch();
        this.draftBatch = draft == null ? null : draft.newBatch();
        this.argmax = new int[target.limits().maxLogitRows()];
        this.draftArgmax = draft == null ? null : new int[draft.limits().maxLogitRows()];
        int slots = target.limits().maxSeqs();
        this.samplers = new Sampler[slots];
        this.draftSamplers = new Sampler[draft == null ? 0 : slots];
        this.draftProbs = new float[draft == null ? 0 : slots][];
        this.verifier = new SpeculativeVerifier(vocab);
        this.freeSlots = new int[slots];
        for (int i = 0; i < slots; i++) {
            freeSlots[i] = slots - 1 - i;
        }
        this.freeSlotCount = slots;
    }

    /** Takes a slot for a new sequence and seeds its samplers. */
    int acquireSlot(SamplingParams params) {
        if (freeSlotCount == 0) {
            throw new IllegalStateException("no free batch slot (the scheduler admitted too many sequences)");
        }
        int slot = freeSlots[--freeSlotCount];
        if (samplers[slot] == null) {
            samplers[slot] = new Sampler(vocab);
        }
        samplers[slot].reset(params);
        if (draft != null) {
            if (draftSamplers[slot] == null) {
                draftSamplers[slot] = new Sampler(draftVocab);
            }
            // the draft draws from its own stream, so the target's acceptance uniforms stay independent
            draftSamplers[slot].reset(new SamplingParams(params.temperature(), params.topP(), params.topK(),
                    params.minP(), params.seed() ^ 0x5DEECE66DL));
        }
        return slot;
    }

    void releaseSlot(int slot) {
        freeSlots[freeSlotCount++] = slot;
    }

    /**
     * Runs the step planned in each sequence's {@code feed}/{@code drafts}/{@code logitRows}; afterwards each
     * sequence with logit rows has {@code emitted[0, emittedCount)}: the tokens to append, in order (accepted
     * drafts, then one sampled token). Forks waiting on a sequence whose prefill completed get their KV and first
     * token. Tokens are not appended here (the engine does, checking stop conditions).
     */
    void run(List<SeqState> plan) {
        stepProposed = 0;
        stepAccepted = 0;
        if (draft != null) {
            draftPhase(plan);
        }
        batch.clear();
        boolean greedy = true;
        for (int i = 0; i < plan.size(); i++) {
            SeqState s = plan.get(i);
            s.firstLogitRow = batch.nLogits;
            s.kv.addTo(batch, s.tokens, s.kvLength(), s.feed + s.drafts, s.logitRows);
            s.mayCopyOnWrite = false;
            greedy &= s.logitRows == 0 || (s.request.greedy && !s.request.needsLogits);
        }
        float[] logits = null;
        if (greedy) {
            target.forwardArgmax(batch, argmax);
        } else {
            logits = target.forward(batch);
        }
        for (int i = 0; i < plan.size(); i++) {
            SeqState s = plan.get(i);
            if (s.logitRows == 0) {
                continue;
            }
            RowStats stats = s.logprobs == null ? null : rowStats(logits, s);
            if (s.constraint != null) {
                constrain(s, logits);
            }
            if (s.drafts > 0) {
                verify(s, logits);
            } else {
                s.emitted[0] = pick(samplers[s.slot], logits, s.firstLogitRow);
                s.emittedCount = 1;
            }
            if (stats != null) {
                for (int e = 0; e < s.emittedCount; e++) {
                    s.emittedLogprobs[e] = stats.logprob(logits, e, s.emitted[e]);
                }
            }
            for (int f = 0; f < s.forks.size(); f++) {
                SeqState fork = s.forks.get(f);
                if (fork.isFinished()) {
                    continue;
                }
                fork.kv = s.kv.fork();
                fork.mayCopyOnWrite = true;
                s.mayCopyOnWrite = true;
                fork.emitted[0] = pick(samplers[fork.slot], logits, s.firstLogitRow);
                fork.emittedCount = 1;
                if (stats != null) {
                    fork.emittedLogprobs[0] = stats.logprob(logits, 0, fork.emitted[0]);
                }
            }
        }
    }

    // ---------------------------------------------------------------- constraints and log-probabilities

    /**
     * Masks the sequence's logit rows with its constraint: row j (after j drafts) with the constraint advanced over
     * those drafts (on a copy), stopping after the first draft it refuses (that draft gets probability zero, so the
     * verifier rejects it and never reads a later row). Greedy rows whose argmax the constraint allows are left as
     * they are (the masked argmax is the same token), so a grammar that agrees with the model costs a token walk,
     * not a vocabulary mask.
     */
    private void constrain(SeqState s, float[] logits) {
        TokenConstraint c = s.constraint;
        boolean greedy = s.request.greedy;
        for (int j = 0; j <= s.drafts; j++) {
            int off = (s.firstLogitRow + j) * vocab;
            if (!greedy || !c.allows(Sampler.argmax(logits, off, vocab))) {
                c.mask(logits, off);
            }
            if (j == s.drafts) {
                break;
            }
            int draft = s.tokens[s.length + j];
            if (!c.allows(draft)) {
                break;
            }
            if (j == 0) {
                c = c.copy();
            }
            c.accept(draft);
        }
    }

    /** Log-sum-exp and top alternatives of a sequence's raw logit rows (before any mask), for its log-probabilities. */
    private record RowStats(int firstRow, int vocab, float[] logSumExp, int[][] topIds, float[][] topLogprobs) {
        TokenLogprob logprob(float[] logits, int e, int token) {
            int row = firstRow + e;
            // the emitted token was allowed, so its logit is still the raw one
            return new TokenLogprob(token, logits[row * vocab + token] - logSumExp[e], topIds[e], topLogprobs[e]);
        }
    }

    private RowStats rowStats(float[] logits, SeqState s) {
        int rows = s.drafts + 1;
        int k = s.request.request.topLogprobs();
        float[] lse = new float[rows];
        int[][] ids = new int[rows][];
        float[][] lps = new float[rows][];
        for (int j = 0; j < rows; j++) {
            int off = (s.firstLogitRow + j) * vocab;
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < vocab; i++) {
                max = Math.max(max, logits[off + i]);
            }
            double sum = 0;
            for (int i = 0; i < vocab; i++) {
                sum += Math.exp(logits[off + i] - max);
            }
            lse[j] = (float) (max + Math.log(sum));
            ids[j] = new int[k];
            lps[j] = new float[k];
            for (int t = 0; t < k; t++) { // k <= 20: selection by repeated scans
                int best = -1;
                for (int i = 0; i < vocab; i++) {
                    if ((best < 0 || logits[off + i] > logits[off + best]) && !taken(ids[j], t, i)) {
                        best = i;
                    }
                }
                ids[j][t] = best;
                lps[j][t] = logits[off + best] - lse[j];
            }
        }
        return new RowStats(s.firstLogitRow, vocab, lse, ids, lps);
    }

    private static boolean taken(int[] ids, int n, int id) {
        for (int i = 0; i < n; i++) {
            if (ids[i] == id) {
                return true;
            }
        }
        return false;
    }

    /** argmax when the step ran greedy (logits == null), else the slot's sampler on the row. */
    private int pick(Sampler sampler, float[] logits, int row) {
        return logits == null ? argmax[row] : sampler.sample(logits, row * vocab);
    }

    // ---------------------------------------------------------------- speculative decoding

    /**
     * Drafts {@code s.drafts} tokens for every speculative sequence, written to {@code s.tokens[length ..]}:
     * first the draft catches up on the tokens its cache lacks (prompt, accepted tokens; chunked) and proposes
     * one token, then one batched draft step per further position. A draft cache that runs out of blocks just
     * drops that sequence's drafting for the step (speculation is an optimization, never required).
     */
    private void draftPhase(List<SeqState> plan) {
        int active = 0;
        for (int i = 0; i < plan.size(); i++) {
            SeqState s = plan.get(i);
            if (s.drafts > 0) {
                if (s.draftKv == null) {
                    s.draftKv = draft.newSequence();
                }
                if (s.draftKv.length() > s.length - 1) {
                    s.draftKv.rollback(s.length - 1); // cannot happen after a normal rollback; keeps drafts honest
                }
                s.emittedCount = 0; // draft positions produced so far
                s.firstLogitRow = -1; // the draft batch row of the position being drafted, -1 when none
                active++;
            }
        }
        if (active == 0) {
            return;
        }
        // catch-up and the first draft token
        boolean more = true;
        while (more) {
            more = false;
            draftBatch.clear();
            boolean greedy = true;
            for (int i = 0; i < plan.size(); i++) {
                SeqState s = plan.get(i);
                if (s.drafts == 0 || s.emittedCount > 0) {
                    continue;
                }
                int have = s.draftKv.length();
                int lacking = s.length - have;
                int room = draftBatch.maxTokens - draftBatch.nTokens;
                if (room == 0 || draftBatch.nSeqs == draftBatch.maxSeqs) {
                    more = true;
                    continue;
                }
                int count = Math.min(lacking, room);
                boolean last = count == lacking;
                if (!addToDraft(s, s.tokens, have, count, last ? 1 : 0)) {
                    continue;
                }
                if (last) {
                    s.firstLogitRow = draftBatch.nLogits - 1;
                    greedy &= s.request.greedy && s.constraint == null;
                } else {
                    s.firstLogitRow = -1;
                    more = true;
                }
            }
            if (draftBatch.nTokens > 0) {
                draftStep(plan, greedy, 0);
            }
        }
        // one batched draft step per further position
        for (int j = 1; j < maxDrafts; j++) {
            draftBatch.clear();
            boolean greedy = true;
            for (int i = 0; i < plan.size(); i++) {
                SeqState s = plan.get(i);
                if (s.drafts <= j) {
                    continue;
                }
                if (!addToDraft(s, s.tokens, s.length + j - 1, 1, 1)) {
                    s.drafts = j; // keep what was drafted
                    continue;
                }
                s.firstLogitRow = draftBatch.nLogits - 1;
                greedy &= s.request.greedy && s.constraint == null;
            }
            if (draftBatch.nTokens == 0) {
                break;
            }
            draftStep(plan, greedy, j);
        }
        for (int i = 0; i < plan.size(); i++) {
            SeqState s = plan.get(i);
            if (s.drafts > 0) {
                s.logitRows = 1 + s.drafts; // drafts may have been cut short
                stepProposed += s.drafts;
            }
            s.emittedCount = 0;
        }
    }

    /** Adds to the draft batch; on a full draft cache, gives up drafting for the sequence. */
    private boolean addToDraft(SeqState s, int[] tokens, int offset, int count, int logits) {
        try {
            s.draftKv.addTo(draftBatch, tokens, offset, count, logits);
            return true;
        } catch (KvCacheFullException e) {
            s.drafts = 0;
            s.logitRows = 1;
            s.releaseDraftKv();
            return false;
        }
    }

    /** Runs the draft batch and samples draft position {@code j} for each sequence that asked for logits. */
    private void draftStep(List<SeqState> plan, boolean greedy, int j) {
        float[] logits = null;
        if (greedy) {
            draft.forwardArgmax(draftBatch, draftArgmax);
        } else {
            logits = draft.forward(draftBatch);
        }
        for (int i = 0; i < plan.size(); i++) {
            SeqState s = plan.get(i);
            if (s.drafts <= j || s.emittedCount != j || s.firstLogitRow < 0) {
                continue;
            }
            int row = s.firstLogitRow;
            int token;
            if (s.constraint != null) {
                // propose only what the constraint allows: a refused draft would be rejected anyway
                if (j == 0) {
                    s.draftConstraint = s.constraint.copy();
                }
                if (!s.request.greedy || !s.draftConstraint.allows(Sampler.argmax(logits, row * vocab, vocab))) {
                    s.draftConstraint.mask(logits, row * vocab);
                }
            }
            if (logits == null) {
                token = draftArgmax[row];
            } else if (s.request.greedy) {
                token = Sampler.argmax(logits, row * draftVocab, draftVocab);
            } else {
                Sampler ds = draftSamplers[s.slot];
                float[] q = draftProbs(s.slot);
                // the draft's warped distribution at this position is kept for the acceptance test (rows are the
                // target's vocabulary wide; a padded draft's missing ids stay 0)
                ds.probabilities(logits, row * draftVocab, q, j * vocab);
                token = ds.sampleFrom(q, j * vocab, draftVocab);
            }
            s.tokens[s.length + j] = token;
            s.emittedCount = j + 1;
            s.firstLogitRow = -1;
            if (s.constraint != null) {
                if (s.draftConstraint.allows(token)) {
                    s.draftConstraint.accept(token);
                } else {
                    s.drafts = j + 1; // a dead end of the grammar: no further drafts from here
                }
            }
        }
    }

    private float[] draftProbs(int slot) {
        if (draftProbs[slot] == null) {
            draftProbs[slot] = new float[maxDrafts * vocab];
        }
        return draftProbs[slot];
    }

    /**
     * Speculative verification of {@code s.tokens[length, length + drafts)} against the target's rows: greedy
     * accepts drafts while they equal the target's argmax; sampling accepts draft x with probability
     * min(1, p(x)/q(x)) and on rejection draws from the residual max(0, p − q), which leaves the output
     * distributed exactly as the target's (Leviathan et al. 2023). Then one more token: the correction, or
     * after all drafts the target's own next token. Rolls both caches back to the accepted tokens.
     */
    private void verify(SeqState s, float[] logits) {
        int k = s.drafts;
        int base = s.length; // drafts sit at tokens[base, base + k)
        int accepted = verifier.verify(logits, argmax, s.firstLogitRow, s.tokens, base, k, s.request.greedy,
                samplers[s.slot], draftProbs[s.slot]);
        int next = verifier.next();
        for (int i = 0; i < accepted; i++) {
            s.emitted[i] = s.tokens[base + i];
        }
        s.emitted[accepted] = next;
        s.emittedCount = accepted + 1;
        s.draftProposed += k;
        s.draftAccepted += accepted;
        stepAccepted += accepted;
        // target KV: tokens[0, base) plus the accepted drafts; the draft's: as much of that as it holds
        s.kv.rollback(base + accepted);
        if (s.draftKv != null && s.draftKv.length() > base + accepted) {
            s.draftKv.rollback(base + accepted);
        }
    }
}
