package ai.k2j.engine;


import java.util.ArrayList;
import java.util.List;

/**
 * One choice of a request as the step loop sees it (vLLM's "sequence"): its tokens so far (prompt + generated),
 * its KV in the target's cache ({@link #kv}, null while waiting or preempted) and the draft's ({@link #draftKv},
 * rebuilt lazily), its sampler slot, and its text state. Tokens not yet in the KV are "pending": the whole prompt
 * before prefill, one sampled token while decoding, everything after a preemption. Owned by the step thread.
 */
final class SeqState {
    final RequestState request;
    final int choice;
    /** prompt then generated tokens; room for the budget (drafts are written past {@link #length} while verified) */
    final int[] tokens;
    final int promptLength;
    int length;

    Sequence kv;
    Sequence draftKv;
    /** sampler slot in the runner; held from admission to finish (a preempted choice keeps its RNG state) */
    int slot = -1;
    /** choices 1..n−1 wait here until this (choice 0) has prefilled the prompt, then fork its KV */
    final List<SeqState> forks = new ArrayList<>(0);
    boolean awaitingFork;
    /** the last KV block may be shared with a fork: writing it costs one block (copy-on-write) */
    boolean mayCopyOnWrite;

    /** text, stop strings, end of sequence and budget of this choice */
    final TokenEmitter out;
    /** where the choice's output must go (constrained decoding), or null; advanced past each accepted token */
    final TokenConstraint constraint;
    /** the constraint advanced over this step's drafts so far (the draft proposes only what it allows), or null */
    TokenConstraint draftConstraint;
    /** log-probabilities of the generated tokens, when the request asked for them (else null) */
    final List<TokenLogprob> logprobs;
    /** this step's log-probabilities of {@code emitted[i]} (filled by the runner when {@link #logprobs} != null) */
    final TokenLogprob[] emittedLogprobs;

    // ---- this step's plan (Scheduler) and outcome (ModelRunner)
    boolean planned;
    int feed;
    int drafts;
    int logitRows;
    int firstLogitRow;
    final int[] emitted;
    int emittedCount;

    // ---- accounting
    long firstTokenNanos;
    long lastTokenNanos;
    int draftProposed;
    int draftAccepted;
    FinishReason finish;

    SeqState(RequestState request, int choice, int maxDrafts, TokenEmitter out) {
        this.request = request;
        this.choice = choice;
        this.promptLength = request.prompt.length;
        // drafts beyond the budget are never proposed (k ≤ remaining − 1), so this is enough
        this.tokens = new int[promptLength + request.budget];
        System.arraycopy(request.prompt, 0, tokens, 0, promptLength);
        this.length = promptLength;
        this.out = out;
        this.emitted = new int[maxDrafts + 1];
        this.constraint = request.request.constraint() == null ? null : request.request.constraint().get();
        boolean wantLogprobs = request.request.topLogprobs() >= 0;
        this.logprobs = wantLogprobs ? new ArrayList<>() : null;
        this.emittedLogprobs = wantLogprobs ? new TokenLogprob[maxDrafts + 1] : null;
    }

    int kvLength() {
        return kv == null ? 0 : kv.length();
    }

    /** Tokens known but not yet in the KV cache. */
    int pending() {
        return length - kvLength();
    }

    int generated() {
        return length - promptLength;
    }

    int remainingBudget() {
        return request.budget - generated();
    }

    /** Tokens this sequence drafts per step (0: plain decoding). */
    int maxDrafts() {
        return request.draftTokens;
    }

    boolean isFinished() {
        return finish != null;
    }

    /** Orders sequences by arrival (request id, then choice): the scheduler preempts the youngest. */
    long order() {
        return request.id * 1024 + choice;
    }

    /** Frees both KV caches (the tokens stay: a preempted sequence recomputes them later). */
    void releaseKv() {
        if (kv != null) {
            kv.close();
            kv = null;
        }
        releaseDraftKv();
        mayCopyOnWrite = false;
    }

    void releaseDraftKv() {
        if (draftKv != null) {
            draftKv.close();
            draftKv = null;
        }
    }
}
