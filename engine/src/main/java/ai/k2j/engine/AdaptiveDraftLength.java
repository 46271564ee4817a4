package ai.k2j.engine;

/**
 * The cost-aware draft length: each round it picks the number of drafts k (0 = a plain decoding step) that
 * maximizes the expected tokens per second under costs it measures online,
 *
 * <pre>  rate(k) = (1 − α^(k+1)) / (1 − α)  ÷  (k · d + T(k + 1))</pre>
 *
 * (the bound with verify cost that {@code spec-bench} prints, in time units rather than relative to a step),
 * with
 *
 * <ul>
 *   <li><b>T(n)</b>: the time of a target pass over n tokens (the verification arithmetic and the cache rollback
 *       included), a moving average per n. Lengths not measured yet are interpolated between measured ones (or
 *       extrapolated from the nearest two; with one measured length, a prior slope of {@link #PRIOR_SLOPE} of a
 *       step per extra token);</li>
 *   <li><b>d</b>: the drafting time per proposed token (draft model passes and their sampling, or the n-gram
 *       search), a moving average; before any measurement the ratio of the weight bytes the two models stream
 *       per token times T(1);</li>
 *   <li><b>α</b>: the running acceptance rate, a moving average over the drafts the target tested (from
 *       {@link #PRIOR_ALPHA} at first).</li>
 * </ul>
 * The costs belong to the machine and the models, not to a text: they carry over from one generation to the
 * next ({@link #reset} forgets only the confidence calibration), and so do the probing schedule and α. The
 * first round drafts the requested length, the second is a plain step (T(1) anchors every comparison). Every {@link #PROBE_INTERVAL} rounds
 * (doubling, up to {@link #MAX_PROBE_INTERVAL}, while the probes confirm the choice) a round uses a length next
 * to the chosen one, so the costs of the alternatives stay measured and a choice of 0 can be revised.
 *
 * Drafting must beat a plain step by {@link #PLAIN_MARGIN} to be chosen.
 *
 * <p>Within a round, the <b>draft's confidence</b> stops drafting early (and may go up to
 * {@link #EXTENSION} drafts past the chosen length): one more draft is made while its expected gain, the chance
 * that every draft so far survives times α, is at least what its time (its draft step and the extra token in
 * the target pass) yields at the chosen rate. A draft's chance of surviving is read off its confidence (its top
 * probability) through a calibration learned during the generation: acceptance counts per confidence decile.
 * (Raw confidences are far from calibrated: a small greedy draft whose top probability is 0.4 is still right
 * most of the time.)
 *
 * <p>The choices depend on measured times, so they vary from run to run: greedy output is the target's whatever
 * the lengths, and sampled output has the target's distribution, but a seeded sampled generation repeats its
 * tokens only with a fixed draft length. Allocation-free after construction.
 */
final class AdaptiveDraftLength {

    /** Weight of the latest tested draft in the acceptance moving average (≈ the last 1/RATE drafts). */
    static final double RATE = 0.1;
    /** α before any evidence: optimistic, so drafting starts at the requested length. */
    static final double PRIOR_ALPHA = 0.8;
    /** The draft's cost per token relative to a target step, before it is measured, is at least this. */
    static final double MIN_COST_RATIO = 0.02;
    /** Confidence bins of the calibration (deciles). */
    static final int BINS = 10;
    /** Pseudo-counts of the prior in each bin. */
    static final double PRIOR_WEIGHT = 2;
    /** A bin's counts are halved once it has tested this many drafts, so the calibration keeps following. */
    static final double BIN_MEMORY = 64;
    /** Weight of a new timing in the cost moving averages. */
    static final double COST_RATE = 0.125;
    /** A timing beyond this multiple of (or fraction of) the current estimate counts as that multiple: a shared
     * machine's hiccups must not swing the choice. */
    static final double OUTLIER = 3;
    /** Extra cost of each token of a pass relative to a one-token pass, before two lengths are measured. */
    static final double PRIOR_SLOPE = 0.1;
    /** Rounds between probes of a neighbouring length, at first. */
    static final int PROBE_INTERVAL = 16;
    /** The longest interval between probes. */
    static final int MAX_PROBE_INTERVAL = 256;
    /**
     * Drafting is chosen only when its expected rate beats a plain step's by this factor: a plain step measured
     * between speculative rounds runs with the draft's weights in the caches, slower than in plain decoding, so
     * the comparison is biased towards drafting by about this much.
     */
    static final double PLAIN_MARGIN = 1.1;
    /** How far past the chosen length a confident round may draft. */
    static final int EXTENSION = 2;

    private final int maxLength;
    private final double costRatio;

    // costs: kept across generations
    /** mean time of a target pass over n tokens [maxLength + 2]; 0 = not measured */
    private final double[] passNanos;
    /** mean drafting time per proposed token; 0 = not measured */
    private double draftNanos;
    /** costs set by {@link #pinCosts}: measurements are ignored */
    private boolean pinned;

    // probing: kept across generations too (a short generation must not pay the first, frequent probes again)
    private int roundsToProbe;
    private int probeInterval;
    private int lastProbed;
    private boolean probeAbove;

    // per generation
    private double alpha;
    private int start;
    private final double[] binTested = new double[BINS];
    private final double[] binAccepted = new double[BINS];
    private int chosen;
    private double chosenRate;

    AdaptiveDraftLength(int maxLength, double costRatio) {
        this.maxLength = maxLength;
        this.costRatio = Math.max(MIN_COST_RATIO, costRatio);
        this.passNanos = new double[maxLength + 2];
        this.alpha = PRIOR_ALPHA;
        this.probeInterval = PROBE_INTERVAL;
        this.roundsToProbe = PROBE_INTERVAL;
        this.lastProbed = -1;
    }

    /**
     * Starts a generation at length {@code k0} (used until the costs are measured). α carries over as the next
     * text's prior: a choice of plain steps learns α only from its rare probes, so restarting from
     * {@link #PRIOR_ALPHA} would pin a good draft at 0 for a whole generation.
     */
    void reset(int k0) {
        start = Math.min(Math.max(1, k0), maxLength);
        chosen = start;
        chosenRate = 0;
        java.util.Arrays.fill(binTested, 0);
        java.util.Arrays.fill(binAccepted, 0);
    }

    /**
     * This round's draft length, at most {@code limit}: the length with the best expected rate, or now and then
     * a neighbouring one (a probe). 0 means a plain step.
     */
    int nextLength(int limit) {
        int max = Math.min(limit, maxLength);
        if (max <= 0) {
            return 0;
        }
        if (!costsKnown()) {
            chosen = Math.min(start, max);
            chosenRate = 0;
            return chosen;
        }
        if (passNanos[1] <= 0 && !pinned) {
            // a plain step's cost anchors every comparison: measure it rather than extrapolate it (never a loss)
            chosen = 0;
            chosenRate = 0;
            return 0;
        }
        int best = 0;
        double bestRate = rate(0) * PLAIN_MARGIN;
        for (int k = 1; k <= max; k++) {
            double r = rate(k);
            if (r > bestRate) {
                best = k;
                bestRate = r;
            }
        }
        chosen = best;
        chosenRate = rate(best);
        if (--roundsToProbe > 0) {
            return best;
        }
        // a probe: alternately one below and one above the choice (the choice 0 probes 1)
        int probe = best == 0 ? 1 : probeAbove ? best + 1 : best - 1;
        probeAbove = !probeAbove;
        if (probe > max) {
            probe = Math.max(0, best - 1);
        }
        probeInterval = best == lastProbed ? Math.min(MAX_PROBE_INTERVAL, probeInterval * 2) : PROBE_INTERVAL;
        lastProbed = best;
        roundsToProbe = probeInterval;
        return probe;
    }

    /**
     * Whether to draft one more token after {@code drafted} drafts whose chance of all surviving is
     * {@code survival}, in a round that may draft up to {@code cap}.
     */
    boolean keepDrafting(int drafted, double survival, int cap) {
        if (drafted >= Math.min(cap + EXTENSION, maxLength)) {
            return false;
        }
        if (chosenRate <= 0) { // costs not measured yet: draft the requested length
            return drafted < cap;
        }
        double extraTime = draftCost() + passCost(drafted + 2) - passCost(drafted + 1);
        return survival * alpha >= chosenRate * extraTime;
    }

    /** Estimated chance that a draft made with this confidence (its top probability) is accepted. */
    double acceptance(double confidence) {
        int b = bin(confidence);
        return (binAccepted[b] + PRIOR_WEIGHT * alpha) / (binTested[b] + PRIOR_WEIGHT);
    }

    /** A target pass over {@code tokens} tokens took {@code nanos}. */
    void recordPass(int tokens, long nanos) {
        if (!pinned) {
            passNanos[tokens] = average(passNanos[tokens], nanos);
        }
    }

    /** Drafting {@code proposals} (&gt; 0) tokens took {@code nanos}. */
    void recordDraft(int proposals, long nanos) {
        if (!pinned) {
            draftNanos = average(draftNanos, (double) nanos / proposals);
        }
    }

    /**
     * Fixes the cost estimates (tests: decisions that do not depend on the machine's timing): drafting costs
     * {@code draftPerToken}, a pass over n tokens {@code passes[n − 1]} (0 = not measured); measurements are
     * ignored from now on.
     */
    void pinCosts(double draftPerToken, double... passes) {
        java.util.Arrays.fill(passNanos, 0);
        for (int n = 1; n <= passes.length && n < passNanos.length; n++) {
            passNanos[n] = passes[n - 1];
        }
        draftNanos = draftPerToken;
        pinned = true;
    }

    /**
     * Updates α and the calibration with a round's outcome: the first {@code accepted} of {@code verified} tested
     * drafts passed; confidences[i] is draft i's confidence.
     */
    void record(int verified, int accepted, double[] confidences) {
        for (int i = 0; i < verified; i++) {
            int ok = i < accepted ? 1 : 0;
            alpha += RATE * (ok - alpha);
            int b = bin(Math.min(1, confidences[i]));
            if (binTested[b] >= BIN_MEMORY) {
                binTested[b] /= 2;
                binAccepted[b] /= 2;
            }
            binTested[b] += 1;
            binAccepted[b] += ok;
        }
    }

    /** Expected tokens per nanosecond with k drafts per pass, under the current estimates (0 when unknown). */
    double rate(int k) {
        double time = k * draftCost() + passCost(k + 1);
        return time > 0 ? expectedTokens(alpha, k) / time : 0;
    }

    /** The length the last {@link #nextLength} found best (a probe round may have used another). */
    int chosen() {
        return chosen;
    }

    double alpha() {
        return alpha;
    }

    double costRatio() {
        return costRatio;
    }

    /** Estimated drafting time per token: measured, else the weight-byte ratio times a one-token pass. */
    double draftCost() {
        return draftNanos > 0 ? draftNanos : costRatio * passCost(1);
    }

    /**
     * Estimated time of a target pass over {@code tokens} tokens: measured, else interpolated linearly between
     * the nearest measured lengths, else extrapolated from the nearest two (never decreasing), else from the one
     * measured length with the prior slope; 0 when nothing is measured.
     */
    double passCost(int tokens) {
        if (passNanos[tokens] > 0) {
            return passNanos[tokens];
        }
        int below = tokens - 1;
        while (below >= 1 && passNanos[below] <= 0) {
            below--;
        }
        int above = tokens + 1;
        while (above < passNanos.length && passNanos[above] <= 0) {
            above++;
        }
        boolean hasBelow = below >= 1;
        boolean hasAbove = above < passNanos.length;
        if (hasBelow && hasAbove) {
            double f = (double) (tokens - below) / (above - below);
            return passNanos[below] + f * (passNanos[above] - passNanos[below]);
        }
        if (!hasBelow && !hasAbove) {
            return 0;
        }
        int near = hasBelow ? below : above;
        int next = near + (hasBelow ? -1 : 1);
        while (next >= 1 && next < passNanos.length && passNanos[next] <= 0) {
            next += hasBelow ? -1 : 1;
        }
        double slope;
        if (next >= 1 && next < passNanos.length) {
            slope = Math.max(0, (passNanos[near] - passNanos[next]) / (near - next));
        } else {
            slope = passNanos[near] * PRIOR_SLOPE / (1 + PRIOR_SLOPE * (near - 1));
        }
        return Math.max(passNanos[near] * 0.25, passNanos[near] + slope * (tokens - near));
    }

    private boolean costsKnown() {
        for (int n = 1; n < passNanos.length; n++) {
            if (passNanos[n] > 0) {
                return true;
            }
        }
        return false;
    }

    private static double average(double mean, double sample) {
        if (mean <= 0) {
            return sample;
        }
        double clipped = Math.min(OUTLIER * mean, Math.max(mean / OUTLIER, sample));
        return mean + COST_RATE * (clipped - mean);
    }

    private static int bin(double confidence) {
        return Math.min(BINS - 1, Math.max(0, (int) (confidence * BINS)));
    }

    /** (1 − α^(k+1)) / (1 − α): expected tokens from a pass verifying k drafts at per-token acceptance α. */
    static double expectedTokens(double alpha, int k) {
        double a = Math.min(Math.max(alpha, 0), 1 - 1e-9);
        return (1 - Math.pow(a, k + 1)) / (1 - a);
    }

    /** Expected speedup of k drafts per pass at acceptance rate α and cost ratio c when v = 1 (Leviathan et al.). */
    static double speedup(double alpha, double c, int k) {
        return expectedTokens(Math.max(alpha, 1e-6), k) / (1 + c * k);
    }
}
