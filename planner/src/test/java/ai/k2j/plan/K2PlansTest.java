package ai.k2j.plan;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The plans issue 20 asks for: K2 Think's backbone with a draft, and Kimi K2 read from its config.json. */
class K2PlansTest {

    static Path kimiConfig() {
        String root = System.getProperty("k2j.repoRoot");
        Path base = root != null ? Path.of(root, "engine") : Path.of("").toAbsolutePath();
        return base.resolve("src/test/resources/plan/kimi-k2/config.json");
    }

    @Test
    void k2ThinkBackboneWithADraftBeatsTheTargetAlone() {
        DeviceSpec d = DeviceSpec.builtIn("wse3");
        Plan alone = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-32b"), d).withCtx(4096));
        PlannerPropertyTest.assertLegal(alone, "qwen2.5-32b");
        for (double accept : new double[] {0.75, 0.9}) {
            Planner.Result r = Planner.search(PlanRequest.of(Presets.get("qwen2.5-32b"), d).withCtx(4096)
                    .withDraft(Presets.get("qwen2.5-0.5b"), accept, 0));
            Plan p = r.fastest();
            PlannerPropertyTest.assertLegal(p, "qwen2.5-32b + 0.5b at " + accept);
            Plan.Speculative s = p.performance().speculative();
            assertNotNull(s);
            assertTrue(s.tokensPerSecond() > alone.performance().decodeTokensPerSecond(),
                    "accept " + accept + ": " + s.tokensPerSecond() + " vs " + alone.performance().decodeTokensPerSecond());
            assertTrue(r.fewest().request().wafers() <= p.request().wafers());
            // the search compared every mapping and says which plan won
            assertTrue(p.search().alternatives().stream().anyMatch(a -> a.mapping().equals("layer-pipeline")));
            assertTrue(p.search().alternatives().stream().anyMatch(a -> a.role().startsWith("fastest")));
        }
    }

    @Test
    void kimiK2FromItsConfigPlacesExpertsAcrossWafersWithAnAllToAll() {
        ModelShape k2 = ModelSource.resolve(kimiConfig().toString());
        assertNotNull(k2.moe());
        assertNotNull(k2.mla());
        assertEquals(384, k2.moe().experts());
        assertEquals(8, k2.moe().topK());
        assertEquals(1, k2.moe().sharedExperts());
        assertEquals(1, k2.moe().firstMoeLayer());
        assertEquals(512 + 64, k2.kvBytesPerTokenPerLayer() / 2);
        assertEquals(1.03e12, k2.parameterCount(), 0.02e12, "about a trillion parameters");
        DeviceSpec d = DeviceSpec.builtIn("wse3");
        Plan bf16 = Planner.plan(PlanRequest.of(k2, d).withCtx(4096));
        PlannerPropertyTest.assertLegal(bf16, "kimi-k2 bf16");
        assertTrue(bf16.shapes().mesh().expertSpan() > 1, "a 34 GB MoE layer needs more than one wafer's mesh");
        Plan.Node experts = bf16.nodes().stream().filter(n -> n.kind() == NodeKind.EXPERT).findFirst().orElseThrow();
        assertTrue(experts.decode().interWafer() > 0, "dispatch and combine cross wafers: " + experts.decode());
        assertTrue(bf16.nodes().stream().filter(n -> n.id().startsWith("L5.experts")).count() > 1,
                "one expert partition per wafer the layer spans");
        assertTrue(bf16.nodes().stream().anyMatch(n -> n.id().equals("L0.mlp")), "the first layer stays dense");
        Plan fp8 = Planner.plan(PlanRequest.of(k2, d).withCtx(4096).withDtype(WeightDType.FP8));
        PlannerPropertyTest.assertLegal(fp8, "kimi-k2 fp8");
        assertTrue(fp8.request().wafers() < bf16.request().wafers());
    }
}
