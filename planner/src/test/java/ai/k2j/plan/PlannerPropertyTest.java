package ai.k2j.plan;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Every plan the planner returns is legal; every request it cannot serve gets a clear error. */
class PlannerPropertyTest {

    static final int CASES = 32;

    /** A random shape, or (one time in three) a published preset, so that large models and refusals occur. */
    static ModelShape randomModel(Random r, int i) {
        if (r.nextInt(3) == 0) {
            List<ModelShape> presets = new ArrayList<>(Presets.all().values());
            return presets.get(r.nextInt(presets.size()));
        }
        int[] headDims = {16, 32, 64, 128};
        int headDim = headDims[r.nextInt(headDims.length)];
        int kvHeads = 1 << r.nextInt(4);
        int heads = kvHeads * (1 << r.nextInt(4));
        int hidden = heads * headDim * (r.nextInt(4) == 0 ? 2 : 1);
        int intermediate = hidden + r.nextInt(4 * hidden);
        int layers = 1 + r.nextInt(r.nextBoolean() ? 12 : 96);
        int vocab = 256 + r.nextInt(160_000);
        return new ModelShape("random-" + i, "Qwen2ForCausalLM", hidden, intermediate, layers, heads, kvHeads, headDim,
                vocab, r.nextBoolean(), r.nextBoolean(), 32768, null);
    }

    static void assertLegal(Plan p, String what) {
        for (Plan.Check c : p.checks()) {
            assertTrue(c.ok(), what + ": " + c.name() + ": " + c.detail());
        }
        // the validator re-derives everything from the document: a JSON round trip must pass it too
        for (Plan.Check c : PlanValidator.check(PlanJson.read(PlanJson.write(p), what))) {
            assertTrue(c.ok(), what + " (round-tripped): " + c.name() + ": " + c.detail());
        }
        // and a few invariants stated independently of the validator
        int layers = p.model().layers() + (p.draft() == null ? 0 : p.draft().layers());
        int ends = (p.model().tiedEmbeddings() ? 2 : 3) + (p.draft() == null ? 0 : p.draft().tiedEmbeddings() ? 2 : 3);
        boolean mesh = p.shapes().usesMesh();
        if (p.model().layers() > 0 && !mesh) {
            assertEquals(5 * layers + ends, p.nodes().size(), what);
        }
        long pes = 0;
        Set<String> ids = new HashSet<>();
        Set<Long> covered = new HashSet<>();
        for (Plan.Node n : p.nodes()) {
            if (!mesh) {
                pes += n.pes();
            } else {
                // the mesh mappings stack partitions on the same PEs: count each PE once (corners suffice:
                // the rectangles are tiles, or lie inside one)
                Plan.Rect r = n.rect();
                if (covered.add(((long) n.wafer() << 40) | ((long) r.row() << 20) | r.col())) {
                    boolean inside = false;
                    for (Plan.Node o : p.nodes()) {
                        Plan.Rect x = o.rect();
                        inside |= o.wafer() == n.wafer() && !x.equals(r) && x.row() <= r.row() && x.col() <= r.col()
                                && x.row() + x.rows() >= r.row() + r.rows() && x.col() + x.cols() >= r.col() + r.cols();
                    }
                    pes += inside ? 0 : r.pes();
                }
            }
            assertTrue(ids.add(n.id()), "duplicate node " + n.id());
            assertTrue(n.sram().totalPerPe() <= n.sram().capacityPerPe(), n.id());
        }
        long grid = (long) (p.device().parameters().get("peRows").value() * p.device().parameters().get("peCols").value());
        assertTrue(pes <= grid * p.request().wafers(), what + ": more PEs than the wafers have");
        assertTrue(p.performance().decodeTokensPerSecond() > 0 && p.performance().prefillTokensPerSecond() > 0);
        assertTrue(p.performance().aggregateDecodeTokensPerSecond() >= p.performance().decodeTokensPerSecond() - 1e-6);
    }

    @Test
    void randomRequestsYieldLegalPlansOrClearErrors() {
        Random r = new Random(20250711);
        WeightDType[] dtypes = WeightDType.values();
        int planned = 0;
        int refused = 0;
        List<String> errors = new ArrayList<>();
        for (int i = 0; i < CASES; i++) {
            ModelShape m = randomModel(r, i);
            DeviceSpec dev = DeviceSpec.builtIn(r.nextInt(3) == 0 ? "wse2" : "wse3");
            int ctx = 1 << (6 + r.nextInt(12));           // 64 .. 131072
            int batch = 1 + r.nextInt(r.nextInt(4) == 0 ? 64 : 2);
            int wafers = r.nextBoolean() ? 1 + r.nextInt(2) : 0;
            if (i % 4 == 3) {                             // stress: a large published model on few wafers, long context
                List<String> big = List.of("qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b", "llama-3.1-70b");
                m = Presets.get(big.get(r.nextInt(big.size())));
                ctx = 32768 << r.nextInt(3);
                batch = 1 + r.nextInt(8);
                wafers = 1 + r.nextInt(2);
            }
            PlanRequest req = PlanRequest.of(m, dev).withCtx(ctx).withBatch(batch).withWafers(wafers)
                    .withDtype(dtypes[r.nextInt(dtypes.length)]);
            String what = m.name() + " (" + m.hidden() + "h x " + m.layers() + "L, vocab " + m.vocab() + ") ctx " + ctx
                    + " batch " + batch + " wafers " + wafers + " on " + dev.id();
            try {
                Plan p = Planner.plan(req);
                assertLegal(p, what);
                if (wafers > 0) {
                    assertEquals(wafers, p.request().wafers(), what);
                }
                planned++;
            } catch (PlanException e) {
                assertFalse(e.getMessage() == null || e.getMessage().isBlank(), what);
                assertTrue(e.getMessage().startsWith(m.name()), what + ": error does not name the model: "
                        + e.getMessage());
                errors.add(e.getMessage());
                refused++;
            }
        }
        assertTrue(planned >= CASES / 2, "too few random requests were plannable (" + planned + "); errors: " + errors);
        assertTrue(refused >= 2, "the random requests never hit a limit; widen the generator");
    }

    @Test
    void draftPlansAreLegalAndSpeculationIsCosted() {
        Plan p = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-3b"), DeviceSpec.builtIn("wse3")).withCtx(2048)
                .withDraft(Presets.get("qwen2.5-0.5b"), 0.8, 0));
        assertLegal(p, "qwen2.5-3b + 0.5b");
        Plan.Speculative s = p.performance().speculative();
        assertTrue(s != null && s.k() >= 1 && s.k() <= PlanRequest.MAX_SPEC_K);
        assertEquals(Planner.expectedTokens(0.8, s.k()), s.expectedTokensPerStep(), 1e-3);
        double cycles = s.k() * s.draftCyclesPerToken() + s.verifyCycles() + s.exchangeCycles();
        double f = DeviceSpec.builtIn("wse3").clockHz();
        assertEquals(s.expectedTokensPerStep() * f / cycles, s.tokensPerSecond(), s.tokensPerSecond() * 1e-2);
        assertTrue(s.verifyCycles() > p.performance().decodeCyclesPerToken(), "verifying k+1 tokens costs more than one");
        // a draft that is always accepted beats one that is rarely accepted
        Plan good = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-3b"), DeviceSpec.builtIn("wse3")).withCtx(2048)
                .withDraft(Presets.get("qwen2.5-0.5b"), 0.95, 4));
        Plan bad = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-3b"), DeviceSpec.builtIn("wse3")).withCtx(2048)
                .withDraft(Presets.get("qwen2.5-0.5b"), 0.1, 4));
        assertEquals(4, good.performance().speculative().k());
        assertTrue(good.performance().speculative().tokensPerSecond() > bad.performance().speculative().tokensPerSecond());
    }

    @Test
    void theWaferCountIsTheFewestThatHoldTheModel() {
        DeviceSpec d = DeviceSpec.builtIn("wse3");
        Plan p = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-72b"), d).withCtx(4096)
                .withMapping("layer-pipeline"));
        assertLegal(p, "qwen2.5-72b");
        int n = p.request().wafers();
        assertTrue(n >= 4, "72B in BF16 (145 GB) cannot fit fewer than 4 wafers of 44 GB");
        PlanException fewer = assertThrows(PlanException.class,
                () -> Planner.plan(PlanRequest.of(Presets.get("qwen2.5-72b"), d).withCtx(4096).withWafers(n - 1)
                        .withMapping("layer-pipeline")));
        assertTrue(fewer.getMessage().contains("--wafers " + n), fewer.getMessage());
        // FP8 weights need fewer wafers
        Plan fp8 = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-72b"), d).withCtx(4096).withDtype(WeightDType.FP8));
        assertTrue(fp8.request().wafers() < n);
        assertLegal(fp8, "qwen2.5-72b fp8");
    }

    @Test
    void impossibleRequestsSayWhyAndWhatWouldWork() {
        DeviceSpec d = DeviceSpec.builtIn("wse3");
        PlanException tooFew = assertThrows(PlanException.class,
                () -> Planner.plan(PlanRequest.of(Presets.get("llama-3.1-70b"), d).withCtx(2048).withWafers(1)));
        String m = tooFew.getMessage();
        assertTrue(m.contains("does not fit on 1 wse3 wafer") && m.contains("--wafers 4"), m);
        assertTrue(m.contains("ms per token") && m.contains("streaming"), "streaming must be costed: " + m);
        assertTrue(m.contains("--dtype fp8"), m);

        PlanException ctx = assertThrows(PlanException.class,
                () -> Planner.plan(PlanRequest.of(Presets.get("llama-3.1-8b"), d).withCtx(8_000_000)));
        assertTrue(ctx.getMessage().contains("KV cache") && ctx.getMessage().contains("--ctx"), ctx.getMessage());

        assertThrows(PlanException.class, () -> PlanRequest.of(Presets.get("tiny"), d).withCtx(0));
        assertThrows(PlanException.class, () -> PlanRequest.of(Presets.get("tiny"), d).withBatch(0));
        assertThrows(PlanException.class, () -> PlanRequest.of(Presets.get("tiny"), d)
                .withDraft(Presets.get("tiny"), 1.0, 0));
        assertThrows(PlanException.class, () -> PlanRequest.of(Presets.get("tiny"), d)
                .withDraft(Presets.get("tiny"), 0.7, PlanRequest.MAX_SPEC_K + 1));
    }

    @Test
    void batchSharesThePipelineAndSizesTheKvCache() {
        DeviceSpec d = DeviceSpec.builtIn("wse3");
        Plan one = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-1.5b"), d).withCtx(4096));
        Plan eight = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-1.5b"), d).withCtx(4096).withBatch(8));
        assertLegal(eight, "qwen2.5-1.5b batch 8");
        long kv1 = one.nodes().stream().mapToLong(Plan.Node::kvBytes).sum();
        long kv8 = eight.nodes().stream().mapToLong(Plan.Node::kvBytes).sum();
        assertEquals(8 * kv1, kv8);
        assertTrue(eight.performance().aggregateDecodeTokensPerSecond() > 4 * eight.performance().decodeTokensPerSecond());
    }

    @Test
    void plansAreDeterministic() {
        PlanRequest req = PlanRequest.of(Presets.get("qwen2.5-7b"), DeviceSpec.builtIn("wse3")).withCtx(8192);
        String a = PlanJson.write(Planner.plan(req));
        String b = PlanJson.write(Planner.plan(req));
        assertEquals(a, b);
        if (!a.contains("\"schema\" : \"k2j.plan/1\"")) {
            fail("plan.json does not start with its schema");
        }
    }
}
