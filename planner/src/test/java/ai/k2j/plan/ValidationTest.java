package ai.k2j.plan;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The cost model against Cerebras' published speeds (docs/wafer-plan.md, "Validation"). */
class ValidationTest {

    @Test
    void publishedSpeedsArePredictedWithinTwentyFivePercent() {
        List<Validation.Row> rows = Validation.run(Calibration.builtIn());
        assertEquals(Validation.ANCHORS.size(), rows.size());
        for (Validation.Row r : rows) {
            assertTrue(Math.abs(r.ratio() - 1) <= 0.25, r.anchor().model() + ": predicted " + r.predicted()
                    + " tok/s vs published " + r.anchor().publishedTokensPerSecond());
            assertEquals(r.anchor().wafers(), r.plan().request().wafers());
            assertEquals("bf16", r.plan().request().dtype());
        }
        assertTrue(rows.stream().anyMatch(r -> !r.anchor().calibration()), "at least one anchor must be held out");
    }

    /** The shipped step cost is the fit on the calibration anchor, not a hand-tuned number. */
    @Test
    void theShippedCalibrationIsTheFitOnTheCalibrationAnchor() {
        Calibration cal = Calibration.builtIn();
        Validation.Anchor a = Validation.ANCHORS.stream().filter(Validation.Anchor::calibration).findFirst().orElseThrow();
        double at = Planner.plan(Validation.request(a, cal)).performance().decodeTokensPerSecond();
        assertEquals(a.publishedTokensPerSecond(), at, a.publishedTokensPerSecond() * 0.005);
        double cheaper = Planner.plan(Validation.request(a, cal.withStepCycles(cal.stepCycles() - 5)))
                .performance().decodeTokensPerSecond();
        double dearer = Planner.plan(Validation.request(a, cal.withStepCycles(cal.stepCycles() + 5)))
                .performance().decodeTokensPerSecond();
        assertTrue(cheaper > a.publishedTokensPerSecond() && dearer < a.publishedTokensPerSecond(),
                "the published speed is not bracketed around the shipped step cost");
    }

    @Test
    void k2ThinkBackboneIsPlannedWithAndWithoutADraft() {
        DeviceSpec d = DeviceSpec.builtIn("wse3");
        Plan alone = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-32b"), d).withCtx(4096));
        Plan spec = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-32b"), d).withCtx(4096)
                .withDraft(Presets.get("qwen2.5-0.5b"), PlanRequest.DEFAULT_ACCEPT, 0));
        assertEquals(2, alone.request().wafers());
        assertTrue(spec.request().wafers() >= alone.request().wafers());
        double a = alone.performance().decodeTokensPerSecond();
        double s = spec.performance().speculative().tokensPerSecond();
        assertTrue(a > 300 && a < 3000, "32B on two wafers: " + a);
        assertTrue(s > 0.8 * a, "speculation with a 0.5B draft should not be much slower: " + s + " vs " + a);
    }
}
