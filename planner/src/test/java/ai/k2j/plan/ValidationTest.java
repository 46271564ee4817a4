package ai.k2j.plan;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The cost model against WaferLLM's and Cerebras' published speeds (docs/wafer-plan.md, "Validation"). */
class ValidationTest {
    private static List<Validation.Row> rows;

    @BeforeAll
    static void run() {
        rows = Validation.run(Calibration.builtIn());
    }

    @Test
    void oneRowIsFittedEveryOtherIsHeldOutAndSourced() {
        assertEquals(Validation.ANCHORS.size(), rows.size());
        assertEquals(1, Validation.ANCHORS.stream().filter(Validation.Anchor::calibration).count());
        assertFalse(Validation.HISTORY.isEmpty(), "the Aug-2024 rows are kept as ungated history");
        assertTrue(Validation.HISTORY.stream().noneMatch(Validation.Anchor::calibration));
        for (Validation.Anchor a : Validation.ANCHORS) {
            assertFalse(a.source().isBlank() || a.caveat().isBlank(), a.label());
            assertTrue(a.publishedLow() > 0 && a.publishedHigh() >= a.publishedLow(), a.label());
        }
    }

    @Test
    void waferLlmRowsUseWaferLlmsMappingOnWse2() {
        for (Validation.Row r : rows) {
            if (r.anchor().label().startsWith("WaferLLM")) {
                assertEquals("mesh", r.plan().shapes().mapping(), r.anchor().label());
                assertEquals(1, r.plan().shapes().mesh().tilesDown() * r.plan().shapes().mesh().tilesAcross());
                assertEquals("wse2", r.plan().request().target());
            }
            assertEquals("bf16", r.plan().request().dtype());
            if (r.anchor().wafers() > 0) {
                assertEquals(r.anchor().wafers(), r.plan().request().wafers(), r.anchor().label());
            }
        }
    }

    /** The verdict is the ratio: within 25% of the published figure (or range), else a miss with its size. */
    @Test
    void verdictsFollowTheRatioAndTheCommandFailsOnAMiss() {
        int misses = 0;
        for (Validation.Row r : rows) {
            double tps = r.predicted();
            Validation.Anchor a = r.anchor();
            double nearest = tps < a.publishedLow() ? a.publishedLow() : tps > a.publishedHigh() ? a.publishedHigh() : tps;
            assertEquals(tps / nearest, r.ratio(), 1e-9, a.label());
            assertEquals(Math.abs(r.ratio() - 1) <= Validation.TOLERANCE + 1e-9, r.within(), a.label());
            misses += r.within() ? 0 : 1;
        }
        String table = Validation.table(rows);
        assertEquals(misses, table.split("MISS by", -1).length - 1, table);
        // `k2j plan --validate` prints this table and fails on a miss: cli's PlanCommandTest
        // the fitted row reproduces its figure
        Validation.Row fitted = rows.stream().filter(r -> r.anchor().calibration()).findFirst().orElseThrow();
        assertEquals(1.0, fitted.ratio(), 0.01);
    }

    /** The shipped step cost is the fit on the calibration anchor, not a hand-tuned number. */
    @Test
    void theShippedCalibrationIsTheFitOnTheCalibrationAnchor() {
        Calibration cal = Calibration.builtIn();
        Validation.Anchor a = Validation.ANCHORS.stream().filter(Validation.Anchor::calibration).findFirst().orElseThrow();
        double cheaper = Validation.plan(a, cal.withStepCycles(Math.max(0, cal.stepCycles() - 0.5)))
                .performance().effectiveTokensPerSecond();
        double dearer = Validation.plan(a, cal.withStepCycles(cal.stepCycles() + 0.5))
                .performance().effectiveTokensPerSecond();
        assertTrue(cheaper > a.publishedLow() && dearer < a.publishedLow(),
                "the published speed is not bracketed around the shipped step cost: " + cheaper + " / " + dearer);
    }
}
