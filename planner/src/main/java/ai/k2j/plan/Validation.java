package ai.k2j.plan;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The cost model against published per-request decode speeds, read from {@code validation.json} (every row with
 * its source). One number is fitted
 * ({@link Calibration#stepCycles()}, on the single {@link Anchor#calibration() calibration} anchor); every other
 * anchor is a held-out prediction, planned with the same device files and calibration as any user request (no
 * case-specific factor). A prediction more than 25% outside the published figure (or range) is a miss; every
 * anchor states in advance why it may miss ({@link Anchor#caveat()}), and {@code k2j plan --validate} fails on a
 * miss. Sources and the reading of each row: docs/wafer-plan.md, "validation".
 */
public final class Validation {
    /** Allowed relative error of a held-out prediction. */
    public static final double TOLERANCE = 0.25;

    /**
     * A published decode speed (tokens/s per request; a range when the source gives one).
     *
     * @param wafers  wafer count of the published deployment, or 0 when unpublished (the planner chooses)
     * @param mapping the mapping the published system used when known ({@code mesh}: WaferLLM), else {@code auto}
     * @param draft   draft model when the published speed used speculative decoding, else null
     * @param fewest  compare the fewest-wafer plan (WaferLLM runs a model on one wafer where it fits: its setup
     *                is closest to the smallest deployment), else the fastest plan (a vendor's best deployment)
     */
    public record Anchor(String label, String model, String draft, double accept, String target, int wafers,
                         String mapping, int ctx, double publishedLow, double publishedHigh, boolean calibration,
                         String source, String caveat, boolean fewest) {
    }

    /** The gated rows of {@code validation.json}: the fitted one and the held-out ones. */
    public static final List<Anchor> ANCHORS;

    /**
     * The Aug-2024 launch figures that the first planner was fitted to. Not gated: they describe Cerebras' 2024
     * software, whose per-step cost (119.6 cycles, fitted then) is an order of magnitude above the current fit.
     */
    public static final List<Anchor> HISTORY;

    static {
        List<Anchor> gated = new ArrayList<>();
        List<Anchor> history = new ArrayList<>();
        try (java.io.InputStream in = Validation.class.getResourceAsStream("validation.json")) {
            if (in == null) {
                throw new PlanException("validation.json missing from the classpath");
            }
            com.fasterxml.jackson.databind.JsonNode root = new com.fasterxml.jackson.databind.ObjectMapper().readTree(in);
            if (!"k2j.validation/1".equals(root.path("schema").asText())) {
                throw new PlanException("validation.json: schema is not k2j.validation/1");
            }
            for (com.fasterxml.jackson.databind.JsonNode r : root.path("rows")) {
                String role = text(r, "role");
                String compare = text(r, "compare");
                if (!List.of("fitted", "held-out", "history").contains(role)
                        || !List.of("fewest", "fastest").contains(compare)) {
                    throw new PlanException("validation.json: row " + r.path("label") + ": role must be fitted, "
                            + "held-out or history and compare fewest or fastest");
                }
                Anchor a = new Anchor(text(r, "label"), text(r, "model"), r.has("draft") ? text(r, "draft") : null,
                        r.path("accept").asDouble(0), text(r, "target"), r.path("wafers").asInt(0), text(r, "mapping"),
                        r.path("ctx").asInt(), r.path("publishedLow").asDouble(), r.path("publishedHigh").asDouble(),
                        role.equals("fitted"), text(r, "source"), text(r, "caveat"), compare.equals("fewest"));
                if (a.ctx() < 1 || !(a.publishedLow() > 0) || a.publishedHigh() < a.publishedLow()) {
                    throw new PlanException("validation.json: row " + a.label() + ": ctx and published figures "
                            + "must be positive, publishedHigh >= publishedLow");
                }
                (role.equals("history") ? history : gated).add(a);
            }
        } catch (java.io.IOException e) {
            throw new PlanException("cannot read validation.json: " + e);
        }
        ANCHORS = List.copyOf(gated);
        HISTORY = List.copyOf(history);
    }

    private static String text(com.fasterxml.jackson.databind.JsonNode r, String key) {
        String v = r.path(key).asText("");
        if (v.isBlank()) {
            throw new PlanException("validation.json: row " + r.path("label") + " has no " + key
                    + " (every row needs its source)");
        }
        return v;
    }

    /** A prediction beside its published figure: ratio to the nearest end of the published range. */
    public record Row(Anchor anchor, Plan plan, double predicted, double ratio, boolean within) {
    }

    private Validation() {
    }

    public static PlanRequest request(Anchor a, Calibration cal) {
        PlanRequest r = PlanRequest.of(Presets.get(a.model()), DeviceSpec.builtIn(a.target())).withWafers(a.wafers())
                .withCtx(a.ctx()).withCalibration(cal).withMapping(a.mapping());
        if (a.draft() != null) {
            r = r.withDraft(Presets.get(a.draft()), a.accept(), 0);
        }
        return r;
    }

    public static List<Row> run(Calibration cal) {
        return run(ANCHORS, cal);
    }

    public static List<Row> run(List<Anchor> anchors, Calibration cal) {
        List<Row> rows = new ArrayList<>();
        for (Anchor a : anchors) {
            Plan p = plan(a, cal);
            double tps = p.performance().effectiveTokensPerSecond();
            double ratio = tps < a.publishedLow() ? tps / a.publishedLow()
                    : tps > a.publishedHigh() ? tps / a.publishedHigh() : 1.0;
            rows.add(new Row(a, p, tps, ratio, Math.abs(ratio - 1) <= TOLERANCE + 1e-9));
        }
        return rows;
    }

    /**
     * Refits the step cost: the value at which the calibration anchor's predicted speed equals its published one
     * (bisection; predicted speed falls monotonically as the step cost grows). 0 when even a zero step cost is
     * slower than published (the fit is at its bound).
     */
    public static double fitStepCycles(Calibration base) {
        Anchor a = ANCHORS.stream().filter(Anchor::calibration).findFirst().orElseThrow();
        double lo = 0;
        double hi = 4000;
        if (predict(a, base.withStepCycles(lo)) < a.publishedLow()) {
            return 0;
        }
        for (int i = 0; i < 40 && hi - lo > 0.01; i++) {
            double mid = (lo + hi) / 2;
            if (predict(a, base.withStepCycles(mid)) > a.publishedLow()) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return Math.round((lo + hi) / 2 * 10) / 10.0;
    }

    private static double predict(Anchor a, Calibration cal) {
        return plan(a, cal).performance().effectiveTokensPerSecond();
    }

    /** The plan an anchor is compared with: the fewest-wafer or the fastest one (see {@link Anchor#fewest()}). */
    public static Plan plan(Anchor a, Calibration cal) {
        Planner.Result r = Planner.search(request(a, cal));
        return a.fewest() ? r.fewest() : r.fastest();
    }

    private static String published(Anchor a) {
        return a.publishedLow() == a.publishedHigh() ? String.format(Locale.ROOT, "%.0f", a.publishedLow())
                : String.format(Locale.ROOT, "%.0f-%.0f", a.publishedLow(), a.publishedHigh());
    }

    /** Markdown table of the rows. */
    public static String table(List<Row> rows) {
        return table(rows, true);
    }

    /** Markdown table of the rows; ungated rows (history) show their ratio without a verdict. */
    public static String table(List<Row> rows, boolean gated) {
        StringBuilder sb = new StringBuilder();
        sb.append("| row | device | role | plan (mapping, wafers, mesh) | published tok/s | predicted tok/s | "
                + "ratio | verdict |\n");
        sb.append("|---|---|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            Anchor a = r.anchor();
            Plan p = r.plan();
            String shape = p.shapes().usesMesh() ? String.format(Locale.ROOT, "%dx%d x %d/wafer",
                    p.shapes().mesh().rows(), p.shapes().mesh().cols(),
                    p.shapes().mesh().tilesDown() * p.shapes().mesh().tilesAcross())
                    : "block " + p.shapes().target().rows() + " rows";
            String spec = p.performance().speculative() == null ? "" : ", draft " + p.performance().speculative()
                    .draftModel() + " k=" + p.performance().speculative().k();
            sb.append(String.format(Locale.ROOT, "| %s | %s | %s | %s, %d, %s%s | %s | %.0f | %.2f | %s |%n",
                    a.label(), a.target(), a.calibration() ? "fitted" : "held out", p.shapes().mapping(),
                    p.request().wafers(), shape, spec, published(a), r.predicted(), r.ratio(),
                    !gated ? "not gated: " + a.caveat() : r.within() ? "ok"
                            : "MISS by " + Math.round(Math.abs(r.ratio() - 1) * 100) + "%: " + a.caveat()));
        }
        return sb.toString();
    }
}
