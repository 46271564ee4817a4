package ai.k2j.engine;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What speculation did during one generation's decode phase (after the prefill's first token).
 *
 * @param speculation    the setting used ({@link Speculation#describe()})
 * @param targetPasses   target forward passes: one per round (verifying 0 to k drafts)
 * @param draftPasses    draft model forward passes (0 for prompt lookup)
 * @param proposed       draft tokens proposed
 * @param verified       draft tokens the target tested (a round stops testing at its first rejection)
 * @param accepted       draft tokens accepted
 * @param emitted        tokens produced by the target passes (accepted drafts plus one token of the target's
 *                       own per pass; tokens produced past a stop are included)
 * @param draftNanos     time spent drafting (draft forward passes and their sampling, or the n-gram search)
 * @param targetNanos    time spent in target forward passes
 * @param totalNanos     time of the whole decode phase as seen by the speculative loop
 * @param roundsByDraftLength target passes by the number of drafts they verified (index 0: plain steps)
 * @param timelineRounds target passes started in each stretch of {@link #TIMELINE_TOKENS} generated tokens
 * @param timelineDrafts drafts verified by those passes: with timelineRounds, the draft lengths over time
 */
public record SpeculativeStats(String speculation, long targetPasses, long draftPasses, long proposed,
                               long verified, long accepted, long emitted, long draftNanos, long targetNanos,
                               long totalNanos, long[] roundsByDraftLength, long[] timelineRounds,
                               long[] timelineDrafts) {

    /** Generated tokens per stretch of the draft-length timeline. */
    public static final int TIMELINE_TOKENS = 16;

    /** Statistics of a generation that made no target pass yet. */
    public static SpeculativeStats empty(String speculation) {
        return new SpeculativeStats(speculation, 0, 0, 0, 0, 0, 0, 0, 0, 0, new long[0], new long[0], new long[0]);
    }

    /** Mean draft length per target pass in each stretch of {@link #TIMELINE_TOKENS} tokens (NaN: no pass). */
    public double[] draftLengthTimeline() {
        double[] out = new double[timelineRounds.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = timelineRounds[i] > 0 ? (double) timelineDrafts[i] / timelineRounds[i] : Double.NaN;
        }
        return out;
    }

    /** Share of the target passes that verified no draft (plain steps). */
    public double plainStepShare() {
        return targetPasses > 0 && roundsByDraftLength.length > 0 ? (double) roundsByDraftLength[0] / targetPasses : 0;
    }

    /**
     * The acceptance rate α: the probability that the target accepts a draft token it tests, estimated as
     * accepted / verified. This is the per-token α of the speedup bound (1 − α^(k+1)) / ((1 − α)(1 + c·k)).
     */
    public double acceptanceRate() {
        return verified > 0 ? (double) accepted / verified : 0;
    }

    /** Accepted drafts per proposed draft (drafts after a rejection count as lost). */
    public double acceptedPerProposed() {
        return proposed > 0 ? (double) accepted / proposed : 0;
    }

    /** Mean tokens produced per target pass: accepted drafts + the target's own token (1 without speculation). */
    public double tokensPerTargetPass() {
        return targetPasses > 0 ? (double) emitted / targetPasses : 0;
    }

    /** Mean accepted draft tokens per target pass. */
    public double acceptedPerTargetPass() {
        return targetPasses > 0 ? (double) accepted / targetPasses : 0;
    }

    /** Mean draft length per target pass. */
    public double meanDraftLength() {
        return targetPasses > 0 ? (double) proposed / targetPasses : 0;
    }

    /** Share of the decode time spent drafting. */
    public double draftTimeShare() {
        return totalNanos > 0 ? (double) draftNanos / totalNanos : 0;
    }

    /** Share of the decode time spent in target forward passes. */
    public double targetTimeShare() {
        return totalNanos > 0 ? (double) targetNanos / totalNanos : 0;
    }

    /** Everything, plus the derived rates, as an ordered map for JSON output. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("speculation", speculation);
        m.put("acceptance_rate", acceptanceRate());
        m.put("tokens_per_target_pass", tokensPerTargetPass());
        m.put("accepted_per_target_pass", acceptedPerTargetPass());
        m.put("mean_draft_length", meanDraftLength());
        m.put("accepted_per_proposed", acceptedPerProposed());
        m.put("draft_time_share", draftTimeShare());
        m.put("target_time_share", targetTimeShare());
        m.put("target_passes", targetPasses);
        m.put("draft_passes", draftPasses);
        m.put("proposed", proposed);
        m.put("verified", verified);
        m.put("accepted", accepted);
        m.put("emitted", emitted);
        m.put("draft_ms", draftNanos / 1e6);
        m.put("target_ms", targetNanos / 1e6);
        m.put("total_ms", totalNanos / 1e6);
        m.put("rounds_by_draft_length", roundsByDraftLength);
        m.put("draft_length_timeline", java.util.Arrays.stream(draftLengthTimeline())
                .mapToObj(v -> Double.isNaN(v) ? null : v).toList());
        m.put("timeline_tokens", TIMELINE_TOKENS);
        return m;
    }

    /** Sums two runs' counters (for benchmarks over several prompts); the setting is taken from this one. */
    public SpeculativeStats plus(SpeculativeStats o) {
        return new SpeculativeStats(speculation, targetPasses + o.targetPasses, draftPasses + o.draftPasses,
                proposed + o.proposed, verified + o.verified, accepted + o.accepted, emitted + o.emitted,
                draftNanos + o.draftNanos, targetNanos + o.targetNanos, totalNanos + o.totalNanos,
                sum(roundsByDraftLength, o.roundsByDraftLength), sum(timelineRounds, o.timelineRounds),
                sum(timelineDrafts, o.timelineDrafts));
    }

    private static long[] sum(long[] a, long[] b) {
        long[] out = java.util.Arrays.copyOf(a, Math.max(a.length, b.length));
        for (int i = 0; i < b.length; i++) {
            out[i] += b[i];
        }
        return out;
    }
}
