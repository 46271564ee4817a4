package ai.k2j.engine;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AdaptiveDraftLengthTest {

    @Test
    void speedupFollowsTheClosedForm() {
        // alpha 0.8, c 0.1, k 4: (1 - 0.8^5) / (0.2 * 1.4) = 0.67232 / 0.28
        assertEquals(0.67232 / 0.28, AdaptiveDraftLength.speedup(0.8, 0.1, 4), 1e-12);
        // a free draft that is always right: k + 1 tokens per pass
        assertEquals(5.0, AdaptiveDraftLength.speedup(1.0, 0.0, 4), 1e-6);
    }

    /** Target passes costing {@code step} plus {@code perToken} per extra token, for 1 to 16 tokens. */
    private static double[] linearPasses(double step, double perToken) {
        double[] t = new double[16];
        for (int n = 1; n <= 16; n++) {
            t[n - 1] = step + perToken * (n - 1);
        }
        return t;
    }

    /** Drives the acceptance average to about {@code alpha}: long rounds with that share accepted. */
    private static void teachAcceptance(AdaptiveDraftLength a, double alpha) {
        double due = 0;
        for (int i = 0; i < 200; i++) {
            due += alpha;
            boolean ok = due >= 1;
            due -= ok ? 1 : 0;
            a.record(1, ok ? 1 : 0, conf(1, 0.5));
        }
    }

    @Test
    void picksTheLengthWithTheBestExpectedRateUnderMeasuredCosts() {
        AdaptiveDraftLength a = new AdaptiveDraftLength(15, 0.1);
        a.reset(4);
        // cheap verification and a cheap draft, high acceptance: long drafts
        a.pinCosts(50, linearPasses(1000, 20));
        teachAcceptance(a, 0.9);
        int k = a.nextLength(15);
        for (int j = 0; j <= 15; j++) {
            assertTrue(a.rate(j) <= a.rate(k) + 1e-15, "k = " + k + " beats " + j);
        }
        assertTrue(k >= 5, "cheap passes and a cheap draft at alpha 0.9 draft long: " + k);
        // the demo pair on a compute-bound CPU: passes cost ~0.6 of a step per extra token, the draft 0.4
        a.pinCosts(400, linearPasses(1000, 600));
        assertEquals(0, a.nextLength(15), "speculation that loses is turned off");
        assertTrue(a.rate(0) > a.rate(1) && a.rate(0) > a.rate(4));
        // the same costs with a better draft (alpha 0.98) and a cheaper one: speculation pays again
        a.pinCosts(50, linearPasses(1000, 150));
        teachAcceptance(a, 0.98);
        assertTrue(a.nextLength(15) >= 2, "pays: " + a.nextLength(15));
        assertEquals(3, a.nextLength(3), "never beyond the limit");
        // a marginal gain is not taken: one draft whose pass and drafting make it 1.05x a plain step
        a.pinCosts(50, linearPasses(1000, (1 + a.alpha()) * 1000 / 1.05 - 50 - 1000));
        assertTrue(a.rate(1) > a.rate(0) && a.rate(1) < AdaptiveDraftLength.PLAIN_MARGIN * a.rate(0));
        assertEquals(0, a.nextLength(1), "drafting must beat a plain step by the margin");
        assertEquals(0, a.nextLength(0), "no room: a plain step");
    }

    @Test
    void probesNeighbouringLengthsNowAndThen() {
        AdaptiveDraftLength a = new AdaptiveDraftLength(15, 0.1);
        a.reset(4);
        a.pinCosts(400, linearPasses(1000, 600));
        int probes = 0;
        int rounds = 2000;
        for (int i = 0; i < rounds; i++) {
            int k = a.nextLength(15);
            assertEquals(0, a.chosen());
            if (k != 0) {
                assertEquals(1, k, "a choice of 0 probes one draft");
                probes++;
            }
        }
        assertTrue(probes >= 3, "probes keep the choice revisable: " + probes);
        assertTrue(probes <= rounds / AdaptiveDraftLength.PROBE_INTERVAL / 4,
                "confirmed choices are probed less and less often: " + probes + " probes in " + rounds + " rounds");
    }

    @Test
    void unmeasuredPassLengthsAreInterpolatedAndExtrapolated() {
        AdaptiveDraftLength a = new AdaptiveDraftLength(15, 0.1);
        a.reset(4);
        assertEquals(0, a.passCost(1), "nothing measured");
        assertEquals(4, a.nextLength(15), "the requested length until costs are measured");
        a.recordPass(3, 3000);
        assertEquals(0, a.nextLength(15), "then a plain step, to measure what speculation competes with");
        double slope = 3000 * AdaptiveDraftLength.PRIOR_SLOPE / (1 + 2 * AdaptiveDraftLength.PRIOR_SLOPE);
        assertEquals(3000 - 2 * slope, a.passCost(1), 1e-9, "one length measured: the prior slope");
        assertEquals(3000 + slope, a.passCost(4), 1e-9);
        a.recordPass(1, 1000);
        assertEquals(2000, a.passCost(2), 1e-9, "between two measured lengths: linear");
        assertEquals(5000, a.passCost(5), 1e-9, "past the last: the slope of the nearest two");
        assertEquals(0.1 * 1000, a.draftCost(), 1e-9,
                "an unmeasured draft costs the weight-byte ratio of a step");
        a.recordDraft(4, 1200);
        assertEquals(300, a.draftCost(), 1e-9);
        a.reset(2);
        assertEquals(1000, a.passCost(1), 1e-9, "costs outlive a generation");
        assertEquals(AdaptiveDraftLength.PRIOR_ALPHA, a.alpha(), "no evidence yet: the prior");
    }

    @Test
    void aTimingHiccupMovesTheEstimateOnlyABit() {
        AdaptiveDraftLength a = new AdaptiveDraftLength(15, 0.1);
        a.reset(4);
        a.recordPass(1, 1000);
        a.recordPass(1, 1_000_000); // the thread was descheduled
        double bound = 1000 + AdaptiveDraftLength.COST_RATE * (AdaptiveDraftLength.OUTLIER - 1) * 1000;
        assertEquals(bound, a.passCost(1), 1e-9);
        for (int i = 0; i < 100; i++) {
            a.recordPass(1, 2000); // a lasting change is followed
        }
        assertEquals(2000, a.passCost(1), 1);
    }

    @Test
    void lengthensWhileAcceptedAndShortensWhenRejected() {
        AdaptiveDraftLength a = new AdaptiveDraftLength(15, 0.1);
        a.reset(4);
        a.pinCosts(100, linearPasses(1000, 100));
        for (int round = 0; round < 30; round++) {
            a.record(4, 4, conf(4, 0.3)); // everything accepted
        }
        int high = a.nextLength(15);
        assertTrue(a.alpha() > 0.95 && high >= 8, "alpha " + a.alpha() + ", k " + high);
        for (int round = 0; round < 30; round++) {
            a.record(1, 0, conf(1, 0.95)); // first proposal rejected every time
        }
        int low = a.nextLength(15);
        assertTrue(a.alpha() < 0.2 && low <= 1, "alpha " + a.alpha() + ", k " + low);
        double alpha = a.alpha();
        a.reset(6);
        assertEquals(alpha, a.alpha(), "the acceptance carries over as the next text's prior");
    }

    private static double[] conf(int n, double c) {
        double[] out = new double[n];
        java.util.Arrays.fill(out, c);
        return out;
    }

    @Test
    void confidenceIsCalibratedByTheAcceptanceSeenAtThatConfidence() {
        AdaptiveDraftLength a = new AdaptiveDraftLength(15, 0.1);
        a.reset(4);
        assertEquals(AdaptiveDraftLength.PRIOR_ALPHA, a.acceptance(0.35), 1e-12, "the prior before evidence");
        for (int round = 0; round < 40; round++) {
            a.record(2, 1, new double[] {0.35, 0.92}); // low-confidence drafts pass, high-confidence ones fail
        }
        assertTrue(a.acceptance(0.31) > 0.9, "drafts at confidence 0.3-0.4 were always accepted: "
                + a.acceptance(0.31));
        assertTrue(a.acceptance(0.95) < 0.1, "drafts at confidence 0.9-1 were always rejected: " + a.acceptance(0.95));
        a.reset(4);
        assertEquals(a.alpha(), a.acceptance(0.95), 1e-12, "reset forgets the calibration: back to alpha");
    }

    @Test
    void confidenceStopsARoundWhenSurvivalDoesNotPayForTheNextDraft() {
        AdaptiveDraftLength cheap = new AdaptiveDraftLength(15, 0.02);
        AdaptiveDraftLength dear = new AdaptiveDraftLength(15, 0.3);
        cheap.reset(4);
        dear.reset(4);
        cheap.pinCosts(20, linearPasses(1000, 20));
        dear.pinCosts(300, linearPasses(1000, 300));
        int kCheap = cheap.nextLength(15);
        int kDear = dear.nextLength(15);
        assertTrue(cheap.keepDrafting(1, 0.2, kCheap), "a cheap draft keeps going at 20% survival");
        assertFalse(dear.keepDrafting(1, 0.2, kDear), "a costly draft stops at 20% survival");
        assertTrue(dear.keepDrafting(1, 0.99, kDear), "k " + kDear);
        assertFalse(cheap.keepDrafting(kCheap + AdaptiveDraftLength.EXTENSION, 1, kCheap),
                "no further than the extension past the chosen length");
        AdaptiveDraftLength unmeasured = new AdaptiveDraftLength(15, 0.1);
        unmeasured.reset(3);
        assertEquals(3, unmeasured.nextLength(15));
        assertTrue(unmeasured.keepDrafting(2, 0.01, 3) && !unmeasured.keepDrafting(3, 1, 3),
                "before any measurement: exactly the requested length");
        assertEquals(AdaptiveDraftLength.MIN_COST_RATIO, new AdaptiveDraftLength(15, 0).costRatio());
    }
}
