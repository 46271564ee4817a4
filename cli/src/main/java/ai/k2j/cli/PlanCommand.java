package ai.k2j.cli;

import ai.k2j.plan.Calibration;
import ai.k2j.plan.DeviceSpec;
import ai.k2j.plan.ModelShape;
import ai.k2j.plan.ModelSource;
import ai.k2j.plan.Plan;
import ai.k2j.plan.PlanDraw;
import ai.k2j.plan.PlanException;
import ai.k2j.plan.PlanJson;
import ai.k2j.plan.PlanRequest;
import ai.k2j.plan.PlanSummary;
import ai.k2j.plan.Planner;
import ai.k2j.plan.Validation;
import ai.k2j.plan.WeightDType;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/** {@code k2j plan}: compiles a model onto wafer-scale engines and predicts its speed (docs/wafer-plan.md). */
final class PlanCommand implements Command {

    static final VerbSpec SPEC = new VerbSpec("plan", "wafer-scale plan", List.of(
            Flag.required("model", "DIR|config.json|preset:NAME", "model to place: a model directory, its"
                    + " config.json, or preset:NAME (presets: tiny, qwen2.5-0.5b ... qwen2.5-72b, llama-3.1-8b/70b/405b,"
                    + " llama-3.3-70b, llama-3.2-1b, qwen3-32b, qwen3-235b-a22b, gpt-oss-120b, kimi-k2, deepseek-v3); an MoE"
                    + " config.json (DeepSeek-V3/Kimi K2, Qwen3-MoE, gpt-oss) is read for planning; not with"
                    + " --validate or --calibrate"),
            Flag.required("out", "DIR", "directory for plan.json, plan.dot, plan.svg and summary.txt (created)"),
            Flag.option("target", "wse3|wse2|DEVICE.json", "wse3", "built-in device or a device file (k2j.device/1"
                    + " JSON)"),
            Flag.option("wafers", "N", "the fewest that hold every weight in SRAM", "wafer count"),
            Flag.option("dtype", "bf16|fp8|q8", "bf16", "weight storage (8-bit weights run at the 16-bit rate)"),
            Flag.option("ctx", "N", String.valueOf(PlanRequest.DEFAULT_CTX), "context length the KV cache is sized"
                    + " and attention costed for"),
            Flag.option("batch", "N", "1", "sequences decoded concurrently in the pipeline"),
            Flag.option("draft", "DIR|config.json|preset:NAME", null, "draft model for speculative decoding (same"
                    + " tokenizer as the target)"),
            Flag.option("accept", "P", String.valueOf(PlanRequest.DEFAULT_ACCEPT), "probability a drafted token is"
                    + " accepted"),
            Flag.option("spec-k", "K", "the best of 1..8", "tokens drafted per step"),
            Flag.option("mapping", "auto|layer-pipeline|mesh|tiled-mesh", "auto", "auto: the fastest of all;"
                    + " layer-pipeline: a block of PEs per layer; mesh: WaferLLM, every layer of a wafer over one mesh;"
                    + " tiled-mesh: several meshes per wafer. plan.json is the fastest plan, plan-fewest.json the"
                    + " fewest-wafer one"),
            Flag.toggle("validate", "instead: predicted vs published WaferLLM and Cerebras speeds (exit 1 on a miss)").inGroup("mode", false),
            Flag.toggle("calibrate", "instead: refit the step cost on the calibration anchor").inGroup("mode", false)),
            null);

    @Override
    public VerbSpec spec() {
        return SPEC;
    }

    @Override
    public int run(Args args, PrintStream out, PrintStream err) {
        if (args.flag("help")) {
            out.print(usage());
            return 0;
        }
        if (args.flag("validate")) {
            args.finish();
            return validate(out);
        }
        if (args.flag("calibrate")) {
            args.finish();
            double s = Validation.fitStepCycles(Calibration.builtIn());
            out.printf(Locale.ROOT, "stepCycles = %.1f (shipped: %.1f); set it in "
                    + "engine/src/main/resources/ai/k2j/plan/calibration.json%n", s, Calibration.builtIn().stepCycles());
            return 0;
        }
        String modelSpec = args.required("model");
        Path outDir = args.path("out");
        String target = args.string("target", "wse3");
        int wafers = args.integer("wafers", 0);
        String dtypeName = args.string("dtype", "bf16");
        int ctx = args.integer("ctx", PlanRequest.DEFAULT_CTX);
        int batch = args.integer("batch", 1);
        String draftSpec = args.string("draft", null);
        boolean acceptGiven = args.has("accept");
        double accept = args.decimal("accept", PlanRequest.DEFAULT_ACCEPT);
        boolean kGiven = args.has("spec-k");
        int specK = args.integer("spec-k", 0);
        String mapping = args.string("mapping", "auto");
        args.finish();
        if (!PlanRequest.MAPPINGS.contains(mapping)) {
            throw new UsageException("--mapping must be one of " + String.join(", ", PlanRequest.MAPPINGS) + ", got "
                    + mapping);
        }
        if (args.has("wafers") && wafers < 1) {
            throw new UsageException("--wafers must be >= 1, got " + wafers);
        }
        if (draftSpec == null && (acceptGiven || kGiven)) {
            throw new UsageException("--accept and --spec-k need --draft");
        }
        if (kGiven && specK < 1) {
            throw new UsageException("--spec-k must be >= 1, got " + specK);
        }
        WeightDType dtype;
        try {
            dtype = WeightDType.parse(dtypeName);
        } catch (PlanException e) {
            throw new UsageException(e.getMessage());
        }
        ModelShape model = ModelSource.resolve(modelSpec);
        ModelShape draft = draftSpec == null ? null : ModelSource.resolve(draftSpec);
        DeviceSpec device = DeviceSpec.resolve(target);
        PlanRequest req = PlanRequest.of(model, device).withWafers(wafers).withDtype(dtype).withCtx(ctx)
                .withBatch(batch).withMapping(mapping);
        if (draft != null) {
            req = req.withDraft(draft, accept, specK);
        }
        Planner.Result result = Planner.search(req);
        Plan plan = result.fastest();
        String summary = PlanSummary.text(plan);
        if (result.fewest() != plan) {
            summary += "\nfewest wafers: " + PlanSummary.oneLine(result.fewest()) + " (plan-fewest.json)\n";
        }
        try {
            Files.createDirectories(outDir);
            PlanJson.write(plan, outDir.resolve("plan.json"));
            Files.deleteIfExists(outDir.resolve("plan-fewest.json"));
            if (result.fewest() != plan) {
                PlanJson.write(result.fewest(), outDir.resolve("plan-fewest.json"));
            }
            Files.writeString(outDir.resolve("plan.dot"), PlanDraw.dot(plan));
            Files.writeString(outDir.resolve("plan.svg"), PlanDraw.svg(plan));
            Files.writeString(outDir.resolve("summary.txt"), summary);
        } catch (IOException e) {
            throw new UncheckedIOException(outDir + ": cannot write the plan: " + e.getMessage(), e);
        }
        out.print(summary);
        err.println("wrote plan.json, plan.dot, plan.svg, summary.txt to " + outDir);
        return 0;
    }

    private static int validate(PrintStream out) {
        Calibration cal = Calibration.builtIn();
        List<Validation.Row> rows = Validation.run(cal);
        out.printf(Locale.ROOT, "calibration: stepCycles = %.1f (fitted on the 'fitted' row only); a held-out row "
                + "more than %.0f%% off is a miss%n%n", cal.stepCycles(), Validation.TOLERANCE * 100);
        out.print(Validation.table(rows));
        int misses = 0;
        for (Validation.Row r : rows) {
            misses += r.within() ? 0 : 1;
        }
        out.println();
        out.println("not gated: the Aug-2024 launch figures (2024 software) under the same calibration");
        out.print(Validation.table(Validation.run(Validation.HISTORY, cal), false));
        out.println();
        out.println(misses == 0 ? "all rows within 25% of the published figures"
                : misses + " of " + rows.size() + " rows more than 25% off the published figures (see the verdicts)");
        return misses == 0 ? 0 : 1;
    }
}
