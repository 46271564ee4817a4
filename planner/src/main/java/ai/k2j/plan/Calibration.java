package ai.k2j.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.util.Locale;

/**
 * The cost model's numbers that no data sheet gives: fitted ({@code calibrated}) or assumed. Read from
 * {@code calibration.json}; the values and the fitting procedure are documented in docs/wafer-plan.md.
 *
 * @param stepCycles        fixed cost of one dependent step of a collective or stream (router-to-core latency
 *                          plus task activation and synchronisation), in cycles; the one calibrated number
 * @param computeEfficiency fraction of the SIMD FMAC peak that a GEMV inner loop sustains
 * @param partialSumBytes   bytes per partial sum sent in a reduction (4: fp32 accumulation)
 * @param prefillChunk      tokens per prefill chunk (latency terms of a chunk are shared by its tokens)
 */
public record Calibration(double stepCycles, double computeEfficiency, int partialSumBytes, int prefillChunk,
                          String stepCyclesSource) {

    public Calibration {
        if (!(stepCycles >= 0) || !(computeEfficiency > 0 && computeEfficiency <= 1) || partialSumBytes < 1
                || prefillChunk < 1) {
            throw new PlanException(String.format(Locale.ROOT,
                    "invalid calibration: stepCycles=%s computeEfficiency=%s partialSumBytes=%d prefillChunk=%d",
                    stepCycles, computeEfficiency, partialSumBytes, prefillChunk));
        }
    }

    public Calibration withStepCycles(double s) {
        return new Calibration(s, computeEfficiency, partialSumBytes, prefillChunk, "override");
    }

    /** The calibration shipped with k2j ({@code calibration.json}). */
    public static Calibration builtIn() {
        try (InputStream in = Calibration.class.getResourceAsStream("calibration.json")) {
            if (in == null) {
                throw new PlanException("calibration.json missing from the classpath");
            }
            JsonNode root = new ObjectMapper().readTree(in);
            return new Calibration(value(root, "stepCycles"), value(root, "computeEfficiency"),
                    (int) value(root, "partialSumBytes"), (int) value(root, "prefillChunkTokens"),
                    root.path("stepCycles").path("source").asText());
        } catch (IOException e) {
            throw new PlanException("cannot read calibration.json: " + e);
        }
    }

    private static double value(JsonNode root, String key) {
        JsonNode n = root.path(key).path("value");
        if (!n.isNumber()) {
            throw new PlanException("calibration.json: missing numeric " + key + ".value");
        }
        if (root.path(key).path("source").asText("").isBlank()) {
            throw new PlanException("calibration.json: " + key + " has no source");
        }
        return n.asDouble();
    }
}
