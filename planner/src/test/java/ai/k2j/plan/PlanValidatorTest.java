package ai.k2j.plan;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The validator catches each kind of illegal plan (so "all checks ok" means something). */
class PlanValidatorTest {
    static Plan plan;

    @BeforeAll
    static void plan() {
        plan = Planner.plan(PlanRequest.of(Presets.get("qwen2.5-0.5b"), DeviceSpec.builtIn("wse3")).withCtx(4096)
                .withMapping("layer-pipeline"));
        for (Plan.Check c : PlanValidator.check(plan)) {
            assertTrue(c.ok(), c.name() + ": " + c.detail());
        }
    }

    static Plan withNodes(UnaryOperator<List<Plan.Node>> f) {
        List<Plan.Node> nodes = f.apply(new ArrayList<>(plan.nodes()));
        return new Plan(plan.schema(), plan.model(), plan.draft(), plan.request(), plan.device(), plan.calibration(),
                plan.shapes(), plan.wafers(), nodes, plan.edges(), plan.performance(), plan.checks(), plan.warnings(),
                plan.search());
    }

    static Plan withEdges(UnaryOperator<List<Plan.Edge>> f) {
        List<Plan.Edge> edges = f.apply(new ArrayList<>(plan.edges()));
        return new Plan(plan.schema(), plan.model(), plan.draft(), plan.request(), plan.device(), plan.calibration(),
                plan.shapes(), plan.wafers(), plan.nodes(), edges, plan.performance(), plan.checks(), plan.warnings(),
                plan.search());
    }

    static Plan.Node moved(Plan.Node n, Plan.Rect r, int wafer) {
        return new Plan.Node(n.id(), n.kind(), n.model(), n.layer(), n.expert(), wafer, r, r.pes(), n.sram(),
                n.weightBytes(), n.kvBytes(), n.flopsPerToken(), n.bytesMovedPerToken(), n.decode(),
                n.prefillCyclesPerToken());
    }

    static void assertFails(Plan p, String check) {
        boolean found = false;
        for (Plan.Check c : PlanValidator.check(p)) {
            if (c.name().equals(check)) {
                assertFalse(c.ok(), check + " should fail: " + c.detail());
                found = true;
            }
        }
        assertTrue(found, "no check named " + check);
    }

    static int index(String id) {
        for (int i = 0; i < plan.nodes().size(); i++) {
            if (plan.nodes().get(i).id().equals(id)) {
                return i;
            }
        }
        throw new AssertionError(id);
    }

    @Test
    void overlappingRectanglesAreCaught() {
        int a = index("L0.attn");
        int b = index("L1.attn");
        assertFails(withNodes(ns -> {
            ns.set(b, moved(ns.get(b), ns.get(a).rect(), ns.get(a).wafer()));
            return ns;
        }), "rectangles disjoint");
    }

    @Test
    void rectanglesOffTheGridAreCaught() {
        int a = index("L3.mlp");
        assertFails(withNodes(ns -> {
            Plan.Rect r = ns.get(a).rect();
            ns.set(a, moved(ns.get(a), new Plan.Rect(1172 - 1, r.col(), r.rows(), r.cols()), 0));
            return ns;
        }), "rectangles inside the grid");
        assertFails(withNodes(ns -> {
            ns.set(a, moved(ns.get(a), ns.get(a).rect(), 5));
            return ns;
        }), "wafer count");
    }

    @Test
    void sramOverCapacityIsCaught() {
        int a = index("L2.mlp");
        assertFails(withNodes(ns -> {
            Plan.Node n = ns.get(a);
            Plan.Sram s = n.sram();
            long w = s.capacityPerPe();
            Plan.Sram over = new Plan.Sram(w, s.kvPerPe(), s.activationsPerPe(), s.reservedPerPe(),
                    s.reservedPerPe() + w + s.kvPerPe() + s.activationsPerPe(), s.capacityPerPe());
            ns.set(a, new Plan.Node(n.id(), n.kind(), n.model(), n.layer(), n.expert(), n.wafer(), n.rect(), n.pes(),
                    over, n.weightBytes(), n.kvBytes(), n.flopsPerToken(), n.bytesMovedPerToken(), n.decode(),
                    n.prefillCyclesPerToken()));
            return ns;
        }), "SRAM per PE");
    }

    @Test
    void aMissingPartitionIsCaught() {
        int a = index("L5.kv");
        assertFails(withNodes(ns -> {
            ns.remove(a);
            return ns;
        }), "all weights resident");
    }

    @Test
    void brokenRoutesAreCaught() {
        assertFails(withEdges(es -> {
            Plan.Edge e = es.get(3);
            es.set(3, new Plan.Edge(e.from(), e.to(), e.bytesPerToken(), e.links(), e.hops() + 5, e.interWafer(),
                    e.decode(), e.route()));
            return es;
        }), "routes connected");
        assertFails(withEdges(es -> {
            Plan.Edge e = es.get(3);
            List<Plan.Point> r = new ArrayList<>(e.route());
            Plan.Point last = r.get(r.size() - 1);
            r.set(r.size() - 1, new Plan.Point(last.wafer(), last.row() + 300, last.col() + 1));
            es.set(3, new Plan.Edge(e.from(), e.to(), e.bytesPerToken(), e.links(), e.hops(), e.interWafer(),
                    e.decode(), r));
            return es;
        }), "routes connected");
    }

    @Test
    void aStreamBeyondItsLinksIsCaught() {
        assertFails(withEdges(es -> {
            Plan.Edge e = es.get(1);
            es.set(1, new Plan.Edge(e.from(), e.to(), 1e9, e.links(), e.hops(), e.interWafer(), e.decode(), e.route()));
            return es;
        }), "routes within fabric bandwidth");
    }

    @Test
    void tooManyStreamsThroughOneRouterAreCaught() {
        assertFails(withEdges(es -> {
            Plan.Edge e = es.get(1);
            for (int i = 0; i < 20; i++) {
                es.add(e);
            }
            return es;
        }), "routing colors");
    }
}
