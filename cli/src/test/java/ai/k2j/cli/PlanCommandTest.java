package ai.k2j.cli;

import ai.k2j.plan.Calibration;
import ai.k2j.plan.Plan;
import ai.k2j.plan.PlanJson;
import ai.k2j.plan.Validation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code k2j plan} end to end through the CLI entry point. */
class PlanCommandTest {
    record Result(int code, String out, String err) {
    }

    static Result run(String... argv) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run(argv, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void writesThePlanFilesAndPrintsTheSummary(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("plan-out");
        Result r = run("plan", "--model", "preset:qwen2.5-0.5b", "--target", "wse3", "--ctx", "4096", "--batch", "2",
                "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        for (String f : new String[] {"plan.json", "plan.dot", "plan.svg", "summary.txt"}) {
            assertTrue(Files.size(out.resolve(f)) > 100, f);
        }
        Plan p = PlanJson.read(out.resolve("plan.json"));
        assertEquals("qwen2.5-0.5b", p.model().name());
        assertEquals(2, p.request().batch());
        assertTrue(r.out().contains("decode") && r.out().contains("wafers  1 (chosen"), r.out());
        assertEquals(Files.readString(out.resolve("summary.txt")), r.out());
    }

    @Test
    void readsAModelDirectoryAndADraft(@TempDir Path dir) throws IOException {
        Path model = dir.resolve("m");
        Files.createDirectories(model);
        Files.writeString(model.resolve("config.json"), """
                {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 1536, "intermediate_size": 8960,
                 "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                 "vocab_size": 151936, "tie_word_embeddings": true}
                """);
        Result r = run("plan", "--model", model.toString(), "--draft", "preset:qwen2.5-0.5b", "--accept", "0.8",
                "--spec-k", "3", "--dtype", "fp8", "--out", dir.resolve("o").toString());
        assertEquals(0, r.code(), r.err());
        Plan p = PlanJson.read(dir.resolve("o/plan.json"));
        assertEquals(3, p.performance().speculative().k());
        assertEquals("fp8", p.request().dtype());
        assertTrue(r.out().contains("spec "), r.out());
    }

    @Test
    void usageErrorsExitWithTwo(@TempDir Path dir) {
        String out = dir.resolve("o").toString();
        assertEquals(2, run("plan", "--out", out).code());                                         // no --model
        assertEquals(2, run("plan", "--model", "preset:tiny").code());                            // no --out
        Result typo = run("plan", "--model", "preset:tiny", "--out", out, "--wafer", "2");
        assertEquals(2, typo.code());
        assertTrue(typo.err().contains("--wafer"), typo.err());
        Result dtype = run("plan", "--model", "preset:tiny", "--out", out, "--dtype", "int4");
        assertEquals(2, dtype.code());
        assertTrue(dtype.err().contains("int4"), dtype.err());
        assertEquals(2, run("plan", "--model", "preset:tiny", "--out", out, "--accept", "0.5").code());
        assertEquals(2, run("plan", "--model", "preset:tiny", "--out", out, "--wafers", "0").code());
        Result mapping = run("plan", "--model", "preset:tiny", "--out", out, "--mapping", "diagonal");
        assertEquals(2, mapping.code());
        assertTrue(mapping.err().contains("--mapping") && mapping.err().contains("tiled-mesh"), mapping.err());
        assertEquals(0, run("plan", "--help").code());
    }

    @Test
    void comparesMappingsAndWritesTheFewestWaferPlanWhenItDiffers(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("o");
        Result r = run("plan", "--model", "preset:qwen2.5-32b", "--ctx", "4096", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("compared (tok/s per request)") && r.out().contains("layer-pipeline")
                && r.out().contains("tiled-mesh"), r.out());
        Plan fastest = PlanJson.read(out.resolve("plan.json"));
        if (Files.exists(out.resolve("plan-fewest.json"))) {
            Plan fewest = PlanJson.read(out.resolve("plan-fewest.json"));
            assertTrue(fewest.request().wafers() < fastest.request().wafers());
            assertTrue(fewest.performance().effectiveTokensPerSecond()
                    <= fastest.performance().effectiveTokensPerSecond());
            assertTrue(r.out().contains("fewest wafers: "), r.out());
        }
        Result mesh = run("plan", "--model", "preset:qwen2.5-32b", "--ctx", "4096", "--mapping", "mesh", "--out",
                dir.resolve("m").toString());
        assertEquals(0, mesh.code(), mesh.err());
        assertEquals("mesh", PlanJson.read(dir.resolve("m/plan.json")).shapes().mapping());
        assertTrue(mesh.out().contains("mapping mesh: each layer a "), mesh.out());
    }

    @Test
    void impossibleRequestsFailWithTheReason(@TempDir Path dir) {
        Result r = run("plan", "--model", "preset:llama-3.1-70b", "--wafers", "2", "--out", dir.toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("does not fit on 2 wse3 wafers") && r.err().contains("--wafers 4"), r.err());
        Result t = run("plan", "--model", "preset:tiny", "--target", "tpu", "--out", dir.toString());
        assertEquals(1, t.code());
        assertTrue(t.err().contains("unknown target 'tpu'"), t.err());
    }

    /** `plan --validate` prints the validation table and exits 1 exactly when a row misses. */
    @Test
    void validatePrintsTheTableAndFailsOnAMiss() {
        long misses = Validation.run(Calibration.builtIn()).stream().filter(r -> !r.within()).count();
        Result r = run("plan", "--validate");
        assertEquals(misses == 0 ? 0 : 1, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("| WaferLLM Llama3-8B | wse2 | fitted |"), r.out());
        assertTrue(r.out().contains("Aug 2024"), r.out());
    }
}
