package ai.k2j.engine;


import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Decides what each forward step computes (vLLM's scheduler, token-budget style): which sequences run and with how
 * many tokens. Every sequence has "pending" tokens (known, not yet in the KV cache); a step gives each running
 * sequence up to its pending count within the step's token budget, so a prompt prefills in chunks while other
 * sequences keep decoding, and a sequence whose pending tokens all fit gets its logits row (a sampled token).
 *
 * <p>Order of service each step:
 * <ol>
 *   <li>running sequences, oldest first; when the KV cache cannot hold a sequence's next tokens, the youngest
 *       running sequence is preempted (its KV freed, its tokens kept) until it can — so the oldest always
 *       progresses and a full cache delays requests instead of failing them;</li>
 *   <li>preempted sequences, oldest first, when their whole context fits again (they recompute it);</li>
 *   <li>waiting requests, first come first served, while batch slots and KV blocks for their prompt remain
 *       (never ahead of a preempted sequence).</li>
 * </ol>
 * A sequence always fits alone: the engine sizes the cache to at least one full context plus one block.
 * Owned by the step thread; it moves sequences between states but runs no model.
 */
final class Scheduler {

    /** Creates the choices of a request being admitted (slots, samplers, text state). */
    interface Admitter {
        SeqState[] admit(RequestState request);
    }

    private final ModelContext model;
    private final int maxSeqs;
    private final int stepTokens;
    private final int logitRows;
    private final int draftTokens;
    private final int blockSize;

    /** submitted, not admitted; first come first served */
    final ArrayDeque<RequestState> waiting = new ArrayDeque<>();
    /** KV-resident sequences, oldest first */
    final ArrayList<SeqState> running = new ArrayList<>();
    /** evicted sequences, oldest first */
    final ArrayList<SeqState> preempted = new ArrayList<>();
    /** this step's plan, in batch order */
    final ArrayList<SeqState> scheduled = new ArrayList<>();
    /** sequences holding a slot (running, preempted or awaiting a fork) */
    int slotsInUse;
    long preemptions;

    /**
     * @param draftTokens tokens a speculative sequence drafts per step; 0 when the engine has no draft model
     */
    Scheduler(ModelContext model, int draftTokens) {
        ModelContext.Limits limits = model.limits();
        this.model = model;
        this.maxSeqs = limits.maxSeqs();
        this.stepTokens = limits.maxBatchTokens();
        this.logitRows = limits.maxLogitRows();
        this.draftTokens = draftTokens;
        this.blockSize = ModelContext.KV_BLOCK_SIZE;
    }

    boolean isIdle() {
        return waiting.isEmpty() && running.isEmpty() && preempted.isEmpty();
    }

    /**
     * Plans one step into {@link #scheduled} (each sequence's {@code feed}, {@code drafts}, {@code logitRows}).
     * Admitted requests get their KV here; preempted sequences lose theirs ({@code onPreempt} is told).
     */
    List<SeqState> schedule(Admitter admitter, Consumer<SeqState> onPreempt) {
        scheduled.clear();
        int tokens = stepTokens;
        int rows = logitRows;
        int reserved = 0; // blocks the planned tokens will take

        // 1. running sequences, oldest first: decoding ones (one pending token), then prefilling ones, so a long
        //    prompt never holds back the tokens of sequences already streaming
        for (int i = 0; i < running.size(); i++) {
            running.get(i).planned = false;
        }
        for (int pass = 0; pass < 2; pass++) {
            boolean decoding = pass == 0;
            for (int i = 0; i < running.size() && tokens > 0; i++) {
                SeqState s = running.get(i);
                int pending = s.pending();
                if (s.planned || (pending == 1) != decoding) {
                    continue;
                }
                int feed = Math.min(pending, tokens);
                boolean last = feed == pending;
                if (last && rows == 0) {
                    continue; // no logit row left this step (cannot happen with the engine's sizing)
                }
                int drafts = last && pending == 1 ? draftsFor(s, tokens - feed, rows - 1) : 0;
                if (!makeRoom(s, blocksNeeded(s, feed + drafts), reserved, onPreempt)) {
                    i = running.indexOf(s); // s is still running (but waits) or was preempted (-1): go on after it
                    continue;
                }
                reserved += blocksNeeded(s, feed + drafts);
                plan(s, feed, drafts, last);
                tokens -= feed + drafts;
                rows -= s.logitRows;
            }
        }

        // 2. preempted sequences resume (recomputing their KV) when their whole context fits
        while (!preempted.isEmpty() && tokens > 0 && rows > 0) {
            SeqState s = preempted.get(0);
            if (blocksFor(s.length) + 1 > model.freeKvBlocks() - reserved) {
                break;
            }
            preempted.remove(0);
            s.kv = model.newSequence();
            insertRunning(s);
            int feed = Math.min(s.length, tokens);
            reserved += blocksFor(feed);
            plan(s, feed, 0, feed == s.length);
            tokens -= feed;
            rows -= s.logitRows;
        }

        // 3. new requests, first come first served, while their prompt's blocks and the slots are there
        while (preempted.isEmpty() && !waiting.isEmpty() && tokens > 0 && rows > 0) {
            RequestState r = waiting.peekFirst();
            int n = r.n();
            // headroom: a block per choice to grow into; waived when the batch is empty (it then fits alone)
            int headroom = running.isEmpty() ? 0 : n;
            if (slotsInUse + n > maxSeqs
                    || blocksFor(r.prompt.length) + headroom > model.freeKvBlocks() - reserved) {
                break;
            }
            waiting.pollFirst();
            SeqState[] choices = admitter.admit(r);
            slotsInUse += n;
            SeqState parent = choices[0];
            for (int c = 1; c < n; c++) {
                choices[c].awaitingFork = true;
                parent.forks.add(choices[c]);
            }
            parent.kv = model.newSequence();
            insertRunning(parent);
            int feed = Math.min(parent.pending(), tokens);
            reserved += blocksFor(feed);
            plan(parent, feed, 0, feed == parent.pending());
            tokens -= feed;
            rows -= parent.logitRows;
        }
        return scheduled;
    }

    /** Adds forked choices to the running set (after their parent's prefill step). */
    void addForked(SeqState s) {
        insertRunning(s);
    }

    /** Forgets a finished or cancelled sequence. */
    void remove(SeqState s) {
        running.remove(s);
        preempted.remove(s);
        if (s.slot >= 0) {
            slotsInUse--;
        }
    }

    /**
     * Preempts the youngest sequences not planned this step until {@code need} blocks are free; false when that is
     * impossible (then {@code s} waits, or was itself the youngest and is now preempted).
     */
    private boolean makeRoom(SeqState s, int need, int reserved, Consumer<SeqState> onPreempt) {
        while (need > model.freeKvBlocks() - reserved) {
            SeqState victim = null;
            for (int j = running.size() - 1; j >= 0; j--) {
                if (!running.get(j).planned) {
                    victim = running.get(j);
                    break;
                }
            }
            if (victim == null) {
                return false;
            }
            preempt(victim, onPreempt);
            if (victim == s) {
                return false;
            }
        }
        return true;
    }

    private void plan(SeqState s, int feed, int drafts, boolean last) {
        s.planned = true;
        s.feed = feed;
        s.drafts = drafts;
        s.logitRows = last ? 1 + drafts : 0;
        s.emittedCount = 0;
        scheduled.add(s);
    }

    /** How many tokens to draft: the engine's k, within the step's budget, the request's budget and the context. */
    private int draftsFor(SeqState s, int tokensLeft, int rowsLeft) {
        if (draftTokens == 0 || s.maxDrafts() == 0 || !s.forks.isEmpty()) {
            return 0;
        }
        int room = model.limits().maxContext() - s.length;
        int k = Math.min(Math.min(Math.min(draftTokens, s.maxDrafts()), tokensLeft), Math.min(rowsLeft, Math.min(s.remainingBudget() - 1, room)));
        return Math.max(0, k);
    }

    /** Blocks the target cache must add for {@code t} more tokens of {@code s} (plus a copy-on-write block). */
    private int blocksNeeded(SeqState s, int t) {
        int need = blocksFor(s.kvLength() + t) - s.kv.blockCount();
        return Math.max(0, need) + (s.mayCopyOnWrite ? 1 : 0);
    }

    private void preempt(SeqState s, Consumer<SeqState> onPreempt) {
        running.remove(s);
        s.releaseKv();
        int at = 0;
        while (at < preempted.size() && preempted.get(at).order() < s.order()) {
            at++;
        }
        preempted.add(at, s);
        preemptions++;
        onPreempt.accept(s);
    }

    private void insertRunning(SeqState s) {
        int at = running.size();
        while (at > 0 && running.get(at - 1).order() > s.order()) {
            at--;
        }
        running.add(at, s);
    }

    private int blocksFor(int tokens) {
        return (tokens + blockSize - 1) / blockSize;
    }
}
