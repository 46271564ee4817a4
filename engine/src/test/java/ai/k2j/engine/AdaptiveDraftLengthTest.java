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

    @Test
    void bestLengthGrowsWithAcceptanceAndShrinksWithCost() {
        assertEquals(1, AdaptiveDraftLength.bestLength(0.3, 0.3, 15));
        int mid = AdaptiveDraftLength.bestLength(0.8, 0.1, 15);
        int high = AdaptiveDraftLength.bestLength(0.95, 0.1, 15);
        int cheap = AdaptiveDraftLength.bestLength(0.8, 0.01, 15);
        assertTrue(mid > 1 && high > mid && cheap > mid, mid + " " + high + " " + cheap);
        // brute force agrees
        for (double a = 0.05; a < 1; a += 0.1) {
            for (double c : new double[] {0.02, 0.1, 0.5}) {
                int best = AdaptiveDraftLength.bestLength(a, c, 15);
                for (int k = 1; k <= 15; k++) {
                    assertTrue(AdaptiveDraftLength.speedup(a, c, k) <= AdaptiveDraftLength.speedup(a, c, best) + 1e-12);
                }
            }
        }
        assertEquals(15, AdaptiveDraftLength.bestLength(0.999, 0.001, 15), "capped at the maximum");
    }

    @Test
    void lengthensWhileAcceptedAndShortensWhenRejected() {
        AdaptiveDraftLength a = new AdaptiveDraftLength(15, 0.1);
        a.reset(4);
        assertEquals(4, a.cap(), "starts at the requested length");
        for (int round = 0; round < 30; round++) {
            a.record(a.cap(), a.cap(), conf(a.cap(), 0.3)); // everything accepted
        }
        assertTrue(a.alpha() > 0.95 && a.cap() >= 10, "alpha " + a.alpha() + ", cap " + a.cap());
        for (int round = 0; round < 30; round++) {
            a.record(1, 0, conf(1, 0.95)); // first proposal rejected every time
        }
        assertTrue(a.alpha() < 0.2 && a.cap() == 1, "alpha " + a.alpha() + ", cap " + a.cap());
        a.reset(6);
        assertEquals(6, a.cap(), "reset forgets the previous generation");
        assertEquals(AdaptiveDraftLength.PRIOR_ALPHA, a.alpha());
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
        assertEquals(AdaptiveDraftLength.PRIOR_ALPHA, a.acceptance(0.95), 1e-12, "reset forgets the calibration");
    }

    @Test
    void confidenceStopsARoundWhenSurvivalDropsBelowTheCostOfADraftStep() {
        AdaptiveDraftLength cheap = new AdaptiveDraftLength(15, 0.02);
        AdaptiveDraftLength dear = new AdaptiveDraftLength(15, 0.3);
        cheap.reset(4);
        dear.reset(4);
        assertTrue(cheap.keepDrafting(0.2), "a cheap draft keeps going at 20% survival");
        assertFalse(dear.keepDrafting(0.2), "a costly draft stops at 20% survival");
        assertTrue(dear.keepDrafting(0.9));
        assertEquals(AdaptiveDraftLength.MIN_COST_RATIO, new AdaptiveDraftLength(15, 0).costRatio());
    }
}
