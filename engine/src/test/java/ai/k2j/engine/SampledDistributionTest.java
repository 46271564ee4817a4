package ai.k2j.engine;

import ai.k2j.loaders.DType;
import ai.k2j.loaders.ModelConfig;
import ai.k2j.loaders.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Sampled speculative decoding draws from exactly the target's distribution. On a 12-token vocabulary the exact
 * distributions of the generated tokens at positions 1 and 2 (position 0 comes from the prefill, not from
 * speculation) are computed by enumerating every path through the target, with the same temperature / top-k /
 * top-p / min-p warping; 20 000 speculative generations (seeds 0..19 999) are compared with a chi-square
 * goodness-of-fit test on the marginals at positions 1 and 2 and on their joint distribution, at significance
 * level 0.001 each (cells with an expected count below 5 are pooled; a token outside the warped support fails
 * outright). The seeds are fixed, so the outcome is deterministic. Power: samples drawn from the draft's own
 * distribution fail the same test.
 */
class SampledDistributionTest {

    static final int VOCAB = 12;
    static final int SAMPLES = 20_000;
    static final double SIGNIFICANCE = 0.001;

    private static Arena arena;
    private static ModelContext target;
    private static ModelContext draft;

    @BeforeAll
    static void models() {
        arena = Arena.ofShared();
        ModelConfig c = SpecTestSupport.config(2, VOCAB);
        Map<String, Tensor> w = SpecTestSupport.weights(c, DType.F32, 43, arena);
        ModelContext.Limits limits = ModelContext.Limits.singleSequence(64);
        target = SpecTestSupport.model(c, w, limits, "reference");
        // a noisy copy: agrees often but not always, so acceptance and rejection paths both run thousands of times
        draft = SpecTestSupport.model(c, SpecTestSupport.noisyCopy(w, 0.35, 42, arena), limits, "reference");
    }

    @AfterAll
    static void close() {
        target.backend().close();
        draft.backend().close();
        arena.close();
    }

    @Test
    void draftModelAtTemperatureMatchesTheTarget() {
        check(new SamplingParams(3.0, 1.0, 0, 0, 0), Speculation.draftModel(2), new int[] {3, 7, 1, 0, 9, 4}, true);
    }

    @Test
    void filtersApplyIdenticallyToDraftAndTarget() {
        check(new SamplingParams(4.0, 0.9, 7, 0.02, 0), Speculation.adaptiveDraftModel(3),
                new int[] {5, 5, 2, 11, 8}, true);
    }

    @Test
    void promptLookupMatchesTheTarget() {
        // a repetitive prompt: lookup proposes its continuation (a point-mass draft)
        check(new SamplingParams(3.0, 1.0, 0, 0, 0), Speculation.promptLookup(3),
                new int[] {1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3}, false);
    }

    @Test
    void draftTreeMatchesTheTarget() {
        // trees of 4 tokens: with 3 tokens generated the chain is 1 deep, so the root's chain child and up to three
        // runner-up siblings, and siblings under the chain child, all run the multi-candidate rule
        long branches = check(new SamplingParams(3.0, 1.0, 0, 0, 0), Speculation.draftTree(4),
                new int[] {3, 7, 1, 0, 9, 4}, true);
        assertTrue(branches > 1000, "the accepted path must leave the draft's own continuation often: " + branches
                + " of " + SAMPLES + " generations");
    }

    @Test
    void draftTreeWithFiltersMatchesTheTarget() {
        long branches = check(new SamplingParams(4.0, 0.9, 7, 0.02, 0), Speculation.draftTree(6),
                new int[] {5, 5, 2, 11, 8}, true);
        assertTrue(branches > 1000, "branch acceptances: " + branches);
    }

    /** Returns the draft-tree rounds whose accepted path took a sibling, over all samples. */
    private static long check(SamplingParams params, Speculation spec, int[] prompt, boolean useDraft) {
        Exact exact = exact(target, prompt, params);
        assertTrue(exact.spread() >= 4, "the test needs spread-out distributions: only " + exact.spread()
                + " tokens carry 2% at position 1");

        SpeculativeDecoder decoder = new SpeculativeDecoder(target, useDraft ? draft : null);
        if (spec.adaptive() && useDraft) {
            // costs under which drafting pays, fixed so the test does not depend on this machine's timing
            double[] passes = new double[16];
            for (int n = 1; n <= 16; n++) {
                passes[n - 1] = 1000 + 10 * (n - 1);
            }
            decoder.adaptiveLength().pinCosts(10, passes);
        }
        long[] at1 = new long[VOCAB];
        long[] at2 = new long[VOCAB];
        long[] joint = new long[VOCAB * VOCAB];
        SpeculativeStats total = null;
        long branches = 0;
        for (int s = 0; s < SAMPLES; s++) {
            decoder.reset(new SamplingParams(params.temperature(), params.topP(), params.topK(), params.minP(), s),
                    spec);
            try (Sequence seq = target.newSequence()) {
                int t0 = decoder.prefill(seq, prompt, 3);
                int t1 = decoder.step(t0);
                int t2 = decoder.step(t1);
                at1[t1]++;
                at2[t2]++;
                joint[t1 * VOCAB + t2]++;
            } finally {
                decoder.finish();
            }
            branches += decoder.branchAccepts();
            SpeculativeStats st = decoder.stats();
            total = total == null ? st : total.plus(st);
        }
        // a draft tree's rejected chain token followed by an accepted sibling is a rejection too
        long rejected = total.verified() - total.accepted() + branches;
        assertTrue(total.accepted() > 1000 && rejected > 1000, "both verification outcomes must be exercised: "
                + total.accepted() + " accepted, " + rejected + " rejected");

        String what = spec.describe() + " " + params;
        assertFits(at1, exact.at1, what + ", position 1");
        assertFits(at2, exact.at2, what + ", position 2");
        assertFits(joint, exact.joint, what + ", positions 1 and 2 jointly");

        if (useDraft) { // power: the draft's own distribution is told apart by the same test
            Exact wrong = exact(draft, prompt, params);
            long[] fake = drawFrom(wrong.joint, SAMPLES, 99);
            double p = pValue(fake, exact.joint);
            assertTrue(p < SIGNIFICANCE, "the test cannot tell the draft's distribution from the target's (p = " + p
                    + "); it has no power");
        }
        return branches;
    }

    // ---------------------------------------------------------------- exact distributions by enumeration

    record Exact(double[] at1, double[] at2, double[] joint, int spread) {
    }

    /** Distributions of the tokens at positions 1 and 2 after {@code prompt}, summing over every path. */
    static Exact exact(ModelContext model, int[] prompt, SamplingParams params) {
        Sampler sampler = new Sampler(VOCAB);
        sampler.reset(params);
        float[] probs = new float[VOCAB];
        float[][] promptLogits = SpecTestSupport.allLogits(model, prompt);
        double[] p0 = warped(sampler, promptLogits[prompt.length - 1], probs);
        double[] at1 = new double[VOCAB];
        double[] at2 = new double[VOCAB];
        double[] joint = new double[VOCAB * VOCAB];
        int[] ids = java.util.Arrays.copyOf(prompt, prompt.length + 2);
        for (int a = 0; a < VOCAB; a++) {
            if (p0[a] == 0) {
                continue;
            }
            for (int b = 0; b < VOCAB; b++) {
                ids[prompt.length] = a;
                ids[prompt.length + 1] = b;
                float[][] logits = SpecTestSupport.allLogits(model, ids);
                double[] p1 = warped(sampler, logits[prompt.length], probs);
                if (p1[b] == 0) {
                    continue;
                }
                at1[b] += p0[a] * p1[b];
                double[] p2 = warped(sampler, logits[prompt.length + 1], probs);
                for (int c = 0; c < VOCAB; c++) {
                    double pr = p0[a] * p1[b] * p2[c];
                    at2[c] += pr;
                    joint[b * VOCAB + c] += pr;
                }
            }
        }
        int spread = 0;
        for (double v : at1) {
            spread += v >= 0.02 ? 1 : 0;
        }
        return new Exact(at1, at2, joint, spread);
    }

    private static double[] warped(Sampler sampler, float[] logits, float[] probs) {
        sampler.probabilities(logits, 0, probs);
        double[] out = new double[VOCAB];
        for (int i = 0; i < VOCAB; i++) {
            out[i] = probs[i];
        }
        return out;
    }

    private static long[] drawFrom(double[] dist, int n, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        long[] counts = new long[dist.length];
        for (int s = 0; s < n; s++) {
            double r = rnd.nextDouble();
            int i = 0;
            while (i < dist.length - 1 && (r -= dist[i]) >= 0) {
                i++;
            }
            counts[i]++;
        }
        return counts;
    }

    // ---------------------------------------------------------------- chi-square goodness of fit

    static void assertFits(long[] observed, double[] expected, String what) {
        for (int i = 0; i < expected.length; i++) {
            if (expected[i] == 0) {
                assertEquals(0, observed[i], what + ": cell " + i + " was produced but has probability 0 under the "
                        + "target's warped distribution");
            }
        }
        double p = pValue(observed, expected);
        assertTrue(p >= SIGNIFICANCE, what + ": chi-square rejects the target's distribution (p = " + p
                + " < " + SIGNIFICANCE + ")\n  observed " + java.util.Arrays.toString(observed) + "\n  expected "
                + java.util.Arrays.toString(scale(expected, sum(observed))));
    }

    /**
     * Chi-square p-value of observed counts against a distribution; cells expecting fewer than 5 are pooled, and
     * any count in a cell of probability 0 gives p = 0.
     */
    static double pValue(long[] observed, double[] dist) {
        long n = sum(observed);
        double stat = 0;
        int cells = 0;
        double pooledExpected = 0;
        long pooledObserved = 0;
        for (int i = 0; i < dist.length; i++) {
            double e = dist[i] * n;
            if (dist[i] == 0) {
                if (observed[i] > 0) {
                    return 0; // a token outside the support: certainly not this distribution
                }
                continue;
            }
            if (e < 5) {
                pooledExpected += e;
                pooledObserved += observed[i];
                continue;
            }
            stat += (observed[i] - e) * (observed[i] - e) / e;
            cells++;
        }
        if (pooledExpected > 0) {
            stat += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / pooledExpected;
            cells++;
        }
        return upperRegularizedGamma((cells - 1) / 2.0, stat / 2);
    }

    private static long sum(long[] a) {
        long s = 0;
        for (long v : a) {
            s += v;
        }
        return s;
    }

    private static double[] scale(double[] d, long n) {
        double[] out = new double[d.length];
        for (int i = 0; i < d.length; i++) {
            out[i] = Math.round(d[i] * n * 10) / 10.0;
        }
        return out;
    }

    /** Q(a, x) = Γ(a, x) / Γ(a): the chi-square survival function with 2a degrees of freedom at 2x. */
    static double upperRegularizedGamma(double a, double x) {
        if (x <= 0) {
            return 1;
        }
        double logPrefix = -x + a * Math.log(x) - logGamma(a);
        if (x < a + 1) { // series for P(a, x)
            double term = 1 / a;
            double sum = term;
            for (int n = 1; n < 10_000 && Math.abs(term) > Math.abs(sum) * 1e-16; n++) {
                term *= x / (a + n);
                sum += term;
            }
            return Math.max(0, 1 - sum * Math.exp(logPrefix));
        }
        // continued fraction for Q(a, x) (modified Lentz)
        double tiny = 1e-300;
        double b = x + 1 - a;
        double c = 1 / tiny;
        double d = 1 / b;
        double h = d;
        for (int i = 1; i < 10_000; i++) {
            double an = -i * (i - a);
            b += 2;
            d = an * d + b;
            d = Math.abs(d) < tiny ? tiny : d;
            c = b + an / c;
            c = Math.abs(c) < tiny ? tiny : c;
            d = 1 / d;
            double delta = d * c;
            h *= delta;
            if (Math.abs(delta - 1) < 1e-16) {
                break;
            }
        }
        return Math.exp(logPrefix) * h;
    }

    /** ln Γ(x) for x &gt; 0 (Lanczos, g = 7, n = 9). */
    static double logGamma(double x) {
        double[] g = {0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
                -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
                1.5056327351493116e-7};
        if (x < 0.5) {
            return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
        }
        x -= 1;
        double s = g[0];
        for (int i = 1; i < g.length; i++) {
            s += g[i] / (x + i);
        }
        double t = x + 7.5;
        return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(s);
    }

    @Test
    void chiSquareSurvivalFunctionMatchesTables() {
        // textbook critical values: P(chi2_df > x)
        assertEquals(0.05, upperRegularizedGamma(0.5, 3.841459 / 2), 1e-5);
        assertEquals(0.01, upperRegularizedGamma(5, 23.209251 / 2), 1e-5);
        assertEquals(0.05, upperRegularizedGamma(50, 124.342 / 2), 1e-4);  // df 100 (continued fraction)
        assertEquals(0.001, upperRegularizedGamma(50, 149.449 / 2), 1e-5);
        assertEquals(0.5, upperRegularizedGamma(2, 3.356694 / 2), 1e-5);   // median of chi2 with 4 df
        assertEquals(Math.exp(-6.9), upperRegularizedGamma(1, 6.9), 1e-12); // 2 df: exactly exp(-x/2)
        assertEquals(Math.log(24), logGamma(5), 1e-12);
    }
}
