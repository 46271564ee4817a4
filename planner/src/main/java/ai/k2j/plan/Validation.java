package ai.k2j.plan;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The cost model against published speeds. One number is fitted ({@link Calibration#stepCycles()}, on the
 * {@link Anchor#calibration() calibration} anchor); every other anchor is a held-out prediction. No anchor has a
 * case-specific factor: each is planned with the same device file and calibration as any user request.
 */
public final class Validation {
    /** Context (KV positions) at which the anchors are costed. */
    public static final int CTX = 2048;

    /** A published decode speed (tokens per second per user) of a model on a number of wafers. */
    public record Anchor(String model, String target, int wafers, double publishedTokensPerSecond, boolean calibration,
                         String source) {
    }

    public static final List<Anchor> ANCHORS = List.of(
            new Anchor("llama-3.1-8b", "wse3", 1, 1800, true,
                    "Cerebras, 'Introducing Cerebras Inference: AI at Instant Speed', 27 Aug 2024 "
                            + "(https://cerebras.ai/blog/introducing-cerebras-inference-ai-at-instant-speed): 1,800 "
                            + "tokens/s for Llama3.1-8B, native 16-bit weights, on CS-3 (WSE-3)"),
            new Anchor("llama-3.1-70b", "wse3", 4, 450, false,
                    "Same announcement: 450 tokens/s for Llama3.1-70B; 'distributed across four of its CS-3 "
                            + "accelerators' (The Register, 'Cerebras gives waferscale chips an inferencing twist', "
                            + "Hot Chips 2024, mirrored at https://metaailabs.com/cerebras-gives-waferscale-chips-an-"
                            + "inferencing-twist-the-register/)"));

    /** A prediction beside its published figure. */
    public record Row(Anchor anchor, Plan plan, double predicted, double ratio) {
    }

    private Validation() {
    }

    public static PlanRequest request(Anchor a, Calibration cal) {
        return PlanRequest.of(Presets.get(a.model()), DeviceSpec.builtIn(a.target())).withWafers(a.wafers())
                .withCtx(CTX).withCalibration(cal);
    }

    public static List<Row> run(Calibration cal) {
        List<Row> rows = new ArrayList<>();
        for (Anchor a : ANCHORS) {
            Plan p = Planner.plan(request(a, cal));
            double tps = p.performance().decodeTokensPerSecond();
            rows.add(new Row(a, p, tps, tps / a.publishedTokensPerSecond()));
        }
        return rows;
    }

    /**
     * Refits the step cost: the value at which the calibration anchor's predicted speed equals its published one
     * (bisection; predicted speed falls monotonically as the step cost grows).
     */
    public static double fitStepCycles(Calibration base) {
        Anchor a = ANCHORS.stream().filter(Anchor::calibration).findFirst().orElseThrow();
        double lo = 0;
        double hi = 4000;
        if (predict(a, base.withStepCycles(lo)) < a.publishedTokensPerSecond()) {
            throw new PlanException("the calibration anchor is slower than the zero-overhead model: cannot fit");
        }
        for (int i = 0; i < 40 && hi - lo > 0.01; i++) {
            double mid = (lo + hi) / 2;
            if (predict(a, base.withStepCycles(mid)) > a.publishedTokensPerSecond()) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return Math.round((lo + hi) / 2 * 10) / 10.0;
    }

    private static double predict(Anchor a, Calibration cal) {
        return Planner.plan(request(a, cal)).performance().decodeTokensPerSecond();
    }

    /** Markdown table of the rows. */
    public static String table(List<Row> rows) {
        StringBuilder sb = new StringBuilder();
        sb.append("| model | wafers | role | published tok/s | predicted tok/s | predicted / published |\n");
        sb.append("|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "| %s | %d x %s | %s | %.0f | %.0f | %.2f |%n", r.anchor().model(),
                    r.anchor().wafers(), r.anchor().target(), r.anchor().calibration() ? "calibration" : "held out",
                    r.anchor().publishedTokensPerSecond(), r.predicted(), r.ratio()));
        }
        return sb.toString();
    }
}
