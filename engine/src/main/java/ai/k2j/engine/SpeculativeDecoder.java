package ai.k2j.engine;

import ai.k2j.kernels.Batch;

/**
 * Speculative decoding over a target model and an optional draft model: per round, the draft (or prompt
 * lookup) proposes k tokens, the target scores the last accepted token plus the k proposals in ONE forward pass
 * (k + 1 logit rows), and the longest acceptable prefix is kept plus one token of the target's own. The output
 * is exactly the target's:
 *
 * <ul>
 *   <li>greedy: a proposal is accepted while it equals the target's argmax at its position; the target's
 *       argmax after the accepted prefix is the extra token, so the tokens are those of plain greedy decoding;</li>
 *   <li>sampled (Leviathan et al., 2023; Chen et al., 2023): proposal x drawn from the draft's distribution q is
 *       accepted with probability min(1, p(x)/q(x)), p the target's; at the first rejection the token is drawn
 *       from norm(max(0, p − q)); when all k pass, a bonus token is drawn from the target's next distribution.
 *       p and q are both warped by the same temperature / top-k / top-p / min-p ({@link Sampler#probabilities}).
 *       Prompt lookup's proposals are deterministic: q is a point mass, so acceptance is p(x) and a rejection
 *       draws from p with x removed.</li>
 * </ul>
 *
 * <p>Both KV caches roll back to the accepted prefix ({@link Sequence#rollback}), nothing is recomputed: the
 * target's cache holds every token but the newest (which the next round feeds first); the draft's holds what
 * it has seen, and its next round first feeds the tokens it is missing (the newest, and after a fully accepted
 * round also the last proposal, which the draft proposed but never fed).
 *
 * <p>Driving it mirrors plain decoding: {@link #reset}, {@link #prefill} (returns the first token), then
 * {@link #step} per token, which runs a round when the tokens of the previous one are used up; {@link #finish}
 * releases the draft's cache. Everything is preallocated: steps allocate nothing. Not thread-safe.
 */
final class SpeculativeDecoder {

    /** Salt separating the draft's random stream from the target's. */
    private static final long DRAFT_SEED_SALT = 0x5DEECE66DL;
    /**
     * The most recent tokens a draft that fell behind (after plain steps) is fed before drafting again; its
     * positions restart at 0 there (rotary positions are relative, and a draft's proposals need not be exact).
     * Small: a probe must cost little, and batches of up to 8 tokens take the cheap verification kernels.
     */
    static final int CATCH_UP_WINDOW = 8;
    /** Prompt lookup has no confidence: its proposals share one calibration bin. */
    private static final double[] LOOKUP_CONFIDENCES = filled(Speculation.MAX_DRAFT_TOKENS, 1.0);

    private final ModelContext target;
    private final ModelContext draft;
    private final int vocab;
    /**
     * The draft's vocabulary: the target's, or fewer ids when the target's has padding rows beyond the shared
     * tokenizer; the draft's distributions are padded with zeros (its logits with −inf) up to {@link #vocab}.
     */
    private final int draftVocab;
    private final int maxDraft;
    private final Batch targetBatch;
    private final Batch draftBatch;
    private final Sampler targetSampler;
    private final Sampler draftSampler;
    private final AdaptiveDraftLength adaptiveLength;
    /** the cost-aware length for prompt lookup (its drafting cost is the n-gram search) */
    private final AdaptiveDraftLength lookupLength;
    /** the controller of the current generation, or null for a fixed length */
    private AdaptiveDraftLength control;

    /** the prompt and every token produced so far; [0, length) */
    private final int[] history;
    private final int[] proposals;
    /** the draft's top probability at each proposal (adaptive mode) */
    private final double[] confidences;
    /** the last accepted token followed by the proposals: one target pass's input */
    private final int[] verifyTokens;
    private final int[] targetArgmax;
    private final int[] draftArgmax = new int[1];
    /** the draft's warped distribution at each proposal (sampled mode) [maxDraft · vocab] */
    private final float[] draftProbs;
    private final SpeculativeVerifier verifier;
    /** draft-tree rounds ({@link Speculation#tree()}); null without a draft model */
    private final DraftTree tree;

    private Speculation speculation = Speculation.none();
    private boolean greedy = true;
    private Sequence targetSeq;
    private Sequence draftSeq;
    /** history[draftBase + i] is the token at the draft's position i (after a windowed catch-up, &gt; 0) */
    private int draftBase;
    private int length;
    private int returned;
    private int end;

    private long targetPasses;
    private long draftPasses;
    /** whether this round's drafting fed the draft more than the usual one or two missing tokens */
    private boolean caughtUp;
    private long proposed;
    private long verified;
    private long accepted;
    private long emitted;
    private long draftNanos;
    private long targetNanos;
    /** draft-tree rounds whose accepted path took a sibling (a branch off the draft's own continuation) */
    private long branchAccepts;
    private long totalNanos;
    /** rounds per draft length [maxDraft + 1] */
    private final long[] roundsByLength;
    /** per {@link SpeculativeStats#TIMELINE_TOKENS} generated tokens: rounds started there, and their drafts */
    private final long[] timelineRounds;
    private final long[] timelineDrafts;

    /**
     * @param target the model whose output this reproduces
     * @param draft  the draft model, or null for prompt lookup only; it must share the target's vocabulary
     *               (see {@link DraftCompatibility}) and hold at least the target's context
     */
    public SpeculativeDecoder(ModelContext target, ModelContext draft) {
        this.target = target;
        this.draft = draft;
        this.vocab = target.vocabSize();
        this.draftVocab = draft == null ? vocab : draft.vocabSize();
        if (draft != null) {
            if (draftVocab > vocab) {
                throw new IllegalArgumentException("the draft's vocabulary (" + draft.vocabSize()
                        + " tokens) is larger than the target's (" + vocab + ")");
            }
            if (draftVocab < vocab) {
                draft.readForeignTokensAs(0); // the target's padding ids (DraftCompatibility checked the pair)
            }
            if (draft.limits().maxContext() < target.limits().maxContext()) {
                throw new IllegalArgumentException("the draft's context (" + draft.limits().maxContext()
                        + " tokens) is shorter than the target's (" + target.limits().maxContext() + ")");
            }
        }
        ModelContext.Limits limits = target.limits();
        this.maxDraft = Math.max(0, Math.min(Speculation.MAX_DRAFT_TOKENS,
                Math.min(limits.maxLogitRows(), limits.maxBatchTokens()) - 1));
        this.targetBatch = target.newBatch();
        this.draftBatch = draft == null ? null : draft.newBatch();
        this.targetSampler = new Sampler(vocab);
        this.draftSampler = new Sampler(draftVocab);
        this.history = new int[limits.maxContext()];
        this.proposals = new int[Math.max(1, maxDraft)];
        this.confidences = new double[Math.max(1, maxDraft)];
        this.verifyTokens = new int[maxDraft + 1];
        this.targetArgmax = new int[maxDraft + 1];
        this.draftProbs = draft == null ? null : new float[Math.max(1, maxDraft) * vocab];
        this.verifier = new SpeculativeVerifier(vocab);
        this.tree = draft == null ? null : new DraftTree(vocab, maxDraft);
        this.adaptiveLength = draft == null ? null
                : new AdaptiveDraftLength(maxDraft, (double) draft.weightBytesPerToken() / target.weightBytesPerToken());
        this.lookupLength = new AdaptiveDraftLength(maxDraft, AdaptiveDraftLength.MIN_COST_RATIO);
        this.roundsByLength = new long[maxDraft + 1];
        int segments = (limits.maxContext() + SpeculativeStats.TIMELINE_TOKENS - 1) / SpeculativeStats.TIMELINE_TOKENS;
        this.timelineRounds = new long[segments];
        this.timelineDrafts = new long[segments];
    }

    /** The longest draft one target pass can verify with the target's limits. */
    public int maxDraftTokens() {
        return maxDraft;
    }

    public boolean hasDraftModel() {
        return draft != null;
    }

    /** Sets up the next generation: sampling (seed included) and the speculation setting; clears the statistics. */
    public void reset(SamplingParams sampling, Speculation speculation) {
        if (speculation.mode() == Speculation.Mode.DRAFT_MODEL && draft == null) {
            throw new IllegalArgumentException("speculation with a draft model needs a draft model to be loaded");
        }
        this.speculation = speculation;
        this.greedy = sampling.isGreedy();
        targetSampler.reset(sampling);
        draftSampler.reset(new SamplingParams(sampling.temperature(), sampling.topP(), sampling.topK(),
                sampling.minP(), sampling.seed() ^ DRAFT_SEED_SALT));
        control = !speculation.adaptive() ? null
                : speculation.mode() == Speculation.Mode.DRAFT_MODEL ? adaptiveLength
                : speculation.mode() == Speculation.Mode.PROMPT_LOOKUP ? lookupLength : null;
        if (control != null) {
            control.reset(Math.min(Math.max(1, speculation.draftTokens()), Math.max(1, maxDraft)));
        }
        java.util.Arrays.fill(roundsByLength, 0);
        java.util.Arrays.fill(timelineRounds, 0);
        java.util.Arrays.fill(timelineDrafts, 0);
        targetPasses = draftPasses = proposed = verified = accepted = emitted = branchAccepts = 0;
        draftNanos = targetNanos = totalNanos = 0;
    }

    /**
     * Prefills the prompt into {@code targetSeq} (and into the draft's own sequence) and returns the first
     * generated token. At most {@code maxNewTokens} tokens will be generated (including this one); the caller
     * keeps prompt + maxNewTokens within the target's context.
     */
    public int prefill(Sequence targetSeq, int[] prompt, int maxNewTokens) {
        if (prompt.length == 0 || maxNewTokens <= 0 || prompt.length + maxNewTokens > history.length) {
            throw new IllegalArgumentException("prompt of " + prompt.length + " tokens + " + maxNewTokens
                    + " new tokens do not fit the context of " + history.length);
        }
        finish();
        this.targetSeq = targetSeq;
        System.arraycopy(prompt, 0, history, 0, prompt.length);
        length = prompt.length;
        end = prompt.length + maxNewTokens;

        target.prefill(targetSeq, targetBatch, prompt, 0, prompt.length, true);
        int first;
        if (greedy) {
            target.forwardArgmax(targetBatch, targetArgmax);
            first = targetArgmax[0];
        } else {
            first = targetSampler.sample(target.forward(targetBatch), 0);
        }
        if (speculation.mode() == Speculation.Mode.DRAFT_MODEL) {
            draftSeq = draft.newSequence();
            draftBase = 0;
            draft.prefill(draftSeq, draftBatch, prompt, 0, prompt.length, false);
            draft.forward(draftBatch);
        }
        history[length++] = first;
        returned = length;
        return first;
    }

    /**
     * The token after {@code token}, which must be the token returned last. Runs a speculative round when the
     * previous round's tokens are used up. Allocation-free.
     */
    public int step(int token) {
        if (targetSeq == null || token != history[returned - 1]) {
            throw new IllegalStateException(targetSeq == null ? "step before prefill"
                    : "step(" + token + ") does not follow the last returned token " + history[returned - 1]);
        }
        if (returned == length) {
            if (length >= end) {
                throw new IllegalStateException("the " + (end - 1) + "-token budget given to prefill is used up");
            }
            long start = System.nanoTime();
            round();
            totalNanos += System.nanoTime() - start;
        }
        return history[returned++];
    }

    /** Releases the draft's KV blocks; the target's sequence stays the caller's. Idempotent. */
    public void finish() {
        if (draftSeq != null) {
            draftSeq.close();
            draftSeq = null;
        }
        targetSeq = null;
    }

    /** Statistics of the generation since {@link #reset}. */
    public SpeculativeStats stats() {
        int segments = (int) Math.min(timelineRounds.length,
                (emitted + SpeculativeStats.TIMELINE_TOKENS - 1) / SpeculativeStats.TIMELINE_TOKENS);
        return new SpeculativeStats(speculation.describe(), targetPasses, draftPasses, proposed, verified, accepted,
                emitted, draftNanos, targetNanos, totalNanos, roundsByLength.clone(),
                java.util.Arrays.copyOf(timelineRounds, segments), java.util.Arrays.copyOf(timelineDrafts, segments));
    }

    // ------------------------------------------------------------------------------------------------

    /** Drafts, verifies, and appends the accepted tokens plus the target's own one to the history. */
    private void round() {
        if (speculation.tree()) {
            treeRound();
            return;
        }
        long start = System.nanoTime();
        caughtUp = false;
        int limit = Math.min(maxDraft, end - length - 1); // a round yields up to k + 1 tokens
        int cap = limit <= 0 ? 0 : control != null ? control.nextLength(limit)
                : Math.min(limit, speculation.draftTokens());
        int k = cap == 0 ? 0 : switch (speculation.mode()) {
            case NONE -> 0;
            case DRAFT_MODEL -> draftProposals(cap, limit);
            case PROMPT_LOOKUP -> PromptLookup.propose(history, length, speculation.ngram(), cap, proposals);
        };
        long drafting = System.nanoTime() - start;
        draftNanos += drafting;
        if (control != null && k > 0 && !caughtUp) {
            control.recordDraft(k, drafting);
        }
        verify(k);
    }

    /**
     * Runs the draft model for {@code cap} proposals (adaptive: up to {@code limit}, as its confidence
     * decides); returns how many it made.
     */
    private int draftProposals(int cap, int limit) {
        boolean adaptive = speculation.adaptive();
        boolean wantLogits = !greedy || adaptive;
        double survival = 1;
        int k = 0;
        int max = adaptive ? limit : cap;
        while (k < max) {
            draftBatch.clear();
            if (k == 0) {
                feedDraftMissing();
            } else {
                draftSeq.addTo(draftBatch, proposals[k - 1], true);
            }
            int token;
            double confidence = 1;
            if (!wantLogits) {
                draft.forwardArgmax(draftBatch, draftArgmax);
                token = draftArgmax[0];
            } else if (greedy) {
                float[] logits = draft.forward(draftBatch);
                token = Sampler.argmax(logits, 0, draftVocab);
                confidence = softmaxAt(logits, token);
            } else {
                token = draftSampleInto(k);
                confidence = maxAt(draftProbs, k * vocab);
            }
            draftPasses++;
            confidences[k] = confidence;
            proposals[k++] = token;
            if (adaptive) {
                survival *= control.acceptance(confidence);
                if (!control.keepDrafting(k, survival, cap)) {
                    break;
                }
            }
        }
        return k;
    }

    /** Puts the tokens the draft's cache lacks into the draft batch (the first pass of a round). */
    private void feedDraftMissing() {
        int missing = length - draftBase - draftSeq.length();
        if (missing > CATCH_UP_WINDOW) {
            // after plain steps: restart the draft on the recent context rather than feed it everything
            draftSeq.rollback(0);
            draftBase = length - CATCH_UP_WINDOW;
            missing = CATCH_UP_WINDOW;
        }
        caughtUp = missing > 2;
        draft.prefill(draftSeq, draftBatch, history, length - missing, missing, true);
    }

    /** One target pass over the newest token and k proposals; keeps the accepted prefix plus one target token. */
    private void verify(int k) {
        verifyTokens[0] = history[length - 1];
        System.arraycopy(proposals, 0, verifyTokens, 1, k);
        targetBatch.clear();
        targetSeq.addTo(targetBatch, verifyTokens, 0, k + 1, k + 1);
        long start = System.nanoTime();
        float[] logits = null;
        if (greedy) {
            target.forwardArgmax(targetBatch, targetArgmax);
        } else {
            logits = target.forward(targetBatch);
        }
        targetNanos += System.nanoTime() - start;
        boolean pointMass = speculation.mode() == Speculation.Mode.PROMPT_LOOKUP;
        int ok = verifier.verify(logits, targetArgmax, 0, proposals, 0, k, greedy, targetSampler,
                pointMass ? null : draftProbs);
        int next = verifier.next();
        targetPasses++;
        proposed += k;
        verified += ok < k ? ok + 1 : k;
        accepted += ok;
        emitted += ok + 1;
        if (control != null && k > 0) {
            control.record(ok < k ? ok + 1 : k, ok, speculation.mode() == Speculation.Mode.DRAFT_MODEL
                    ? confidences : LOOKUP_CONFIDENCES);
        }
        roundsByLength[k]++;
        int segment = (int) ((emitted - ok - 1) / SpeculativeStats.TIMELINE_TOKENS);
        if (segment < timelineRounds.length) {
            timelineRounds[segment]++;
            timelineDrafts[segment] += k;
        }

        System.arraycopy(proposals, 0, history, length, ok);
        history[length + ok] = next;
        // caches keep the newest token and the accepted proposals; the rejected positions are forgotten
        targetSeq.rollback(length + ok);
        if (draftSeq != null && draftBase + draftSeq.length() > length + ok) {
            draftSeq.rollback(length + ok - draftBase);
        }
        length += ok + 1;
        if (control != null) { // the pass with its verification: what a round costs besides drafting
            control.recordPass(k + 1, System.nanoTime() - start);
        }
    }

    // ------------------------------------------------------------------------------------------------ draft trees

    /**
     * A draft-tree round: the draft extends its chain one pass per depth while the chain's next node could still
     * make the tree ({@link DraftTree#select}), then the target verifies the whole tree in one pass under a tree
     * attention mask and keeps the accepted path's cache entries ({@link Sequence#keepTreePath}).
     */
    private void treeRound() {
        long start = System.nanoTime();
        int limit = Math.min(maxDraft, end - length - 1); // the chain's depth: a round yields up to depth + 1 tokens
        // every node takes a cache slot for the pass, siblings too: the tree must fit the context's room
        int nodes = Math.min(Math.min(speculation.draftTokens(), maxDraft), history.length - length);
        if (limit <= 0 || nodes <= 0) {
            verify(0);
            return;
        }
        tree.clear();
        while (true) {
            int d = tree.depths();
            draftBatch.clear();
            if (d == 0) {
                feedDraftMissing();
            } else {
                draftSeq.addTo(draftBatch, tree.chainToken(d - 1), true);
            }
            if (greedy) {
                float[] logits = draft.forward(draftBatch);
                tree.addDepth(logits, 0, draftVocab, true, Sampler.argmax(logits, 0, draftVocab));
            } else {
                tree.addDepth(draftProbs, d * vocab, false, draftSampleInto(d));
            }
            draftPasses++;
            if (tree.select(nodes) < tree.depths() || tree.depths() >= Math.min(limit, nodes)) {
                break;
            }
        }
        tree.build(history[length - 1]);
        draftNanos += System.nanoTime() - start;

        int size = tree.size();
        int treeStart = targetSeq.length();
        targetBatch.clear();
        targetSeq.addTree(targetBatch, tree.tokens(), 0, tree.parents(), size);
        long passStart = System.nanoTime();
        int ok;
        if (greedy) {
            target.forwardArgmax(targetBatch, targetArgmax);
            ok = tree.verifyGreedy(targetArgmax);
        } else {
            ok = tree.verifySampled(target.forward(targetBatch), draftProbs, targetSampler);
        }
        targetNanos += System.nanoTime() - passStart;
        int[] path = tree.path();
        for (int i = 0; i < ok; i++) {
            history[length + i] = tree.tokens()[path[i + 1]];
        }
        history[length + ok] = tree.next();
        targetSeq.keepTreePath(treeStart, path, ok + 1);
        int chainOk = tree.chainAccepted(); // the draft has seen the chain, not the siblings
        if (ok > chainOk) {
            branchAccepts++;
        }
        if (draftBase + draftSeq.length() > length + chainOk) {
            draftSeq.rollback(length + chainOk - draftBase);
        }
        targetPasses++;
        proposed += size - 1;
        verified += ok + (tree.rejected() ? 1 : 0);
        accepted += ok;
        emitted += ok + 1;
        roundsByLength[size - 1]++;
        int segment = (int) ((emitted - ok - 1) / SpeculativeStats.TIMELINE_TOKENS);
        if (segment < timelineRounds.length) {
            timelineRounds[segment]++;
            timelineDrafts[segment] += size - 1;
        }
        length += ok + 1;
    }

    /** softmax(logits)[token] over the draft's vocabulary. */
    private double softmaxAt(float[] logits, int token) {
        double max = logits[token]; // the argmax
        double sum = 0;
        for (int i = 0; i < draftVocab; i++) {
            sum += Math.exp(logits[i] - max);
        }
        return 1 / sum;
    }

    /**
     * The draft's warped distribution after the batch just run, stored as proposal row k (rows are the target's
     * vocabulary wide; a padded draft's missing ids keep probability 0); draws the proposal.
     */
    private int draftSampleInto(int k) {
        draftSampler.probabilities(draft.forward(draftBatch), 0, draftProbs, k * vocab);
        return draftSampler.sampleFrom(draftProbs, k * vocab, draftVocab);
    }

    private double maxAt(float[] q, int offset) {
        float m = 0;
        for (int i = 0; i < vocab; i++) {
            m = Math.max(m, q[offset + i]);
        }
        return m;
    }

    private static double[] filled(int n, double value) {
        double[] a = new double[n];
        java.util.Arrays.fill(a, value);
        return a;
    }

    // ---------------------------------------------------------------- for tests

    Sequence draftSequence() {
        return draftSeq;
    }

    int historyLength() {
        return length;
    }

    int[] history() {
        return history;
    }

    /** Draft-tree rounds since {@link #reset} whose accepted path left the draft's own continuation. */
    long branchAccepts() {
        return branchAccepts;
    }

    AdaptiveDraftLength adaptiveLength() {
        return adaptiveLength;
    }

    AdaptiveDraftLength lookupLength() {
        return lookupLength;
    }

    /** The history index of the draft cache's position 0. */
    int draftBase() {
        return draftBase;
    }
}
