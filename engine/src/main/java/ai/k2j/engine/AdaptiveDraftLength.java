package ai.k2j.engine;

/**
 * The adaptive draft length, from two signals (both deterministic: the same tokens give the same lengths, so a
 * seeded sampled generation stays reproducible):
 *
 * <ul>
 *   <li><b>running acceptance rate</b>: α is an exponential moving average over the drafts the target tested;
 *       each round's length cap is the k maximizing the expected speedup
 *       (1 − α^(k+1)) / ((1 − α)(1 + c·k)), so drafting lengthens while the draft agrees and shortens when it
 *       does not;</li>
 *   <li><b>the draft's confidence</b>: within a round, drafting stops once the chance that every draft so far
 *       survives falls below the cost of one more draft step, c · speedup (the tokens that the time of a draft
 *       step buys at the current rate). A draft's chance of surviving is read off its confidence (its top
 *       probability) through a calibration learned during the generation: acceptance counts per confidence
 *       decile. (Raw confidences are far from calibrated: a small greedy draft whose top probability is 0.4
 *       is still right most of the time.)</li>
 * </ul>
 * c is the cost of a draft step relative to a target step, estimated as the ratio of the weight bytes the two
 * models stream per token (decode is memory-bound), never below {@link #MIN_COST_RATIO}.
 */
final class AdaptiveDraftLength {

    /** Weight of the latest tested draft in the moving average (≈ the last 1/RATE drafts). */
    static final double RATE = 0.1;
    /** α before any evidence: optimistic, so drafting starts at the requested length. */
    static final double PRIOR_ALPHA = 0.8;
    static final double MIN_COST_RATIO = 0.02;
    /** Confidence bins of the calibration (deciles). */
    static final int BINS = 10;
    /** Pseudo-counts of the prior in each bin. */
    static final double PRIOR_WEIGHT = 2;
    /** A bin's counts are halved once it has tested this many drafts, so the calibration keeps following. */
    static final double BIN_MEMORY = 64;

    private final int maxLength;
    private final double costRatio;
    private double alpha;
    private int cap;
    private double stopBelow;
    private final double[] binTested = new double[BINS];
    private final double[] binAccepted = new double[BINS];

    AdaptiveDraftLength(int maxLength, double costRatio) {
        this.maxLength = maxLength;
        this.costRatio = Math.max(MIN_COST_RATIO, costRatio);
    }

    /** Starts a generation at length {@code k0}. */
    void reset(int k0) {
        alpha = PRIOR_ALPHA;
        cap = Math.min(Math.max(1, k0), maxLength);
        stopBelow = costRatio * speedup(alpha, costRatio, cap);
        java.util.Arrays.fill(binTested, 0);
        java.util.Arrays.fill(binAccepted, 0);
    }

    /** This round's length cap. */
    int cap() {
        return cap;
    }

    /** Whether to draft another token, given the estimated chance that every draft so far survives. */
    boolean keepDrafting(double survival) {
        return survival >= stopBelow;
    }

    /** Estimated chance that a draft made with this confidence (its top probability) is accepted. */
    double acceptance(double confidence) {
        int b = bin(confidence);
        return (binAccepted[b] + PRIOR_WEIGHT * alpha) / (binTested[b] + PRIOR_WEIGHT);
    }

    double alpha() {
        return alpha;
    }

    double costRatio() {
        return costRatio;
    }

    /**
     * Updates α and the calibration with a round's outcome: the first {@code accepted} of {@code verified} tested
     * drafts passed; confidences[i] is draft i's confidence.
     */
    void record(int verified, int accepted, double[] confidences) {
        for (int i = 0; i < verified; i++) {
            int ok = i < accepted ? 1 : 0;
            alpha += RATE * (ok - alpha);
            int b = bin(confidences[i]);
            if (binTested[b] >= BIN_MEMORY) {
                binTested[b] /= 2;
                binAccepted[b] /= 2;
            }
            binTested[b] += 1;
            binAccepted[b] += ok;
        }
        cap = bestLength(alpha, costRatio, maxLength);
        stopBelow = costRatio * speedup(alpha, costRatio, cap);
    }

    private static int bin(double confidence) {
        return Math.min(BINS - 1, Math.max(0, (int) (confidence * BINS)));
    }

    /** Expected speedup of k drafts per pass at acceptance rate α and cost ratio c (Leviathan et al., 2023). */
    static double speedup(double alpha, double c, int k) {
        double a = Math.min(Math.max(alpha, 1e-6), 1 - 1e-9);
        return (1 - Math.pow(a, k + 1)) / ((1 - a) * (1 + c * k));
    }

    /** The k in [1, max] maximizing {@link #speedup}. */
    static int bestLength(double alpha, double c, int max) {
        int best = 1;
        double bestValue = speedup(alpha, c, 1);
        for (int k = 2; k <= max; k++) {
            double v = speedup(alpha, c, k);
            if (v > bestValue) {
                best = k;
                bestValue = v;
            }
        }
        return best;
    }
}
