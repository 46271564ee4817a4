package ai.k2j.plan;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The plans issue 20 asks for: K2 Think's backbone with a draft, and Kimi K2 read from its config.json. */
class K2PlansTest {

    static Path kimiConfig() {
        return planConfig("kimi-k2");
    }

    static Path planConfig(String model) {
        String root = System.getProperty("k2j.repoRoot");
        Path base = root != null ? Path.of(root, "engine") : Path.of("").toAbsolutePath();
        return base.resolve("src/test/resources/plan/" + model + "/config.json");
    }

    /** DeepSeek-V3 read from its published config.json: the preset's shape, 671B, the MLA cache, an FP8 plan. */
    @Test
    void deepSeekV3FromItsConfigMatchesThePresetAndPlansInFp8() {
        ModelShape read = ModelSource.resolve(planConfig("deepseek-v3").toString());
        ModelShape preset = Presets.get("deepseek-v3");
        assertEquals(preset, new ModelShape(preset.name(), read.architecture(), read.hidden(), read.intermediate(),
                read.layers(), read.heads(), read.kvHeads(), read.headDim(), read.vocab(), read.tiedEmbeddings(),
                read.qkvBias(), read.maxPositions(), read.moe(), read.mla(), read.qkNorm()));
        assertEquals(671.0e9, read.parameterCount(), 0.5e9, "DeepSeek-V3's 671B (without the MTP module)");
        assertEquals(3, read.moe().firstMoeLayer());
        assertTrue(!read.isMoe(2) && read.isMoe(3));
        // MLA caches the 512-wide latent and the 64-wide RoPE key: 1,152 B per token and layer at 16 bits, against
        // 128 heads x (192 + 128) x 2 B = 81,920 B expanded
        assertEquals(1152, read.kvBytesPerTokenPerLayer());
        Plan fp8 = Planner.plan(PlanRequest.of(read, DeviceSpec.builtIn("wse3")).withCtx(4096)
                .withDtype(WeightDType.FP8).withWafers(29).withMapping("tiled-mesh"));
        PlannerPropertyTest.assertLegal(fp8, "deepseek-v3 fp8");
        assertEquals(61L * 4096 * 1152, fp8.nodes().stream().filter(n -> n.kind() == NodeKind.KV_CACHE)
                .mapToLong(Plan.Node::kvBytes).sum());
        assertTrue(fp8.nodes().stream().anyMatch(n -> n.id().equals("L2.mlp"))
                && fp8.nodes().stream().anyMatch(n -> n.id().equals("L3.router")), "three dense layers, then MoE");
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
