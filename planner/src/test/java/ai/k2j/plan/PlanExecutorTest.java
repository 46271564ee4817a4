package ai.k2j.plan;

import ai.k2j.testing.TestCheckpoints;
import ai.k2j.engine.LanguageModel;
import ai.k2j.engine.ModelOptions;
import ai.k2j.engine.Npy;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Plans that run: the executor walks a plan.json on real small models (the golden fixtures and {@code k2j synth}'s
 * tiny preset) partition by partition as placed, on meshes of several sizes and with every mapping, and must give
 * the plain forward pass's logits and the plan's own cycle count.
 */
class PlanExecutorTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A WSE-3 with a smaller PE grid: same per-PE and fabric parameters. */
    static DeviceSpec toyDevice(int rows, int cols) {
        DeviceSpec base = DeviceSpec.builtIn("wse3");
        Map<String, DeviceSpec.Param> p = new LinkedHashMap<>(base.params());
        p.put("peRows", new DeviceSpec.Param(rows, "PE", "assumption", "test grid"));
        p.put("peCols", new DeviceSpec.Param(cols, "PE", "assumption", "test grid"));
        return new DeviceSpec("toy" + rows + "x" + cols, "test grid " + rows + "x" + cols, p);
    }

    static Path goldenDir() {
        String root = System.getProperty("k2j.repoRoot");
        Path base = root != null ? Path.of(root, "engine") : Path.of("").toAbsolutePath();
        return base.resolve("src/test/resources/golden");
    }

    private static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asInt();
        }
        return out;
    }

    /** The plain forward pass: the engine's reference backend. */
    private static float[][] plainForward(Path dir, int[] prompt) {
        // the executor keeps keys and values exactly: compare with the engine's float32 cache
        try (LanguageModel lm = LanguageModel.load(dir, ModelOptions.defaults().withBackend("reference")
                .withThreads(1).withMaxContext(64).withKvCache(ai.k2j.kernels.KvPrecision.F32))) {
            return lm.logits(prompt);
        }
    }

    /**
     * Runs every mapping on every grid (an MoE model: the mesh mappings with each expert placement, stacked and on
     * sub-meshes); checks logits, the cycle walk and the tile sizes.
     */
    private static void check(Path dir, int[] prompt, float[][] reference, float[][] hf) {
        ModelShape shape = ModelSource.resolve(dir.toString());
        int[][] grids = {{16, 24}, {40, 56}, {96, 128}};
        int plansRun = 0;
        java.util.Set<String> expertGrids = new java.util.TreeSet<>();
        for (int[] g : grids) {
            for (String mapping : new String[] {"layer-pipeline", "mesh", "tiled-mesh", "mesh/sub-meshes",
                    "tiled-mesh/sub-meshes"}) {
                if (mapping.endsWith("/sub-meshes") && shape.moe() == null) {
                    continue;
                }
                PlanRequest req = PlanRequest.of(shape, toyDevice(g[0], g[1])).withCtx(64)
                        .withMapping(mapping.replace("/sub-meshes", ""));
                Plan plan;
                try {
                    plan = mapping.endsWith("/sub-meshes")
                            ? new MeshPlanner(req, mapping.startsWith("tiled"), false).plan(true)
                            : Planner.plan(req);
                } catch (PlanException e) {
                    continue;   // this mapping has no legal placement on this grid
                }
                if (plan == null) {
                    continue;
                }
                if (shape.moe() != null) {
                    Plan.Mesh m = plan.shapes().mesh();
                    expertGrids.add(m.expertGridRows() * m.expertGridCols() == 1 ? "stacked" : "sub-meshes");
                }
                // through the JSON document, as a consumer of plan.json would get it
                Plan read = PlanJson.read(PlanJson.write(plan), "plan.json");
                PlanExecutor.Result r = PlanExecutor.run(read, dir, prompt);
                String what = dir.getFileName() + " " + mapping + " on " + g[0] + "x" + g[1];
                for (int t = 0; t < prompt.length; t++) {
                    double scale = 1;
                    double worst = 0;
                    double worstHf = 0;
                    for (int v = 0; v < reference[t].length; v++) {
                        scale = Math.max(scale, Math.abs(reference[t][v]));
                        worst = Math.max(worst, Math.abs(r.logits()[t][v] - reference[t][v]));
                        if (hf != null) {
                            worstHf = Math.max(worstHf, Math.abs(r.logits()[t][v] - hf[t][v]));
                        }
                    }
                    assertTrue(worst <= 1e-4 * scale, what + " position " + t + ": |plan - forward| = " + worst);
                    assertTrue(worstHf <= 1e-3 * scale, what + " position " + t + ": |plan - HF| = " + worstHf);
                }
                long parts = read.nodes().size() + read.edges().size();
                assertEquals(read.performance().decodeCyclesPerToken(), r.walkCycles(), 0.1 * parts + 1e-6,
                        what + ": cycles over the walk vs the plan's decode cycles per token");
                assertTrue(r.maxTileOverPlan() <= 1 + 1e-9 && r.maxTileOverPlan() > 0.5, what
                        + ": a PE's executed weight slices vs the plan's weights per PE: " + r.maxTileOverPlan());
                assertTrue(r.tilesRun() > 0 && r.treeReductions() > 0, what);
                plansRun++;
            }
        }
        assertTrue(plansRun >= 5, dir + ": only " + plansRun + " plans were legal on the test grids");
        if (shape.moe() != null) {
            assertEquals(java.util.Set.of("stacked", "sub-meshes"), expertGrids, dir + ": both expert placements run");
        }
    }

    @TestFactory
    Stream<DynamicTest> goldenFixtures() throws IOException {
        List<Path> cases;
        try (Stream<Path> s = Files.list(goldenDir())) {
            cases = s.filter(p -> Files.isRegularFile(p.resolve("expected.json"))).sorted().toList();
        }
        assertTrue(cases.size() >= 3, "golden fixtures missing under " + goldenDir());
        List<DynamicTest> tests = new ArrayList<>();
        for (Path c : cases) {
            tests.add(DynamicTest.dynamicTest(c.getFileName().toString(), () -> {
                JsonNode expected = JSON.readTree(c.resolve("expected.json").toFile());
                String arch = JSON.readTree(c.resolve("config.json").toFile()).path("architectures").path(0).asText();
                if (!PlanExecutor.EXECUTABLE.contains(arch)) {
                    // an architecture the executor does not walk (MLA) is refused, not mis-run
                    Plan p = Planner.plan(PlanRequest.of(ModelSource.resolve(c.toString()), toyDevice(40, 56))
                            .withCtx(16));
                    PlanException e = assertThrows(PlanException.class, () -> PlanExecutor.run(p, c, new int[] {1}));
                    assertTrue(e.getMessage().contains(arch), e.getMessage());
                    return;
                }
                int[] prompt = ints(expected.get("prompt_ids"));
                if (prompt.length > 12) {
                    prompt = java.util.Arrays.copyOf(prompt, 12);
                }
                Npy.Array hf = Npy.readFloat32(c.resolve("logits.npy"));
                float[][] hfRows = new float[prompt.length][];
                for (int t = 0; t < prompt.length; t++) {
                    hfRows[t] = hf.row(t);
                }
                check(c, prompt, plainForward(c, prompt), hfRows);
            }));
        }
        return tests.stream();
    }

    @Test
    void tinySynthPreset(@TempDir Path tmp) {
        Path model = tmp.resolve("tiny");
        TestCheckpoints.write(model, 64, 2, 1024, 7, false); // the shape of `k2j synth --preset tiny`
        int[] prompt = {1, 17, 300, 5, 999, 42, 7, 128};
        check(model, prompt, plainForward(model, prompt), null);
    }

    @Test
    void refusesAPlanForAnotherModel(@TempDir Path tmp) {
        Path model = tmp.resolve("tiny");
        TestCheckpoints.write(model, 64, 2, 1024, 7, false);
        Plan other = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-0.5b"), DeviceSpec.builtIn("wse3")));
        PlanException e = assertThrows(PlanException.class, () -> PlanExecutor.run(other, model, new int[] {1}));
        assertTrue(e.getMessage().contains("plan is for qwen2.5-0.5b"), e.getMessage());
        Plan tiny = Planner.plan(PlanRequest.of(ModelSource.resolve(model.toString()), toyDevice(40, 56)).withCtx(4));
        PlanException full = assertThrows(PlanException.class,
                () -> PlanExecutor.run(tiny, model, new int[] {1, 2, 3, 4, 5}));
        assertTrue(full.getMessage().contains("exceed the plan's ctx 4"), full.getMessage());
    }
}
