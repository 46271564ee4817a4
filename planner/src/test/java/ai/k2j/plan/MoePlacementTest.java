package ai.k2j.plan;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The two expert placements of the mesh mappings: sub-meshes with dispatch and combine, or stacked experts. */
class MoePlacementTest {

    @Test
    void stackedExpertsSkipDispatchAndCombineAndWinWhenALayerFitsOneMesh() {
        ModelShape m = Presets.get("qwen3-235b-a22b");
        PlanRequest req = PlanRequest.of(m, DeviceSpec.builtIn("wse3")).withCtx(2048).withMapping("tiled-mesh");
        MeshPlanner mp = new MeshPlanner(req, true);
        MeshPlanner.Mesh mesh = new MeshPlanner.Mesh(293, 762, 4, 1);
        MeshPlanner.Candidate sub = mp.evaluate(24, mesh, mesh, false);
        MeshPlanner.Candidate stacked = mp.evaluate(24, mesh, mesh, true);
        assertNotNull(sub);
        assertNotNull(stacked);
        assertTrue(stacked.stacked() && !sub.stacked());
        assertTrue(stacked.tokenCycles() < sub.tokenCycles(),
                "stacked " + stacked.tokenCycles() + " vs sub-meshes " + sub.tokenCycles());
        assertTrue(mp.evaluate(24, mesh, mesh).stacked(), "the search keeps the faster placement");

        Plan p = Planner.plan(req.withWafers(24));
        PlannerPropertyTest.assertLegal(p, "qwen3-235b stacked");
        assertEquals(1, p.shapes().mesh().expertGridRows() * p.shapes().mesh().expertGridCols());
        Plan.Node experts = p.nodes().stream().filter(n -> n.kind() == NodeKind.EXPERT).findFirst().orElseThrow();
        // the k chosen experts' MeshGEMVs reduce along the mesh's lines only: no multicast to, or combine tree
        // from, sub-meshes anywhere in the mesh (those would add R + C hops twice)
        int r = p.shapes().mesh().rows();
        int c = p.shapes().mesh().cols();
        assertEquals(2.0 * (r - 1) + 2.0 * (c - 1), experts.decode().hops(), 1e-9, "one all-reduce over each line");
        Plan.Node router = p.nodes().stream().filter(n -> n.kind() == NodeKind.ROUTER).findFirst().orElseThrow();
        // the router's all-reduce over the rows, then its top k over the 128 columns that hold scores, sent to all
        assertEquals(2.0 * (r - 1) + (128 - 1) + (c - 1), router.decode().hops(), 1e-9);
        assertTrue(PlanSummary.text(p).contains("experts stacked"), PlanSummary.text(p));
    }

    @Test
    void aLayerSpanningWafersKeepsSubMeshesAndTheAllToAll() {
        ModelShape k2 = ModelSource.resolve(K2PlansTest.kimiConfig().toString());
        PlanRequest req = PlanRequest.of(k2, DeviceSpec.builtIn("wse3")).withCtx(4096);
        MeshPlanner mp = new MeshPlanner(req, false);
        MeshPlanner.Mesh whole = new MeshPlanner.Mesh(1172, 762);
        assertNull(mp.evaluate(120, whole, whole, true), "34 GB of BF16 experts do not fit one wafer stacked");
        Plan bf16 = Planner.plan(req);
        assertTrue(bf16.shapes().mesh().expertSpan() > 1);
        assertTrue(bf16.shapes().mesh().expertGridRows() * bf16.shapes().mesh().expertGridCols() > 1);
    }
}
