package ai.k2j.plan;

import java.util.Locale;

/**
 * What to plan.
 *
 * @param wafers     wafer count, or 0 to let the planner choose the fewest that hold the model
 * @param ctx        context length the KV cache is sized for (and attention is costed at)
 * @param batch      sequences decoded concurrently (KV cache sized for all of them; they share the pipeline)
 * @param draft      draft model for speculative decoding, or null
 * @param acceptRate probability that the target accepts a drafted token (speculative decoding)
 * @param specK      tokens drafted per step, or 0 to choose the best
 */
public record PlanRequest(ModelShape model, ModelShape draft, DeviceSpec device, int wafers, WeightDType dtype,
                          int ctx, int batch, double acceptRate, int specK, Calibration calibration, String mapping) {

    /**
     * Mappings: all searched ({@code auto}), the layer pipeline, WaferLLM's mesh mapping (one mesh per wafer), or
     * the tiled mesh (several layer meshes per wafer).
     */
    public static final java.util.List<String> MAPPINGS = java.util.List.of("auto", "layer-pipeline", "mesh",
            "tiled-mesh");

    public PlanRequest(ModelShape model, ModelShape draft, DeviceSpec device, int wafers, WeightDType dtype, int ctx,
                       int batch, double acceptRate, int specK, Calibration calibration) {
        this(model, draft, device, wafers, dtype, ctx, batch, acceptRate, specK, calibration, "auto");
    }

    public static final int MAX_SPEC_K = 8;
    public static final int DEFAULT_CTX = 4096;
    public static final double DEFAULT_ACCEPT = 0.75;

    public PlanRequest {
        if (model == null || device == null || dtype == null || calibration == null) {
            throw new PlanException("model, device, dtype and calibration are required");
        }
        if (wafers < 0) {
            throw new PlanException("wafer count must be >= 1 (or 0 to choose), got " + wafers);
        }
        if (ctx < 1) {
            throw new PlanException("context length must be >= 1, got " + ctx);
        }
        if (batch < 1) {
            throw new PlanException("batch must be >= 1, got " + batch);
        }
        if (!(acceptRate > 0 && acceptRate < 1)) {
            throw new PlanException(String.format(Locale.ROOT, "accept rate must be in (0, 1), got %s", acceptRate));
        }
        if (!MAPPINGS.contains(mapping)) {
            throw new PlanException("unknown mapping '" + mapping + "' (" + String.join(", ", MAPPINGS) + ")");
        }
        if (specK < 0 || specK > MAX_SPEC_K) {
            throw new PlanException("speculative k must be in 1.." + MAX_SPEC_K + " (or 0 to choose), got " + specK);
        }
    }

    /** Defaults: wafer count chosen, BF16, ctx 4096, batch 1, no draft, built-in calibration. */
    public static PlanRequest of(ModelShape model, DeviceSpec device) {
        return new PlanRequest(model, null, device, 0, WeightDType.BF16, DEFAULT_CTX, 1, DEFAULT_ACCEPT, 0,
                Calibration.builtIn());
    }

    public PlanRequest withWafers(int n) {
        return new PlanRequest(model, draft, device, n, dtype, ctx, batch, acceptRate, specK, calibration, mapping);
    }

    public PlanRequest withDtype(WeightDType d) {
        return new PlanRequest(model, draft, device, wafers, d, ctx, batch, acceptRate, specK, calibration, mapping);
    }

    public PlanRequest withCtx(int c) {
        return new PlanRequest(model, draft, device, wafers, dtype, c, batch, acceptRate, specK, calibration, mapping);
    }

    public PlanRequest withBatch(int b) {
        return new PlanRequest(model, draft, device, wafers, dtype, ctx, b, acceptRate, specK, calibration, mapping);
    }

    public PlanRequest withDraft(ModelShape d, double accept, int k) {
        return new PlanRequest(model, d, device, wafers, dtype, ctx, batch, accept, k, calibration, mapping);
    }

    public PlanRequest withMapping(String m) {
        return new PlanRequest(model, draft, device, wafers, dtype, ctx, batch, acceptRate, specK, calibration, m);
    }

    public PlanRequest withCalibration(Calibration c) {
        return new PlanRequest(model, draft, device, wafers, dtype, ctx, batch, acceptRate, specK, c, mapping);
    }
}
